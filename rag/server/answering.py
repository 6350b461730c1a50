"""What the two asking routers share (`/api/ask` and the OpenAI-compatible endpoint): the question's limits,
the model's queue, and the answer as a stream of events."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from rag.conversation import Turn
from rag.errors import NotFoundError, RagError
from rag.pipeline import Pipeline
from rag.server.access import QueueFull

MAX_HISTORY_TURNS = 20
MAX_TEXT_CHARS = 20_000  # one earlier turn or chat message; the question itself has its own, smaller limit
_ABSOLUTE_PATH = re.compile(r"(?<![\w:])/(?:[^\s/:]+/)+([^\s/:]+)")


def public_message(error: Exception) -> str:
    """An error as a client may see it: one line, no folders of this machine."""
    return _ABSOLUTE_PATH.sub(r"\1", str(error)).splitlines()[0]


def pipeline_of(request: Request) -> Pipeline:
    return request.app.state.pipeline


def check_question(pipeline: Pipeline, question: str) -> str:
    limit = pipeline.settings.max_question_chars
    if len(question) > limit:
        raise HTTPException(413, f"questions are limited to {limit} characters")
    return question


async def answer_events(request: Request, question: str, history: list[Turn], top_k: int | None,
                        files: list[str] | None) -> AsyncIterator[tuple[str, Any]]:
    """('token', text) events, then ('answer', Answer); the model is freed if the client goes away."""
    pipeline, queue = pipeline_of(request), request.app.state.queue
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







