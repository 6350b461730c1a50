"""`rag feedback list|export` and `rag conversations list|delete|prune`: what people asked, what they thought of
the answers, and a question set made of it. They read index/conversations.sqlite only: no model is loaded, and
they work while `rag serve` runs."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from rag.cli.shared import open_pipeline, out, print_json
from rag.conversations import write_question_set

feedback_app = typer.Typer(help="Ratings of answers, and a question set made of them for `rag eval`.",
                           no_args_is_help=True)
conversations_app = typer.Typer(help="The conversations `rag serve` keeps: list, delete, prune.", no_args_is_help=True)
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Limit = Annotated[int, typer.Option("--limit", "-n", min=1, help="Show at most this many.")]


class Which(StrEnum):
    down = "down"
    up = "up"
    all = "all"


def register_history(app: typer.Typer) -> None:
    app.add_typer(feedback_app, name="feedback")
    app.add_typer(conversations_app, name="conversations")


def _short(text: str | None, limit: int = 70) -> str:
    shown = " ".join((text or "").split())
    return escape(shown[:limit] + ("…" if len(shown) > limit else ""))


@feedback_app.command("list")
def feedback_list(
    rating: Annotated[Which, typer.Option(help="Only answers rated down, or up.")] = Which.all,
    limit: Limit = 20, as_json: AsJson = False,
) -> None:
    """The most recent ratings: when, thumbs up or down, the question, the comment and what the answer cited."""
    with open_pipeline() as pipeline:
        rated = pipeline.conversations.ratings(None if rating is Which.all else rating.value, limit)
    if as_json:
        print_json([r.to_dict() for r in rated])
        return
    if not rated:
        out.print("No rated answers yet: rate answers with 👍 / 👎 in the chat, the widget or POST /api/feedback.")
        return
    table = Table("rated at", "", "question", "comment", "cited", "answer id", box=None)
    for r in rated:
        turn = r.turn
        table.add_row((turn.rated_at or "")[:16].replace("T", " "), "👍" if turn.rating == "up" else "👎",
                      _short(turn.question), _short(turn.comment, 50), escape(", ".join(turn.cited_files)) or "-",
                      turn.answer_id)
    out.print(table)


@feedback_app.command("export")
def feedback_export(
    out_file: Annotated[Path, typer.Option("--out", "-o", help="The question set to write (.jsonl).")],
    rating: Annotated[Which, typer.Option(help="Export answers rated down, up, or all.")] = Which.all,
) -> None:
    """Write rated answers as a question set in `rag eval`'s format: question, language, the cited files as expected
    sources, the comment as a note, and the answer as rated, so `rag eval FILE` reports which answers changed."""
    with open_pipeline() as pipeline:
        rated = pipeline.conversations.ratings(None if rating is Which.all else rating.value)
    count = write_question_set(out_file, rated)
    follow_ups = sum(r.previous_question is not None for r in rated)
    out.print(f"wrote {count} question{'s' if count != 1 else ''} to {escape(str(out_file))}"
              + (f"; {follow_ups} were follow-ups, asked here without their conversation (see rated.follow_up_to)"
                 if follow_ups else "") + f"\nrun them: rag eval {escape(str(out_file))}")


@conversations_app.command("list")
def conversations_list(limit: Limit = 20, as_json: AsJson = False) -> None:
    """The most recently continued conversations first."""
    with open_pipeline() as pipeline:
        found = pipeline.conversations.conversations(limit=limit)
    if as_json:
        print_json([c.to_dict() for c in found])
        return
    table = Table("updated", "title", "turns", "rated", "from", "id", box=None)
    for c in found:
        table.add_row(c.updated_at[:16].replace("T", " "), _short(c.title), str(c.turns), str(c.rated),
                      "widget/API" if c.owned else "chat UI", c.id)
    out.print(table if found else "No conversations yet.")


@conversations_app.command("delete")
def conversations_delete(ids: Annotated[list[str], typer.Argument(help="Conversation ids, as `list` shows.")]) -> None:
    """Delete conversations, their answers and the feedback on them."""
    with open_pipeline() as pipeline:
        for conversation_id in ids:
            pipeline.conversations.delete(conversation_id)
            out.print(f"deleted {escape(conversation_id)}")


@conversations_app.command("prune")
def conversations_prune(
    older_than: Annotated[float, typer.Option("--older-than", min=0, help="Days since a conversation was last "
                                              "continued.")],
) -> None:
    """Delete conversations nobody continued for DAYS, with their feedback (export it first if you want it)."""
    with open_pipeline() as pipeline:
        gone = pipeline.conversations.prune(timedelta(days=older_than))
    out.print(f"deleted {gone} conversation{'s' if gone != 1 else ''} last continued over {older_than:g} days ago")
