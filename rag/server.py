"""`rag serve`: FastAPI with the JSON/SSE API, an OpenAI-compatible API, the widget script and the Gradio UI.

Front end only: every route parses input, calls the Pipeline and renders the result."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from importlib import resources
from typing import Annotated, Any

from fastapi import FastAPI, File, HTTPException, Request, UploadFile
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sse_starlette.sse import EventSourceResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from . import __version__
from .access import Access, AskQueue, QueueFull, RateLimiter, Role
from .answer import Answer
from .conversation import Turn
from .errors import NotFoundError, RagError
from .pipeline import Pipeline

# Only these GETs need no key; any other method on the same paths (Gradio has a POST /login) needs one.
PUBLIC = {"/healthz", "/widget.js", "/login"}
ASK_ROUTES = {"/api/ask", "/v1/chat/completions", "/v1/models"}
UPLOAD_ROUTES = {"/api/documents", "/gradio_api/upload"}
MAX_HISTORY_TURNS = 20
MAX_FILES_PER_UPLOAD = 20
MAX_TEXT_CHARS = 20_000  # one earlier turn or chat message; the question itself has its own, smaller limit
MAX_BODY_BYTES = 1 << 20  # every request body but uploads
_ABSOLUTE_PATH = re.compile(r"(?<![\w:])/(?:[^\s/:]+/)+([^\s/:]+)")


FileName = Annotated[str, Field(max_length=1000)]


class HistoryTurn(BaseModel):
    question: str = Field(max_length=MAX_TEXT_CHARS)
    answer: str = Field(max_length=MAX_TEXT_CHARS)


class AskRequest(BaseModel):
    question: str = Field(min_length=1)
    history: list[HistoryTurn] = Field(default_factory=list, max_length=MAX_HISTORY_TURNS)
    top_k: int | None = Field(None, ge=1, le=50)
    files: list[FileName] | None = Field(None, max_length=100)


class ChatMessage(BaseModel):
    role: str = Field(max_length=20)
    content: str = Field(max_length=MAX_TEXT_CHARS)


class ChatRequest(BaseModel):
    model: str = "rag"
    messages: list[ChatMessage] = Field(min_length=1, max_length=2 * MAX_HISTORY_TURNS + 2)
    stream: bool = False
    top_k: int | None = Field(None, ge=1, le=50)
    files: list[FileName] | None = Field(None, max_length=100)


def public_message(error: Exception) -> str:
    """An error as a client may see it: one line, no folders of this machine."""
    return _ABSOLUTE_PATH.sub(r"\1", str(error)).splitlines()[0]


def grounding_fields(answer: Answer) -> dict[str, Any]:
    """What the OpenAI-compatible endpoint adds to a completion: the citations and what no passage backs."""
    data = answer.to_dict()
    return {"citations": data["citations"], "refused": answer.refused, "unsupported": data["unsupported"]}


def _key(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.headers.get("x-api-key") or request.cookies.get("rag_key")


class BodyLimit:
    """Refuses request bodies over their limit before anything stores them (by Content-Length at once, a chunked
    body as its bytes arrive): uploads may be large, everything else is small. Starlette's limiter does the work;
    this only picks the limit by path, which a per-route limit cannot do for Gradio's own upload route."""

    def __init__(self, app: ASGIApp, upload_bytes: int) -> None:
        self.uploads = RequestBodyLimitMiddleware(app, max_body_size=upload_bytes)
        self.others = RequestBodyLimitMiddleware(app, max_body_size=MAX_BODY_BYTES)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limited = self.uploads if scope.get("path") in UPLOAD_ROUTES else self.others
        await limited(scope, receive, send)


def create_app(pipeline: Pipeline, mount_ui: bool = True) -> FastAPI:
    settings = pipeline.settings
    access = Access(settings)
    limiter = RateLimiter(settings.ask_rate_per_minute)
    queue = AskQueue(settings.queue_size)
    max_upload_bytes = int(settings.max_upload_mb * 1e6)
    app = FastAPI(title="rag", version=__version__, description="Answers from your documents, with citations.")
    app.state.pipeline = pipeline

    @app.middleware("http")
    async def authorise(request: Request, call_next: Any) -> Response:
        path = request.url.path
        # CORS preflights never get here (the CORS middleware answers them), so OPTIONS is not exempt either.
        if path in PUBLIC and request.method in ("GET", "HEAD"):
            return await call_next(request)
        role = access.role(_key(request), request.headers.get("origin"))
        needed = Role.ASK if path in ASK_ROUTES or path.startswith("/api/passages/") else Role.ADMIN
        if role < needed:
            if role == Role.NONE and "text/html" in request.headers.get("accept", ""):
                return HTMLResponse("<p>This rag server needs a key: open <code>/login?key=YOUR_KEY</code>.</p>",
                                    status_code=401)
            return JSONResponse({"error": "a valid API key is required for this"}, status_code=401 if
                                role == Role.NONE else 403)
        if role == Role.ASK and request.method == "POST":
            client = f"{_key(request)}|{request.client.host if request.client else ''}"
            wait = limiter.retry_after(client)
            if wait:
                return JSONResponse({"error": "too many questions; slow down"}, status_code=429,
                                    headers={"Retry-After": str(int(wait) + 1)})
        return await call_next(request)

    app.add_middleware(BodyLimit, upload_bytes=max_upload_bytes * MAX_FILES_PER_UPLOAD + (1 << 20))
    # Outermost, so preflight requests are answered before any key is asked for.
    app.add_middleware(
        CORSMiddleware, allow_origins=list(access.allowed_origins), allow_methods=["GET", "POST", "DELETE"],
        allow_headers=["Authorization", "Content-Type", "X-API-Key"], expose_headers=["Retry-After"], max_age=600,
    )

    @app.exception_handler(RagError)
    async def rag_error(request: Request, exc: RagError) -> JSONResponse:
        status = 404 if isinstance(exc, NotFoundError) else 400
        return JSONResponse({"error": public_message(exc)}, status_code=status)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "version": __version__}

    @app.get("/login", include_in_schema=False)
    async def login(key: str) -> Response:
        if access.role(key, None) < Role.ADMIN:
            return JSONResponse({"error": "not an admin key"}, status_code=401)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie("rag_key", key, httponly=True, samesite="strict", max_age=30 * 86400)
        return response

    @app.get("/widget.js", include_in_schema=False)
    async def widget() -> Response:
        script = resources.files("ui").joinpath("widget.js").read_text(encoding="utf-8")
        return Response(script, media_type="text/javascript", headers={"Cache-Control": "max-age=300"})

    def check_question(question: str) -> str:
        if len(question) > settings.max_question_chars:
            raise HTTPException(413, f"questions are limited to {settings.max_question_chars} characters")
        return question

    async def answer_events(request: Request, question: str, history: list[Turn], top_k: int | None,
                            files: list[str] | None) -> AsyncIterator[tuple[str, Any]]:
        """('token', text) events, then ('answer', Answer); the model is freed if the client goes away."""
        try:
            async with queue.slot():
                stream = await run_in_threadpool(pipeline.ask, question, history, top_k, files, conversation=True)
                try:
                    async for piece in iterate_in_threadpool(iter(stream)):
                        if await request.is_disconnected():
                            stream.cancel()
                            return
                        yield "token", piece
                finally:
                    stream.cancel()
                yield "answer", stream.result
        except QueueFull:
            yield "busy", queue.retry_after_seconds()

    def busy_response(seconds: int) -> JSONResponse:
        return JSONResponse({"error": "the model is busy; try again shortly"}, status_code=429,
                            headers={"Retry-After": str(seconds)})

    async def first_event(events: AsyncIterator[tuple[str, Any]]) -> tuple[str, Any]:
        """Pull one event before responding, so a full queue or a bad request gets a real status code."""
        try:
            return await events.__anext__()
        except RagError as exc:
            raise HTTPException(404 if isinstance(exc, NotFoundError) else 400, public_message(exc)) from exc

    @app.post("/api/ask")
    async def api_ask(body: AskRequest, request: Request) -> Response:
        """Server-sent events: `token` (data: {"text"}), then `answer` (the whole answer with citations)."""
        history = [Turn(t.question, t.answer) for t in body.history]
        events = answer_events(request, check_question(body.question), history, body.top_k, body.files)
        kind, value = await first_event(events)
        if kind == "busy":
            return busy_response(value)

        async def sse() -> AsyncIterator[dict[str, str]]:
            event: tuple[str, Any] | None = (kind, value)
            while event is not None:
                name, data = event
                payload = data.to_dict() if isinstance(data, Answer) else {"text": data}
                yield {"event": name, "data": json.dumps(payload, ensure_ascii=False)}
                event = await anext(events, None)

        return EventSourceResponse(sse(), ping=15)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": "rag", "object": "model", "created": 0, "owned_by": "rag"}]}

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatRequest, request: Request) -> Response:
        """OpenAI-compatible: the last user message is the question, earlier turns the history. Citations come
        in extra fields `citations`, `refused` and `unsupported` (in the last chunk of a stream)."""
        *earlier, last = [m for m in body.messages if m.role in ("user", "assistant")] or [body.messages[-1]]
        if last.role != "user":
            raise HTTPException(400, "the last message must come from the user")
        history = [Turn(q.content, a.content) for q, a in zip(earlier[::2], earlier[1::2], strict=False)
                   if q.role == "user" and a.role == "assistant"]
        events = answer_events(request, check_question(last.content), history, body.top_k, body.files)
        kind, value = await first_event(events)
        if kind == "busy":
            return busy_response(value)
        ident, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        base = {"id": ident, "created": created, "model": "rag"}
        if not body.stream:
            answer = value
            async for _, value in events:
                answer = value
            return JSONResponse({**base, "object": "chat.completion", "choices": [{
                "index": 0, "message": {"role": "assistant", "content": answer.answer}, "finish_reason": "stop"}],
                "usage": {"completion_tokens": answer.timings.get("generated_tokens", 0)},
                **grounding_fields(answer)})

        def chunk(delta: dict[str, str], finish: str | None = None, **extra: Any) -> dict[str, str]:
            data = {**base, "object": "chat.completion.chunk",
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
            return {"data": json.dumps(data, ensure_ascii=False)}

        async def sse() -> AsyncIterator[dict[str, str]]:
            yield chunk({"role": "assistant", "content": ""})
            event: tuple[str, Any] | None = (kind, value)
            while event is not None:
                name, data = event
                if name == "token":
                    yield chunk({"content": data})
                else:
                    yield chunk({}, "stop", **grounding_fields(data))
                event = await anext(events, None)
            yield {"data": "[DONE]"}

        return EventSourceResponse(sse(), ping=15)

    @app.get("/api/documents")
    async def documents() -> list[dict[str, Any]]:
        status = await run_in_threadpool(pipeline.status)
        return status.to_dict()["files"]  # type: ignore[return-value]

    @app.post("/api/documents")
    async def upload(request: Request, files: Annotated[list[UploadFile], File()]) -> dict[str, Any]:
        if len(files) > MAX_FILES_PER_UPLOAD:
            raise HTTPException(413, f"at most {MAX_FILES_PER_UPLOAD} files per upload")
        declared = int(request.headers.get("content-length") or 0)
        if declared > max_upload_bytes * len(files) + 1e6:
            raise HTTPException(413, f"uploads are limited to {settings.max_upload_mb:g} MB per file")
        reports = []
        for item in files:
            chunks = iter(lambda item=item: item.file.read(1 << 20), b"")
            try:
                report = await run_in_threadpool(pipeline.upload, item.filename or "upload", chunks)
            except RagError as exc:
                too_big = "larger than" in str(exc)
                raise HTTPException(413 if too_big else 400, public_message(exc)) from exc
            reports.append(report.to_dict())
        return {"ingested": reports}

    @app.delete("/api/documents/{file:path}")
    async def delete_document(file: str) -> dict[str, str]:
        await run_in_threadpool(pipeline.remove, file)
        return {"removed": file}

    @app.get("/api/passages/{passage_id}")
    async def passage(passage_id: str) -> dict[str, Any]:
        found = await run_in_threadpool(pipeline.passage, passage_id)
        text = await run_in_threadpool(pipeline.document_text, found.file)
        start, end = max(0, found.start - 600), min(len(text), found.end + 600)
        return {**found.to_dict(), "context": {"start": start, "end": end, "text": text[start:end]}}

    if mount_ui:
        import gradio as gr

        from ui import render
        from ui.app import build_app

        # show_error=False: an unexpected exception's text (paths of this machine) stays in the server log.
        app = gr.mount_gradio_app(app, build_app(pipeline), path="/", footer_links=[], css=render.CSS,
                                  max_file_size=max_upload_bytes, show_error=False)
    return app
