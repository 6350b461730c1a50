"""Query → ranked passages from the vector store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from llama_index.core.schema import BaseNode
from llama_index.core.vector_stores.types import (
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)

from .embeddings import Embedder
from .store import VectorStore


@dataclass(frozen=True)
class Passage:
    id: str
    file: str
    title: str
    start: int
    end: int
    text: str
    score: float
    lang: str = ""
    date: str | None = None
    rerank_score: float | None = None  # the cross-encoder's, when a reranker is configured

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_MODES = {"hybrid": VectorStoreQueryMode.HYBRID, "dense": VectorStoreQueryMode.DEFAULT,
          "lexical": VectorStoreQueryMode.SPARSE}


class Retriever:
    def __init__(self, embedder: Embedder, store: VectorStore, mode: str = "hybrid", fusion: str = "dbsf") -> None:
        self.embedder = embedder
        self.store = store
        self.mode = _MODES[mode]
        self.fusion = fusion

    def search(self, query: str, top_k: int, files: Sequence[str] | None = None, lang: str = "en") -> list[Passage]:
        filters = None
        if files:
            only = MetadataFilter(key="file", value=list(files), operator=FilterOperator.IN)
            filters = MetadataFilters(filters=[only])
        result = self.store.query(
            VectorStoreQuery(
                query_embedding=self.embedder.embed_query(query), similarity_top_k=top_k, filters=filters,
                query_str=query, mode=self.mode,
            ),
            lang=lang,
            fusion=self.fusion,
        )
        return [to_passage(node, score) for node, score in zip(result.nodes or [], result.similarities or [],
                                                                strict=False)]


def to_passage(node: BaseNode, score: float) -> Passage:
    meta = node.metadata
    return Passage(
        id=node.node_id, file=meta["file"], title=meta.get("title", meta["file"]), start=int(meta["start"]),
        end=int(meta["end"]), text=node.get_content(), score=float(score), lang=meta.get("lang", ""),
        date=meta.get("date") or None,
    )
