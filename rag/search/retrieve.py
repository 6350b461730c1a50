"""Query → ranked passages from the vector store."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from llama_index.core.schema import BaseNode
from llama_index.core.vector_stores.types import (
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)

from rag.ingest.layout import Layout
from rag.models.embeddings import Embedder
from rag.store import VectorStore
from rag.store.hybrid import pool_size


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
    page: int | None = None  # first page, 1-based; None for formats without pages
    page_end: int | None = None
    section: str = ""  # "2 Design › 2.1 Storage"
    # Page and section marks, (offset, value), of the document from this passage's start on (see ingest.layout).
    page_marks: tuple[tuple[int, int], ...] = field(default=(), repr=False)
    section_marks: tuple[tuple[int, str], ...] = field(default=(), repr=False)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        del data["page_marks"], data["section_marks"]
        return data

    def page_span(self, start: int, end: int) -> tuple[int | None, int | None]:
        """First and last page of the document text [start, end) inside (or just around) this passage."""
        if self.page is None:
            return None, None
        layout = Layout(pages=((self.start, self.page), *self.page_marks))
        return layout.page_span(start, end)

    def placed(self, start: int, end: int) -> dict[str, Any]:
        """The page(s) and section of the document text [start, end): Evidence and Citation fields."""
        page, page_end = self.page_span(start, end)
        return {"page": page, "page_end": page_end, "section": self.section_at(start)}

    def section_at(self, offset: int) -> str:
        return Layout(sections=((self.start, self.section), *self.section_marks)).section_at(offset)


@dataclass(frozen=True)
class QueryForm:
    """One way of searching for a question: as asked, or translated; `mode` overrides the retrieval mode (a
    question in a language the embedding model cannot read is searched by its terms only)."""

    text: str
    lang: str
    mode: str | None = None


# Reciprocal rank fusion constant (as in Cormack et al. and Qdrant) and the depth each form of a question is read to.
_RRF_K = 60
_VARIANT_POOL = 20

_MODES = {"hybrid": VectorStoreQueryMode.HYBRID, "dense": VectorStoreQueryMode.DEFAULT,
          "lexical": VectorStoreQueryMode.SPARSE}


class Retriever:
    def __init__(self, embedder: Embedder, store: VectorStore, mode: str = "hybrid", fusion: str = "dbsf") -> None:
        self.embedder = embedder
        self.store = store
        self.mode = _MODES[mode]
        self.fusion = fusion
        self._vectors: dict[str, list[float]] = {}

    def _embed(self, text: str) -> list[float]:
        if text not in self._vectors:
            self._vectors[text] = self.embedder.embed_query(text)
        return self._vectors[text]

    def search(
        self, query: str, top_k: int, files: Sequence[str] | None = None, lang: str = "en", mode: str | None = None
    ) -> list[Passage]:
        filters = None
        if files:
            only = MetadataFilter(key="file", value=list(files), operator=FilterOperator.IN)
            filters = MetadataFilters(filters=[only])
        result = self.store.query(
            VectorStoreQuery(
                query_embedding=self._embed(query), similarity_top_k=top_k, filters=filters,
                query_str=query, mode=_MODES[mode] if mode else self.mode,
            ),
            lang=lang,
            fusion=self.fusion,
        )
        return [to_passage(node, score) for node, score in zip(result.nodes or [], result.similarities or [],
                                                                strict=False)]

    def with_other_languages(
        self, found: list[Passage], form: QueryForm, files: Sequence[str] | None = None,
        readable: frozenset[str] | None = None,
    ) -> list[Passage]:
        """Give a passage in another language than the question's a fair chance. The lexical side of a hybrid
        search matches only the question's own language, and a multilingual embedder still favours it, so the
        best answer in another language can rank below weaker passages in the question's. The dense cosine is
        the one score comparable across languages: among the passages a hybrid search reads on its dense side,
        the closest of each other language takes the last place not yet taken this way when its cosine beats the
        lowest one shown. `readable`: the languages the embedder reads (None = any); across others its cosines
        mean nothing."""
        if not found:
            return found
        closest: dict[str, Passage] = {}
        for passage in self.search(form.text, pool_size(len(found)), files, form.lang, "dense"):
            if passage.lang in closest or passage.lang in (form.lang, "", "und"):  # und: no letters to tell by
                continue
            if readable is None or {passage.lang, form.lang} <= readable:
                closest[passage.lang] = passage
        shown = list(found)
        taken = 0  # places at the end already given to another language
        for candidate in sorted(closest.values(), key=lambda p: -p.score):
            open_places = shown[: len(shown) - taken]
            if not open_places or any(p.id == candidate.id for p in shown):
                continue
            if candidate.score > min(p.score for p in open_places):
                taken += 1
                shown[len(shown) - taken] = candidate
        return shown

    def search_variants(
        self, forms: Sequence[QueryForm], top_k: int, files: Sequence[str] | None = None
    ) -> list[Passage]:
        """Search each form of one question and fuse the rankings by reciprocal rank, so a passage found by
        either form ranks high and one found by both ranks highest. A passage's score stays a dense cosine: the
        best of its cosines to the forms searched densely."""
        if len(forms) == 1:
            return self.search(forms[0].text, top_k, files, forms[0].lang, forms[0].mode)
        pool = max(_VARIANT_POOL, 2 * top_k)
        fused: dict[str, float] = {}
        best: dict[str, Passage] = {}
        for form in forms:
            for rank, passage in enumerate(self.search(form.text, pool, files, form.lang, form.mode)):
                fused[passage.id] = fused.get(passage.id, 0.0) + 1.0 / (_RRF_K + rank + 1)
                if form.mode == "lexical":  # no dense side: its cosine is to nothing the question said
                    passage = replace(passage, score=best[passage.id].score if passage.id in best else 0.0)
                if passage.id not in best or passage.score > best[passage.id].score:
                    best[passage.id] = passage
        order = sorted(fused, key=lambda pid: (-fused[pid], -best[pid].score))
        return [best[pid] for pid in order[:top_k]]


def to_passage(node: BaseNode, score: float) -> Passage:
    meta = node.metadata
    return Passage(
        id=node.node_id, file=meta["file"], title=meta.get("title", meta["file"]), start=int(meta["start"]),
        end=int(meta["end"]), text=node.get_content(), score=float(score), lang=meta.get("lang", ""),
        date=meta.get("date") or None, page=meta.get("page"), page_end=meta.get("page_end"),
        section=meta.get("section") or "",
        page_marks=tuple((int(o), int(p)) for o, p in json.loads(meta.get("page_marks") or "[]")),
        section_marks=tuple((int(o), str(t)) for o, t in json.loads(meta.get("section_marks") or "[]")),
    )
