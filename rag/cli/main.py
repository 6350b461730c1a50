"""The `rag` command and its sub-commands: parse arguments, call the Pipeline, render. Expected failures print one
line (caught here, in `main`, for every command)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from rag.cli.bench import register_bench
from rag.cli.eval import register_eval
from rag.cli.history import register_history
from rag.cli.shared import err, open_pipeline, out, print_json, print_notices, state
from rag.config import describe_settings, load_settings
from rag.conversation import Turn
from rag.errors import RagError
from rag.ingest.layout import where
from rag.models import hubs
from rag.pipeline import Pipeline
from rag.status import SERVER, ModelSource

app = typer.Typer(
    help="Ask questions about your documents and get answers with citations you can check, "
    "from a local Qwen model.\n\nStart with `rag ingest seeds` then `rag ask \"...\"` or `rag chat`. "
    "Settings come from rag.toml, then RAG_* environment variables, then flags (`rag config` shows them).",
    no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)
TopK = Annotated[int | None, typer.Option("--top-k", "-k", help="Passages to retrieve (default: top_k setting).")]
AsJson = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")]
Files = Annotated[list[str] | None, typer.Option("--file", "-f", help="Only search these indexed files (repeatable).")]


@app.callback()
def configure(
    config: Annotated[Path | None, typer.Option(help="Settings file (default: ./rag.toml, or RAG_CONFIG).")] = None,
    corpus_dir: Annotated[Path | None, typer.Option(help="Folder `rag ingest` reads by default.")] = None,
    index_dir: Annotated[Path | None, typer.Option(help="Where the index lives (default: index/).")] = None,
    qdrant_url: Annotated[str | None, typer.Option(help="Qdrant server URL instead of the embedded index.")] = None,
    collection: Annotated[str | None, typer.Option(help="Qdrant collection name.")] = None,
    embedding_model: Annotated[str | None, typer.Option(help="sentence-transformers model id or folder.")] = None,
    llm_model: Annotated[str | None, typer.Option(help="GGUF file or hub repo of the LLM.")] = None,
    llm_file: Annotated[str | None, typer.Option(help="GGUF file name inside the hub repo.")] = None,
    llm_base_url: Annotated[str | None, typer.Option(help="OpenAI-compatible server URL for the LLM.")] = None,
    offline: Annotated[bool | None, typer.Option("--offline", help="Never contact a model hub.")] = None,
    model_hub: Annotated[str | None, typer.Option(help="Where models come from: auto, huggingface or modelscope.")]
    = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
) -> None:
    state["debug"] = debug
    state["config"] = config
    state["flags"] = {
        "corpus_dir": corpus_dir, "index_dir": index_dir, "qdrant_url": qdrant_url, "collection": collection,
        "embedding_model": embedding_model, "llm_model": llm_model, "llm_file": llm_file,
        "llm_base_url": llm_base_url, "offline": offline, "model_hub": model_hub,
    }


@app.command()
def ingest(
    paths: Annotated[list[Path] | None, typer.Argument(help="Files or folders (default: corpus_dir).")] = None,
    prune: Annotated[bool, typer.Option(help="Remove indexed files that no longer exist.")] = False,
    rebuild: Annotated[bool, typer.Option(help="Start from an empty index (after changing the embedding model).")]
    = False,
    as_json: AsJson = False,
) -> None:
    """Add documents (.txt .md .pdf .docx .html) to the index. Unchanged files are skipped by hash."""
    from rag.cli.progress import RichProgress

    with open_pipeline() as pipeline, RichProgress(err, enabled=not as_json) as progress:
        report = pipeline.ingest(paths, prune=prune, rebuild=rebuild, progress=progress)
        notices = pipeline.notices()
    if as_json:
        print_json(report.to_dict())
    else:
        for notice in [*notices, *report.notes]:
            err.print(f"[yellow]note:[/] {escape(notice)}")
        out.print(report.summary())
    if report.skipped:
        raise typer.Exit(3)


@app.command()
def search(query: str, top_k: TopK = None, files: Files = None, as_json: AsJson = False) -> None:
    """Show the passages retrieval finds for QUERY (what the model would be given). No LLM."""
    with open_pipeline() as pipeline:
        passages = pipeline.search(query, top_k, files)
        print_notices(pipeline)
    if as_json:
        print_json([{k: v for k, v in p.to_dict().items() if k != "id"} for p in passages])
        return
    if not passages:
        out.print("No passages found.")
    for rank, p in enumerate(passages, 1):
        place = f"{escape(where(p))} [{p.start}:{p.end}]"
        out.print(f"[bold]{rank}.[/] {p.score:.3f}  [cyan]{escape(p.title)}[/] — {place}")
        out.print(f"   {escape(p.text)}\n")


def _render_grounding(answer: Any) -> None:
    """Below the streamed answer: what no evidence backs, then the cited sentences and where they stand."""
    if answer.unsupported:
        label = "not in the documents" if answer.grounding == "strict" else "⚠ not backed by any passage"
        out.print(f"\n[yellow]{label} ({len(answer.unsupported)}):[/]")
        for claim in answer.unsupported:
            out.print(f"  [yellow]•[/] {escape(claim.text)}")
    if answer.answer_mode == "extractive":
        out.print("[dim](quoted from the documents; no model wrote this answer)[/]")
    if not answer.citations:
        return
    out.print("\n[bold]Sources[/]")
    for c in answer.citations:
        mark = (" (attributed)" if c.attributed else "") + ("" if c.verified else " [yellow](unverified)[/]")
        when = f" · {c.date}" if c.date else ""
        out.print(f"[bold][{c.number}][/] [cyan]{escape(c.title)}[/]{when} — {escape(where(c))} "
                  f"[{c.start}:{c.end}]{mark}\n    {escape(' '.join(c.text.split()))}")


def _stream(stream: Any) -> Any:
    for piece in stream:
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return stream.result


@app.command()
def ask(question: str, top_k: TopK = None, files: Files = None, as_json: AsJson = False) -> None:
    """Answer QUESTION from the documents, streaming, with numbered citations."""
    with open_pipeline() as pipeline:
        stream = pipeline.ask(question, top_k=top_k, files=files)
        if as_json:
            print_json(stream.result.to_dict())
            return
        print_notices(pipeline)
        answer = _stream(stream)
    _render_grounding(answer)


@app.command()
def chat(top_k: TopK = None, files: Files = None) -> None:
    """Talk with your documents in the terminal; follow-up questions use the conversation.
    Type /new to start over, /exit (or Ctrl-D) to leave."""
    history: list[Turn] = []
    with open_pipeline() as pipeline:
        status = pipeline.status()
        out.print(f"rag chat — {len(status.documents)} documents, {status.chunks} passages. "
                  "/new starts over, /exit leaves.")
        while True:
            try:
                question = input("\n› ").strip()
            except (EOFError, KeyboardInterrupt):
                out.print()
                return
            if question in ("/exit", "/quit"):
                return
            if question == "/new":
                history.clear()
                out.print("(new conversation)")
                continue
            if not question:
                continue
            try:
                stream = pipeline.ask(question, history=history, top_k=top_k, files=files, conversation=True)
                if not history:
                    print_notices(pipeline)
                answer = _stream(stream)
            except KeyboardInterrupt:
                out.print("\n(stopped)")
                continue
            except RagError as exc:
                err.print(f"[red]error:[/] {escape(str(exc))}")
                continue
            _render_grounding(answer)
            history.append(Turn(question=question, answer=answer.answer))


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on (default 127.0.0.1: this machine only).")]
    = None,
    port: Annotated[int | None, typer.Option(help="Port (default 7860).")] = None,
) -> None:
    """Start the web UI, the HTTP API (OpenAI-compatible at /v1) and the embeddable widget (/widget.js)."""
    import uvicorn

    from rag.server.app import create_app

    settings = load_settings(state["config"], **state["flags"], host=host, port=port)
    pipeline = Pipeline(settings)
    url = f"http://{settings.host}:{settings.port}"
    pipeline.hold_index(f"rag serve (pid {os.getpid()}) at {url}")
    models = pipeline.warm_up()
    print_notices(pipeline)
    app_ = create_app(pipeline)
    documents = sum(d.complete for d in pipeline.status().documents)
    out.print(f"rag is serving {documents} documents with {models['llm']}\n"
              f"  chat:   {url}/\n  API:    {url}/docs  (OpenAI-compatible: {url}/v1)\n"
              f"  widget: <script src=\"{url}/widget.js\"></script>")
    try:
        uvicorn.run(app_, host=settings.host, port=settings.port, log_level="warning")
    finally:
        pipeline.close()


@app.command()
def status(as_json: AsJson = False) -> None:
    """List the indexed documents, chunk counts, the embedding model and the index location and size."""
    with open_pipeline() as pipeline:
        info, models = pipeline.status(), pipeline.model_sources()
        plan = hubs.plan(pipeline.settings.model_hub, pipeline.settings.offline)
    if as_json:
        print_json({**info.to_dict(), "models": [m.to_dict() for m in models]})
        return
    table = Table(box=None)
    table.add_column("file", no_wrap=True)
    table.add_column("title", max_width=50, overflow="ellipsis", no_wrap=True)
    for name in ("lang", "date", "pages", "chunks", "status"):
        table.add_column(name, no_wrap=True)
    for d in info.documents:
        pages = str(info.pages.get(d.file, ""))
        table.add_row(escape(d.file), escape(d.title), d.lang, d.date or "", pages, str(d.chunks), d.status)
    out.print(table)
    built = f" (from {hubs.SOURCES[info.embedding_hub]})" if info.embedding_hub in hubs.SOURCES else ""
    out.print(f"\n{len(info.documents)} documents, {info.chunks} chunks; embedding model {info.embedding_model or '-'}"
              f"{built}\nindex: {info.index_dir} ({info.index_bytes / 1e6:.1f} MB), {info.backend}")
    for model in models:
        out.print(f"{'LLM' if model.role == 'llm' else 'embedding model'} {escape(model.name or '-')}: "
                  f"{_where(model, plan)}")


def _where(model: ModelSource, plan: str) -> str:
    if model.hub == SERVER:
        return f"served by {escape(model.path)}"
    if not model.hub:
        return f"not downloaded yet; model hubs: {escape(plan)}"
    return f"from {hubs.SOURCES[model.hub]} ({escape(model.path)})"


@app.command()
def remove(files: Annotated[list[str], typer.Argument(help="Indexed file names, as `rag status` lists them.")]) -> None:
    """Remove documents from the index (the files themselves are not touched)."""
    with open_pipeline() as pipeline:
        for file in files:
            pipeline.remove(file)
            out.print(f"removed {file}")


@app.command()
def config() -> None:
    """Print the effective settings and where each value came from."""
    settings = load_settings(state["config"], **state["flags"])
    table = Table("setting", "value", "source", box=None)
    for name, value, source in describe_settings(settings, state["config"], **state["flags"]):
        table.add_row(name, escape(value), source)
    out.print(table)
    out.print(f"\nmodel hubs: {escape(hubs.plan(settings.model_hub, settings.offline))}")

register_eval(app)
register_bench(app)
register_history(app)


def main() -> None:
    try:
        code = app(standalone_mode=False)
    except RagError as exc:
        if state["debug"]:
            raise
        err.print(f"[red]error:[/] {escape(str(exc))}")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except typer.Abort:
        sys.exit(1)
    except Exception as exc:  # click usage errors and the like
        import click

        # Typer vendors its own click: its usage errors (a bad option value) are not click's classes.
        if isinstance(exc, click.ClickException | typer.TyperException) and hasattr(exc, "show"):
            exc.show()
            sys.exit(exc.exit_code)
        raise
    sys.exit(code if isinstance(code, int) else 0)
