"""A document's key sentences, chosen at ingest so that "summarize X" can cite the whole document: one per stretch
of it (its pages, or equal parts of its text), the sentence that says most of what is particular to its stretch,
in a chunk close in meaning to the rest of the stretch. Costs no model call: the chunk vectors exist already, and
the rest is counting words."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

from rag.ingest.chunking import Chunk, sentence_spans
from rag.ingest.layout import Layout
from rag.store import lexical

MAX_KEY_SENTENCES = 8
_MIN_WORDS = 5
_STRETCH_CHARS = 600  # an unpaged text gets one key sentence per this much of it, up to the maximum


def key_sentences(text: str, lang: str, layout: Layout, chunks: Sequence[Chunk], vectors: np.ndarray
                  ) -> list[list[int]]:
    """[start, end, chunk index] of each key sentence, in document order."""
    if not chunks:
        return []
    stretches = _stretches(text, layout)
    sentences = [_sentences(text, chunks, begin, end, lang) for begin, end in stretches]
    # A word is telling where it is frequent in one stretch and rare in the others (tf-idf over stretches);
    # words every stretch uses (a running phrase, the document's subject) tell nothing about any one of them.
    spread = Counter(w for found in sentences for w in {w for _, _, _, words in found for w in words})
    keys: list[list[int]] = []
    for found in sentences:
        if found:
            start, stop, chunk = _most_telling(found, vectors, spread, len(stretches))
            if not keys or keys[-1][:2] != [start, stop]:
                keys.append([start, stop, chunk])
    return keys


def _most_telling(found: list[tuple[int, int, int, list[str]]], vectors: np.ndarray, spread: Counter[str],
                  stretches: int) -> tuple[int, int, int]:
    inside = sorted({chunk for _, _, chunk, _ in found})
    centre = vectors[inside].mean(axis=0)
    closeness = {i: float(vectors[i] @ centre) for i in inside}
    counts = Counter(w for *_, words in found for w in words)
    idf = {w: math.log((1 + stretches) / (1 + spread[w])) + 1e-3 for w in counts}

    def score(item: tuple[int, int, int, list[str]]) -> float:
        words = set(item[3])
        return sum(counts[w] * idf[w] for w in words) / math.sqrt(len(words) or 1) * (0.5 + closeness[item[2]])

    start, stop, chunk, _ = max(found, key=score)
    return start, stop, chunk


def _sentences(text: str, chunks: Sequence[Chunk], begin: int, end: int, lang: str
               ) -> list[tuple[int, int, int, list[str]]]:
    """(start, end, chunk index, terms) of the sentences that start in [begin, end), once each."""
    seen: dict[int, tuple[int, int, int, list[str]]] = {}
    for index, chunk in enumerate(chunks):
        if chunk.end <= begin or chunk.start >= end:
            continue
        for s, e in sentence_spans(chunk.text):
            start, stop = chunk.start + s, chunk.start + e
            sentence = text[start:stop]
            if start in seen or not begin <= start < end or len(sentence.split()) < _MIN_WORDS and len(sentence) < 20:
                continue  # headings, captions, page furniture
            seen[start] = (start, stop, index, lexical.terms(sentence, lang))
    return list(seen.values())


def _stretches(text: str, layout: Layout) -> list[tuple[int, int]]:
    """Pages grouped into at most MAX_KEY_SENTENCES runs; or equal parts of an unpaged text."""
    if layout.pages:
        starts = [offset for offset, _ in layout.pages]
        bounds = [*starts, len(text)]
        groups = min(MAX_KEY_SENTENCES, len(starts))
        cuts = [round(g * len(starts) / groups) for g in range(groups + 1)]
        return [(bounds[cuts[g]], bounds[cuts[g + 1]]) for g in range(groups)]
    parts = max(1, min(MAX_KEY_SENTENCES, len(text) // _STRETCH_CHARS))
    return [(len(text) * p // parts, len(text) * (p + 1) // parts) for p in range(parts)]
