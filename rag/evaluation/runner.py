"""Run a question set through the Pipeline the chat uses and write records.jsonl, summary.json and report.md.

Questions go through `Pipeline.ask` exactly as a first chat turn does (same prompt, budget, citation filter),
so the numbers describe the product rather than a re-implementation of it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rag.answer.result import Answer
from rag.errors import RagError
from rag.evaluation import metrics, rated
from rag.evaluation.questions import Question
from rag.pipeline import Pipeline
from rag.search.retrieve import Passage

# (questions done, total, what is happening now); called before each question and once at the end.
ProgressFn = Callable[[int, int, str], None]

# Bars in the per-language plot: the headline metrics of each kind of run.
_PLOT_FULL = ["hit@k", "evidence_hit@k", "answer_correct", "refusal_correct", "citation_support"]
_PLOT_RETRIEVAL = ["hit@k", "mrr", "recall@k", "evidence_hit@k", "evidence_recall@k"]


@dataclass
class EvalRun:
    records: list[dict[str, Any]]
    summary: dict[str, Any]
    out_dir: Path | None = None
    warnings: list[str] = field(default_factory=list)


def run_eval(
    pipeline: Pipeline, questions: Sequence[Question], *, top_k: int | None = None,
    retrieval_only: bool = False, limit: int | None = None, out_dir: Path | None = None,
    progress: ProgressFn | None = None, source: str = "",
) -> EvalRun:
    """Ask (or, retrieval-only, search) every question, score it, and write the run to `out_dir` if given."""
    chosen = list(questions[:limit] if limit else questions)
    k = top_k or pipeline.settings.top_k
    report = progress or (lambda done, total, label: None)
    warnings = check_dataset(pipeline, chosen)
    started_at, started = datetime.now(UTC), time.perf_counter()
    # Load the models before the first question: the parts are built lazily, and load time in the first
    # question's latency would be an outlier that says nothing about answering.
    report(0, len(chosen), "loading models")
    _ = pipeline.embedder if retrieval_only else (pipeline.embedder, pipeline.llm)
    records: list[dict[str, Any]] = []
    models: dict[str, str] = {}
    for i, question in enumerate(chosen):
        report(i, len(chosen), question.id)
        if retrieval_only:
            t = time.perf_counter()
            passages = pipeline.search(question.question, k)
            timings: dict[str, float] = {"retrieval_ms": round((time.perf_counter() - t) * 1000, 1)}
            answer = None
            models = models or {"embedding": pipeline.embedder.name}
        else:
            answer = pipeline.ask(question.question, top_k=k).result
            passages, timings, models = answer.passages, dict(answer.timings), models or dict(answer.models)
        records.append(build_record(question, passages, answer, timings, k))
    report(len(chosen), len(chosen), "done")
    summary = {
        "run": {
            "questions_file": source, "questions": len(chosen), "top_k": k, "retrieval_only": retrieval_only,
            "limit": limit, "models": models, "notices": pipeline.notices(), "warnings": warnings,
            "started_at": started_at.isoformat(timespec="seconds"),
            "duration_s": round(time.perf_counter() - started, 1),
            "settings": {name: str(getattr(pipeline.settings, name)) for name in (
                "retrieval_mode", "query_translation", "chunk_size", "chunk_overlap", "context_tokens", "max_tokens",
                "temperature", "n_ctx")},
        },
        "overall": metrics.summarise(records),
        "by_lang": metrics.summarise_by_lang(records),
        **({"rated": found} if (found := rated.summarise(records)) else {}),
    }
    run = EvalRun(records=records, summary=summary, out_dir=out_dir, warnings=warnings)
    if out_dir is not None:
        write_run(run, out_dir)
    return run


def check_dataset(pipeline: Pipeline, questions: Sequence[Question]) -> list[str]:
    """Warnings for question-set entries that cannot score against this index: a misspelt source or a
    quote that is in no document would otherwise show up only as a silently low metric."""
    documents = {d.file for d in pipeline.registry.documents() if d.complete}
    if not documents:
        raise RagError("the index is empty", "add documents with `rag ingest PATH`")
    warnings = []
    unknown = sorted({s for q in questions for s in q.expected_sources} - documents)
    if unknown:
        warnings.append(f"expected sources not in the index: {', '.join(unknown)}")
    if any(q.evidence for q in questions):
        texts = [metrics.normalise(pipeline.registry.text(f) or "") for f in sorted(documents)]
        for q in questions:
            for quote in q.evidence:
                if not any(metrics.normalise(quote) in text for text in texts):
                    warnings.append(f"{q.id}: evidence quote is in no indexed document: {quote[:60]!r}")
    return warnings


def build_record(
    question: Question, passages: Sequence[Passage], answer: Answer | None, timings: dict[str, float], k: int
) -> dict[str, Any]:
    used = answer.used_passages if answer else 0
    given = {e.passage_id for e in answer.evidence} if answer else set()
    retrieved = [
        {"rank": i, "file": p.file, "title": p.title, "start": p.start, "end": p.end,
         "score": round(p.score, 4), "used": p.id in given, "text": p.text}
        for i, p in enumerate(passages, 1)
    ]
    evidence = [{"number": e.number, "file": e.file, "start": e.start, "end": e.end, "score": e.score,
                 "text": e.text} for e in answer.evidence] if answer else []
    answer_fields: dict[str, Any] | None = None
    if answer is not None:
        answer_fields = {
            "answer": answer.answer, "raw_answer": answer.raw_answer, "refused": answer.refused,
            "used_passages": answer.used_passages, "invalid_citations": list(answer.invalid_citations),
            "gated": bool(answer.relevance.get("gated")),
            "citations": [{"number": c.number, "file": c.file, "title": c.title, "start": c.start,
                           "end": c.end, "score": c.score, "attributed": c.attributed, "verified": c.verified,
                           "text": c.text}
                          for c in answer.citations],
            "unsupported": [claim.text for claim in answer.unsupported],
            "answer_mode": answer.answer_mode, "evidence": evidence,
        }
    scores = metrics.score_question(question.to_dict(), retrieved, k, answer_fields)
    return {
        "id": question.id, "question": question.question, "lang": question.lang,
        "answerable": question.answerable,
        "answer": answer.answer if answer else None,
        "answer_lang": answer.answer_lang if answer else None,
        "raw_answer": answer.raw_answer if answer else None,
        # `refused` as scored (the product's flag or a canned refusal), `product_refused` as the product said.
        "refused": scores["refused"], "product_refused": answer.refused if answer else None,
        # Without text: the cited passages are in `retrieved` already.
        "citations": [{name: v for name, v in c.items() if name != "text"}
                      for c in (answer_fields or {}).get("citations", [])],
        "used_passages": used, "invalid_citations": list(answer.invalid_citations) if answer else [],
        "answer_mode": answer.answer_mode if answer else None, "evidence": evidence,
        "unsupported": [claim.text for claim in answer.unsupported] if answer else [],
        "coverage": answer.coverage if answer else None,
        "retrieved": retrieved, "timings": timings, "scores": scores, "passed": metrics.passed(scores),
        **({"rated": outcome} if (outcome := rated.rated_outcome(question.rated, answer)) else {}),
    }


# -- output files ------------------------------------------------------------------------------------------
def write_run(run: EvalRun, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / "records.jsonl").open("w", encoding="utf-8") as fh:
        for record in run.records:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    (out_dir / "summary.json").write_text(json.dumps(run.summary, ensure_ascii=False, indent=2) + "\n",
                                          encoding="utf-8")
    plots = write_plots(run, out_dir)
    (out_dir / "report.md").write_text(render_report(run, plots), encoding="utf-8")


def metric_table(summary: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows (metric label, overall, then one column per language). A retrieval-only run leaves
    out the rows it cannot fill; a full run keeps them, since "–" (no raw citations at all) is a finding."""
    k = summary["run"]["top_k"]
    groups = [summary["overall"], *summary["by_lang"].values()]
    header = ["metric", "overall", *summary["by_lang"]]
    rows = []
    for key, label, fmt in metrics.METRICS:
        values = [g.get(key) for g in groups]
        if summary["run"]["retrieval_only"] and key != "n" and all(v is None for v in values):
            continue
        rows.append([label.replace("@k", f"@{k}"), *(metrics.format_value(v, fmt) for v in values)])
    return header, rows


def render_report(run: EvalRun, plots: list[str]) -> str:
    info = run.summary["run"]
    mode = "retrieval only" if info["retrieval_only"] else "full (retrieval + answer)"
    lines = [
        "# rag eval report", "",
        f"- questions: `{info['questions_file']}` ({info['questions']} asked), "
        f"top_k = {info['top_k']}, {mode}",
        f"- models: {', '.join(f'{k}: `{v}`' for k, v in info['models'].items()) or '–'}",
        f"- started {info['started_at']}, took {info['duration_s']} s",
        *(f"- note: {n}" for n in info["notices"]), *(f"- warning: {w}" for w in info["warnings"]), "",
        "## Metrics", "",
    ]
    header, rows = metric_table(run.summary)
    lines += [_md_row(header), _md_row(["---"] * len(header)), *(_md_row(r) for r in rows), ""]
    lines += [f"![{name}]({name})" for name in plots] + [""]
    failures = [r for r in run.records if any(v is False for v in r["passed"].values())]
    lines += ["## Failed checks", ""]
    if not failures:
        lines.append("None.")
    else:
        lines += [_md_row(["id", "lang", "failed", "answer"]), _md_row(["---"] * 4)]
        for r in failures:
            failed = ", ".join(name for name, ok in r["passed"].items() if ok is False)
            shown = (r["answer"] or "").replace("\n", " ")
            shown = shown[:120] + ("…" if len(shown) > 120 else "")
            lines.append(_md_row([r["id"], r["lang"], failed, shown]))
    lines += ["", *rated.report_lines(run.records, _md_row)]
    lines += ["Metric definitions: hit@k / MRR / recall@k use the expected source files; the evidence "
              "rows use passages containing an evidence quote. Raw citations are the model's [n] markers "
              "before the product removed invalid ones. Citation support is the share of answered questions "
              "citing an expected source or an evidence passage; citations the product added by word overlap "
              "(attribution) count too, and their share is shown. \"Evidence sentence selected\": one of the "
              "sentences chosen as evidence holds an evidence quote. \"Confidently wrong\": an answer the LLM wrote "
              "that is not a refusal, has nothing flagged, and is wrong (or answers a question the documents cannot). "
              "Prompt tokens count LLM calls only (extractive answers and refusals make none). Latencies exclude "
              "model loading.", ""]
    return "\n".join(lines)


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def write_plots(run: EvalRun, out_dir: Path) -> list[str]:
    """PNG files written (names relative to out_dir). The object API with the Agg canvas never touches
    pyplot's global state, so a run inside the web server cannot open windows or race other threads."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    written = []
    summary = run.summary
    groups = {"overall": summary["overall"], **summary["by_lang"]}
    keys = _PLOT_RETRIEVAL if summary["run"]["retrieval_only"] else _PLOT_FULL
    keys = [key for key in keys if any(g.get(key) is not None for g in groups.values())]
    labels = dict((key, label) for key, label, _ in metrics.METRICS)
    if keys:
        fig = Figure(figsize=(max(6.0, 1.6 * len(groups) * len(keys) / 3), 4.0))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        width = 0.8 / len(keys)
        for j, key in enumerate(keys):
            values = [(g.get(key) or 0.0) for g in groups.values()]
            ax.bar([i + j * width for i in range(len(groups))], values, width, label=labels[key])
        ax.set_xticks([i + width * (len(keys) - 1) / 2 for i in range(len(groups))], list(groups))
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("share")
        ax.set_title(f"Metrics by question language (k = {summary['run']['top_k']})")
        ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=3)
        fig.tight_layout()
        fig.savefig(out_dir / "metrics_by_lang.png", dpi=100)
        written.append("metrics_by_lang.png")
    series = ["retrieval_ms"] if summary["run"]["retrieval_only"] else ["ttft_ms", "total_ms"]
    data = {name: [r["timings"][name] for r in run.records if r["timings"].get(name) is not None]
            for name in series}
    if any(data.values()):
        fig = Figure(figsize=(6.0, 4.0))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        for name, values in data.items():
            if values:
                ax.hist(values, bins=min(20, max(5, len(values) // 2)), alpha=0.6, label=name)
        ax.set_xlabel("milliseconds")
        ax.set_ylabel("questions")
        ax.set_title("Latency per question")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out_dir / "latency.png", dpi=100)
        written.append("latency.png")
    return written
