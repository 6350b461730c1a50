"""Strict grounding while the answer streams: the model's text is released a sentence at a time, and a sentence
that states something no evidence backs is held apart instead of being shown as fact.

A sentence is backed when one of the evidence sentences it cites backs it, or, when it cites none, when one
does (it is then cited, as `attributed`). A sentence that states nothing ("Sure.") passes as it is. The
citation markers a model puts after the full stop ("... 2023. [1]") belong to
the sentence before them."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from rag import prompts
from rag.answer import grounding
from rag.answer.evidence import Evidence
from rag.ingest.chunking import sentence_spans

Backs = Callable[[str, int], bool]  # (sentence without markers, evidence number) -> backed
_LEADING_MARKERS = re.compile(r"\s*(\[\d{1,3}(?:\s*,\s*\d{1,3})*\]\s*)+")


@dataclass
class Gate:
    evidence: Sequence[Evidence]
    backs: Backs
    question: str
    strict: bool = True
    held: list[str] = field(default_factory=list)  # sentences no evidence backs, in the order written
    released: list[str] = field(default_factory=list)
    backed_claims: int = 0
    refused: bool = False
    attributed: set[int] = field(default_factory=set)
    _buffer: str = ""

    def run(self, pieces: Iterable[str]) -> Iterator[str]:
        """Pieces in (citation markers already filtered), released text out."""
        for piece in pieces:
            if not self.strict:
                self.released.append(piece)
                yield piece
                continue
            self._buffer += piece
            yield from self._release(final=False)
        yield from self._release(final=True)

    def _release(self, final: bool) -> Iterator[str]:
        while True:
            cut = complete_sentence(self._buffer, final)
            if cut is None:
                return
            sentence, self._buffer = self._buffer[:cut], self._buffer[cut:]
            shown = self.judge(sentence)
            if shown:
                self.released.append(shown)
                yield shown

    def judge(self, sentence: str) -> str:
        """The sentence as it may be shown (a marker added where attributed), or "" when it is held apart."""
        plain = grounding.without_markers(sentence)
        if not plain:
            return sentence if self.released else sentence.lstrip()
        if prompts.is_refusal(plain):
            self.refused = True
            self.held.append(plain)
            return ""
        if not needs_backing(plain, self.question):
            return sentence
        cited = [n for n in grounding.cited_numbers(sentence) if 1 <= n <= len(self.evidence)]
        if any(self.backs(plain, n) for n in cited):
            self.backed_claims += 1
            return sentence
        # Cited wrongly or not at all: the evidence sentence that backs it, if one does, is cited instead.
        found = grounding.attribute_sentences(plain, [e.text for e in self.evidence], self.question,
                                              backs=lambda s, n: self.backs(grounding.without_markers(s), n))
        if found:
            self.backed_claims += 1
            self.attributed.add(found[0].passage)
            lead = sentence[: len(sentence) - len(sentence.lstrip())]
            return lead + grounding.insert_markers(plain, found[:1]) + sentence[len(sentence.rstrip()):]
        self.held.append(plain)
        return ""


def needs_backing(sentence: str, question: str) -> bool:
    """Whether a sentence states anything at all (a content term): "Sure." does not. Restating the question is
    no exception, since a question can carry a false premise ("... invented by Eve in 1871?")."""
    return bool(grounding.terms(sentence))


def complete_sentence(text: str, final: bool) -> int | None:
    """Where the first complete sentence of `text` ends (its trailing markers and spaces included), or None
    while it may still grow. At the end of the stream, whatever is left is one last sentence."""
    spans = sentence_spans(text)
    if not spans:
        return len(text) if final and text else None
    end = spans[0][1]
    after = _LEADING_MARKERS.match(text, end)
    if after:
        end = after.end()
    rest = text[end:]
    if len(spans) > 1 or (rest.strip() and not rest.lstrip().startswith("[")) or "\n" in rest:
        return end + (len(rest) - len(rest.lstrip(" \t")) if rest.strip() else 0)
    return len(text) if final else None
