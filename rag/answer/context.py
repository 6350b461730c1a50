"""The model's context window, split between the answer, the conversation's history and the evidence."""

from __future__ import annotations

from dataclasses import dataclass

from rag.conversation import conversation_prefix
from rag.models.llm import ChatLLM

_TEMPLATE_OVERHEAD_TOKENS = 64


@dataclass(frozen=True)
class Budget:
    max_tokens: int
    passage_tokens: int
    history_tokens: int


def plan_budget(llm: ChatLLM, max_tokens: int, context_tokens: int, fixed_tokens: int) -> Budget:
    """Split the model's context window between the answer, the history and the passages."""
    answer = min(max_tokens, llm.n_ctx // 4)
    free = llm.n_ctx - answer - fixed_tokens - _TEMPLATE_OVERHEAD_TOKENS
    history = max(0, min(llm.n_ctx // 8, free // 4))
    return Budget(max_tokens=answer, passage_tokens=max(0, min(context_tokens, free - history)),
                  history_tokens=history)


def question_budget(llm: ChatLLM, max_tokens: int, context_tokens: int, lang: str, question: str) -> Budget:
    fixed = llm.count_tokens(conversation_prefix(lang, [])[0]["content"]) + llm.count_tokens(question)
    return plan_budget(llm, max_tokens, context_tokens, fixed)
