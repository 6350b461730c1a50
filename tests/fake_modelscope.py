"""A loopback stand-in for ModelScope's download API, for tests: the endpoints the `modelscope` package calls to
list a model's files and fetch one (modelscope_hub/_legacy_api.py), answered in the JSON shapes it parses, with
files from this machine. Every request is recorded, so a test can count what was downloaded."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

_PREFIX = "/api/v1/models/"


@dataclass
class FakeModelScope:
    """`repos` maps a model id (OWNER/NAME) to its files: path in the repo -> file on disk."""

    repos: dict[str, dict[str, Path]]
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    url: str = ""

    def downloads(self, repo: str | None = None) -> list[str]:
        """The files whose bytes were asked for (of one repo, or of all)."""
        return [query["FilePath"] for path, query in self.requests
                if path.endswith("/repo") and "FilePath" in query
                and (repo is None or path == f"{_PREFIX}{repo}/repo")]

    def listing(self, repo: str) -> list[dict[str, object]]:
        return [{"Name": Path(name).name, "Path": name, "Type": "blob", "Size": path.stat().st_size,
                 "Sha256": _sha256(path), "Revision": "0" * 40} for name, path in sorted(self.repos[repo].items())]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def folder_files(folder: Path) -> dict[str, Path]:
    """A model folder as repo files (path relative to the folder -> file)."""
    return {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}


def _handler(hub: FakeModelScope) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # the test output is the assertions, not an access log
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            url = urlparse(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            path = unquote(url.path)
            hub.requests.append((path, query))
            repo, _, rest = path.removeprefix(_PREFIX).partition("/repo")
            if not path.startswith(_PREFIX) or repo.count("/") != 1 or repo not in hub.repos:
                return self._json(404, {"Code": 10010205001, "Message": f"no such model: {path}", "Success": False})
            if rest == "/files":
                return self._json(200, {"Code": 200, "Data": {"Files": hub.listing(repo)}, "Success": True})
            if rest == "" and "FilePath" in query:
                return self._file(hub.repos[repo].get(query["FilePath"]))
            self._json(404, {"Code": 10010205001, "Message": "not found", "Success": False})

        def _json(self, status: int, body: dict[str, object]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _file(self, source: Path | None) -> None:
            if source is None:
                return self._json(404, {"Code": 10010205001, "Message": "no such file", "Success": False})
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(source.stat().st_size))
            self.end_headers()
            with source.open("rb") as f:
                shutil.copyfileobj(f, self.wfile)

    return Handler


@contextmanager
def serve_modelscope(repos: dict[str, dict[str, Path]]) -> Iterator[FakeModelScope]:
    hub = FakeModelScope(repos)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    server.daemon_threads = True
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
