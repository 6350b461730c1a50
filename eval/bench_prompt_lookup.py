"""Prompt-lookup decoding: does llama-cpp-python's LlamaPromptLookupDecoding speed up RAG-like answers of the packaged
SmolLM2-135M? No draft against num_pred_tokens 2/4/10, same Llama settings, cold prompt each call, configs interleaved
per prompt (order reversed on the second pass); ratios are paired against the baseline of the same prompt and pass."""

from __future__ import annotations

import gc
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from llama_cpp import Llama
from llama_cpp.llama_speculative import LlamaPromptLookupDecoding

from rag.models.resolve import packaged_llm_path

SEEDS = Path(__file__).resolve().parents[1] / "seeds"
CONFIGS: list[int] = [0, 2, 4, 10]  # num_pred_tokens; 0 = no draft model
PASSES, MAX_TOKENS = int(sys.argv[1]) if len(sys.argv) > 1 else 2, 120  # passes: first argument
SYSTEM = ("You answer questions using only the numbered evidence sentences below. Never add outside knowledge. "
          "End every sentence that uses evidence with its number in square brackets, for example [1] or [2][3]. "
          "Be brief: one to three sentences.")
# (seed file prefix, sentence indices, question whose answer copies a phrase of the evidence)
PROMPTS: list[tuple[str, list[int], str]] = [
    ("000", [0, 1, 10, 11, 13], "When did Alibaba release its first open-source model, and which model was it?"),
    ("000", [2, 3, 4, 5, 6, 7], "According to Joe Tsai, where will capital go?"),
    ("000", [9, 10, 12, 13, 14], "How many Qwen-based derivative models have been developed on Hugging Face?"),
    ("000", [5, 6, 7, 8], "What does the democratization of AI mean for smaller companies?"),
    ("002", [0, 1, 2, 3, 4, 5], "Which languages does Alibaba's LLM support for content generation?"),
    ("002", [0, 2, 3, 5], "What does open-sourcing Qwen-7B allow global developers to do?"),
    ("004", [0, 1, 2, 3, 9], "What is Qwen VLo and what can it do with images?"),
    ("004", [15, 16, 17, 18], "What does open source mean in the context of AI?"),
    ("004", [11, 12, 14, 27, 28], "Which companies are investing heavily in multimodal capabilities?"),
    ("004", [30, 32, 35, 36], "What can we expect AI tools to become?"),
]


def sentences(prefix: str) -> list[str]:
    text = next(SEEDS.glob(f"{prefix}_*.txt")).read_text(encoding="utf-8")
    parts = (p.strip(" -*#_") for p in re.split(r"(?<=[.!?])\s+|\n+", text))
    return [p for p in parts if len(p) > 40 and not p.startswith("http") and "](" not in p]


def build_messages() -> list[list[dict[str, str]]]:
    out = []
    for prefix, picks, question in PROMPTS:
        pool = sentences(prefix)
        evidence = "\n".join(f"[{n}] {pool[i]}" for n, i in enumerate(picks, 1))
        out.append([{"role": "system", "content": SYSTEM},
                    {"role": "user", "content": f"Evidence:\n{evidence}\n\nQuestion: {question}"}])
    return out


def rss_mb() -> float:
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmRSS"))
    return int(line.split()[1]) / 1024


def load(num_pred: int) -> Llama:
    draft = LlamaPromptLookupDecoding(num_pred_tokens=num_pred) if num_pred else None
    return Llama(model_path=str(packaged_llm_path()), n_ctx=4096, n_threads=2, verbose=False, draft_model=draft)


def run(llama: Llama, messages: list[dict[str, str]]) -> dict[str, Any]:
    llama.reset()  # cold: evaluate the whole prompt each call, for every config alike
    started = time.perf_counter()
    first = last = 0.0
    text = ""
    for chunk in llama.create_chat_completion(messages=messages, max_tokens=MAX_TOKENS, temperature=0.0,
                                              stream=True):  # type: ignore[arg-type]
        delta = chunk["choices"][0]["delta"].get("content") or ""  # type: ignore[index, union-attr]
        if delta:
            last = time.perf_counter()
            first = first or last
            text += delta
    tokens = len(llama.tokenize(text.encode(), add_bos=False, special=False))
    return {"ttft": first - started, "tokens": tokens, "gen": last - first,
            "tps": (tokens - 1) / (last - first) if last > first else 0.0, "text": text}


def main() -> None:
    prompts = build_messages()
    llamas: dict[int, Llama] = {}
    memory: dict[int, float] = {}
    for num_pred in CONFIGS:
        gc.collect()
        before = rss_mb()
        llamas[num_pred] = load(num_pred)
        run(llamas[num_pred], prompts[0])  # warm-up; also lets lazily allocated buffers count in the RSS delta
        memory[num_pred] = rss_mb() - before
    results: dict[tuple[int, int, int], dict[str, Any]] = {}  # (pass, prompt, config)
    for rep in range(PASSES):
        order = CONFIGS if rep % 2 == 0 else CONFIGS[::-1]
        for p, messages in enumerate(prompts):
            for num_pred in order:
                results[rep, p, num_pred] = run(llamas[num_pred], messages)
    base_texts = {p: results[0, p, 0]["text"] for p in range(len(prompts))}
    stable = all(results[r, p, 0]["text"] == base_texts[p] for r in range(PASSES) for p in range(len(prompts)))
    print(f"model {packaged_llm_path().name}, {len(prompts)} prompts x {PASSES} passes, max_tokens {MAX_TOKENS}")
    print(f"baseline output identical across passes: {stable}; mean output tokens "
          f"{statistics.mean(results[0, p, 0]['tokens'] for p in range(len(prompts))):.0f}")
    header = (f"{'config':<14}{'tok/s med':>10}{'ratio med':>10}{'ratio min':>10}{'ratio max':>10}"
              f"{'same-text ratio':>16}{'pooled':>8}{'TTFT med s':>11}{'TTFT ratio':>11}{'same text':>10}{'RSS MB':>8}")
    print(header)
    for num_pred in CONFIGS:
        runs = [(r, p) for r in range(PASSES) for p in range(len(prompts))]
        tps = [results[r, p, num_pred]["tps"] for r, p in runs]
        ratios = [results[r, p, num_pred]["tps"] / results[r, p, 0]["tps"] for r, p in runs]
        ttft = [results[r, p, num_pred]["ttft"] for r, p in runs]
        ttft_ratio = [results[r, p, num_pred]["ttft"] / results[r, p, 0]["ttft"] for r, p in runs]
        alike = [q for q, (r, p) in zip(ratios, runs, strict=True) if results[r, p, num_pred]["text"] == base_texts[p]]
        pooled = (sum(results[r, p, num_pred]["tokens"] - 1 for r, p in runs)
                  / sum(results[r, p, num_pred]["gen"] for r, p in runs))
        same = sum(results[r, p, num_pred]["text"] == base_texts[p] for r, p in runs)
        name = f"lookup n={num_pred}" if num_pred else "no draft"
        print(f"{name:<14}{statistics.median(tps):>10.1f}{statistics.median(ratios):>10.2f}{min(ratios):>10.2f}"
              f"{max(ratios):>10.2f}{statistics.median(alike):>16.2f}{pooled:>8.1f}{statistics.median(ttft):>11.3f}{statistics.median(ttft_ratio):>11.2f}"
              f"{f'{same}/{len(runs)}':>10}{memory[num_pred]:>8.0f}")
    for p in range(len(prompts)):
        diffs = [n for n in CONFIGS[1:] if any(results[r, p, n]["text"] != base_texts[p] for r in range(PASSES))]
        if diffs:
            print(f"prompt {p}: differs for n={diffs}\n  base: {base_texts[p]!r}")
            for n in diffs:
                print(f"  n={n}: {results[0, p, n]['text']!r}")


if __name__ == "__main__":
    main()
