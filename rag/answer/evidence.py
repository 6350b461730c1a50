"""Evidence selection: the few sentences of the retrieved passages that bear on the question, with exact offsets
in their documents. The prompt holds these instead of whole chunks, citations point at them, and an extractive
answer quotes them.

Each sentence of the candidate passages is scored against the question by the embedding model (query prefix on
the question, passage prefix on the sentence) plus the lexical signals that matter in questions: the question's
terms it contains, weighted by how rare they are among the candidates, with names and numbers counting double.
Sentence vectors are computed at question time and cached: at ingest they would double the embedding work for
every sentence of the corpus, while a question reads ~50-80 sentences (0.5-1.4 s here, far less than the
1,000 prompt tokens they save a CPU model: 15 s at 70 tokens/s)."""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from functools import cache
from typing import Any

import numpy as np

from rag.answer.asks import has_what_is_wanted, wants
from rag.ingest.chunking import sentence_spans
from rag.search.retrieve import Passage
from rag.store import lexical

# How much the share of the question's (weighted) terms a sentence holds adds to its cosine. e5 cosines of
# relevant and irrelevant sentences differ by a few hundredths, so full coverage of rare terms is worth a lot.
LEXICAL_WEIGHT = 0.12
# A question for a number, a date or a day: a sentence that has one is more likely the answer.
KIND_BONUS = 0.03
# Sentences scoring this far below the best are noise, however much budget is left: in standard deviations of
# the candidates' scores, since models spread their cosines differently (e5 within a few hundredths, MiniLM wider).
CUTOFF_SPREADS = 1.5
MAX_SENTENCES = 8
CONTEXT_CHARS = 300  # of the document on either side of a cited sentence, for showing it in place
_MIN_WORDS_ALONE = 6
_MIN_CJK_CHARS_ALONE = 12
# A sentence opening with one of these points back to the one before it: it travels with it.
_POINTS_BACK = re.compile(
    r"^(it|its|this|that|these|those|they|their|them|he|she|his|her|such|there|then|also|however|but|and|"
    r"es|er|sie|ihr|ihre|sein|seine|dies|diese|dieser|dieses|damit|dabei|dazu|davon|dort|auch|aber|und|"
    r"它|他|她|该|此|这|其|那|但|而且|同时|此外)\b",
    re.IGNORECASE,
)
_MARKUP_START = re.compile(r"\s*(?:[-*•+>]|\d{1,2}[.)]|\(\w\))\s+")
_URL = re.compile(r"https?://\S+|\]\([^)]*\)")
_MIN_WORDS_FRAGMENT = 4
_MIN_CJK_FRAGMENT = 8
_CJK_START = re.compile(r"^[它他她该此这其那但]")
_QUESTION_WORDS = {
    "en": "how many much which what who whom whose when where why did does do is are was were the a an of in on "
          "for to name list tell give please about according documents document say says said",
    "de": "wie viele viel welche welcher welches was wer wem wann wo warum wieso hat haben ist sind war waren "
          "der die das ein eine laut dokumente dokument nennen sagen",
}
# Chinese has no spaces: the question's own words are cut out before its character pairs are taken.
_CJK_QUESTION = re.compile(
    r"什么时候|什么|哪一年|哪一天|哪个|哪些|哪里|哪年|多少|是否|为什么|怎么|如何|何时|谁|几|吗|呢|是|的|了|吧|请问")


@dataclass(frozen=True)
class Evidence:
    """One numbered piece of evidence: a sentence (with the one before it when it cannot stand alone) at exact
    offsets in its document, and the retrieved passage it came from."""

    number: int
    file: str
    title: str
    start: int
    end: int
    text: str
    score: float
    lang: str
    date: str | None
    passage_id: str
    passage_start: int
    passage_end: int
    margin: float = 0.0  # below the best evidence, in standard deviations of the candidates' scores
    page: int | None = None  # first and last page of the sentence(s); None for formats without pages
    page_end: int | None = None
    section: str = ""

    @property
    def id(self) -> str:
        return f"{self.passage_id}:{self.start}-{self.end}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Candidate:
    """A sentence of a retrieved passage. Its unit, what is scored and shown, starts earlier when the sentence
    cannot stand alone: "It employs 120 staff" is read with the sentence before it."""

    passage: Passage
    start: int  # in the document
    end: int
    rank: int  # of its passage in retrieval
    unit_start: int
    unit_text: str

    @property
    def text(self) -> str:
        return self.passage.text[self.start - self.passage.start : self.end - self.passage.start]

    @property
    def key(self) -> tuple[str, int, int]:
        return self.passage.file, self.unit_start, self.end


def candidates(passages: Sequence[Passage], document_text: Callable[[str], str] | None = None) -> list[Candidate]:
    """Every sentence of the passages that reads as prose, once (overlapping chunks repeat sentences), at its
    best passage's rank, its span trimmed of list bullets and quote marks."""
    seen: dict[tuple[str, int, int], Candidate] = {}
    for rank, passage in enumerate(passages):
        spans = sentence_spans(passage.text)
        for a, b in spans:
            a, b = trimmed(passage.text, a, b)
            text = passage.text[a:b]
            # A title line repeated as the first sentence is not evidence, unless it is all the document says.
            if is_prose(text) and (text.strip() != passage.title.strip() or len(spans) == 1):
                found = Candidate(passage, passage.start + a, passage.start + b, rank, passage.start + a, text)
                seen.setdefault((passage.file, found.start, found.end), found)
    return _with_sentences_before(list(seen.values()), document_text)


def _with_sentences_before(found: list[Candidate], document_text: Callable[[str], str] | None) -> list[Candidate]:
    """Each sentence that cannot stand alone gets the sentence before it in its unit, from whichever passage
    holds that one (chunks end at sentence boundaries, so it is often the previous chunk)."""
    by_end = {(c.passage.file, c.end): c for c in found}
    out = []
    for c in found:
        before = next((by_end[(c.passage.file, c.start - gap)] for gap in range(1, 4)
                       if (c.passage.file, c.start - gap) in by_end), None)
        between = _text_between(before, c, document_text) if before is not None and not stands_alone(c.text) \
            else None
        if before is not None and between is not None:
            c = replace(c, unit_start=before.start, unit_text=before.text + between + c.text)
        out.append(c)
    return out


def _text_between(before: Candidate, after: Candidate, document_text: Callable[[str], str] | None) -> str | None:
    """The document's characters between two sentences: from a passage that holds them, else from the document
    (chunks drop the space between them); None when neither can tell."""
    for passage in (after.passage, before.passage):
        if passage.start <= before.end and after.start <= passage.end:
            return passage.text[before.end - passage.start : after.start - passage.start]
    return document_text(after.passage.file)[before.end : after.start] if document_text else None


def trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    """A sentence's span without the list bullet, number or quote mark in front of it."""
    lead = _MARKUP_START.match(text, start, end)
    return (lead.end() if lead else start), end


def is_prose(text: str) -> bool:
    """Not a heading, a table row, a link list or a fragment: what can stand as evidence in an answer."""
    stripped = text.strip()
    if not any(ch.isalnum() for ch in stripped) or stripped.startswith("#") or stripped.count("|") >= 2:
        return False
    if sum(len(m.group()) for m in _URL.finditer(stripped)) > 0.3 * len(stripped):
        return False
    cjk = sum("\u4e00" <= ch <= "\u9fff" for ch in stripped)
    words = [w for w in stripped.split() if sum(ch.isalpha() for ch in w) >= 2]  # not "3", "6", "02:22"
    return cjk >= _MIN_CJK_FRAGMENT or len(words) >= _MIN_WORDS_FRAGMENT


class SentenceVectors:
    """Vectors of sentences by (file, start, end), kept across questions: follow-ups and similar questions read
    the same passages again. Bounded, least recently used first out."""

    def __init__(self, embed: Callable[[Sequence[str]], np.ndarray], capacity: int = 20_000) -> None:
        self._embed = embed
        self._capacity = capacity
        self._vectors: OrderedDict[tuple[str, int, int], np.ndarray] = OrderedDict()

    def __call__(self, found: Sequence[Candidate]) -> np.ndarray:
        missing = [c for c in found if c.key not in self._vectors]
        if missing:
            for c, vector in zip(missing, self._embed([c.unit_text for c in missing]), strict=True):
                self._vectors[c.key] = vector
        for c in found:
            self._vectors.move_to_end(c.key)
        while len(self._vectors) > self._capacity:
            self._vectors.popitem(last=False)
        return np.stack([self._vectors[c.key] for c in found]) if found else np.zeros((0, 1), dtype=np.float32)

    def clear(self) -> None:
        self._vectors.clear()


@cache
def question_words(lang: str) -> frozenset[str]:
    """The words every question has, as the index's terms (stemmed in the question's language)."""
    return frozenset(t for words in _QUESTION_WORDS.values() for t in lexical.terms(words, lang))


def question_terms(question: str, lang: str) -> list[str]:
    """The question's content terms (stemmed as the index stems them), without the words every question has."""
    return [t for t in lexical.terms(_CJK_QUESTION.sub(" ", question), lang) if t not in question_words(lang)]


def is_key_term(term: str, question: str) -> bool:
    """Names and numbers: a digit, or a word written with a capital inside the question (not its first word)."""
    if any(ch.isdigit() for ch in term):
        return True
    for match in re.finditer(r"(?<=[\s(\"'“„])([A-ZÄÖÜ][\w.\-]*)", question):
        if lexical.fold(match.group(1)).startswith(term[: max(3, len(term) - 1)]):
            return True
    return False


def term_weights(asked: Sequence[str], question: str, documents: Sequence[set[str]]) -> dict[str, float]:
    """IDF over the candidate sentences (a term every sentence has tells nothing), names and numbers double."""
    total = len(documents)
    weights = {}
    for term in dict.fromkeys(asked):
        df = sum(term in d for d in documents)
        weights[term] = (1.0 + math.log((1 + total) / (1 + df))) * (2.0 if is_key_term(term, question) else 1.0)
    return weights


def lexical_scores(question: str, lang: str, found: Sequence[Candidate]) -> np.ndarray:
    """Per sentence: the weighted share of the question's terms it holds (0 when the question has none)."""
    asked = question_terms(question, lang)
    # The question's stemmer on every sentence: names and loanwords then match in any language's sentence.
    documents = [set(lexical.terms(c.unit_text, lang)) for c in found]
    weights = term_weights(asked, question, documents)
    total = sum(weights.values())
    if not total:
        return np.zeros(len(found), dtype=np.float32)
    return np.array([sum(w for t, w in weights.items() if t in d) / total for d in documents], dtype=np.float32)


def stands_alone(text: str) -> bool:
    if _POINTS_BACK.match(text.strip()) or _CJK_START.match(text.strip()):
        return False
    cjk = sum("\u4e00" <= ch <= "\u9fff" for ch in text)
    return cjk >= _MIN_CJK_CHARS_ALONE if cjk > len(text) / 3 else len(text.split()) >= _MIN_WORDS_ALONE


@dataclass(frozen=True)
class Scored:
    candidate: Candidate
    score: float
    cosine: float
    lexical: float


def score_sentences(
    question_vector: np.ndarray, question: str, lang: str, found: Sequence[Candidate], vectors: SentenceVectors
) -> list[Scored]:
    """Best first."""
    if not found:
        return []
    cosines = vectors(found) @ question_vector
    overlap = lexical_scores(question, lang, found)
    kind = wants(question)
    scored = [Scored(c, float(cos + LEXICAL_WEIGHT * lex + (KIND_BONUS if kind and has_what_is_wanted(
                  kind, c.unit_text) else 0.0)), float(cos), float(lex))
              for c, cos, lex in zip(found, cosines, overlap, strict=True)]
    return sorted(scored, key=lambda s: (-s.score, s.candidate.rank, s.candidate.start))


@dataclass
class _Piece:
    best: Scored
    start: int
    end: int
    text: str

    def overlaps(self, other: Candidate) -> bool:
        return self.best.candidate.passage.file == other.passage.file and \
            other.unit_start < self.end and self.start < other.end

    def absorb(self, other: Candidate) -> None:
        """Join an overlapping unit of the same document: the union of both spans, exact."""
        first, second = ((self.start, self.text), (other.unit_start, other.unit_text))
        if second[0] < first[0]:
            first, second = second, first
        end = max(self.end, other.end)
        first_end = first[0] + len(first[1])
        self.text = first[1] + second[1][first_end - second[0]:] if end > first_end else first[1]
        self.start, self.end = first[0], end


def select(
    ranked: Sequence[Scored], budget_tokens: int, count_tokens: Callable[[str], int], floor: int = 3,
) -> list[Evidence]:
    """The best sentences within the budget (at least `floor` of them, however small the budget), each with the
    sentence before it when it cannot stand alone; grouped by document (best document first), in document order
    within each, numbered from 1. A sentence overlapping a chosen one (its sentence before) joins it."""
    if not ranked:
        return []
    best = ranked[0].score
    spread = float(np.std([r.score for r in ranked])) or 1.0
    chosen: list[_Piece] = []
    used = sentences = 0
    for item in ranked[: MAX_SENTENCES * 2]:
        if len(chosen) >= MAX_SENTENCES or (chosen and item.score < best - CUTOFF_SPREADS * spread):
            break
        candidate = item.candidate
        joined = next((piece for piece in chosen if piece.overlaps(candidate)), None)
        cost = count_tokens(candidate.unit_text) + (6 if joined is None else 0)
        if used + cost > budget_tokens and sentences >= floor:
            break
        sentences += 1 + (candidate.unit_start < candidate.start)  # a unit with the sentence before it is two
        if joined is not None:
            joined.absorb(candidate)
        else:
            chosen.append(_Piece(item, candidate.unit_start, candidate.end, candidate.unit_text))
        used += cost
    return _numbered(chosen, best, spread)


def _numbered(chosen: Sequence[_Piece], best: float, spread: float) -> list[Evidence]:
    order: dict[str, float] = {}
    for piece in chosen:
        order.setdefault(piece.best.candidate.passage.file, piece.best.score)
    ordered = sorted(chosen, key=lambda c: (-order[c.best.candidate.passage.file], c.start))
    evidence = []
    for number, piece in enumerate(ordered, 1):
        p = piece.best.candidate.passage
        evidence.append(Evidence(
            number=number, file=p.file, title=p.title, start=piece.start, end=piece.end, text=piece.text,
            score=round(piece.best.score, 4), lang=p.lang, date=p.date, passage_id=p.id,
            # what a front end shows around the sentence: its chunk, and always the whole piece (one joined across
            # two chunks, or a long sentence the chunker cut into windows)
            passage_start=min(p.start, piece.start, max(0, piece.start - CONTEXT_CHARS)),
            passage_end=max(p.end, piece.end + CONTEXT_CHARS),
            margin=round((best - piece.best.score) / spread, 3), **p.placed(piece.start, piece.end),
        ))
    return evidence
