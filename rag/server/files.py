"""`GET /api/files/{file}`: the original file of an indexed document, so a citation can open it at its page
(`#page=N` for PDFs). Only names the index lists are served, from the path the index recorded: nothing the
caller sends becomes a path."""

from __future__ import annotations

import mimetypes

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from rag.server.answering import pipeline_of

router = APIRouter(prefix="/api/files", tags=["files"])


@router.get("/{file:path}")
async def original(file: str, request: Request) -> FileResponse:
    path = await run_in_threadpool(pipeline_of(request).catalog.source, file)
    media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    # inline: a browser shows a PDF in its viewer (which reads #page=N); nosniff: never run it as a page
    return FileResponse(path, media_type=media, content_disposition_type="inline", filename=path.name,
                        headers={"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox"})
