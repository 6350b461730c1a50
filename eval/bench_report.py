"""The benchmark's outputs: the side-by-side table (terminal and Markdown), the JSON file and the PNG plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

Row = tuple[str, str, str, str, str]  # measure, rag, limit or alternative, ratio, target


def rows(results: dict[str, Any]) -> list[Row]:
    out: list[Row] = []
    for key, section_rows in (("ingest", ingest_rows), ("answer", answer_rows), ("shape", shape_rows),
                              ("scale", scale_rows), ("baseline", baseline_rows)):
        if results.get(key):
            out += section_rows(results[key])
    return out


def ingest_rows(ingest: dict[str, Any]) -> list[Row]:
    return [
        ("ingest chunks/s (model loaded)", f"{ingest['rag_chunks_per_s']}", f"{ingest['raw_chunks_per_s']} raw encode",
         f"{ingest['ratio_ingest_vs_raw']:.2f}x", ">= 0.9x"),
        ("ingest chunks/s (whole process)", f"{ingest['rag_process_chunks_per_s']}",
         f"model load {ingest.get('rag_model_load_s', 0):.1f} s, {ingest.get('embedding_precision', 'float32')}",
         f"{ingest['ratio_process_vs_raw']:.2f}x", ""),
        ("ingest MB/s", f"{ingest['rag_mb_per_s']}", f"{ingest['raw_mb_per_s']} raw encode", "", ""),
        (f"re-ingest {ingest['documents']} unchanged docs (process)", f"{ingest['reingest_process_s']} s",
         f"{ingest['rag_process_s']} s first ingest", f"{ingest['ratio_reingest_vs_first']:.3f}x", "<= 3 s"),
    ]


def answer_rows(answer: dict[str, Any]) -> list[Row]:
    first, follow, inter = answer["first_turn"], answer["follow_up"], answer["after_translation_call"]
    over = first["overhead_ms"]
    return [
        ("time to first token, first turn", f"{first['ttft_ms']:.0f} ms",
         f"{first['raw_ttft_ms']:.0f} ms raw llama.cpp", f"{first['ratio_ttft']:.2f}x", "<= 1.2x"),
        ("generation tokens/s", f"{first['tokens_per_s']:.1f}", f"{first['raw_tokens_per_s']:.1f} raw llama.cpp",
         f"{first['ratio_tokens_per_s']:.2f}x", ">= 0.95x"),
        ("time to first token, follow-up turns", f"{follow['ttft_ms']:.0f} ms",
         f"{follow['raw_ttft_ms']:.0f} ms raw (cold)", f"{follow['ratio_ttft']:.2f}x", "< 1x"),
        ("  history read in while the user reads", f"{follow.get('prefill_while_reading_ms', 0):.0f} ms", "", "", ""),
        ("  after a translation call: answer TTFT", f"{inter['answer_call_ttft_ms_state_cache']:.0f} ms cached",
         f"{inter['answer_call_ttft_ms_no_cache']:.0f} ms without state cache", "", ""),
        ("overhead: retrieval / prompt / citations", f"{over['retrieval']:.0f} / {over['prompt_building']:.0f} / "
         f"{over['citations_after_last_token']:.0f} ms", f"+{over['citations_per_token_us']:.0f} us per token", "", ""),
        (f"RSS over {answer['memory']['questions']} questions", f"+{answer['memory']['rss_growth_mb']} MB",
         f"second half +{answer['memory']['rss_growth_second_half_mb']} MB", "", "bounded"),
    ]


def shape_rows(shape: dict[str, Any]) -> list[Row]:
    def num(value: float | None, spec: str = ",.0f", unit: str = "") -> str:
        return "-" if value is None else f"{value:{spec}}{unit}"

    modes = ", ".join(f"{n} {mode}" for mode, n in shape.get("rag_answer_modes", {}).items())
    runs = len(shape.get("rag_runs", []))
    if shape.get("rag_model_calls", runs) < runs:
        modes += f" ({shape['rag_model_calls']} of {runs} reached the model)"
    return [
        ("time to first token, default model's shape (Qwen2.5-1.5B Q4_K_M, random weights)",
         num(shape["rag_ttft_ms"], unit=" ms"), f"{num(shape['raw_ttft_ms'], unit=' ms')} raw llama.cpp, "
         "1,500-token context", num(shape["ratio"], ".2f", "x"), shape["target"]),
        ("generation tokens/s, default model's shape", num(shape["rag_tokens_per_s"], ".1f"),
         f"{num(shape['raw_tokens_per_s'], '.1f')} raw llama.cpp", num(shape["ratio_tokens_per_s"], ".2f", "x"), ""),
        ("  prompt tokens; evidence budget at measured prompt speed",
         f"{num(shape['rag_prompt_tokens'])} tok; {num(shape['rag_evidence_budget_tokens'])} at "
         f"{num(shape['rag_prompt_tokens_per_s'])} tok/s; {modes}",
         f"{num(shape['raw_prompt_tokens'])} tok at {num(shape.get('raw_prompt_tokens_per_s'))} tok/s", "", ""),
    ]


def scale_rows(scale: dict[str, Any]) -> list[Row]:
    out: list[Row] = []
    for row in scale.get("rows", []):
        best = row.get("optimized") or row["exact"]
        exact = row["exact"]
        label = "HNSW" if row.get("optimized") else "exact"
        out.append((f"hybrid p50/p95 at {row['chunks']:,} chunks",
                    f"{best['hybrid_p50_ms']}/{best['hybrid_p95_ms']} ms ({label})",
                    f"{exact['hybrid_p50_ms']}/{exact['hybrid_p95_ms']} ms exact", "",
                    "p95 <= 10 ms" if row["chunks"] >= 100_000 else ""))
        out.append((f"open index / RSS / disk at {row['chunks']:,}",
                    f"{best['open_s']} s / {best['rss_serving_mb']:.0f} MB / {best['disk_mb']:.0f} MB",
                    f"optimize() {row.get('optimize_s', '-')} s", "",
                    "open <= 1 s" if row["chunks"] >= 100_000 else ""))
    if scale.get("rss_line"):
        line = scale["rss_line"]
        out.append(("RSS vs chunks (serving, exact)",
                    f"{line['intercept_mb']} MB + {line['mb_per_1k_chunks']} MB/1k chunks", "", "", "straight line"))
    return out


def baseline_rows(base: dict[str, Any]) -> list[Row]:
    mine, theirs = base["rag"], base["llama_index"]
    return [
        (f"end to end, {base['corpus_files']} files + {mine['questions']} questions", f"{mine['end_to_end_s']} s",
         f"{theirs['end_to_end_s']} s llama-index default", f"{base['ratio_end_to_end']:.2f}x faster", "> 1x"),
        ("  ingest / ask / mean TTFT", f"{mine['ingest_s']} s / {mine['ask_s']} s / {mine['mean_ttft_ms']:.0f} ms",
         f"{theirs['ingest_s']} s / {theirs['ask_s']} s / {theirs['mean_ttft_ms']:.0f} ms", "", ""),
    ]


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    head = (f"{m['cpu']}, {m['cores']} cores, {m['memory_mb'] // 1024} GB; torch {m['torch']}, llama-cpp-python "
            f"{m['llama_cpp_python']}, qdrant-edge {m['qdrant_edge']}; "
            f"load average at start {m['load_average'][0]:.1f}")
    lines = [head, "", "| measure | rag | limit / alternative | ratio | target |", "|---|---|---|---|---|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows(results)]
    return "\n".join(lines) + "\n"


def print_table(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("measure", "rag", "limit / alternative", "ratio", "target", title="rag bench")
    for row in rows(results):
        table.add_row(*row)
    console = Console(width=160)
    console.print(table)
    m = results["machine"]
    console.print(f"machine: {m['cpu']}, {m['cores']} cores; {results['seconds']:.0f} s; mode {results['mode']}")


def plot(results: dict[str, Any], path: Path) -> bool:
    scale = results.get("scale") or {}
    table = scale.get("rows") or []
    if not table:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [r["chunks"] for r in table]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for key, style in (("exact", "o--"), ("optimized", "s-")):
        points = [(r["chunks"], r[key]) for r in table if r.get(key)]
        if points:
            xs = [x for x, _ in points]
            left.plot(xs, [p["hybrid_p95_ms"] for _, p in points], style, label=f"hybrid p95 ({key})")
            left.plot(xs, [p["dense_p95_ms"] for _, p in points], style, alpha=0.5, label=f"dense p95 ({key})")
            right.plot(xs, [p["rss_serving_mb"] for _, p in points], style, label=f"RSS serving ({key})")
            right.plot(xs, [p["disk_mb"] for _, p in points], style, alpha=0.5, label=f"disk ({key})")
    left.axhline(10, color="grey", linewidth=0.8, linestyle=":", label="target p95 10 ms")
    for axis, label in ((left, "query latency, ms (query embedding excluded)"), (right, "MB")):
        axis.set_xscale("log")
        axis.set_xlabel("chunks in the embedded index")
        axis.set_ylabel(label)
        axis.legend(fontsize=7)
        axis.set_xticks(sizes, [f"{s:,}" for s in sizes])
    m = results["machine"]
    fig.suptitle(f"rag retrieval at scale, Qdrant Edge embedded — {m['cpu']}, {m['cores']} cores", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write(results: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "bench.md").write_text(markdown(results), encoding="utf-8")
    plot(results, out / "bench.png")
