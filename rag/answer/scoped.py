"""Questions about a whole document or the corpus (see search/scope.py), answered from the evidence their scope
chooses: the document's key sentences, or each matching document's best sentence."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from rag.answer import evidence as ev
from rag.answer import overview
from rag.answer.compose import Composer, Question
from rag.answer.extractive import phrase
from rag.answer.result import AnswerStream
from rag.catalog import Catalog
from rag.ingest.layout import DocumentInfo
from rag.search.retrieve import Passage
from rag.search.scope import Scope

_CORPUS_POOL = 40  # passages read to find the documents about a topic


def scoped_answer(scope: Scope, question: Question, catalog: Catalog, composer: Composer,
                  search: Callable[[str, int], list[Passage]], threshold: float | None,
                  stream: Callable[..., AnswerStream]) -> AnswerStream | None:
    """The answer, or None when the scope cannot answer (a document indexed before key sentences existed)."""
    if scope.kind == "document":
        info = catalog.info(scope.file)
        if info is None or not info.key:
            return None
        chunks = catalog.chunks(info.file, sorted({k[2] for k in info.key}))
        chosen = overview.key_evidence(info, chunks, catalog.text(info.file))
        return stream(question, chosen, list(chunks.values()),
                      lambda shown: overview.document_answer(question.lang, info, shown))
    if scope.topic:
        found = [p for p in search(scope.topic, _CORPUS_POOL) if threshold is None or p.score >= threshold]
        vector = np.asarray(composer.embed_query(scope.topic), dtype=np.float32)
        chosen = overview.best_per_document(vector, scope.topic, question.lang, found, composer.vectors,
                                            catalog.text)
        total = len({p.file for p in found})

        def listing(shown: list[ev.Evidence]) -> str:
            if not shown:
                return phrase(question.lang, "no_documents_about").format(topic=scope.topic)
            return overview.corpus_answer(question.lang, scope.topic, shown, total)

        return stream(question, chosen, found, listing)
    return _every_document(question, catalog, stream)


def _every_document(question: Question, catalog: Catalog, stream: Callable[..., Any]) -> AnswerStream:
    """The indexed documents, newest first, each with its first key sentence."""
    infos, total = catalog.newest(overview.MAX_LISTED)
    chosen, passages = [], []
    for info in infos:
        first = info.key[:1]
        chunk = catalog.chunks(info.file, [first[0][2]]) if first else {}
        picked = overview.key_evidence(DocumentInfo(info.file, info.title, info.date, info.layout, first),
                                       chunk, catalog.text(info.file), len(chosen) + 1)
        chosen.extend(picked)
        passages.extend(chunk.values())
    return stream(question, chosen, passages,
                  lambda shown: overview.corpus_answer(question.lang, "", shown, total))
