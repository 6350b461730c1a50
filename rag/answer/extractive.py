"""Answers rag writes itself from the evidence, without a model: the best sentences quoted and cited, the refusal
with the closest evidence, and the line saying the evidence is in another language. Phrases come from
rag/prompts/answers.toml, in the answer's language."""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from functools import cache
from importlib import resources

from rag import prompts
from rag.answer.evidence import Evidence

EXTRACTIVE_SENTENCES = 2
# A second sentence is quoted only when it scores nearly as well as the best (within this many standard
# deviations of the candidates' scores): otherwise it is noise.
SECOND_WITHIN_SPREADS = 1.0


@cache
def _phrases() -> dict[str, dict[str, object]]:
    text = resources.files("rag.prompts").joinpath("answers.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def phrase(lang: str, key: str) -> str:
    table = _phrases().get(lang) or _phrases()["en"]
    return str(table[key])


def quote(lang: str, text: str) -> str:
    opening, closing = (_phrases().get(lang) or _phrases()["en"])["quotes"]  # type: ignore[misc]
    return f"{opening}{' '.join(text.split())}{closing}"


def language_name(lang: str, of: str) -> str:
    """The name of language `of`, written in language `lang` ("Englisch" in German)."""
    names = (_phrases().get(lang) or _phrases()["en"])["names"]
    return str(names.get(of, of))  # type: ignore[union-attr]


def best_first(evidence: Sequence[Evidence]) -> list[Evidence]:
    return sorted(evidence, key=lambda e: (-e.score, e.number))


def quoted(lang: str, evidence: Sequence[Evidence]) -> str:
    return " ".join(f"{quote(lang, e.text)} [{e.number}]" for e in evidence)


def language_note(lang: str, shown: Sequence[Evidence]) -> str:
    """One line in the question's language when the evidence quoted is in another one."""
    other = sorted({e.lang for e in shown if e.lang and e.lang != lang})
    if not other:
        return ""
    names = ", ".join(language_name(lang, o) for o in other)
    some = any(e.lang == lang for e in shown)
    return phrase(lang, "some_other_language" if some else "other_language").format(language=names)


def extractive_answer(lang: str, evidence: Sequence[Evidence]) -> str:
    """The best evidence, quoted and cited: the best sentence, and the next one when it scores nearly as well."""
    ranked = best_first(evidence)
    shown = [e for i, e in enumerate(ranked[:EXTRACTIVE_SENTENCES])
             if i == 0 or e.margin <= SECOND_WITHIN_SPREADS]
    lead = " ".join(part for part in (language_note(lang, shown), phrase(lang, "extractive")) if part)
    return f"{lead} {quoted(lang, shown)}"


def refusal_with_closest(lang: str, evidence: Sequence[Evidence]) -> str:
    """The refusal in the question's language, then the closest evidence, quoted and cited."""
    refusal = prompts.refusal(lang)
    if not evidence:
        return refusal
    closest = best_first(evidence)[:1]
    note = language_note(lang, closest)
    return " ".join(part for part in (refusal, note, phrase(lang, "closest"), quoted(lang, closest)) if part)
