"""rag: local-first retrieval-augmented answers over your documents, with checkable citations."""

from rag.config import Settings, load_settings
from rag.errors import RagError
from rag.pipeline import Pipeline

__all__ = ["Pipeline", "RagError", "Settings", "load_settings"]
__version__ = "0.1.0"
