"""A Qdrant server or cluster through qdrant-client, as llama-index's QdrantVectorStore.

`file:///some/folder` selects qdrant-client's local mode (a pure-Python stand-in for a server, for tests and
small experiments); any http(s) URL selects a real server.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from llama_index.core.schema import BaseNode
from llama_index.core.vector_stores.types import VectorStoreQuery, VectorStoreQueryMode, VectorStoreQueryResult
from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict
from llama_index.vector_stores.qdrant import QdrantVectorStore

from rag.errors import BackendUnavailableError, IndexLockedError
from rag.store import hybrid, lexical
from rag.store.hybrid import DENSE, SPARSE

_UPSERT_BATCH = 256


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
    # The version check is one more round trip, and a warning, at every start: connectivity is checked below.
    return QdrantClient(url=url, api_key=api_key or None, timeout=int(timeout), check_compatibility=False)


class ServerVectorStore(QdrantVectorStore):
    """llama-index's QdrantVectorStore (collections, deletes, filters) with rag's own hybrid write and query, so a
    server ranks exactly like the embedded index: our sparse vectors, IDF and reciprocal rank fusion in Qdrant
    (llama-index would download a sparse model and fuse in Python), plus `count`, `flush` and `close`."""

    def add(self, nodes: list[BaseNode], **kwargs: Any) -> list[str]:
        from qdrant_client import models

        if not nodes:
            return []
        if not self._collection_exists(self.collection_name):
            self._create_collection(self.collection_name, len(nodes[0].get_embedding()))
            self._collection_initialized = True
        for begin in range(0, len(nodes), _UPSERT_BATCH):
            batch = nodes[begin : begin + _UPSERT_BATCH]
            points = []
            for node in batch:
                indices, values = hybrid.passage_sparse(node)
                points.append(models.PointStruct(
                    id=node.node_id, payload=node_to_metadata_dict(node, remove_text=False, flat_metadata=True),
                    vector={DENSE: list(map(float, node.get_embedding())),
                            SPARSE: models.SparseVector(indices=indices, values=values)},
                ))
            self.client.upsert(self.collection_name, points=points)
        return [node.node_id for node in nodes]

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        from qdrant_client import models

        if not self._collection_exists(self.collection_name):
            return VectorStoreQueryResult(nodes=[], similarities=[], ids=[])
        where = self._build_query_filter(query)
        indices, values = hybrid.question_sparse(query, kwargs.get("lang"))
        sparse = models.SparseVector(indices=indices, values=values)
        dense = list(map(float, query.query_embedding or []))
        chosen = hybrid.mode(query)
        if chosen == VectorStoreQueryMode.HYBRID:
            pool = hybrid.candidates(query)
            response = self.client.query_points(
                self.collection_name, query=models.FusionQuery(
                    fusion=models.Fusion.RRF if kwargs.get("fusion") == "rrf" else models.Fusion.DBSF),
                prefetch=[models.Prefetch(query=dense, using=DENSE, limit=pool, filter=where),
                          models.Prefetch(query=sparse, using=SPARSE, limit=pool, filter=where)],
                limit=query.similarity_top_k, with_payload=True, with_vectors=[DENSE],
            )
        else:
            on_sparse = chosen == VectorStoreQueryMode.SPARSE
            response = self.client.query_points(
                self.collection_name, query=sparse if on_sparse else dense, using=SPARSE if on_sparse else DENSE,
                query_filter=where, limit=query.similarity_top_k, with_payload=True, with_vectors=[DENSE],
            )
        hits = response.points
        vectors = [(hit.vector or {}).get(DENSE) if isinstance(hit.vector, dict) else hit.vector for hit in hits]
        return VectorStoreQueryResult(
            nodes=[metadata_dict_to_node(dict(hit.payload or {})) for hit in hits],
            similarities=hybrid.cosine_scores(query.query_embedding, vectors),
            ids=[str(hit.id) for hit in hits],
        )

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
    from qdrant_client import models

    def english_terms(texts: list[str]) -> tuple[list[list[int]], list[list[float]]]:
        vectors = [lexical.document_vector(text) for text in texts]
        return [v[0] for v in vectors], [v[1] for v in vectors]

    return ServerVectorStore(
        collection_name=collection, client=client, enable_hybrid=True, dense_vector_name=DENSE,
        sparse_vector_name=SPARSE, sparse_config=models.SparseVectorParams(modifier=models.Modifier.IDF),
        # Never called (add and query are ours); given so llama-index does not look for a sparse model.
        sparse_doc_fn=english_terms, sparse_query_fn=english_terms,
        payload_indexes=[{"field_name": "file", "field_schema": "keyword"},
                         {"field_name": "doc_id", "field_schema": "keyword"}],
    )
