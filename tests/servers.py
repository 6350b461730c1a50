"""Run the real app in-process for tests: uvicorn in a background thread, plus a tiny static file server that
gives a test page a second origin. Also a seeded index built once per session and copied for each server."""

from __future__ import annotations

import functools
import http.server
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from rag.config import Settings
from rag.models.resolve import PACKAGED_EMBEDDING_ID, PACKAGED_LLM_ID
from rag.pipeline import Pipeline

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "seeds"
_templates: dict[Path, Path] = {}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(app: Any, start_timeout: float = 60.0) -> Iterator[str]:
    """Serve `app` on a free port of 127.0.0.1 in a thread; yields the base URL, stops the server after."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=3)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + start_timeout
    while True:
        if not thread.is_alive():
            raise RuntimeError(f"the test server on port {port} stopped while starting")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the test server on port {port} did not start in {start_timeout:.0f} s")
        time.sleep(0.05)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(10)
        if thread.is_alive():  # a connection that will not close: stop waiting for it
            server.force_exit = True
            thread.join(5)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


@contextmanager
def serve_static(folder: Path) -> Iterator[str]:
    """Serve the files of `folder` over HTTP on another free port: a page of a second origin."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=httpd.serve_forever, name="static-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


# -- a seeded index, embedded once and copied for each server -------------------------------------------------

def _settings(corpus: Path, index: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "corpus_dir": corpus, "index_dir": index, "embedding_model": PACKAGED_EMBEDDING_ID,
        "llm_model": PACKAGED_LLM_ID, "offline": True, "n_ctx": 2048, "max_tokens": 96,
    }
    return Settings(**{**values, **overrides})


def seeded_template(base: Path) -> Path:
    """A folder with `corpus/` (the seed articles) and `index/` (them ingested), built once per `base`."""
    if base not in _templates:
        folder = base / "seeded-template"
        shutil.copytree(SEEDS, folder / "corpus")
        with Pipeline(_settings(folder / "corpus", folder / "index")) as pipeline:
            pipeline.ingest()
        _templates[base] = folder
    return _templates[base]


def seeded_pipeline(template: Path, folder: Path, llm: Any = None, **overrides: Any) -> Pipeline:
    """A Pipeline over a private copy of the seeded corpus and index in `folder`, ready to answer."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copytree(template / "corpus", folder / "corpus")
    # Qdrant Edge preallocates sparse files: keep the copy sparse (and quick).
    subprocess.run(["cp", "-r", "--sparse=always", str(template / "index"), str(folder / "index")], check=True)
    (folder / "index" / ".lock").unlink(missing_ok=True)
    pipeline = Pipeline(_settings(folder / "corpus", folder / "index", **overrides), llm=llm)
    report = pipeline.ingest()  # the copied index is current: nothing is embedded again
    assert len(report.unchanged) == len(list(SEEDS.iterdir())) and not report.new, report.summary()
    return pipeline


def fresh_pipeline(folder: Path, documents: dict[str, str], llm: Any = None, **overrides: Any) -> Pipeline:
    """A Pipeline over a new corpus of just `documents` (name → text), ingested."""
    corpus = folder / "corpus"
    corpus.mkdir(parents=True)
    for name, text in documents.items():
        (corpus / name).write_text(text, encoding="utf-8")
    pipeline = Pipeline(_settings(corpus, folder / "index", **overrides), llm=llm)
    pipeline.ingest()
    return pipeline


SHOTS = Path("/tmp/rag-shots")  # screenshots the browser tests leave, to look at
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
