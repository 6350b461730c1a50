"""Chat history: decide whether a follow-up needs rewriting into a standalone question, and trim history."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# Words that point back into the conversation. A question without any of them is left untouched.
_ANAPHORA = {
    "en": r"\b(it|its|they|them|their|this|that|these|those|he|she|him|her|his|there|then|the same|one)\b"
          r"|^(and|but|also|so|what about|how about|why|when|where)\b",
    "de": r"\b(es|sein|seine|ihr|ihre|sie|er|ihn|ihm|dies|diese|dieser|dieses|das|dort|damals|dabei|davon|dazu)\b"
          r"|^(und|aber|auch|also|was ist mit|wie steht es mit|warum|wann|wo)\b",
    "zh": r"它|他们|她们|他|她|这个|那个|这些|那些|其|该|此|那么|呢|还有|那",
}
_SHORT_QUESTION_WORDS = 4


@dataclass(frozen=True)
class Turn:
    question: str
    answer: str


def needs_rewrite(question: str, lang: str, history: Sequence[Turn]) -> bool:
    if not history:
        return False
    text = question.strip().lower()
    pattern = _ANAPHORA.get(lang, _ANAPHORA["en"])
    if re.search(pattern, text):
        return True
    if lang in ("zh", "ja", "ko"):
        return len(text) <= 6
    return len(text.split()) < _SHORT_QUESTION_WORDS


def trim_history(history: Sequence[Turn], budget_tokens: int, count_tokens: Callable[[str], int]) -> list[Turn]:
    """The most recent turns that fit in the budget, oldest first."""
    kept: list[Turn] = []
    used = 0
    for turn in reversed(history):
        cost = count_tokens(turn.question) + count_tokens(turn.answer) + 8
        if used + cost > budget_tokens:
            break
        kept.insert(0, turn)
        used += cost
    return kept


def format_history(history: Sequence[Turn]) -> str:
    return "\n".join(f"User: {t.question}\nAssistant: {t.answer}" for t in history)


def clean_rewrite(text: str, original: str) -> str:
    """The model's rewritten question, or the original when the model produced something unusable."""
    line = next((ln.strip() for ln in text.strip().splitlines() if ln.strip()), "")
    line = re.sub(r"^(rewritten question|standalone question|question|frage|问题)\s*[:：]\s*", "", line, flags=re.I)
    line = line.strip().strip('"“”')
    if not line or len(line) > 4 * len(original) + 200:
        return original
    return line
