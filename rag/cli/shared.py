"""What every command shares: the two consoles (answers on stdout, notes and errors on stderr), the global
flags, and the Pipeline built from them."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape

from rag.config import load_settings
from rag.pipeline import Pipeline

# Piped output is read by programs and people alike: do not squeeze tables to 80 columns there.
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)
# soft_wrap: an error or a skipped file is one line, whatever the terminal width (programs read stderr too).
err = Console(stderr=True, highlight=False, soft_wrap=True)
state: dict[str, Any] = {"debug": False, "flags": {}, "config": None}


def open_pipeline() -> Pipeline:
    return Pipeline(load_settings(state["config"], **state["flags"]))


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")


def print_notices(pipeline: Pipeline) -> None:
    for notice in pipeline.notices():
        err.print(f"[yellow]note:[/] {escape(notice)}")
