"""Thresholds measured per embedding model (calibration.toml beside this file, made by eval/calibrate_*.py on
SciFact): when retrieval is too weak to answer, and when a sentence is close enough in meaning to back it."""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources


def relevance_threshold(configured: float | None, embedding_model: str, lang: str = "en") -> float | None:
    """The relevance gate for a model and question language: the configured value, else the calibrated one
    when the question is in a language it was calibrated in, else none (an uncalibrated gate would refuse or
    admit at random). 0 switches it off."""
    if configured is not None:
        return configured or None
    entry = _calibration().get(embedding_model)
    if not entry or not ({lang, "*"} & set(entry.get("languages", []))):
        return None
    return float(entry["threshold"])


def support_threshold(embedding_model: str) -> float | None:
    """The cosine above which a multilingual model finds a sentence close enough in meaning to a passage's
    sentence to back it across languages (rag/calibration.toml); None when not calibrated."""
    entry = _calibration().get(embedding_model) or {}
    return float(entry["support_threshold"]) if "support_threshold" in entry else None


@cache
def _calibration() -> dict[str, dict[str, object]]:
    return tomllib.loads(resources.files(__package__).joinpath("calibration.toml").read_text(encoding="utf-8"))


# LLMs measured too weak to answer from evidence, so answer_mode "auto" quotes the evidence instead: SmolLM2-135M
# (the offline fallback) answered 23% of the bundled questions correctly when generating, against the
# extractive answer's share in the same run (eval/README.md, "Answer modes").
_TOO_WEAK_TO_ANSWER = frozenset({"HuggingFaceTB/SmolLM2-135M-Instruct"})


def can_answer(llm_name: str) -> bool:
    return llm_name not in _TOO_WEAK_TO_ANSWER


def answerable_coverage() -> float | None:
    """The least share of a question's (weighted) terms the evidence in its language must hold to be answered
    (rag/answer/answerable.py); None when not calibrated."""
    entry = _calibration().get("answerability") or {}
    return float(entry["coverage"]) if "coverage" in entry else None
