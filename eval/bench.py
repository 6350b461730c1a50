"""Speed and memory of every stage against its physical limit and the alternative a user would build instead.

    .venv/bin/rag bench [--quick] [--out eval/runs/bench]      (or: .venv/bin/python eval/bench.py ...)

Stages (each ratio is measured in the same run, so a busy machine shifts both sides alike):
  ingest    `rag ingest` of SciFact abstracts (whole process) vs SentenceTransformer.encode of the same chunk texts,
            same batch size; re-ingest of the unchanged corpus
  answer    `rag ask` TTFT and tokens/s vs raw llama-cpp-python on the same final prompt; overheads; follow-ups
            reusing the KV cache; a translation call in between with and without the state cache; RSS over many
            questions
  shape     the default model's shape (a random-weight GGUF of Qwen2.5-1.5B-Instruct Q4_K_M, eval/qwen_shape.py):
            `rag ask` TTFT and tokens/s, each question a fresh process, vs raw llama.cpp reading today's 1,500-token
            context (the old prompt with 1,500 tokens of passages) from an empty KV cache
  scale     hybrid/dense p50/p95 (query embedding excluded), open time, RSS and disk at growing sizes, exact and
            after Edge's optimize()
  baseline  llama-index's default pipeline vs rag, end to end on the same corpus and models
Outputs: a table here, OUT/bench.json, OUT/bench.md (the table in Markdown) and OUT/bench.png. Packaged models only
(shape: a random-weight GGUF that eval/qwen_shape.py builds once and caches under .cache/test-models).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the bench_* helpers next to this file

from bench_util import DEFAULT_DATA, ROOT, copy_seeds, machine, scifact_claims, write_scifact  # noqa: E402

SECTIONS = ("ingest", "answer", "shape", "scale", "baseline")
FULL = {"documents": 2000, "raw_sample": 600, "sizes": [1000, 10_000, 100_000], "optimize": [10_000, 100_000],
        "queries": 200, "questions": 2, "repeats": 2, "followups": 2, "max_tokens": 96, "context_tokens": 1500,
        "memory_questions": 500, "baseline_documents": 200, "baseline_questions": 4, "shape_questions": 3,
        "shape_repeats": 2}
QUICK = {"documents": 120, "raw_sample": 0, "sizes": [1000, 5000], "optimize": [], "queries": 40, "questions": 1,
         "repeats": 1, "followups": 1, "max_tokens": 32, "context_tokens": 500, "memory_questions": 100,
         "baseline_documents": 0, "baseline_questions": 1, "shape_questions": 1, "shape_repeats": 1}
# Seed questions a user might ask; the follow-ups are whole questions and one that needs the history.
QUESTIONS = ["Which model was Alibaba's first open-source model?", "In which city was the World Government Summit "
             "2025 held?", "When did Alibaba launch ModelScope, its open-source community?"]
FOLLOWUPS = ["In which month and year did Alibaba release Qwen-7B?", "And who did Joe Tsai talk to there?"]
# Each reaches the model ("What is ModelScope?" is refused before it: best cosine 0.833 < e5's gate 0.843).
SHAPE_QUESTIONS = ["When did Alibaba release Qwen-7B?", "When did Alibaba launch ModelScope?",
                   "What did Joe Tsai say about open source at the World Government Summit?"]


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="rag bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes: under 2 minutes")
    parser.add_argument("--out", type=Path, default=ROOT / "eval" / "runs" / "bench", help="output folder")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="SciFact in BEIR layout")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}")
    parser.add_argument("--documents", type=int, help="SciFact abstracts to ingest")
    parser.add_argument("--sizes", help="comma-separated index sizes in chunks for the scale stage")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse(argv)
    plan = dict(QUICK if args.quick else FULL)
    if args.documents:
        plan["documents"] = args.documents
    if args.sizes:
        plan["sizes"] = [int(s) for s in args.sizes.split(",")]
        plan["optimize"] = [s for s in plan["optimize"] if s in plan["sizes"]]
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        sys.exit(f"unknown section(s): {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
    if {"ingest", "scale", "baseline"} & set(sections) and not (args.data / "corpus.jsonl").exists():
        sys.exit(f"SciFact not found at {args.data}: pass --data, or --sections answer,shape")
    started = time.perf_counter()
    results: dict[str, Any] = {"machine": machine(), "mode": "quick" if args.quick else "full", "plan": plan}
    with tempfile.TemporaryDirectory(prefix="rag-bench-") as tmp:
        work = Path(tmp)
        chunks = None
        if "ingest" in sections or "scale" in sections:
            import bench_ingest

            step("ingest", started)
            results["ingest"], *chunks = bench_ingest.run(work, args.data, plan["documents"], sample=plan["raw_sample"])
            if "ingest" not in sections:
                results.pop("ingest")
        if "scale" in sections and chunks:
            import bench_scale

            step("scale", started)
            claims = scifact_claims(args.data, plan["queries"] + 1)
            texts, vectors, metadata = chunks
            rows = bench_scale.run(work, plan["sizes"], texts, vectors, metadata, claims, query_vectors(claims),
                                   set(plan["optimize"]))
            results["scale"] = {"rows": rows, "rss_line": bench_scale.slope_mb_per_1k(rows),
                                "made_from": f"{len(texts)} real SciFact chunks; copies keep the text and add noise "
                                             "to the vector (cosine ~0.9)"}
        if "answer" in sections:
            import bench_answer

            step("answer", started)
            results["answer"] = bench_answer.run(work, QUESTIONS[: plan["questions"]], FOLLOWUPS[: plan["followups"]],
                                                 plan["max_tokens"], plan["memory_questions"],
                                                 plan["context_tokens"], plan["repeats"])
        if "shape" in sections:
            import bench_shape

            step("shape", started)
            results["shape"] = bench_shape.run(work, SHAPE_QUESTIONS[: plan["shape_questions"]], plan["shape_repeats"])
        if "baseline" in sections:
            import bench_baseline

            step("baseline", started)
            if plan["baseline_documents"]:
                corpus = work / "baseline-corpus"
                write_scifact(args.data, corpus, plan["baseline_documents"])
                questions = scifact_claims(args.data, plan["baseline_questions"])
            else:
                corpus = copy_seeds(work / "baseline-corpus")
                questions = QUESTIONS[: plan["baseline_questions"]]
            results["baseline"] = bench_baseline.run(work, corpus, questions, plan["max_tokens"])
    results["seconds"] = round(time.perf_counter() - started, 1)
    import bench_report

    bench_report.write(results, args.out)
    bench_report.print_table(results)
    print(f"wrote {args.out / 'bench.json'}, bench.md and bench.png")
    return results


def query_vectors(texts: list[str]) -> Any:
    from rag.models.embeddings import _load
    from rag.models.resolve import packaged_embedding_path

    return _load(str(packaged_embedding_path())).encode(texts, batch_size=32, normalize_embeddings=True)


def step(name: str, started: float) -> None:
    print(f"[{time.perf_counter() - started:6.0f} s] {name}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
