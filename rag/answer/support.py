"""Whether a passage backs a sentence of the answer, in the passage's language or across languages.

In one language the words decide (`grounding.supported`: every number the sentence states, and most of its content
words, are in the passage). Across languages words cannot overlap, so a German answer citing an English passage
would always look unbacked; there, a multilingual embedder judges the meaning instead: the sentence must be close
to one of the passage's sentences (cosine at least a threshold calibrated per model, rag/calibration.toml), and
every number it states must still be in the passage, since numbers are where small models invent and meaning
barely moves when a number changes."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from rag.answer import grounding
from rag.ingest.chunking import sentence_spans
from rag.ingest.text import detect_language
from rag.models.calibration import support_threshold
from rag.models.embeddings import Embedder
from rag.search.retrieve import Passage
from rag.search.translate import model_languages

Embed = Callable[[Sequence[str]], np.ndarray]


class SupportJudge:
    """`judge(sentence, passage)`; one per answer, since it remembers the vectors of the passages it has read."""

    def __init__(self, embed: Embed | None = None, threshold: float | None = None) -> None:
        self._embed = embed if threshold is not None else None
        self._threshold = threshold or 0.0
        self._passage_vectors: dict[str, np.ndarray] = {}
        self._sentence_vectors: dict[str, np.ndarray] = {}

    def __call__(self, sentence: str, passage: Passage) -> bool:
        if grounding.supported(sentence, passage.text):
            return True
        if self._embed is None or not grounding.numbers_backed(sentence, passage.text):
            return False
        passage_lang = detect_language(passage.text, hint=passage.lang or None)  # a chunk, not its document
        if detect_language(sentence, hint=passage_lang) == passage_lang:
            return False  # one language: the words have spoken
        return float(np.max(self._sentences_of(passage) @ self._vector_of(sentence))) >= self._threshold

    def _vector_of(self, sentence: str) -> np.ndarray:
        if sentence not in self._sentence_vectors:  # one sentence is judged against several passages
            self._sentence_vectors[sentence] = self._embed([grounding.clean_markers(sentence)])[0]  # type: ignore[misc]
        return self._sentence_vectors[sentence]

    def _sentences_of(self, passage: Passage) -> np.ndarray:
        if passage.id not in self._passage_vectors:
            sentences = [passage.text[s:e] for s, e in sentence_spans(passage.text)] or [passage.text]
            self._passage_vectors[passage.id] = self._embed(sentences)  # type: ignore[misc]
        return self._passage_vectors[passage.id]


def support_judge(embedder: Embedder) -> SupportJudge:
    """Judges by meaning across languages only with an embedder that reads any language and a calibration."""
    multilingual = model_languages(embedder.ref.path) is None
    threshold = support_threshold(embedder.name) if multilingual else None
    return SupportJudge(embedder.embed_queries, threshold)
