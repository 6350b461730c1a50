"""Every request passes here first: the key it carries decides what it may reach, askers are rate-limited, and
bodies over their limit are refused while they arrive."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from rag.server.access import Access, RateLimiter, Role

# Only these GETs need no key; any other method on the same paths (Gradio has a POST /login) needs one.
PUBLIC = {"/healthz", "/widget.js", "/login"}
ASK_ROUTES = {"/api/ask", "/v1/chat/completions", "/v1/models", "/api/feedback", "/api/conversations"}
# Reachable with the ask key: what an answer cites (the passage, the original file at its page), and the
# conversations, where each route then limits an ask-key caller to its own.
ASK_PREFIXES = ("/api/passages/", "/api/files/", "/api/conversations/")
UPLOAD_ROUTES = {"/api/documents", "/gradio_api/upload"}
MAX_FILES_PER_UPLOAD = 20
MAX_BODY_BYTES = 1 << 20  # every request body but uploads

CallNext = Callable[[Request], Awaitable[Response]]


def request_key(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.headers.get("x-api-key") or request.cookies.get("rag_key")


def authorise(access: Access, limiter: RateLimiter) -> Callable[[Request, CallNext], Awaitable[Response]]:
    """The HTTP middleware: public GETs pass, everything else needs a key of the route's role."""

    async def middleware(request: Request, call_next: CallNext) -> Response:
        path = request.url.path
        # CORS preflights never get here (the CORS middleware answers them), so OPTIONS is not exempt either.
        if path in PUBLIC and request.method in ("GET", "HEAD"):
            return await call_next(request)
        role = access.role(request_key(request), request.headers.get("origin"))
        needed = Role.ASK if path in ASK_ROUTES or path.startswith(ASK_PREFIXES) else Role.ADMIN
        request.state.role = role
        if role < needed:
            if role == Role.NONE and "text/html" in request.headers.get("accept", ""):
                return HTMLResponse("<p>This rag server needs a key: open <code>/login?key=YOUR_KEY</code>.</p>",
                                    status_code=401)
            return JSONResponse({"error": "a valid API key is required for this"}, status_code=401 if
                                role == Role.NONE else 403)
        if role == Role.ASK and request.method == "POST":
            client = f"{request_key(request)}|{request.client.host if request.client else ''}"
            wait = limiter.retry_after(client)
            if wait:
                return JSONResponse({"error": "too many questions; slow down"}, status_code=429,
                                    headers={"Retry-After": str(int(wait) + 1)})
        return await call_next(request)

    return middleware


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
