"""The default model's shape: time to first token and generation tokens/s of `rag ask` with a random-weight GGUF of
Qwen2.5-1.5B-Instruct Q4_K_M's exact shape (eval/qwen_shape.py) as its LLM, against raw llama.cpp reading today's
1,500-token context (the old whole-chunk prompt with 1,500 tokens of seed passages). Both sides start from an empty
KV cache: raw llama.cpp is reset before every run, and each `rag ask` is a fresh process."""

from __future__ import annotations

import gc
import os
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

from bench_default_shape import messages_for, raw_ttft
from bench_util import copy_seeds, run_rag
from qwen_shape import qwen25_1_5b_shape

RAW_PASSAGE_TOKENS = 1500
MAX_TOKENS = 32
TARGET = "<= 0.33x"
TIMINGS = ("ttft_ms", "tokens_per_s", "prompt_tokens", "evidence_budget_tokens", "prompt_tokens_per_s")


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if isinstance(v, int | float)]
    return round(statistics.median(present), 1) if present else None


def raw_side(gguf: Path, repeats: int) -> dict[str, Any]:
    """Medians of `repeats` raw runs; the model is freed before returning, so rag's process has the memory."""
    from llama_cpp import Llama

    llama = Llama(model_path=str(gguf), n_ctx=4096, n_threads=os.cpu_count(), n_batch=512, verbose=False)
    raw_ttft(llama, [{"role": "user", "content": "Hello"}], max_tokens=4)  # page the weights in (rag: its rate probe)
    messages, passage_tokens = messages_for(llama, RAW_PASSAGE_TOKENS)
    runs = [raw_ttft(llama, messages, MAX_TOKENS) for _ in range(repeats)]
    llama.close()
    del llama
    gc.collect()
    ttft = median([r[0] * 1000 for r in runs])
    return {"raw_ttft_ms": ttft, "raw_tokens_per_s": median([r[1] for r in runs]), "raw_prompt_tokens": runs[0][2],
            "raw_passage_tokens": passage_tokens,
            "raw_prompt_tokens_per_s": round(runs[0][2] / ttft * 1000, 1) if ttft else None, "raw_repeats": repeats}


def rag_side(work: Path, gguf: Path, questions: list[str]) -> dict[str, Any]:
    """The seeds ingested with the default (offline: packaged multilingual-e5-small) embedder, then one `rag ask`
    process per question."""
    corpus, index = copy_seeds(work / "shape-corpus"), work / "shape-index"
    env = {"RAG_LLM_MODEL": str(gguf), "RAG_INDEX_DIR": str(index), "RAG_CORPUS_DIR": str(corpus),
           "RAG_MAX_TOKENS": str(MAX_TOKENS), "HF_HUB_OFFLINE": "1"}
    run_rag("ingest", str(corpus), env=env)
    runs = []
    for question in questions:
        seconds, answer = run_rag("ask", question, env=env)
        timings = answer.get("timings") or {}
        runs.append({"question": question, "answer_mode": answer.get("answer_mode"), "process_s": round(seconds, 1),
                     **{key: timings.get(key) for key in TIMINGS}})
    # A question refused before the model (relevance gate, coverage) times no model: left out of the medians.
    read = [r for r in runs if r["prompt_tokens"] != 0]
    figures = {f"rag_{key}": median([r[key] for r in read]) for key in TIMINGS}
    modes = Counter(str(r["answer_mode"]) for r in runs)
    return {**figures, "rag_answer_modes": dict(modes), "rag_model_calls": len(read), "rag_runs": runs}


def run(work: Path, questions: list[str], repeats: int) -> dict[str, Any]:
    gguf = qwen25_1_5b_shape()
    raw = raw_side(gguf, repeats)
    mine = rag_side(work, gguf, questions)
    ratio = mine["rag_ttft_ms"] / raw["raw_ttft_ms"] if mine["rag_ttft_ms"] and raw["raw_ttft_ms"] else None
    speed = mine["rag_tokens_per_s"] / raw["raw_tokens_per_s"] \
        if mine["rag_tokens_per_s"] and raw["raw_tokens_per_s"] else None
    return {"model": gguf.name, "max_tokens": MAX_TOKENS, **raw, **mine,
            "ratio": round(ratio, 3) if ratio else None, "ratio_tokens_per_s": round(speed, 3) if speed else None,
            "target": TARGET}
