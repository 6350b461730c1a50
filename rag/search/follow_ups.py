"""Follow-ups: a question that points back into the conversation is searched with the recent questions, or
rewritten by the LLM into a standalone question."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

from rag import prompts
from rag.conversation import Turn, conversation_prefix
from rag.models.llm import ChatLLM, Message

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


def clean_rewrite(text: str, original: str) -> str:
    """The model's rewritten question, or the original when the model produced something unusable."""
    line = next((ln.strip() for ln in text.strip().splitlines() if ln.strip()), "")
    line = re.sub(r"^(rewritten question|standalone question|question|frage|问题)\s*[:：]\s*", "", line, flags=re.I)
    line = line.strip().strip('"“”')
    if not line or len(line) > 4 * len(original) + 200:
        return original
    return line


def condense_prompt(question: str, lang: str, history: Sequence[Turn]) -> list[Message]:
    """The rewrite request as the next message of the conversation itself, so it reuses the cached prefix."""
    return [*conversation_prefix(lang, history), {"role": "user", "content": prompts.template("condense").format(
        question=prompts.defuse_fences(question))}]


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
    return (question if prompts.is_refusal(reply) else clean_rewrite(reply, question)), ""
