"""`POST /api/ask`: a question (with earlier turns) in, server-sent events out: `token`, then `answer`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sse_starlette.sse import EventSourceResponse

from rag.answer.result import Answer
from rag.conversation import Turn
from rag.server.answering import (
    MAX_HISTORY_TURNS,
    MAX_TEXT_CHARS,
    answer_events,
    busy_response,
    check_question,
    first_event,
    pipeline_of,
)

router = APIRouter(tags=["ask"])
FileName = Annotated[str, Field(max_length=1000)]


class HistoryTurn(BaseModel):
    question: str = Field(max_length=MAX_TEXT_CHARS)
    answer: str = Field(max_length=MAX_TEXT_CHARS)


class AskRequest(BaseModel):
    question: str = Field(min_length=1)
    history: list[HistoryTurn] = Field(default_factory=list, max_length=MAX_HISTORY_TURNS)
    top_k: int | None = Field(None, ge=1, le=50)
    files: list[FileName] | None = Field(None, max_length=100)


@router.post("/api/ask")
async def api_ask(body: AskRequest, request: Request) -> Response:
    """Server-sent events: `token` (data: {"text"}), then `answer` (the whole answer with citations)."""
    history = [Turn(t.question, t.answer) for t in body.history]
    question = check_question(pipeline_of(request), body.question)
    events = answer_events(request, question, history, body.top_k, body.files)
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
