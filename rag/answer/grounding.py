"""Citations: keep the model's valid [n] markers (also while streaming), drop invented numbers, attribute
uncited sentences to the passage that supports them, and recognise refusals."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from rag.ingest.chunking import sentence_spans

_MARKER = re.compile(r"\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]")
_SPECIAL = re.compile(r"[\[<]")
_PARTIAL_MARKER = re.compile(r"\[[\d,\s]{0,14}")
_PROMPT_TAG = re.compile(r"</?\s*passage\b[^<>]{0,200}>", re.IGNORECASE)
_PARTIAL_TAG = re.compile(r"<(/?\s*(p(a(s(s(a(g(e(\b[^<>]{0,200})?)?)?)?)?)?)?)?)?", re.IGNORECASE)
_SPACE_BEFORE_PUNCT = re.compile(r"[ \t]+([.,;:!?。，；：！？])")
_STOPWORDS = frozenset({
    "the", "a", "an", "and", "or", "of", "to", "in", "on", "for", "with", "by", "from", "as", "at", "is", "are",
    "was", "were", "be", "been", "it", "its", "this", "that", "these", "those", "which", "who", "what", "when",
    "where", "how", "why", "than", "then", "also", "into", "about", "over", "after", "before", "has", "have",
    "had", "not", "but", "can", "will", "would", "could", "should", "may", "might", "does", "did", "do",
    "their", "there", "they", "them", "he", "she", "his", "her", "our", "your", "you", "we", "i", "der", "die",
    "das", "und", "oder", "von", "zu", "im", "am", "auf", "für", "mit", "durch", "als", "ist",
    "sind", "war", "waren", "sein", "es", "dies", "diese", "dieser", "welche", "welcher", "wer", "wann",
    "wo", "wie", "warum", "auch", "über", "nach", "vor", "hat", "haben", "hatte", "nicht", "aber", "kann",
    "wird", "den", "dem", "des", "ein", "eine", "einer", "eines", "einem", "einen", "sich", "zur", "zum", "bei",
})
_LATIN_TERM = re.compile(r"[0-9a-zà-ÿ]+(?:[.,\-][0-9a-zà-ÿ]+)*")
_CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]+")


def clean_markers(text: str) -> str:
    """Tidy the spaces that removing a citation leaves before punctuation."""
    return _SPACE_BEFORE_PUNCT.sub(r"\1", re.sub(r"[ \t]{2,}", " ", text))


def filter_citation_stream(chunks: Iterable[str], valid: int, invalid: list[int]) -> Iterator[str]:
    """Pass text through, rewriting each [n] / [n, m] marker: numbers 1..valid are kept as [n], any other
    number is removed and appended to `invalid`. A marker split across chunks is held back until complete."""
    held = ""
    for chunk in chunks:
        held += chunk
        out, held = _release(held, valid, invalid)
        if out:
            yield out
    if held:
        out, rest = _release(held, valid, invalid, final=True)
        if out + rest:
            yield out + rest


def _release(text: str, valid: int, invalid: list[int], final: bool = False) -> tuple[str, str]:
    out: list[str] = []
    pos = 0
    while True:
        found = _SPECIAL.search(text, pos)
        if found is None:
            out.append(text[pos:])
            return "".join(out), ""
        start = found.start()
        out.append(text[pos:start])
        if marker := _MARKER.match(text, start):
            out.append(_rewrite_marker(marker.group(1), valid, invalid))
            pos = marker.end()
            continue
        if tag := _PROMPT_TAG.match(text, start):  # the prompt's own fencing, echoed by the model
            pos = tag.end()
            continue
        tail = text[start:]
        if not final and (_PARTIAL_MARKER.fullmatch(tail) or _PARTIAL_TAG.fullmatch(tail)):
            return "".join(out), tail  # may still become a marker or a tag
        out.append(text[start])
        pos = start + 1


def _rewrite_marker(body: str, valid: int, invalid: list[int]) -> str:
    kept = []
    for number in (int(n) for n in re.findall(r"\d+", body)):
        if 1 <= number <= valid:
            kept.append(f"[{number}]")
        else:
            invalid.append(number)
    return "".join(kept)


def without_markers(sentence: str) -> str:
    """The sentence as written before any [n] was added to it."""
    return clean_markers(_MARKER.sub("", sentence)).strip()


def cited_numbers(text: str) -> list[int]:
    """Citation numbers in order of first appearance."""
    seen: dict[int, None] = {}
    for match in _MARKER.finditer(text):
        for number in re.findall(r"\d+", match.group(1)):
            seen.setdefault(int(number), None)
    return list(seen)


def terms(text: str) -> set[str]:
    """Content words and numbers (Latin scripts) and character bigrams (Chinese), lower-cased."""
    lowered = text.lower()
    found = {t for t in _LATIN_TERM.findall(lowered) if t not in _STOPWORDS and (len(t) > 2 or t.isdigit())}
    for run in _CJK_RUN.findall(text):
        found.update(run[i : i + 2] for i in range(max(1, len(run) - 1)))
    return found


@dataclass(frozen=True)
class Attribution:
    sentence_end: int
    passage: int  # 1-based
    overlap: float


def attribute_sentences(
    answer: str, passages: Sequence[str], question: str = "", min_support: float = 0.3,
    backs: Callable[[str, int], bool] | None = None,
) -> list[Attribution]:
    """For each answer sentence without a marker, the passage that supports it best: the share of the
    sentence's terms it contains, each term weighted by how specific it is among the passages (words every
    passage shares say little; numbers and names say much). Only shares of at least `min_support` count, and
    with `backs(sentence, n)` only passages that pass it: a citation rag adds itself must meet the bar every
    citation is verified by, or the reader is shown a source that its own check says does not hold."""
    passage_terms = [terms(p) for p in passages]
    asked = terms(question)
    found = []
    for start, end in sentence_spans(answer):
        sentence = answer[start:end]
        if _MARKER.search(sentence):
            continue
        wanted = terms(sentence)
        if not _is_claim(wanted, asked):
            continue
        weights = {t: _specificity(t, passage_terms) for t in wanted}
        total = sum(weights.values())
        scores = [sum(weights[t] for t in wanted & pt) / total for pt in passage_terms]
        for best in sorted(range(len(scores)), key=lambda i: -scores[i]):
            if scores[best] < min_support:
                break
            if len(wanted & passage_terms[best]) >= 2 and (backs is None or backs(sentence, best + 1)):
                found.append(Attribution(sentence_end=end, passage=best + 1, overlap=scores[best]))
                break
    return found


def unsupported_sentences(
    answer: str, backs: Callable[[str, int], bool], passages: int, question: str = ""
) -> list[tuple[int, int]]:
    """Spans of the claims in `answer` (markers already inserted) that no cited passage backs: sentences with no
    valid [n], after attribution found none either, or whose every [n] fails `backs(sentence, n)`."""
    asked = terms(question)
    found = []
    for start, end in sentence_spans(answer):
        sentence = answer[start:end]
        if not _is_claim(terms(_MARKER.sub("", sentence)), asked):
            continue
        if not any(backs(sentence, n) for n in cited_numbers(sentence) if 1 <= n <= passages):
            found.append((start, end))
    return found


def _is_claim(wanted: set[str], asked: set[str]) -> bool:
    """A sentence that states something: two content terms at least, and not mostly the question echoed."""
    return len(wanted) >= 2 and len(wanted & asked) < 0.8 * len(wanted)


def supported(sentence: str, passage: str, min_overlap: float = 0.5) -> bool:
    """Whether a passage backs a sentence: every number the sentence states is in the passage, and most of its
    content words are (numbers and names are where small models invent)."""
    wanted = terms(_MARKER.sub("", sentence))
    if not wanted:
        return True
    have = terms(passage)
    if not _numbers_in(wanted, have):
        return False
    return len(wanted & have) / len(wanted) >= min_overlap


def numbers_backed(sentence: str, passage: str) -> bool:
    """Whether every number the sentence states is in the passage."""
    return _numbers_in(terms(_MARKER.sub("", sentence)), terms(passage))


def _numbers_in(wanted: set[str], have: set[str]) -> bool:
    return all(t in have for t in wanted if any(ch.isdigit() for ch in t))


def sentences_citing(answer: str) -> dict[int, list[str]]:
    """Each citation number with the sentences that carry it."""
    found: dict[int, list[str]] = {}
    for start, end in sentence_spans(answer):
        sentence = answer[start:end]
        for number in cited_numbers(sentence):
            found.setdefault(number, []).append(sentence)
    return found


def _specificity(term: str, passage_terms: Sequence[set[str]]) -> float:
    df = sum(term in pt for pt in passage_terms)
    weight = 1.0 + math.log((1 + len(passage_terms)) / (1 + df))
    return weight * (2.0 if any(ch.isdigit() for ch in term) else 1.0)


def insert_markers(answer: str, attributions: Sequence[Attribution]) -> str:
    """Put [n] at the end of each attributed sentence, before its final punctuation."""
    out = answer
    for item in sorted(attributions, key=lambda a: a.sentence_end, reverse=True):
        end = item.sentence_end
        while end > 0 and out[end - 1] in ".!?。！？":
            end -= 1
        out = f"{out[:end]} [{item.passage}]{out[end:]}" if end and not _is_cjk(out[end - 1]) \
            else f"{out[:end]}[{item.passage}]{out[end:]}"
    return out


def _is_cjk(char: str) -> bool:
    return bool(_CJK_RUN.match(char))
