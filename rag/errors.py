"""Failures a user can cause and fix: each carries one line saying what went wrong and what to do."""

from __future__ import annotations


class RagError(Exception):
    """An expected failure; front ends print `str(error)` as one line, without a traceback."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message}: {hint}" if hint else message)


class ConfigError(RagError):
    """A setting or config file is invalid."""

    exit_code = 2


class DocumentError(RagError):
    """A file cannot be read as a document (unsupported, unreadable, empty, binary)."""


class ModelError(RagError):
    """A model is missing, cannot be downloaded, or cannot be loaded."""


class IndexLockedError(RagError):
    """Another process has the embedded index open."""


class IndexCorruptError(RagError):
    """The index on disk cannot be read."""


class IndexMismatchError(RagError):
    """The index was built with settings (embedding model) incompatible with the current ones."""


class BackendUnavailableError(RagError):
    """A configured server (Qdrant or an OpenAI-compatible LLM) cannot be reached."""


class NotFoundError(RagError):
    """A named document or passage is not in the index."""


class ConversationStoreError(RagError):
    """The conversation store (conversations and their feedback) cannot be read or written."""
