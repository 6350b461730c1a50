"""The context given to the model: neighbouring passages merged, duplicates dropped, everything sized to the
model's window so time to first token stays bounded on a CPU."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from rag.conversation import conversation_prefix
from rag.models.llm import ChatLLM
from rag.search.retrieve import Passage

_TEMPLATE_OVERHEAD_TOKENS = 64
_JOINABLE_GAP = 2  # characters (a line break) between two passages that read as one


def merge_neighbours(passages: Sequence[Passage], document_text: Callable[[str], str]) -> list[Passage]:
    """Passages of one document that overlap or touch become one passage (exact offsets kept), at the rank of
    its best part; a passage inside another is dropped."""
    merged: list[Passage] = []
    for passage in passages:
        for i, kept in enumerate(merged):
            if kept.file == passage.file and passage.start <= kept.end + _JOINABLE_GAP \
                    and kept.start <= passage.end + _JOINABLE_GAP:
                start, end = min(kept.start, passage.start), max(kept.end, passage.end)
                if (start, end) != (kept.start, kept.end):
                    text = document_text(kept.file)[start:end]
                    merged[i] = replace(kept, start=start, end=end, text=text, score=max(kept.score, passage.score))
                break
        else:
            merged.append(passage)
    return merged


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


def fit_passages(passages: Sequence[Passage], budget: int, count_tokens: Callable[[str], int]) -> list[Passage]:
    """Passages in rank order while they fit; ones that do not fit are skipped, not cut."""
    kept, used = [], 0
    for passage in passages:
        cost = count_tokens(passage.text) + 16
        if used + cost <= budget:
            kept.append(passage)
            used += cost
    return kept


