"""Answers about a whole document or the whole corpus. A document is answered from its outline and the key
sentences chosen across it at ingest (so a summary cites its beginning, middle and end, not the five chunks
nearest the word "summarize"); the corpus by the documents that match, each with its title, date and best
sentence. Either is evidence like any other: numbered, cited, and with a model checked sentence by sentence."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from rag.answer import evidence as ev
from rag.answer.extractive import phrase, quote
from rag.ingest.layout import DocumentInfo, page_label
from rag.search.retrieve import Passage

MAX_LISTED = 12  # documents named in a corpus answer; the rest are counted
_OUTLINE_SECTIONS = 12


def key_evidence(info: DocumentInfo, passages: dict[int, Passage], text: str, first_number: int = 1
                 ) -> list[ev.Evidence]:
    """The key sentences as numbered evidence; `passages`: the document's chunks by index."""
    found: list[ev.Evidence] = []
    for start, end, chunk in info.key:
        passage = passages.get(chunk)
        if passage is None:  # the store lost a chunk the registry lists: skip it rather than cite nothing
            continue
        found.append(_evidence(first_number + len(found), passage, start, end, text[start:end]))
    return found


def _evidence(number: int, passage: Passage, start: int, end: int, text: str, score: float = 1.0) -> ev.Evidence:
    return ev.Evidence(
        number=number, file=passage.file, title=passage.title, start=start, end=end, text=text, score=score,
        lang=passage.lang, date=passage.date, passage_id=passage.id, passage_start=min(passage.start, start),
        passage_end=max(passage.end, end), **passage.placed(start, end))


def document_answer(lang: str, info: DocumentInfo, evidence: Sequence[ev.Evidence]) -> str:
    """What the document is, its sections, and its key sentences quoted and cited, in document order."""
    pages = info.layout.page_count
    size = phrase(lang, "pages").format(count=pages) if pages else ""
    head = f"{info.title} ({', '.join(p for p in (info.file, info.date or '', size) if p)})"
    sections = [path.split(" › ")[-1] for _, path in info.layout.sections if " › " not in path]
    lines = [phrase(lang, "document_overview").format(document=head)]
    if sections:
        shown = sections[:_OUTLINE_SECTIONS] + (["…"] if len(sections) > _OUTLINE_SECTIONS else [])
        lines.append(phrase(lang, "sections").format(sections="; ".join(shown)))
    for e in evidence:
        where = page_label(e.page, e.page_end)
        lines.append(f"- {quote(lang, e.text)} [{e.number}]" + (f" ({where})" if where else ""))
    return "\n".join(lines)


def best_per_document(topic_vector: np.ndarray, topic: str, lang: str, passages: Sequence[Passage],
                      vectors: ev.SentenceVectors, document_text: Callable[[str], str]) -> list[ev.Evidence]:
    """For each document among the passages (in rank order), its sentence closest to the topic."""
    ranked = ev.score_sentences(topic_vector, topic, lang, ev.candidates(passages, document_text), vectors)
    best: dict[str, ev.Scored] = {}
    for item in ranked:
        best.setdefault(item.candidate.passage.file, item)
    order = [p.file for p in passages]
    chosen = sorted(best.values(), key=lambda s: order.index(s.candidate.passage.file))[:MAX_LISTED]
    return [_evidence(n, s.candidate.passage, s.candidate.start, s.candidate.end, s.candidate.text,
                      round(s.score, 4)) for n, s in enumerate(chosen, 1)]


def corpus_answer(lang: str, topic: str, evidence: Sequence[ev.Evidence], total: int) -> str:
    """The documents, one line each: title, file and date, and the sentence that shows why it is listed."""
    key = ("document" if total == 1 else "documents") + ("_about" if topic else "_all")
    lines = [phrase(lang, key).format(count=total, topic=topic)]
    for e in evidence:
        where = ", ".join(p for p in (e.file, e.date or "", page_label(e.page, e.page_end)) if p)
        lines.append(f"- {e.title} ({where}): {quote(lang, e.text)} [{e.number}]")
    if total > len(evidence):
        lines.append(phrase(lang, "more_documents").format(count=total - len(evidence)))
    return "\n".join(lines)
