"""`rag eval QUESTIONS` and `rag eval compare OUT_A OUT_B`, registered on the main app by `register_eval`.

One command with a list of arguments instead of a sub-app, so `rag eval questions.jsonl` needs no
sub-command name while `compare` still reads naturally."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import click
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from rag.cli.shared import err, open_pipeline, out
from rag.evaluation import compare as comparing
from rag.evaluation import rated
from rag.evaluation.metrics import format_value
from rag.evaluation.questions import load_questions
from rag.evaluation.runner import EvalRun, metric_table, run_eval

DEFAULT_RUNS_DIR = Path("eval/runs")


def register_eval(app: typer.Typer) -> None:
    app.command("eval", no_args_is_help=True)(eval_command)


def eval_command(
    args: Annotated[list[str], typer.Argument(
        metavar="QUESTIONS | compare OUT_A OUT_B",
        help="A question set (.jsonl, or .yaml/.yml), or `compare` and two run folders.")],
    top_k: Annotated[int | None, typer.Option(
        "--top-k", "-k", min=1, help="Passages to retrieve per question (default: top_k setting).")] = None,
    out_dir: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Folder for records.jsonl, summary.json, report.md and plots "
        "(default: eval/runs/TIMESTAMP).")] = None,
    retrieval_only: Annotated[bool, typer.Option(
        "--retrieval-only",
        help="Only score retrieval; no answers (the LLM is used only if it translates questions).")] = False,
    limit: Annotated[int | None, typer.Option(
        "--limit", "-n", min=1, help="Only the first N questions.")] = None,
) -> None:
    """Score retrieval, answers, refusals, citations and latency on a question set, through the same
    pipeline as `rag ask`. `rag eval compare OUT_A OUT_B` shows what changed between two runs."""
    if args[0] == "compare":
        if len(args) != 3:
            raise click.UsageError("usage: rag eval compare OUT_A OUT_B")
        if top_k or out_dir or retrieval_only or limit:
            raise click.UsageError("--top-k, --out, --retrieval-only and --limit apply to runs, "
                                   "not to compare")
        _print_comparison(comparing.compare_runs(Path(args[1]), Path(args[2])), out)
        return
    if len(args) != 1:
        raise click.UsageError("give one question file, or `compare OUT_A OUT_B`")
    run = _run(Path(args[0]), top_k, out_dir, retrieval_only, limit, err)
    for note in run.summary["run"]["notices"]:
        err.print(f"[yellow]note:[/] {escape(note)}")
    for warning in run.warnings:
        err.print(f"[yellow]warning:[/] {escape(warning)}")
    _print_summary(run, out)
    _print_rated(run, out)
    out.print(f"\nwrote records.jsonl, summary.json, report.md and plots to {escape(str(run.out_dir))}")


def _run(
    path: Path, top_k: int | None, out_dir: Path | None, retrieval_only: bool, limit: int | None, err: Console
) -> EvalRun:
    # Validate the whole file before loading any model: a bad line should cost seconds, not a run.
    questions = load_questions(path)
    target = out_dir or DEFAULT_RUNS_DIR / datetime.now().strftime("%Y%m%d-%H%M%S")
    bar = Progress(
        TextColumn("{task.description:>12}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TimeRemainingColumn(), console=err, transient=True,
    )
    with open_pipeline() as pipeline, bar:
        task = bar.add_task("starting", total=min(len(questions), limit or len(questions)))

        def progress(done: int, total: int, label: str) -> None:
            bar.update(task, completed=done, total=total, description=label)

        return run_eval(pipeline, questions, top_k=top_k, retrieval_only=retrieval_only, limit=limit,
                        out_dir=target, progress=progress, source=str(path))


def _print_summary(run: EvalRun, out: Console) -> None:
    info = run.summary["run"]
    header, rows = metric_table(run.summary)
    mode = "retrieval only" if info["retrieval_only"] else "retrieval + answers"
    table = Table(*header, title=f"rag eval: {info['questions']} questions, k = {info['top_k']}, {mode}",
                  title_justify="left")
    for column in table.columns[1:]:
        column.justify = "right"
    for row in rows:
        table.add_row(*(escape(cell) for cell in row))
    out.print(table)


def _print_rated(run: EvalRun, out: Console) -> None:
    """For a set exported from feedback: which answers differ from the ones people rated."""
    if "rated" not in run.summary:
        return
    out.print(f"\n{escape(rated.headline(run.summary['rated']))}")
    changed = rated.changed_records(run.records)
    if changed:
        table = Table("id", "rated", "answer when rated", "answer now", title="Changed since rated",
                      title_justify="left")
        for r in changed:
            table.add_row(escape(r["id"]), r["rated"]["rating"], escape(rated.short(r["rated"]["answer_before"])),
                          escape(rated.short(r["answer"])))
        out.print(table)


def _print_comparison(result: comparing.Comparison, out: Console) -> None:
    table = Table("metric", "A", "B", "Δ", *(f"Δ {lang}" for lang in result.langs),
                  title=f"A = {result.a}   B = {result.b}", title_justify="left")
    for column in table.columns[1:]:
        column.justify = "right"
    for row in result.metrics:
        cells = [_coloured(row.key, row.diffs.get(name), row.fmt) for name in ["overall", *result.langs]]
        table.add_row(escape(row.label), _value(row.a, row.fmt), _value(row.b, row.fmt), *cells)
    out.print(table)
    if result.changes:
        changes = Table("id", "lang", "check", "A", "B", title="Questions whose outcome changed",
                        title_justify="left")
        for c in result.changes:
            style = "green" if c.improved else "red"
            changes.add_row(escape(c.id), c.lang, c.check, _pass(c.a), f"[{style}]{_pass(c.b)}[/]")
        out.print(changes)
    else:
        out.print("No question changed outcome.")
    if result.only_a:
        out.print(f"only in A: {escape(', '.join(result.only_a))}")
    if result.only_b:
        out.print(f"only in B: {escape(', '.join(result.only_b))}")
    for note in result.notes:
        out.print(f"[yellow]note:[/] {escape(note)}")


def _value(value: float | int | None, fmt: str) -> str:
    return format_value(value, fmt)


def _coloured(key: str, diff: float | None, fmt: str) -> str:
    better = comparing.is_better(key, diff)
    text = comparing.format_diff(diff, fmt)
    return text if better is None else f"[{'green' if better else 'red'}]{text}[/]"


def _pass(value: bool) -> str:
    return "pass" if value else "fail"
