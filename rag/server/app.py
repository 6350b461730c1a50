"""`rag serve`'s application: the access rules around one router per feature (asking, the OpenAI-compatible
endpoint, documents, passages, conversations and feedback, the widget), and the Gradio chat UI mounted at `/`.

Front end only: every route parses input, calls the Pipeline and renders the result."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from rag import __version__
from rag.errors import NotFoundError, RagError
from rag.pipeline import Pipeline
from rag.server import ask, conversations, documents, files, openai_compat, passages, widget
from rag.server.access import Access, AskQueue, RateLimiter
from rag.server.answering import public_message
from rag.server.guard import MAX_FILES_PER_UPLOAD, BodyLimit, authorise


def create_app(pipeline: Pipeline, mount_ui: bool = True) -> FastAPI:
    settings = pipeline.settings
    access = Access(settings)
    max_upload_bytes = int(settings.max_upload_mb * 1e6)
    app = FastAPI(title="rag", version=__version__, description="Answers from your documents, with citations.")
    app.state.pipeline = pipeline
    app.state.access = access
    app.state.queue = AskQueue(settings.queue_size)

    app.middleware("http")(authorise(access, RateLimiter(settings.ask_rate_per_minute)))
    app.add_middleware(BodyLimit, upload_bytes=max_upload_bytes * MAX_FILES_PER_UPLOAD + (1 << 20))
    # Outermost, so preflight requests are answered before any key is asked for.
    app.add_middleware(
        CORSMiddleware, allow_origins=list(access.allowed_origins), allow_methods=["GET", "POST", "DELETE"],
        allow_headers=["Authorization", "Content-Type", "X-API-Key", conversations.CLIENT_HEADER],
        expose_headers=["Retry-After"], max_age=600,
    )

    @app.exception_handler(RagError)
    async def rag_error(request: Request, exc: RagError) -> JSONResponse:
        status = 404 if isinstance(exc, NotFoundError) else 400
        return JSONResponse({"error": public_message(exc)}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        """One line naming the first bad field, not pydantic's list of error objects."""
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"] if p != "body") or "body"
        return JSONResponse({"detail": f"{where}: {first['msg']}"}, status_code=422)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "version": __version__}

    for feature in (ask, openai_compat, documents, passages, files, conversations, widget):
        app.include_router(feature.router)
    return mount_chat_ui(app, pipeline, max_upload_bytes) if mount_ui else app


def mount_chat_ui(app: FastAPI, pipeline: Pipeline, max_upload_bytes: int) -> FastAPI:
    """The server hosts the UI (as private-gpt's launcher does); the UI itself knows only the Pipeline."""
    import gradio as gr

    from ui import render
    from ui.app import build_app

    # show_error=False: an unexpected exception's text (paths of this machine) stays in the server log.
    return gr.mount_gradio_app(app, build_app(pipeline), path="/", footer_links=[], css=render.CSS,
                               max_file_size=max_upload_bytes, show_error=False)
