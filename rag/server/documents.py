"""`/api/documents`: list the indexed documents, upload files (ingested at once), remove one."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, HTTPException, Request, UploadFile
from starlette.concurrency import run_in_threadpool

from rag.errors import RagError
from rag.server.answering import pipeline_of, public_message
from rag.server.guard import MAX_FILES_PER_UPLOAD

router = APIRouter(prefix="/api/documents", tags=["documents"])


@router.get("")
async def documents(request: Request) -> list[dict[str, Any]]:
    status = await run_in_threadpool(pipeline_of(request).status)
    return status.to_dict()["files"]  # type: ignore[return-value]


@router.post("")
async def upload(request: Request, files: Annotated[list[UploadFile], File()]) -> dict[str, Any]:
    pipeline = pipeline_of(request)
    max_mb = pipeline.settings.max_upload_mb
    if len(files) > MAX_FILES_PER_UPLOAD:
        raise HTTPException(413, f"at most {MAX_FILES_PER_UPLOAD} files per upload")
    declared = int(request.headers.get("content-length") or 0)
    if declared > max_mb * 1e6 * len(files) + 1e6:
        raise HTTPException(413, f"uploads are limited to {max_mb:g} MB per file")
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


@router.delete("/{file:path}")
async def delete_document(file: str, request: Request) -> dict[str, str]:
    await run_in_threadpool(pipeline_of(request).remove, file)
    return {"removed": file}
