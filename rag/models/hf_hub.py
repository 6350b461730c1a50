"""Hugging Face, through huggingface_hub: look up its cache, list a repo's files, download one file or a snapshot
into its cache (HF_HOME / HF_HUB_CACHE) with its progress bars. HF_ENDPOINT (a mirror) is huggingface_hub's own.

One of the two hub adapters (the other is modelscope_hub); rag.models.hubs picks between them."""

from __future__ import annotations

from pathlib import Path

LABEL = "Hugging Face"


def endpoint() -> str:
    from huggingface_hub import constants

    return str(constants.ENDPOINT)


def installed() -> bool:
    return True  # a dependency of sentence-transformers, so always there


def cached_snapshot(repo: str, patterns: list[str]) -> Path | None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo, allow_patterns=patterns, local_files_only=True))
    except (LocalEntryNotFoundError, ValueError, OSError):
        return None


def download_snapshot(repo: str, patterns: list[str]) -> Path:
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo, allow_patterns=patterns))


def cached_file(repo: str, filename: str) -> Path | None:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(repo, filename, local_files_only=True))
    except (LocalEntryNotFoundError, ValueError, OSError):
        return None


def list_files(repo: str) -> list[str]:
    from huggingface_hub import list_repo_files

    return list(list_repo_files(repo))


def download_file(repo: str, filename: str) -> Path:
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(repo, filename))
