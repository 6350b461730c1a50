"""Optional second-stage ranking with a sentence-transformers CrossEncoder, which reads question and passage
together. Off unless a model is configured; off, with a notice, when that model cannot be had offline."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from functools import cache
from typing import Any

from rag.search.retrieve import Passage


@cache
def _load(path: str) -> Any:
    from sentence_transformers import CrossEncoder
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    return CrossEncoder(path, device="cpu", local_files_only=True)


class Reranker:
    def __init__(self, name: str, path: str) -> None:
        self.name = name
        self.model = _load(path)

    def rerank(self, question: str, candidates: Sequence[Passage], top_k: int) -> list[Passage]:
        """Score every candidate, sort them all, then keep the best `top_k`: cutting before sorting would throw
        away exactly the passages the first stage under-ranked."""
        if not candidates:
            return []
        scores = self.model.predict([(question, p.text) for p in candidates], show_progress_bar=False)
        ranked = sorted(zip(candidates, (float(s) for s in scores), strict=True), key=lambda pair: -pair[1])
        return [replace(p, rerank_score=score) for p, score in ranked[:top_k]]
