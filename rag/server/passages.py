"""`GET /api/passages/{id}`: one passage with the document text around it, for showing a citation in place."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from rag.server.answering import pipeline_of

router = APIRouter(prefix="/api/passages", tags=["passages"])
CONTEXT_CHARS = 600


@router.get("/{passage_id}")
async def passage(passage_id: str, request: Request) -> dict[str, Any]:
    pipeline = pipeline_of(request)
    found = await run_in_threadpool(pipeline.passage, passage_id)
    text = await run_in_threadpool(pipeline.document_text, found.file)
    start, end = max(0, found.start - CONTEXT_CHARS), min(len(text), found.end + CONTEXT_CHARS)
    return {**found.to_dict(), "context": {"start": start, "end": end, "text": text[start:end]}}
