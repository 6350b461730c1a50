"""One vector-store contract, two backends: llama-index's vector store API plus `count`, `flush` and `close`.

Embedded Qdrant Edge under the index folder by default; a Qdrant server or cluster when a URL is configured.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from llama_index.core.schema import BaseNode
from llama_index.core.vector_stores.types import VectorStoreQuery, VectorStoreQueryResult

from rag.config import Settings
from rag.errors import IndexCorruptError


@runtime_checkable
class VectorStore(Protocol):
    def add(self, nodes: list[BaseNode]) -> list[str]: ...
    def delete(self, ref_doc_id: str) -> None: ...
    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult: ...
    def get_nodes(self, node_ids: list[str] | None = None) -> list[BaseNode]: ...
    def count(self) -> int: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


def verify_store(store: VectorStore, complete_chunks: int, where: str) -> None:
    """Every chunk of a document the registry calls complete is in the store, so fewer points than that means
    the vectors were lost (a deleted or replaced index/qdrant, a dropped collection): say so instead of
    answering from nothing and reporting every file unchanged."""
    if complete_chunks and store.count() < complete_chunks:
        raise IndexCorruptError(
            f"the vector index at {where} holds fewer passages than the document registry lists ({complete_chunks})",
            "rebuild it with `rag ingest --rebuild`",
        )


def edge_path(settings: Settings) -> Path:
    return settings.index_dir / "qdrant"


def open_vector_store(settings: Settings) -> VectorStore:
    if settings.qdrant_url:
        from rag.store.client import open_server_store

        return open_server_store(
            settings.qdrant_url,
            settings.qdrant_api_key.get_secret_value(),
            settings.collection,
            settings.request_timeout,
        )
    from rag.store.edge import EdgeVectorStore

    return EdgeVectorStore(edge_path(settings))
