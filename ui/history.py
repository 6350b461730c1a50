"""The chat UI's memory: stored conversations listed newest first, to reopen, continue or delete, and the
thumbs up or down (with an optional comment) on every answer. Everything goes through the Pipeline's
conversation store; all HTML comes from ui.render."""

from __future__ import annotations

from typing import Any

import gradio as gr

from rag.answer.result import Answer
from rag.conversations import StoredTurn
from rag.errors import RagError
from rag.pipeline import Pipeline
from ui import render

Turns = list[dict[str, Any]]
LISTED = 100


def ui_turn(turn: StoredTurn) -> dict[str, Any]:
    """A stored turn as the renderer reads it (its evidence is the `context` citations open)."""
    return {**turn.data, "question": turn.question, "answer": turn.answer, "context": turn.data.get("evidence", []),
            "answer_id": turn.answer_id, "rating": turn.rating, "comment": turn.comment}


def _label(title: str, updated_at: str, turns: int, owned: bool) -> str:
    when = updated_at[:16].replace("T", " ")
    return f"{title} · {when}" + (f" · {turns} turns" if turns > 1 else "") + (" · widget" if owned else "")


class HistoryHandlers:
    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    def listing(self, selected: str | None = None) -> Any:
        try:
            found = self.pipeline.conversations.conversations(limit=LISTED)
        except RagError as exc:
            gr.Warning(str(exc))
            return gr.update()
        choices = [(_label(c.title, c.updated_at, c.turns, c.owned), c.id) for c in found]
        return gr.Radio(choices=choices, value=selected if selected in {c.id for c in found} else None)

    def remember(self, conversation_id: str | None, question: str, answer: Answer) -> tuple[dict[str, Any], str | None]:
        """Store a finished answer: the turn's id and rating fields, and the conversation it is part of."""
        try:
            stored = self.pipeline.conversations.record(conversation_id, question, answer)
        except RagError as exc:
            gr.Warning(f"this answer was not saved: {exc}")
            return {}, conversation_id
        return {"answer_id": stored.answer_id, "rating": None, "comment": None}, stored.conversation_id

    def reopen(self, conversation_id: str | None) -> tuple[Any, ...]:
        """Show a stored conversation as it was, citations clickable; the next question continues it."""
        if not conversation_id:
            return gr.update(), gr.update(), gr.update(), gr.update(), gr.update(), gr.Row(visible=False)
        try:
            turns = [ui_turn(t) for t in self.pipeline.conversations.get(conversation_id).turns]
        except RagError as exc:
            gr.Warning(str(exc))
            return (gr.update(), gr.update(), gr.update(), gr.update(), self.listing(None), gr.Row(visible=False))
        latest = turns[-1] if turns else None
        return (render.conversation(turns), render.sources(len(turns) - 1, latest), turns, conversation_id,
                gr.update(), gr.Row(visible=False))

    def delete(self, conversation_id: str | None) -> tuple[Any, ...]:
        if conversation_id:
            try:
                self.pipeline.conversations.delete(conversation_id)
            except RagError as exc:
                gr.Warning(str(exc))
        return (render.conversation([]), render.sources(0, None), "", [], None, self.listing(None),
                gr.Row(visible=False))

    def rate(self, turns: Turns, event: gr.EventData) -> tuple[Any, ...]:
        """A thumb was pressed: store the rating at once, then offer the comment box for that answer."""
        data = getattr(event, "_data", None) or {}
        try:
            index, rating = int(data["turn"]), str(data["rating"])
            answer_id = turns[index]["answer_id"]
            self.pipeline.conversations.rate(answer_id, rating)
        except (KeyError, IndexError, TypeError, ValueError):
            return gr.update(), gr.update(), gr.update(), gr.update(), gr.update()
        except RagError as exc:
            raise gr.Error(str(exc)) from exc
        turns = [*turns]
        turns[index] = {**turns[index], "rating": rating}
        word = "good" if rating == "up" else "wrong or unhelpful"
        box = gr.Textbox(value=turns[index].get("comment") or "", label=f"You rated answer {index + 1} {word}. "
                         "Say why (optional): it is kept with the rating and exported with it.")
        return render.conversation(turns), turns, gr.Row(visible=True), box, index

    def comment(self, turns: Turns, index: int | None, text: str) -> tuple[Any, ...]:
        if index is None or not 0 <= index < len(turns) or not turns[index].get("rating"):
            return gr.update(), gr.update(), gr.Row(visible=False), ""
        turn = turns[index]
        try:
            self.pipeline.conversations.rate(turn["answer_id"], turn["rating"], text or "")
        except RagError as exc:
            raise gr.Error(str(exc)) from exc
        turns = [*turns]
        turns[index] = {**turn, "comment": (text or "").strip() or None}
        gr.Info("Thanks: the comment is saved with your rating.", duration=4)
        return render.conversation(turns), turns, gr.Row(visible=False), ""
