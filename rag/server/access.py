"""Who may do what over HTTP: API keys with two scopes, a per-client rate limit, and a bounded fair queue
for the model. Pure logic; the server wires it into requests."""

from __future__ import annotations

import asyncio
import hmac
import math
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from enum import IntEnum

from rag.config import Settings


class Role(IntEnum):
    NONE = 0
    ASK = 1  # may ask questions and read the passages answers cite
    ADMIN = 2  # may do everything: read documents, upload, delete, use the UI


class Access:
    def __init__(self, settings: Settings) -> None:
        self._admin = settings.admin_key.get_secret_value()
        self._ask = settings.ask_key.get_secret_value()
        self.allowed_origins = set(settings.allowed_origins)

    @property
    def open(self) -> bool:
        """No key configured: a local, single-user server, where everything is allowed."""
        return not self._admin and not self._ask

    def role(self, key: str | None, origin: str | None) -> Role:
        if self.open:
            return Role.ADMIN
        if _same(key, self._admin):
            return Role.ADMIN
        if _same(key, self._ask):
            # An ask key lives in public pages: when origins are listed, only those pages may use it.
            if self.allowed_origins and origin not in self.allowed_origins:
                return Role.NONE
            return Role.ASK
        return Role.NONE


def _same(given: str | None, secret: str) -> bool:
    """Constant-time comparison; as bytes, because compare_digest refuses non-ASCII text (a header may hold any)."""
    if not given or not secret:
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), secret.encode("utf-8"))


class RateLimiter:
    """At most `per_minute` requests per client in any sliding minute."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._seen: dict[str, deque[float]] = {}

    def retry_after(self, client: str, now: float | None = None) -> float:
        """0 when the request may go ahead (and is counted), else the seconds to wait."""
        now = time.monotonic() if now is None else now
        window = self._seen.setdefault(client, deque())
        while window and now - window[0] >= 60:
            window.popleft()
        if len(window) >= self.per_minute:
            return 60 - (now - window[0])
        window.append(now)
        if len(self._seen) > 10_000:  # forget idle clients so memory stays bounded
            for name in [n for n, w in self._seen.items() if not w or now - w[-1] >= 60]:
                del self._seen[name]
        return 0.0


class QueueFull(Exception):
    """More questions are waiting than the queue holds."""


class AskQueue:
    """One generation at a time, first come first served, with at most `size` waiting. Remembers how long an
    answer takes, so that Retry-After tells a refused client when the queue will really have room."""

    def __init__(self, size: int, first_guess: float = 5.0) -> None:
        self.size = size
        self.waiting = 0
        self.seconds_per_answer = first_guess
        self._turn = asyncio.Semaphore(1)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self.waiting >= self.size:
            raise QueueFull
        self.waiting += 1
        try:
            await self._turn.acquire()
        finally:
            self.waiting -= 1
        started = time.monotonic()
        try:
            yield
        finally:
            self._turn.release()
            # A moving average: recent answers count most, one odd answer does not swing it.
            self.seconds_per_answer += 0.2 * (time.monotonic() - started - self.seconds_per_answer)

    def retry_after_seconds(self) -> int:
        return max(1, min(120, math.ceil(self.seconds_per_answer * (self.waiting + 1))))
