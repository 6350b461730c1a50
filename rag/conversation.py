"""Chat history: the stable prefix every prompt of a conversation starts with, trimming it to a budget, how a
follow-up is searched, and reading the next turn's prefix into the model while the user types."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from . import grounding, prompts
from .llm import ChatLLM, Message

# Words that point back into the conversation. A question without any of them is left untouched.
_ANAPHORA = {
    "en": r"\b(it|its|they|them|their|this|that|these|those|he|she|him|her|his|there|then|the same|one)\b"
          r"|^(and|but|also|so|what about|how about|why|when|where)\b",
    "de": r"\b(es|sein|seine|ihr|ihre|sie|er|ihn|ihm|dies|diese|dieser|dieses|das|dort|damals|dabei|davon|dazu)\b"
          r"|^(und|aber|auch|also|was ist mit|wie steht es mit|warum|wann|wo)\b",
    "zh": r"它|他们|她们|他|她|这个|那个|这些|那些|其|该|此|那么|呢|还有|那",
}
_SHORT_QUESTION_WORDS = 4
_CONTEXT_QUESTIONS = 2  # recent questions a follow-up is searched with


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


def clean_rewrite(text: str, original: str) -> str:
    """The model's rewritten question, or the original when the model produced something unusable."""
    line = next((ln.strip() for ln in text.strip().splitlines() if ln.strip()), "")
    line = re.sub(r"^(rewritten question|standalone question|question|frage|问题)\s*[:：]\s*", "", line, flags=re.I)
    line = line.strip().strip('"“”')
    if not line or len(line) > 4 * len(original) + 200:
        return original
    return line


def conversation_prefix(lang: str, history: Sequence[Turn]) -> list[Message]:
    """System prompt and earlier turns: the part of every prompt of a conversation that does not change from one
    call to the next, so llama.cpp (or a server's prompt cache) evaluates it once."""
    system = prompts.template("qa_system").format(refusal=prompts.refusal(lang), language=prompts.language_name(lang))
    messages: list[Message] = [{"role": "system", "content": system}]
    for turn in history:
        messages += [{"role": "user", "content": turn.question}, {"role": "assistant", "content": turn.answer}]
    return messages


def condense_prompt(question: str, lang: str, history: Sequence[Turn]) -> list[Message]:
    """The rewrite request as the next message of the conversation itself, so it reuses the cached prefix."""
    return [*conversation_prefix(lang, history), {"role": "user", "content": prompts.template("condense").format(
        question=grounding.defuse_fences(question))}]


def follow_up_query(
    llm: ChatLLM, question: str, lang: str, history: Sequence[Turn], mode: str, timings: dict[str, float]
) -> tuple[str, str]:
    """(the question to search and answer, extra text to search it with) for a question that may point back
    into the conversation: "rewrite" asks the LLM for a standalone question; "context" searches the question
    together with the recent questions, in no time, and leaves the reference to the answering model."""
    if not needs_rewrite(question, lang, history):
        return question, ""
    if mode != "rewrite":
        return question, " ".join([*(t.question for t in list(history)[-_CONTEXT_QUESTIONS:]), question])
    started = time.perf_counter()
    reply = "".join(llm.stream_chat(condense_prompt(question, lang, history), 96, 0.0))
    timings["rewrite_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return (question if grounding.is_refusal(reply) else clean_rewrite(reply, question)), ""


class Prefiller:
    """Reads the next turn's prefix into the model in the background (see ChatLLM.prefill). Several may be asked
    for at once (a server): the model takes one at a time and skips the rest while busy."""

    def __init__(self) -> None:
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def start(self, llm: ChatLLM, lang: str, history: Sequence[Turn], budget_tokens: int) -> None:
        """`history`: the conversation including the turn just answered, trimmed here as the next turn will."""
        prefill = getattr(llm, "prefill", None)  # a caller's own LLM object may not have one
        if prefill is None:
            return
        messages = conversation_prefix(lang, trim_history(history, budget_tokens, llm.count_tokens))
        thread = threading.Thread(target=prefill, args=(messages,), name="rag-prefill", daemon=True)
        with self._lock:
            self._threads = [*(t for t in self._threads if t.is_alive()), thread]
        thread.start()

    def settle(self) -> None:
        """Wait for them to finish (before the model is freed, or to measure the next turn)."""
        with self._lock:
            threads, self._threads = self._threads, []
        for thread in threads:
            thread.join()
