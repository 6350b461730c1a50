"""An exclusive lock on the index folder, so a second process gets one clear line instead of a broken index."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from rag.errors import IndexLockedError


class IndexLock:
    def __init__(self, index_dir: Path) -> None:
        self.path = index_dir / ".lock"
        self._fd: int | None = None

    def acquire(self, owner: str = "") -> None:
        if self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(fd)
            holder = self.path.read_text(encoding="utf-8", errors="replace").strip()[:200] or "another process"
            raise IndexLockedError(
                f"the index at {self.path.parent} is in use by {holder}",
                "wait for it to finish or stop it; while `rag serve` runs, add documents through its page or API",
            ) from exc
        os.ftruncate(fd, 0)
        os.write(fd, (owner or f"rag (pid {os.getpid()})").encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
