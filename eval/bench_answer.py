"""Answers: time to first token and tokens/s of `rag ask` against raw llama-cpp-python given the same final prompt
(the limit), the overhead of retrieval, prompt building and citation handling, follow-up turns that reuse the KV
cache, a translation-like call in between with and without the state cache, and memory over many questions."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench_util import EVAL_DIR, copy_seeds, percentile, rss_mb, settings_for

from rag import Pipeline
from rag.answer.generate import guard_repetition
from rag.answer.grounding import filter_citation_stream
from rag.conversation import Turn
from rag.models.llm import LlamaCppLLM, Message
from rag.models.resolve import packaged_llm_path

# A translation prompt of the kind the query-translation step sends (another prefix than any answer's).
_INTERLUDE = [{"role": "user", "content": "Translate into English, reply with the translation only: "
                                          "Wann hat Alibaba Qwen-7B veröffentlicht?"}]


class Recorder:
    """The pipeline's real LLM, noting each prompt it is sent and when (so raw llama.cpp gets the very same)."""

    def __init__(self, llm: LlamaCppLLM) -> None:
        self.llm, self.name, self.notice, self.n_ctx = llm, llm.name, llm.notice, llm.n_ctx
        self.calls: list[tuple[float, list[Message]]] = []

    def count_tokens(self, text: str) -> int:
        return self.llm.count_tokens(text)

    def stream_chat(self, messages: list[Message], max_tokens: int, temperature: float) -> Iterator[str]:
        self.calls.append((time.perf_counter(), messages))
        return self.llm.stream_chat(messages, max_tokens, temperature)

    def prefill(self, messages: list[Message]) -> int:
        return self.llm.prefill(messages)


class StandIn:
    """For the 500-question memory run only: the real pipeline around a model that answers at once."""

    name, notice, n_ctx = "stand-in", "", 4096

    def count_tokens(self, text: str) -> int:
        return len(text) // 4 + 1

    def stream_chat(self, messages: list[Message], max_tokens: int, temperature: float) -> Iterator[str]:
        yield from ["The", " documents", " say", " so", " [1]", "."]


def cold(llm: Any) -> None:
    """Forget every cached prompt prefix, so the next call evaluates its whole prompt."""
    if isinstance(llm, LlamaCppLLM):
        with llm.lock:  # a finished answer may still be saving its state in the background
            cold(llm._llama)
        return
    llm.reset()
    if llm.cache is not None:
        llm.cache.cache_state.clear()


def raw_chat(raw: Any, messages: list[Message], max_tokens: int) -> dict[str, float]:
    """llama-cpp-python alone, cold, with rag's sampling parameters: the limit."""
    cold(raw)
    started = time.perf_counter()
    first = last = 0.0
    tokens = 0
    for chunk in raw.create_chat_completion(messages=messages, max_tokens=max_tokens, temperature=0.0, top_k=40,
                                            top_p=0.95, repeat_penalty=1.1, seed=0, stream=True):
        if chunk["choices"][0]["delta"].get("content"):
            last = time.perf_counter()
            first = first or last
            tokens += 1
    return {"ttft_ms": (first - started) * 1000, "tokens": tokens,
            "tokens_per_s": (tokens - 1) / (last - first) if tokens > 1 and last > first else 0.0}


def rag_ask(pipeline: Pipeline, recorder: Recorder, question: str, history: list[Turn],
            conversation: bool = False) -> dict[str, Any]:
    """`conversation`: as in a chat, the next turn's prefix is then read in the background; we wait for it (the
    user reading the answer) and report how long it took, so the work moved is seen, not hidden."""
    calls = len(recorder.calls)
    started = time.perf_counter()
    stream = pipeline.ask(question, history=history, conversation=conversation)
    first = last = 0.0
    for _ in stream:
        last = time.perf_counter()
        first = first or last
    done = time.perf_counter()
    answer = stream.result
    pipeline.settle()
    prefill_ms = (time.perf_counter() - done) * 1000
    called_at, messages = recorder.calls[-1]
    n = int(answer.timings.get("generated_tokens", 0))
    return {
        "question": question, "answer": answer.answer, "messages": messages, "llm_calls": len(recorder.calls) - calls,
        "ttft_ms": (first - started) * 1000, "tokens": n,
        "tokens_per_s": (n - 1) / (last - first) if n > 1 and last > first else 0.0,
        "before_llm_ms": (called_at - started) * 1000, "retrieval_ms": answer.timings.get("retrieval_ms", 0.0),
        "llm_ttft_ms": (first - called_at) * 1000, "after_last_token_ms": (done - last) * 1000,
        "rewrite_ms": answer.timings.get("rewrite_ms", 0.0), "prefill_after_ms": prefill_ms,
    }


def stream_overhead_us(pieces: list[str], passages: int) -> float:
    """Per-token cost of the repetition guard and the citation filter, replayed on a real answer's tokens."""
    started = time.perf_counter()
    for _ in range(20):
        for _piece in filter_citation_stream(guard_repetition(iter(pieces)), passages, []):
            pass
    return (time.perf_counter() - started) / 20 / max(1, len(pieces)) * 1e6


def interlude(llm: LlamaCppLLM, before: list[Message], after: list[Message], cache: bool, max_tokens: int) -> float:
    """TTFT of the follow-up's answer call after an unrelated call (a translation) evicted the llama.cpp prefix."""
    from llama_cpp import LlamaRAMCache

    with llm.lock:
        saved = llm._llama.cache
        llm._llama.set_cache(LlamaRAMCache(capacity_bytes=256 << 20) if cache else None)
    try:
        cold(llm)
        for _ in llm.stream_chat(before, max_tokens, 0.0):
            pass
        for _ in llm.stream_chat(_INTERLUDE, 24, 0.0):
            pass
        started = time.perf_counter()
        for _ in llm.stream_chat(after, 1, 0.0):
            break
        return (time.perf_counter() - started) * 1000
    finally:
        with llm.lock:
            llm._llama.set_cache(saved)


def median_run(pairs: list[tuple[dict[str, Any], dict[str, float]]]) -> dict[str, Any]:
    """One question's (rag, raw) runs reduced to their medians, key by key."""
    mine = dict(pairs[0][0])
    for key in ("ttft_ms", "tokens_per_s", "before_llm_ms", "retrieval_ms", "llm_ttft_ms", "after_last_token_ms"):
        mine[key] = statistics.median(m[key] for m, _ in pairs)
    mine["raw"] = {key: statistics.median(r[key] for _, r in pairs) for key in pairs[0][1]}
    mine["repeats"] = len(pairs)
    return mine


def run(work: Path, questions: list[str], followups: list[str], max_tokens: int, memory_questions: int,
        context_tokens: int = 1500, repeats: int = 1) -> dict[str, Any]:
    from llama_cpp import Llama

    corpus, index = copy_seeds(work / "answer-corpus"), work / "answer-index"
    settings = settings_for(corpus, index, max_tokens=max_tokens, context_tokens=context_tokens)
    with Pipeline(settings) as pipeline:
        pipeline.ingest()
        llm = pipeline.llm
    assert isinstance(llm, LlamaCppLLM)
    raw = Llama(model_path=str(packaged_llm_path()), n_ctx=settings.n_ctx, n_threads=llm._llama.n_threads,
                n_batch=512, seed=0, verbose=False)
    recorder = Recorder(llm)
    rss_start = rss_mb()
    firsts, follows = [], []
    with Pipeline(settings, llm=recorder) as pipeline:
        # First calls allocate (torch, llama.cpp compute buffers, the mmapped GGUF): a server has done them before
        # its first question, and raw llama.cpp gets the same warm-up.
        for question in questions:
            pipeline.search(question)
        for _ in llm.stream_chat([{"role": "user", "content": "Hello"}], 4, 0.0):
            pass
        raw.create_chat_completion(messages=[{"role": "user", "content": "Hello"}], max_tokens=4)
        for question in questions:
            # rag then raw, then raw then rag: a load change on a shared machine hits both sides alike
            pairs = []
            for turn in range(repeats):
                if turn % 2:
                    theirs = raw_chat(raw, pairs[0][0]["messages"], max_tokens)
                    cold(llm)
                    mine = rag_ask(pipeline, recorder, question, [])
                else:
                    cold(llm)
                    mine = rag_ask(pipeline, recorder, question, [])
                    theirs = raw_chat(raw, mine["messages"], max_tokens)
                pairs.append((mine, theirs))
            firsts.append(median_run(pairs))
        cold(llm)
        history: list[Turn] = []
        opener = rag_ask(pipeline, recorder, questions[0], history, conversation=True)
        history.append(Turn(question=questions[0], answer=opener["answer"]))
        for question in followups:
            mine = rag_ask(pipeline, recorder, question, history, conversation=True)
            mine["raw"] = raw_chat(raw, mine["messages"], max_tokens)
            follows.append(mine)
            history.append(Turn(question=question, answer=mine["answer"]))
        pieces = list(llm.stream_chat(firsts[0]["messages"], max_tokens, 0.0))
        per_token_us = stream_overhead_us(pieces, 5)
        with_cache = interlude(llm, opener["messages"], follows[0]["messages"], True, max_tokens)
        without_cache = interlude(llm, opener["messages"], follows[0]["messages"], False, max_tokens)
        plain_follow = follows[0]["raw"]["ttft_ms"]
    rss_after_real = rss_mb()
    memory = memory_run(settings, memory_questions)
    return summarise(firsts, follows, per_token_us, with_cache, without_cache, plain_follow, memory,
                     rss_start, rss_after_real)


def memory_run(settings: Any, count: int) -> dict[str, Any]:
    """RSS over `count` consecutive questions through the whole pipeline (retrieval, prompt, citations, history)
    with a stand-in model, so 500 fit in seconds; the real model's own memory is fixed at load."""
    questions = [json.loads(line)["question"] for line in (EVAL_DIR / "questions.jsonl").read_text().splitlines()]
    samples: list[tuple[int, float]] = []
    history: list[Turn] = []
    with Pipeline(settings, llm=StandIn()) as pipeline:
        for i in range(count):
            question = questions[i % len(questions)]
            answer = pipeline.ask(question, history=history[-3:]).result
            history.append(Turn(question=question, answer=answer.answer))
            if i % max(1, count // 10) == 0 or i == count - 1:
                samples.append((i + 1, round(rss_mb(), 1)))
    tail = [mb for _, mb in samples[len(samples) // 2 :]]
    return {"questions": count, "rss_samples": samples, "rss_growth_mb": round(samples[-1][1] - samples[0][1], 1),
            "rss_growth_second_half_mb": round(max(tail) - min(tail), 1)}


def summarise(firsts: list[dict[str, Any]], follows: list[dict[str, Any]], per_token_us: float, with_cache: float,
              without_cache: float, plain_follow: float, memory: dict[str, Any], rss_start: float,
              rss_after: float) -> dict[str, Any]:
    def mean(rows: list[dict[str, Any]], key: str, raw: bool = False) -> float:
        values = [(r["raw"] if raw else r)[key] for r in rows]
        return round(sum(values) / len(values), 1) if values else 0.0

    def clean(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: (round(v, 1) if isinstance(v, float) else v) for k, v in r.items() if k != "messages"}
                for r in rows]

    return {
        "first_turn": {
            "ttft_ms": mean(firsts, "ttft_ms"), "raw_ttft_ms": mean(firsts, "ttft_ms", True),
            "tokens_per_s": mean(firsts, "tokens_per_s"), "raw_tokens_per_s": mean(firsts, "tokens_per_s", True),
            "ratio_ttft": round(mean(firsts, "ttft_ms") / mean(firsts, "ttft_ms", True), 3),
            "ratio_tokens_per_s": round(mean(firsts, "tokens_per_s") / mean(firsts, "tokens_per_s", True), 3),
            "overhead_ms": {
                "retrieval": mean(firsts, "retrieval_ms"),
                "prompt_building": round(mean(firsts, "before_llm_ms") - mean(firsts, "retrieval_ms"), 1),
                "llm_call_vs_raw_ttft": round(mean(firsts, "llm_ttft_ms") - mean(firsts, "ttft_ms", True), 1),
                "citations_per_token_us": round(per_token_us, 1),
                "citations_after_last_token": mean(firsts, "after_last_token_ms"),
            },
            "p95_ttft_ms": round(percentile([r["ttft_ms"] for r in firsts], 95), 1),
            "runs": clean(firsts),
        },
        "follow_up": {
            "ttft_ms": mean(follows, "ttft_ms"), "raw_ttft_ms": mean(follows, "ttft_ms", True),
            "ratio_ttft": round(mean(follows, "ttft_ms") / mean(follows, "ttft_ms", True), 3) if follows else 0.0,
            "prefill_while_reading_ms": mean(follows, "prefill_after_ms"),
            "runs": clean(follows),
        },
        "after_translation_call": {"answer_call_ttft_ms_state_cache": round(with_cache, 1),
                                   "answer_call_ttft_ms_no_cache": round(without_cache, 1),
                                   "raw_cold_ttft_ms": round(plain_follow, 1)},
        "memory": {**memory, "rss_real_questions_start_mb": round(rss_start, 1),
                   "rss_real_questions_end_mb": round(rss_after, 1)},
    }
