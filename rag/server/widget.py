"""The browser's ways in that need no key: the widget script for other pages, and `/login`, which turns an admin
key into a cookie for the chat UI."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from rag.server.access import Role

router = APIRouter(include_in_schema=False)


@router.get("/widget.js")
async def widget() -> Response:
    script = resources.files("ui").joinpath("widget.js").read_text(encoding="utf-8")
    return Response(script, media_type="text/javascript", headers={"Cache-Control": "max-age=300"})


@router.get("/login")
async def login(key: str, request: Request) -> Response:
    if request.app.state.access.role(key, None) < Role.ADMIN:
        return JSONResponse({"error": "not an admin key"}, status_code=401)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie("rag_key", key, httponly=True, samesite="strict", max_age=30 * 86400)
    return response
