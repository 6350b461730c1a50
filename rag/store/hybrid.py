"""What both backends share so they rank alike: the sparse vector of a passage, the candidate pool of each
side of a hybrid query, and relevance scores as dense cosine similarity (fused ranks say nothing about it)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from llama_index.core.schema import BaseNode
from llama_index.core.vector_stores.types import VectorStoreQuery, VectorStoreQueryMode

from rag.store import lexical

DENSE = "dense"
SPARSE = "sparse"
RRF_K = 60
# Qdrant's reciprocal rank fusion over this many candidates from each side.
_MIN_CANDIDATES = 30


def passage_sparse(node: BaseNode) -> tuple[list[int], list[float]]:
    return lexical.document_vector(node.get_content(), node.metadata.get("lang") or "en")


def question_sparse(query: VectorStoreQuery, lang: str | None) -> tuple[list[int], list[float]]:
    return lexical.query_vector(query.query_str or "", lang or "en")


def candidates(query: VectorStoreQuery) -> int:
    return pool_size(query.similarity_top_k)


def pool_size(top_k: int) -> int:
    """How deep each side of a hybrid search is read for `top_k` results."""
    return max(_MIN_CANDIDATES, 4 * top_k)


def mode(query: VectorStoreQuery) -> VectorStoreQueryMode:
    if query.mode == VectorStoreQueryMode.SPARSE or query.query_embedding is None:
        return VectorStoreQueryMode.SPARSE
    if query.mode == VectorStoreQueryMode.HYBRID and query.query_str:
        return VectorStoreQueryMode.HYBRID
    return VectorStoreQueryMode.DEFAULT


def cosine_scores(query_embedding: Sequence[float] | None, vectors: Sequence[Sequence[float] | None]) -> list[float]:
    """Cosine of the question to each passage (vectors are stored normalised, as the embedder makes them)."""
    if query_embedding is None:
        return [0.0] * len(vectors)
    q = np.asarray(query_embedding, dtype=np.float32)
    q /= np.linalg.norm(q) or 1.0
    out = []
    for vector in vectors:
        if vector is None:
            out.append(0.0)
            continue
        v = np.asarray(vector, dtype=np.float32)
        out.append(float(q @ v / (np.linalg.norm(v) or 1.0)))
    return out
