"""Terminal progress bars for ingest (rich), implementing rag.ingest.Progress."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn


class RichProgress:
    def __init__(self, console: Console, enabled: bool = True) -> None:
        self.console = console
        self._bars = Progress(
            TextColumn("{task.description:>8}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            console=console, transient=True, disable=not enabled,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> RichProgress:
        self._bars.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self._bars.stop()

    def start(self, stage: str, total: int) -> None:
        self._tasks[stage] = self._bars.add_task(stage, total=total)

    def advance(self, stage: str, amount: int = 1) -> None:
        if stage in self._tasks:
            self._bars.advance(self._tasks[stage], amount)

    def grow(self, stage: str, amount: int) -> None:
        if stage in self._tasks:
            task = self._tasks[stage]
            self._bars.update(task, total=(self._bars.tasks[task].total or 0) + amount)

    def skipped(self, file: str, reason: str) -> None:
        self.console.print(f"[yellow]skipped[/] {escape(file)}: {escape(reason)}")
