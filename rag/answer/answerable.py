"""Answerability: before anything is answered, check that the chosen evidence covers what the question asks.

Three checks, each a reason to refuse in every answer mode:
- names and numbers: every name (a word with capitals inside or all capitals, or, in English, a capitalised word
  inside the question) and every number the question states must appear in the evidence, in any language;
- coverage: in the question's own language, the evidence must hold enough of the question's terms, weighted by
  how rare they are among the candidate sentences (a threshold calibrated on SciFact: eval/calibrate_answerable.py,
  see rag/models/calibration.toml); across languages words cannot overlap, so only the names and numbers count;
- what is asked for: a question for a number needs a number in the evidence, one for a date or year needs a
  date or year, and one for an exact day needs a day.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from rag.answer.asks import has_what_is_wanted, wants
from rag.answer.evidence import Evidence, question_terms, term_weights
from rag.store import lexical

# Evidence read for coverage: the best few, not all chosen (more text covers more words by chance).
TOP_EVIDENCE = 3

_LATIN_WORD = re.compile(r"[A-Za-zÀ-ÖØ-öø-ÿ0-9]+(?:[.\-][A-Za-zÀ-ÖØ-öø-ÿ0-9]+)*")
_YEAR = re.compile(r"1[89]\d\d|20\d\d")
_UNIVERSAL = re.compile(r"\d|[a-zà-ÿ][A-Z]")  # a digit, or a capital after a small letter
# Capitalised words inside a sentence of the question (the first word of each sentence is capitalised anyway).
_CAPITALISED_RUN = re.compile(r"(?<![.!?:>]\s)(?<=[\s(\"'“„])[A-Z][\w.\-]*(?:\s+[A-Z][\w.\-]*)*")
_NOT_NAMES_TEXT = (
    "january february march april may june july august september october november december monday tuesday "
    "wednesday thursday friday saturday sunday chinese american european british german english french "
    "japanese korean indian russian italian spanish asian african western eastern i")
_NOT_NAMES = frozenset(_NOT_NAMES_TEXT.split())


@dataclass(frozen=True)
class Coverage:
    answerable: bool
    coverage: float | None  # weighted share of the question's terms in the evidence (same language), or None
    wants: str | None  # "day", "date", "number" or None
    missing: list[str] = field(default_factory=list)  # names and numbers of the question no evidence holds
    reason: str = ""

    def to_dict(self) -> dict[str, object]:
        return {"answerable": self.answerable, "coverage": self.coverage, "wants": self.wants,
                "missing": self.missing, "reason": self.reason}


@dataclass(frozen=True)
class Name:
    """A name or number of the question: held when the evidence has any of its words. `universal` names are
    written the same in every language (a digit, or a capital inside a word: Qwen2.5, ModelScope, QwQ)."""

    words: tuple[str, ...]
    universal: bool


def names_and_numbers(question: str, lang: str) -> list[Name]:
    """What an answer must be about: numbers and name-shaped words in any language, all-capital words, and in
    English runs of capitalised words inside the question ("Joe Tsai", held by either word). German capitalises
    every noun, so there only the shapes count; nationalities and months are not names."""
    found: list[Name] = []
    for match in _LATIN_WORD.finditer(question):
        word = match.group()
        parts = [w for w in re.split(r"[.\-]", word) if w]
        if word.isdigit() and not _YEAR.fullmatch(word):
            continue  # a quantity ("5", "10") may be written out or rounded: only years and identifiers count
        if any(_UNIVERSAL.search(w) for w in parts) or _UNIVERSAL.search(word):
            found.append(Name((lexical.fold(word),), True))
        elif len(parts) == 1 and len(word) > 1 and word.isupper():  # CEO; not KI in KI-Rennen, a compound
            found.append(Name((lexical.fold(word),), False))
    if lang == "en":
        for run in _CAPITALISED_RUN.finditer(question):
            words = tuple(w for w in (lexical.fold(w.strip(".-")) for w in run.group().split())
                          if w and w not in _NOT_NAMES)
            if words and not any(set(words) & set(n.words) for n in found):
                found.append(Name(words, False))
    return list(dict.fromkeys(found))


def holds(text: str, word: str) -> bool:
    """Whether the evidence text has the word, whole or as the start of a longer form (Qwen in Qwen-7B)."""
    folded = lexical.fold(text)
    return re.search(rf"(?<![^\W_]){re.escape(word)}", folded) is not None


def coverage_of(question: str, lang: str, evidence: Sequence[Evidence], pool: Sequence[set[str]]) -> float | None:
    """The weighted share of the question's terms that the evidence in the question's language holds."""
    same = [e for e in evidence if (e.lang or lang) == lang]
    asked = question_terms(question, lang)
    if not same or not asked:
        return None
    weights = term_weights(asked, question, pool or [set()])
    held = set().union(*(set(lexical.terms(e.text, lang)) for e in same))
    total = sum(weights.values())
    return round(sum(w for t, w in weights.items() if t in held) / total, 4) if total else None


def check(
    question: str, lang: str, evidence: Sequence[Evidence], pool: Sequence[set[str]], threshold: float | None,
    surroundings: Sequence[str] = (),
) -> Coverage:
    """`evidence` best first; `pool`: the term sets of every candidate sentence (for the terms' rarity);
    `surroundings`: the passages and titles the evidence comes from, where a name may stand that the sentence
    itself leaves implicit ("It released QwQ" in an article about Alibaba)."""
    kind = wants(question)
    top = list(evidence[:TOP_EVIDENCE])
    if not top:
        return Coverage(False, None, kind, reason="no evidence")
    around = " ".join([*(e.text for e in top), *surroundings])
    names = names_and_numbers(question, lang)
    # A word of one language (an acronym, a capitalised word) can only be looked for in that language's evidence.
    same_language = any((e.lang or lang) == lang for e in top)
    missing = [" ".join(n.words) for n in names
               if (n.universal or same_language) and not any(holds(around, w) for w in n.words)]
    coverage = coverage_of(question, lang, top, pool)
    if missing:
        return Coverage(False, coverage, kind, missing, f"the evidence never names {', '.join(missing)}")
    # The answer stands in a sentence about what the question names: a number elsewhere answers nothing.
    about = [e for e in top if not names or any(holds(e.text, w) for n in names for w in n.words)] or top
    given = [w for n in names for w in n.words]
    if not any(has_what_is_wanted(kind, e.text, given) for e in about):
        return Coverage(False, coverage, kind, reason=f"the question asks for a {kind} and the evidence has none")
    if threshold is not None and coverage is not None and coverage < threshold:
        return Coverage(False, coverage, kind, reason=f"the evidence holds {coverage:.0%} of the question's terms")
    return Coverage(True, coverage, kind)

