"""The prompt from the evidence, the model's stream kept from repeating itself, its timings, and the relevance gate."""

from __future__ import annotations

import queue
import re
import threading
import time
from collections.abc import Iterator, Sequence

from rag import prompts
from rag.answer.evidence import Evidence
from rag.conversation import Turn, conversation_prefix
from rag.models.llm import Message
from rag.search.retrieve import Passage

_SOURCE_MARKER = re.compile(r"\[(\d{1,3})\]")
_DONE = object()
# How far the model may run ahead of a reader busy checking sentences; bounded, so a reader that went away (a
# closed tab noticed at the next token) stops the model within this many tokens.
_READ_AHEAD_TOKENS = 32


def prompt_passage_text(text: str) -> str:
    # The source's own reference markers ("[5]") must not read as our citation numbers, nor its tags as our fence.
    return prompts.defuse_fences(_SOURCE_MARKER.sub("", text))


def short_title(title: str, words: int = 12) -> str:
    """A title as the prompt gives it: long ones (a first sentence taken for a title) cost every prompt tokens."""
    parts = title.split()
    return " ".join(parts[:words]) + ("…" if len(parts) > words else "")


def build_messages(
    question: str, lang: str, evidence: Sequence[Evidence], history: Sequence[Turn]
) -> list[Message]:
    """The evidence grouped by document (each group headed by its title and date), numbered, then the question."""
    groups: dict[str, list[Evidence]] = {}
    for item in evidence:
        groups.setdefault(item.file, []).append(item)
    blocks = "\n".join(
        prompts.template("passage").format(
            title=prompts.defuse_fences(short_title(items[0].title).replace('"', "'")),
            date=f' date="{items[0].date}"' if items[0].date else "",
            sentences="\n".join(_with_sections(items)),
        )
        for items in groups.values()
    )
    return [*conversation_prefix(lang, history), {"role": "user", "content": prompts.template("qa_user").format(
        passages=blocks, question=prompts.defuse_fences(question))}]


def _with_sections(items: Sequence[Evidence]) -> Iterator[str]:
    """The numbered sentences of one document, each run of one section headed by its path ("§ 2 Design")."""
    section = ""
    for e in items:
        if e.section and e.section != section:
            section = e.section
            yield f"§ {prompts.defuse_fences(short_title(section, 16))}"
        yield f"[{e.number}] {' '.join(prompt_passage_text(e.text).split())}"


def guard_repetition(chunks: Iterator[str], min_period: int = 4, max_period: int = 150) -> Iterator[str]:
    """Stop a model that has started repeating itself (the same text three times in a row)."""
    text = ""
    for chunk in chunks:
        yield chunk
        text += chunk
        tail = text[-3 * max_period :]
        if any(tail.endswith(tail[-p:] * 3) for p in range(min_period, min(max_period, len(tail) // 3) + 1)):
            return


def read_ahead(chunks: Iterator[str]) -> Iterator[str]:
    """The model's tokens pulled on a thread of their own, so that checking the answer between tokens never
    stalls generation (a grounding check took the rate to a fifth of raw llama.cpp's on the default model's
    shape). When the reader stops early, generation stops after the token under way and the model is freed."""
    pending: queue.Queue[object] = queue.Queue(maxsize=_READ_AHEAD_TOKENS)
    stop = threading.Event()

    def put(item: object) -> None:
        while not stop.is_set():
            try:
                pending.put(item, timeout=0.05)
                return
            except queue.Full:
                continue

    def produce() -> None:
        try:
            for chunk in chunks:
                put(chunk)
                if stop.is_set():
                    break
        except BaseException as exc:  # noqa: BLE001 - raised again on the reader's side
            put(exc)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
            put(_DONE)

    worker = threading.Thread(target=produce, name="rag-generate", daemon=True)
    worker.start()
    try:
        while (item := pending.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        worker.join()


def stream_timings(started: float, first_at: float, last_at: float, generated: int) -> dict[str, float]:
    """Time to first token and the whole answer from `started`, and the generation rate between first and last."""
    end = time.perf_counter()
    return {
        "ttft_ms": round(((first_at or end) - started) * 1000, 1),
        "total_ms": round((end - started) * 1000, 1),
        "generated_tokens": generated,
        "tokens_per_s": round((generated - 1) / (last_at - first_at), 1)
        if generated > 1 and last_at > first_at else 0.0,
    }


def relevance_gate(passages: Sequence[Passage], threshold: float | None) -> dict[str, float | bool | None]:
    """Whether the best passage is too far from the question (dense cosine) for the documents to answer it."""
    best = max((p.score for p in passages), default=None)
    return {"top_score": best, "threshold": threshold,
            "gated": best is None or (threshold is not None and best < threshold)}
