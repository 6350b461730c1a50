"""`POST /api/ask`: a question in, server-sent events out: `token`, then `answer`. The question continues a stored
conversation (`conversation_id`, whose turns are the history) or starts one; the finished answer is stored as its
next turn, and the `answer` event names both."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sse_starlette.sse import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from rag.answer.result import Answer
from rag.conversation import Turn
from rag.errors import RagError
from rag.server.answering import (
    MAX_HISTORY_TURNS,
    MAX_TEXT_CHARS,
    answer_events,
    busy_response,
    check_question,
    first_event,
    pipeline_of,
    public_message,
)
from rag.server.conversations import ID_PATTERN, Caller, caller_of, store_of

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
    conversation_id: str | None = Field(None, pattern=ID_PATTERN, description="Continue this stored conversation "
                                        "(its turns are the history; `history` is then ignored); none = a new one.")


@router.post("/api/ask")
async def api_ask(body: AskRequest, request: Request) -> Response:
    """Server-sent events: `token` (data: {"text"}), then `answer` (the whole answer with citations, and the
    `conversation_id` and `answer_id` it was stored as)."""
    caller = caller_of(request)
    if body.conversation_id:
        stored = await run_in_threadpool(store_of(request).history, body.conversation_id, caller.require_identity())
        history = stored[-MAX_HISTORY_TURNS:]
    else:
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
            payload = await _stored(request, caller, body.conversation_id, question, data) \
                if isinstance(data, Answer) else {"text": data}
            yield {"event": name, "data": json.dumps(payload, ensure_ascii=False)}
            event = await anext(events, None)

    return EventSourceResponse(sse(), ping=15)


async def _stored(request: Request, caller: Caller, conversation_id: str | None, question: str,
                  answer: Answer) -> dict[str, Any]:
    """The answer event's data, once the answer is stored; an answer the store cannot take is still sent."""
    payload = answer.to_dict()
    try:
        turn = await run_in_threadpool(store_of(request).record, conversation_id, question, answer, caller.owner)
    except RagError as exc:
        payload["notices"] = [*payload["notices"], f"this answer was not saved: {public_message(exc)}"]
        return {**payload, "conversation_id": conversation_id, "answer_id": None}
    return {**payload, "conversation_id": turn.conversation_id, "answer_id": turn.answer_id}
