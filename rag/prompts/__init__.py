"""Prompt templates shipped as package files, so they can be read and changed without touching code; the fence
untrusted text stands in; the refusal sentences, and recognising a reply that is one."""

from __future__ import annotations

import re
import tomllib
from functools import cache
from importlib import resources

from rag.ingest.chunking import sentence_spans

LANGUAGE_NAMES = {
    "en": "English", "de": "German (Deutsch)", "zh": "Chinese (中文)", "fr": "French (français)",
    "es": "Spanish (español)", "it": "Italian (italiano)", "nl": "Dutch (Nederlands)", "ja": "Japanese (日本語)",
    "ko": "Korean (한국어)", "pt": "Portuguese (português)", "ru": "Russian (русский)",
}

_MARKER = re.compile(r"\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]")
_FENCE_TAG = re.compile(r"<(\s*/?\s*passage)", re.IGNORECASE)
_REFUSAL = re.compile(
    r"(documents?|passages?|sources?|context|texts?)\s+(do(es)?\s*n[o']t|do(es)? not)\s+(say|mention|contain|state|"
    r"provide|include|specify)|not\s+(mentioned|stated|specified|provided|found)\s+in\s+the\s+(documents?|passages?|"
    r"sources?|context)|no\s+information\s+(about|on)|"
    r"(Dokumente|Texte|Quellen|Passagen)\s+(sagen|enthalten|nennen|erwähnen)\s+(dazu\s+|darüber\s+)?(nichts|keine)|"
    r"(nicht|keine)\s+(in\s+den\s+)?(Dokumenten|Quellen|Passagen)\s+(erwähnt|genannt|enthalten)|"
    r"in\s+den\s+(Dokumenten|Quellen|Passagen|Texten)\s+(nicht|nirgends)\s+(erwähnt|genannt|enthalten|angegeben)|"
    r"documents\s+ne\s+(le\s+)?(disent|mentionnent|précisent)\s+pas|documentos\s+no\s+(lo\s+)?(dicen|mencionan)|"
    r"(文档|资料|文中|材料|段落)(中)?(没有|未)(提到|提及|说明|包含|涉及)|没有(提到|提及|相关信息)|未提及",
    re.IGNORECASE,
)


@cache
def template(name: str) -> str:
    return resources.files(__package__).joinpath(f"{name}.txt").read_text(encoding="utf-8").strip()


@cache
def _refusals() -> dict[str, str]:
    return tomllib.loads(resources.files(__package__).joinpath("refusals.toml").read_text(encoding="utf-8"))


def refusal(lang: str) -> str:
    return _refusals().get(lang, _refusals()["en"])


def all_refusals() -> list[str]:
    return list(_refusals().values())


def language_name(lang: str) -> str:
    return LANGUAGE_NAMES.get(lang, "the language of the question")


def defuse_fences(text: str) -> str:
    """Untrusted text (a passage, its title, the question) as it may stand in the prompt: it can neither close
    the <passage> fence it sits in nor open a fake one, in any spelling ("</PASSAGE >", "< passage")."""
    return _FENCE_TAG.sub(r"‹\1", text)


def is_refusal(text: str) -> bool:
    """True when the answer opens by saying the documents lack the answer; a caveat after a real answer
    ("... [1]. The documents do not mention its size.") is not a refusal."""
    plain = _MARKER.sub("", text).strip()
    spans = sentence_spans(plain)
    first = plain[spans[0][0] : spans[0][1]] if spans else plain
    if _REFUSAL.search(first):
        return True
    folded = first.casefold().rstrip(".。!！ ")
    return bool(folded) and any(c.casefold().rstrip(".。!！ ") in folded for c in all_refusals())
