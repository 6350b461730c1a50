"""Qdrant Edge (the Qdrant engine in-process, on disk) as a llama-index vector store.

llama-index only ships a QdrantVectorStore for qdrant-client; this adapter gives Edge the same contract and the
same payload layout, so the rest of rag cannot tell the two apart.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from llama_index.core.schema import BaseNode
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    FilterOperator,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
)
from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict
from pydantic import PrivateAttr

from rag.errors import IndexCorruptError, IndexLockedError, RagError
from rag.store import hybrid
from rag.store.hybrid import DENSE, SPARSE

_KEYWORD_FIELDS = ("doc_id", "file")
_UPSERT_BATCH = 256
# Exact hybrid search costs ~0.08 ms per 1,000 unindexed points here (p95 1.9 ms at 10k, 8.9 ms at 100k: the
# 10 ms budget is gone near 110k). Optimizing every 20k new points keeps exact search under ~2 ms on top of the
# graph, and each optimize costs a few seconds, ~1% of the time it took to embed those chunks (eval/bench.py).
OPTIMIZE_MIN_UNINDEXED = 20_000


def _import_edge() -> Any:
    try:
        import qdrant_edge
    except ImportError as exc:  # pragma: no cover - a broken install
        raise RagError("qdrant-edge-py is not installed", "run `pip install qdrant-edge-py`") from exc
    return qdrant_edge


class EdgeVectorStore(BasePydanticVectorStore):
    """One Edge shard in `path`; created on the first `add` when it does not exist yet."""

    stores_text: bool = True
    flat_metadata: bool = True
    path: str
    dimension: int | None = None

    _shard: Any = PrivateAttr(default=None)

    def __init__(self, path: Path, dimension: int | None = None) -> None:
        super().__init__(path=str(path), dimension=dimension)
        if self.exists:
            self._shard = self._open(lambda qe: qe.EdgeShard.load(self.path))

    @property
    def exists(self) -> bool:
        return (Path(self.path) / "edge_config.json").exists() or any(Path(self.path).glob("segments"))

    @property
    def client(self) -> Any:
        return self._shard

    def _open(self, opener: Any) -> Any:
        qe = _import_edge()
        try:
            return opener(qe)
        except BaseException as exc:  # the binding raises plain Exception/PanicException for any failure
            text = str(exc)
            if "WouldBlock" in text or "lock" in text.lower():
                raise IndexLockedError(
                    f"the index at {self.path} is open in another process",
                    "close the other rag process (or use a Qdrant server via RAG_QDRANT_URL)",
                ) from exc
            raise _damaged(self.path, exc) from exc

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """A damaged file under the shard only shows at the first read or write that touches it, as a plain
        Exception (or a Rust panic) from the binding: one line saying so, not a traceback."""
        try:
            return getattr(self._shard, method)(*args, **kwargs)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            raise _damaged(self.path, exc) from exc

    def _create(self, dimension: int) -> None:
        def create(qe: Any) -> Any:
            config = qe.EdgeConfig(
                vectors={DENSE: qe.EdgeVectorParams(size=dimension, distance=qe.Distance.Cosine)},
                sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
            )
            shard = qe.EdgeShard.create(self.path, config)
            for field in _KEYWORD_FIELDS:
                shard.update(qe.UpdateOperation.create_field_index(field, qe.PayloadSchemaType.Keyword))
            return shard

        Path(self.path).mkdir(parents=True, exist_ok=True)
        self._shard = self._open(create)
        self.dimension = dimension

    def add(self, nodes: list[BaseNode], **kwargs: Any) -> list[str]:
        if not nodes:
            return []
        if self._shard is None:
            self._create(len(nodes[0].get_embedding()))
        qe = _import_edge()
        for begin in range(0, len(nodes), _UPSERT_BATCH):
            batch = nodes[begin : begin + _UPSERT_BATCH]
            points = [
                qe.Point(
                    uuid.UUID(node.node_id),
                    {DENSE: list(map(float, node.get_embedding())),
                     SPARSE: qe.SparseVector(*hybrid.passage_sparse(node))},
                    node_to_metadata_dict(node, remove_text=False, flat_metadata=True),
                )
                for node in batch
            ]
            self._call("update", qe.UpdateOperation.upsert_points(points))
        return [node.node_id for node in nodes]

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        if self._shard is None:
            return
        qe = _import_edge()
        condition = qe.FieldCondition(key="doc_id", match=qe.MatchValue(value=ref_doc_id))
        self._call("update", qe.UpdateOperation.delete_points_by_filter(qe.Filter(must=[condition])))

    def clear(self) -> None:
        if self._shard is None:
            return
        qe = _import_edge()
        self._shard.update(qe.UpdateOperation.delete_points_by_filter(qe.Filter(must=[])))

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """Dense, sparse or hybrid (both sides fused by Qdrant's reciprocal rank fusion); similarities are
        always the dense cosine of each passage, whatever ranked it."""
        if self._shard is None:
            return VectorStoreQueryResult(nodes=[], similarities=[], ids=[])
        qe = _import_edge()
        where = _edge_filter(qe, query.filters, query.doc_ids)
        dense = qe.Query.Nearest(list(map(float, query.query_embedding or [])), using=DENSE)
        sparse = qe.Query.Nearest(qe.SparseVector(*hybrid.question_sparse(query, kwargs.get("lang"))), using=SPARSE)
        chosen = hybrid.mode(query)
        if chosen == VectorStoreQueryMode.HYBRID:
            pool = hybrid.candidates(query)
            fusion = qe.Fusion.Rrf(k=hybrid.RRF_K) if kwargs.get("fusion") == "rrf" else qe.Fusion.Dbsf()
            request = qe.QueryRequest(
                limit=query.similarity_top_k, query=fusion,
                prefetches=[qe.Prefetch(limit=pool, query=dense, filter=where),
                            qe.Prefetch(limit=pool, query=sparse, filter=where)],
                with_payload=True, with_vector=[DENSE],
            )
        else:
            request = qe.QueryRequest(
                limit=query.similarity_top_k, query=sparse if chosen == VectorStoreQueryMode.SPARSE else dense,
                filter=where, with_payload=True, with_vector=[DENSE],
            )
        hits = self._call("query", request)
        vectors = [_dense_of(hit) for hit in hits]
        return VectorStoreQueryResult(
            nodes=[metadata_dict_to_node(dict(hit.payload)) for hit in hits],
            similarities=hybrid.cosine_scores(query.query_embedding, vectors),
            ids=[str(hit.id) for hit in hits],
        )

    def get_nodes(self, node_ids: list[str] | None = None, **kwargs: Any) -> list[BaseNode]:
        if self._shard is None or not node_ids:
            return []
        try:
            ids = [uuid.UUID(i) for i in node_ids]
        except ValueError:
            return []
        records = self._call("retrieve", ids, with_payload=True, with_vector=False)
        return [metadata_dict_to_node(dict(r.payload)) for r in records]

    def count(self) -> int:
        if self._shard is None:
            return 0
        qe = _import_edge()
        return int(self._call("count", qe.CountRequest(exact=True)))

    def unindexed_points(self) -> int:
        """Points Edge still searches exactly (no HNSW graph yet): it has no background optimizer."""
        if self._shard is None:
            return 0
        info = self._shard.info()
        # Every point has a dense and a sparse vector; non-empty sparse ones always count as indexed, so this
        # over-counts by the few passages without a lexical term: fine for a threshold in the tens of thousands.
        return max(0, 2 * int(info.points_count) - int(info.indexed_vectors_count))

    def needs_optimize(self) -> bool:
        return self.unindexed_points() >= OPTIMIZE_MIN_UNINDEXED

    def optimize(self) -> None:
        """Build the HNSW graph and the immutable sparse index now. Blocks (1.5 s at 10k chunks, 20-60 s at 100k
        on 2 cores), so it runs only when `needs_optimize` says exact search has become the slow part."""
        if self._shard is not None:
            self._shard.optimize()
            self._shard.flush()

    def flush(self) -> None:
        if self._shard is not None:
            self._shard.flush()

    def close(self) -> None:
        if self._shard is not None:
            self._shard.flush()
            self._shard.close()
            self._shard = None


def _damaged(path: str, exc: BaseException) -> IndexCorruptError:
    text = str(exc)
    reason = text.splitlines()[0][:120] if text else type(exc).__name__
    return IndexCorruptError(f"the index at {path} cannot be read ({reason})", "rebuild it with `rag ingest --rebuild`")


def _dense_of(hit: Any) -> list[float] | None:
    vector = hit.vector
    if isinstance(vector, dict):
        return vector.get(DENSE)
    return vector


def _edge_filter(qe: Any, filters: MetadataFilters | None, doc_ids: list[str] | None) -> Any:
    must = []
    if doc_ids:
        must.append(qe.FieldCondition(key="doc_id", match=qe.MatchAny(any=list(doc_ids))))
    for item in filters.filters if filters else []:
        if isinstance(item, MetadataFilters):
            raise RagError("nested metadata filters are not supported by the embedded index")
        if item.operator == FilterOperator.EQ:
            must.append(qe.FieldCondition(key=item.key, match=qe.MatchValue(value=item.value)))
        elif item.operator == FilterOperator.IN:
            must.append(qe.FieldCondition(key=item.key, match=qe.MatchAny(any=list(item.value))))
        else:
            raise RagError(f"filter operator {item.operator.value} is not supported by the embedded index")
    return qe.Filter(must=must) if must else None
