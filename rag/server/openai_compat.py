"""The OpenAI-compatible endpoint (`/v1/models`, `/v1/chat/completions`, streaming or not): the last user message
is the question, earlier turns the history; citations come in extra fields."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, Response
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
from rag.server.ask import FileName

router = APIRouter(prefix="/v1", tags=["openai"])


class ChatMessage(BaseModel):
    role: str = Field(max_length=20)
    content: str = Field(max_length=MAX_TEXT_CHARS)


class ChatRequest(BaseModel):
    model: str = "rag"
    messages: list[ChatMessage] = Field(min_length=1, max_length=2 * MAX_HISTORY_TURNS + 2)
    stream: bool = False
    top_k: int | None = Field(None, ge=1, le=50)
    files: list[FileName] | None = Field(None, max_length=100)


def grounding_fields(answer: Answer) -> dict[str, Any]:
    """What the OpenAI-compatible endpoint adds to a completion: the citations and what no passage backs."""
    data = answer.to_dict()
    return {"citations": data["citations"], "refused": answer.refused, "unsupported": data["unsupported"]}


def split_messages(messages: list[ChatMessage]) -> tuple[str, list[Turn]]:
    *earlier, last = [m for m in messages if m.role in ("user", "assistant")] or [messages[-1]]
    if last.role != "user":
        raise HTTPException(400, "the last message must come from the user")
    history = [Turn(q.content, a.content) for q, a in zip(earlier[::2], earlier[1::2], strict=False)
               if q.role == "user" and a.role == "assistant"]
    return last.content, history


@router.get("/models")
async def models() -> dict[str, Any]:
    return {"object": "list", "data": [{"id": "rag", "object": "model", "created": 0, "owned_by": "rag"}]}


@router.post("/chat/completions")
async def chat_completions(body: ChatRequest, request: Request) -> Response:
    """OpenAI-compatible: the last user message is the question, earlier turns the history. Citations come
    in extra fields `citations`, `refused` and `unsupported` (in the last chunk of a stream)."""
    question, history = split_messages(body.messages)
    events = answer_events(request, check_question(pipeline_of(request), question), history, body.top_k,
                           body.files)
    kind, value = await first_event(events)
    if kind == "busy":
        return busy_response(value)
    base = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "created": int(time.time()), "model": "rag"}
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
            yield chunk({"content": data}) if name == "token" else chunk({}, "stop", **grounding_fields(data))
            event = await anext(events, None)
        yield {"data": "[DONE]"}

    return EventSourceResponse(sse(), ping=15)
