"""A conversation's turns, the stable prefix every prompt of a conversation starts with, and trimming the
history to a budget: shared by search (follow-ups) and answer (the prompt)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rag import prompts
from rag.models.llm import Message


@dataclass(frozen=True)
class Turn:
    question: str
    answer: str


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


def conversation_prefix(lang: str, history: Sequence[Turn]) -> list[Message]:
    """System prompt and earlier turns: the part of every prompt of a conversation that does not change from one
    call to the next, so llama.cpp (or a server's prompt cache) evaluates it once."""
    system = prompts.template("qa_system").format(refusal=prompts.refusal(lang), language=prompts.language_name(lang))
    messages: list[Message] = [{"role": "system", "content": system}]
    for turn in history:
        messages += [{"role": "user", "content": turn.question}, {"role": "assistant", "content": turn.answer}]
    return messages
