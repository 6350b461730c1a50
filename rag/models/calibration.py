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
