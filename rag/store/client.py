"""A Qdrant server or cluster through qdrant-client, as llama-index's QdrantVectorStore.

`file:///some/folder` selects qdrant-client's local mode (a pure-Python stand-in for a server, for tests and
small experiments); any http(s) URL selects a real server.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from llama_index.core.schema import BaseNode
from llama_index.vector_stores.qdrant import QdrantVectorStore

from ..errors import BackendUnavailableError, IndexLockedError


def _connect(url: str, api_key: str, timeout: float) -> Any:
    from qdrant_client import QdrantClient

    parsed = urlparse(url)
    if parsed.scheme == "file":
        try:
            return QdrantClient(path=parsed.path)
        except RuntimeError as exc:
            if "already accessed" in str(exc):
                raise IndexLockedError(
                    f"the Qdrant folder {parsed.path} is open in another process", "close the other rag process"
                ) from exc
            raise
    return QdrantClient(url=url, api_key=api_key or None, timeout=int(timeout))


class ServerVectorStore(QdrantVectorStore):
    """QdrantVectorStore plus the two operations rag needs that llama-index's contract lacks."""

    def count(self) -> int:
        if not self._collection_exists(self.collection_name):
            return 0
        return int(self.client.count(self.collection_name, exact=True).count)

    def delete(self, ref_doc_id: str, **kwargs: Any) -> None:
        if self._collection_exists(self.collection_name):
            super().delete(ref_doc_id, **kwargs)

    def get_nodes(self, node_ids: list[str] | None = None, **kwargs: Any) -> list[BaseNode]:
        if not node_ids or not self._collection_exists(self.collection_name):
            return []
        try:
            return super().get_nodes(node_ids=node_ids, **kwargs)
        except ValueError:  # not a valid point id
            return []

    def flush(self) -> None:
        """A server persists on its own."""

    def close(self) -> None:
        self.client.close()


def open_server_store(url: str, api_key: str, collection: str, timeout: float) -> ServerVectorStore:
    client = _connect(url, api_key, timeout)
    try:
        client.get_collections()
    except Exception as exc:  # qdrant-client raises transport-specific errors
        raise BackendUnavailableError(
            f"cannot reach the Qdrant server at {url} ({type(exc).__name__})",
            "start it, or check RAG_QDRANT_URL and RAG_QDRANT_API_KEY",
        ) from exc
    return ServerVectorStore(collection_name=collection, client=client, payload_indexes=[
        {"field_name": "file", "field_schema": "keyword"},
        {"field_name": "doc_id", "field_schema": "keyword"},
    ])
