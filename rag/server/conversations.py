"""`/api/conversations` and `/api/feedback`: stored conversations, and thumbs up or down on their answers.

Who sees what: the admin key (and a server without keys) sees every conversation. An ask-key caller names itself
with an `X-Client-Id` header (the widget keeps a random one per browser) and reaches only the conversations it
started; the store keeps a hash of that id, never the id. Anything else is "not found", not "forbidden", so an
id from someone else's browser says nothing about their conversations."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from rag.conversations import ConversationStore
from rag.server.access import Role
from rag.server.answering import pipeline_of

router = APIRouter(tags=["conversations"])
CLIENT_HEADER = "X-Client-Id"
_CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{16,128}")
ID_PATTERN = r"^[0-9a-f]{8,64}$"
MAX_COMMENT_CHARS = 2000


@dataclass(frozen=True)
class Caller:
    owner: str  # kept with the conversations it starts ("" when it did not name itself)
    sees: str | None  # whose conversations it may reach: None = everyone's (admin)

    def require_identity(self) -> str | None:
        if self.sees == "":
            raise HTTPException(422, f"an ask key reaches only its own conversations: send an {CLIENT_HEADER} "
                                     "header (16-128 letters, digits, - or _; the widget sends one)")
        return self.sees


def caller_of(request: Request) -> Caller:
    client = request.headers.get(CLIENT_HEADER)
    if client is not None and not _CLIENT_ID.fullmatch(client):
        raise HTTPException(422, f"{CLIENT_HEADER} must be 16-128 letters, digits, - or _")
    owner = hashlib.sha256(client.encode()).hexdigest() if client else ""
    admin = getattr(request.state, "role", Role.NONE) >= Role.ADMIN
    return Caller(owner=owner, sees=None if admin else owner)


def store_of(request: Request) -> ConversationStore:
    return pipeline_of(request).conversations


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    answer_id: str = Field(pattern=ID_PATTERN, description="The `answer_id` of an `answer` event.")
    rating: Literal["up", "down"]
    comment: str | None = Field(None, max_length=MAX_COMMENT_CHARS,
                                description="Optional; leaving it out keeps an earlier comment, \"\" removes it.")


@router.get("/api/conversations")
async def conversations(request: Request, limit: int = Query(50, ge=1, le=500)) -> list[dict[str, Any]]:
    """Most recently continued first: every conversation for the admin key, a client's own for an ask key."""
    sees = caller_of(request).require_identity()
    found = await run_in_threadpool(store_of(request).conversations, sees, limit)
    return [c.to_dict() for c in found]


@router.get("/api/conversations/{conversation_id}")
async def conversation(conversation_id: str, request: Request) -> dict[str, Any]:
    """Its turns: question, answer, citations, evidence, unsupported claims, models, timings and rating."""
    sees = caller_of(request).require_identity()
    found = await run_in_threadpool(store_of(request).get, conversation_id, sees)
    return found.to_dict()


@router.delete("/api/conversations/{conversation_id}")
async def delete_conversation(conversation_id: str, request: Request) -> dict[str, str]:
    sees = caller_of(request).require_identity()
    await run_in_threadpool(store_of(request).delete, conversation_id, sees)
    return {"deleted": conversation_id}


@router.post("/api/feedback")
async def feedback(body: FeedbackRequest, request: Request) -> dict[str, Any]:
    """Thumbs up or down, and an optional comment, on an answer of one of the caller's conversations."""
    sees = caller_of(request).require_identity()
    turn = await run_in_threadpool(store_of(request).rate, body.answer_id, body.rating, body.comment, sees)
    return {"answer_id": turn.answer_id, "conversation_id": turn.conversation_id, "rating": turn.rating,
            "comment": turn.comment, "rated_at": turn.rated_at}
