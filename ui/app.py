"""The Gradio chat UI: rendering only. Every action calls the Pipeline; all HTML comes from ui.render, and the
stored conversations and feedback are handled in ui.history."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr

from rag.conversation import Turn
from rag.errors import RagError
from rag.ingest.layout import page_window
from rag.pipeline import Pipeline
from ui import render
from ui.history import HistoryHandlers

Turns = list[dict[str, Any]]


class _GradioProgress:
    """rag's ingest progress shown as Gradio's progress bar."""

    def __init__(self, progress: gr.Progress) -> None:
        self.progress = progress
        self.totals: dict[str, int] = {}
        self.done: dict[str, int] = {}

    def start(self, stage: str, total: int) -> None:
        self.totals[stage], self.done[stage] = total, 0

    def grow(self, stage: str, amount: int) -> None:
        self.totals[stage] = self.totals.get(stage, 0) + amount

    def advance(self, stage: str, amount: int = 1) -> None:
        self.done[stage] = self.done.get(stage, 0) + amount
        total = self.totals.get(stage) or 1
        self.progress(min(1.0, self.done[stage] / total), desc=f"{stage}: {self.done[stage]}/{total}")

    def skipped(self, file: str, reason: str) -> None:
        gr.Warning(f"skipped {file}: {reason}")


class ChatHandlers:
    """What each control of the UI does: every handler calls the Pipeline and returns rendered HTML."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.history = HistoryHandlers(pipeline)

    def files(self) -> list[str]:
        return [d.file for d in self.pipeline.status().documents if d.complete]

    def header(self) -> str:
        names = self.pipeline.warm_up()
        lines = [f"**rag** · answers from your documents · LLM `{names['llm']}` · embeddings `{names['embedding']}`"]
        lines += [f"⚠ {notice}" for notice in self.pipeline.notices()]
        return "  \n".join(lines)

    def ask(self, question: str, turns: Turns, only: list[str] | None,
            conversation_id: str | None) -> Iterator[tuple[Any, ...]]:
        """Stream the answer; once it is finished, store it as the next turn of the conversation."""
        question = (question or "").strip()
        unchanged = (gr.update(), gr.update())
        if not question:
            yield render.conversation(turns), gr.update(), question, turns, *unchanged
            return
        history = [Turn(t["question"], t["answer"]) for t in turns if t.get("answer")]
        try:
            stream = self.pipeline.ask(question, history=history, files=only or None, conversation=True)
        except RagError as exc:
            raise gr.Error(str(exc)) from exc
        turns = [*turns, {"question": question, "answer": ""}]
        try:
            for piece in stream:
                turns[-1]["answer"] += piece
                yield render.conversation(turns), gr.update(), "", turns, *unchanged
        finally:
            stream.cancel()  # Stop button or a closed tab: free the model at once
        result = stream.result.to_dict()
        stored, conversation_id = self.history.remember(conversation_id, question, stream.result)
        turns[-1] = {"question": question, **{key: result[key] for key in (
            "answer", "refused", "citations", "context", "unsupported", "grounding", "answer_mode")}, **stored}
        yield (render.conversation(turns), render.sources(len(turns) - 1, turns[-1]), "", turns, conversation_id,
               self.history.listing(conversation_id))

    def open_citation(self, turns: Turns, event: gr.EventData) -> tuple[str, Any]:
        data = getattr(event, "_data", None) or {}
        try:
            turn = turns[int(data["turn"])]
            number = int(data["number"])
        except (KeyError, IndexError, TypeError, ValueError):
            return gr.update(), gr.update()
        passage = next((p for p in turn.get("context", []) if p.get("number") == number), None)
        if passage is None:
            return gr.update(), gr.update()
        try:
            document = self.pipeline.document_text(passage["file"])
            layout = self.pipeline.catalog.layout(passage["file"])
        except RagError as exc:
            raise gr.Error(str(exc)) from exc
        shown = page_window(layout, passage.get("page"), passage.get("page_end"), len(document))
        return render.passage_in_document(passage, document, shown), gr.Tabs(selected="passage")

    def new_chat(self) -> tuple[Any, ...]:
        return (render.conversation([]), render.sources(0, None), "", [], None, gr.Radio(value=None),
                gr.Row(visible=False))

    def documents_view(self) -> tuple[Any, ...]:
        rows = self.pipeline.status().to_dict()["files"]  # one status read for the table and both lists
        names = [r["file"] for r in rows if r["status"] == "complete"]
        return render.documents(rows), gr.Dropdown(choices=names), gr.Dropdown(choices=names, value=None)

    def upload(self, paths: list[str] | None, progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:  # noqa: B008
        notes = []
        for path in paths or []:
            source = Path(path)
            try:
                with source.open("rb") as handle:
                    report = self.pipeline.upload(source.name, iter(lambda h=handle: h.read(1 << 20), b""),
                                             progress=_GradioProgress(progress))
                notes.append(f"{source.name}: {report.summary()}")
            except RagError as exc:
                notes.append(f"{source.name}: {exc}")
        return ("  \n".join(render.escape(n) for n in notes), None, *self.documents_view())

    def remove(self, file: str | None) -> tuple[Any, ...]:
        if file:
            try:
                self.pipeline.remove(file)
            except RagError as exc:
                raise gr.Error(str(exc)) from exc
        return (f"removed {render.escape(file)}" if file else "", *self.documents_view())


def build_app(pipeline: Pipeline) -> gr.Blocks:
    do = ChatHandlers(pipeline)
    with gr.Blocks(title="rag — ask your documents") as app:
        turns, conversation, rated = gr.State([]), gr.State(None), gr.State(None)
        with gr.Sidebar(label="Conversations", open=True, width=300):
            history, delete = _history_list()
        gr.Markdown(do.header)
        with gr.Row():
            with gr.Column(scale=3):
                chat, question, send, stop, clear = _chat_column(do)
                comment_row, comment, save = _comment_row()
            with gr.Column(scale=2), gr.Tabs() as tabs:
                source_list, viewer, only, uploader, upload_note, listing, doomed, drop = _side_tabs(do)
        asked = gr.on([send.click, question.submit], do.ask, [question, turns, only, conversation],
                      [chat, source_list, question, turns, conversation, history])
        stop.click(None, cancels=[asked])
        cleared = [chat, source_list, question, turns, conversation, history, comment_row]
        clear.click(do.new_chat, None, cleared, cancels=[asked])
        app.load(do.history.listing, None, [history])  # at each page load: the list as it is now
        history.input(do.history.reopen, [history], [chat, source_list, turns, conversation, history, comment_row],
                      cancels=[asked])
        delete.click(do.history.delete, [conversation], cleared, cancels=[asked])
        chat.like(do.history.rate, [turns], [chat, turns, comment_row, comment, rated])
        gr.on([save.click, comment.submit], do.history.comment, [turns, rated, comment],
              [chat, turns, comment_row, comment])
        chat.click(do.open_citation, [turns], [viewer, tabs])
        source_list.click(do.open_citation, [turns], [viewer, tabs])
        uploader.upload(do.upload, [uploader], [upload_note, uploader, listing, only, doomed])
        drop.click(do.remove, [doomed], [upload_note, listing, only, doomed])
    return app


def _history_list() -> tuple[Any, ...]:
    """Stored conversations, newest first; picking one reopens it (filled at page load)."""
    history = gr.Radio(choices=[], label="Past conversations (newest first)", elem_id="rag-history")
    delete = gr.Button("Delete this conversation", size="sm", variant="stop", elem_id="rag-delete")
    return history, delete


def _chat_column(do: ChatHandlers) -> tuple[Any, ...]:
    # gr.HTML from ui.render rather than gr.Chatbot: Chatbot's select and like events name a message, never which
    # [n] inside it was clicked, so a citation could not open its passage; and it renders messages as Markdown with
    # autolinks and LaTeX, so a URL or [text](link) written by a document or the model would become a live link.
    # The thumbs raise Chatbot's own event name (`like`) from buttons in that HTML; the comment box and the
    # conversation list are Gradio components.
    chat = gr.HTML(render.conversation([]), elem_id="rag-conversation",
                   js_on_load=render.CITATION_CLICKS + render.RATING_CLICKS, autoscroll=True, min_height=320)
    question = gr.Textbox(placeholder="Ask a question about your documents…", show_label=False, lines=2,
                          max_length=do.pipeline.settings.max_question_chars, elem_id="rag-question")
    with gr.Row():
        send = gr.Button("Ask", variant="primary", elem_id="rag-ask")
        stop = gr.Button("Stop", elem_id="rag-stop")
        clear = gr.Button("New chat", elem_id="rag-new")
    return chat, question, send, stop, clear


def _comment_row() -> tuple[Any, ...]:
    """Shown after a thumb is pressed: an optional comment for that answer."""
    with gr.Row(visible=False, elem_id="rag-comment-row") as row:
        comment = gr.Textbox(label="Say why (optional)", lines=1, max_length=2000, scale=4, elem_id="rag-comment")
        save = gr.Button("Save comment", scale=1, elem_id="rag-save-comment")
    return row, comment, save


def _side_tabs(do: ChatHandlers) -> tuple[Any, ...]:
    with gr.Tab("Sources", id="sources"):
        source_list = gr.HTML(render.sources(0, None), elem_id="rag-sources", js_on_load=render.CITATION_CLICKS)
    with gr.Tab("Passage", id="passage"):
        viewer = gr.HTML('<div class="rag-empty">Click a citation to read it in its document.</div>',
                         elem_id="rag-passage", js_on_load=render.SCROLL_TO_MARK)
    with gr.Tab("Documents", id="documents"):
        only = gr.Dropdown(choices=do.files(), multiselect=True, label="Ask only these documents")
        uploader = gr.File(file_count="multiple", label="Add documents (.txt .md .pdf .docx .html)")
        upload_note = gr.Markdown()
        listing = gr.HTML(render.documents(do.pipeline.status().to_dict()["files"]))
        with gr.Row():
            doomed = gr.Dropdown(choices=do.files(), label="Remove a document from the index")
            drop = gr.Button("Remove")
    return source_list, viewer, only, uploader, upload_note, listing, doomed, drop
