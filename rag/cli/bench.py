"""`rag bench`: runs eval/bench.py of a source checkout (the benchmark reads SciFact and writes plots; it is a
developer's tool, not part of an installed rag), in this interpreter, passing the options through."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from rag.errors import RagError

BENCH = Path(__file__).resolve().parents[2] / "eval" / "bench.py"


def register_bench(app: typer.Typer) -> None:
    app.command("bench")(bench_command)


def bench_command(
    quick: Annotated[bool, typer.Option("--quick", help="Small sizes: a few minutes instead of 15.")] = False,
    out: Annotated[Path | None, typer.Option(help="Output folder (default: eval/runs/bench).")] = None,
    data: Annotated[Path | None, typer.Option(help="SciFact in BEIR layout (default: ../shared/datasets/scifact).")]
    = None,
    sections: Annotated[str | None, typer.Option(help="Comma-separated subset of ingest,answer,shape,scale,baseline.")]
    = None,
    documents: Annotated[int | None, typer.Option(help="SciFact abstracts to ingest.")] = None,
    sizes: Annotated[str | None, typer.Option(help="Comma-separated index sizes (chunks) for the scale stage.")]
    = None,
) -> None:
    """Measure ingest, answers, the default model's shape, retrieval at scale and memory against raw encode, raw
    llama.cpp and llama-index's
    default pipeline: a table, OUT/bench.json, OUT/bench.md and OUT/bench.png."""
    if not BENCH.is_file():
        raise RagError("rag bench needs a source checkout (eval/bench.py was not found next to the rag package)",
                       "clone the repository and run it there")
    args = ["--quick"] if quick else []
    for flag, value in (("--out", out), ("--data", data), ("--sections", sections), ("--documents", documents),
                        ("--sizes", sizes)):
        if value is not None:
            args += [flag, str(value)]
    code = subprocess.call([sys.executable, str(BENCH), *args])
    if code:
        raise typer.Exit(code)
