"""Prompt templates shipped as package files, so they can be read and changed without touching code."""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources

LANGUAGE_NAMES = {
    "en": "English", "de": "German (Deutsch)", "zh": "Chinese (中文)", "fr": "French (français)",
    "es": "Spanish (español)", "it": "Italian (italiano)", "nl": "Dutch (Nederlands)", "ja": "Japanese (日本語)",
    "ko": "Korean (한국어)", "pt": "Portuguese (português)", "ru": "Russian (русский)",
}


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
