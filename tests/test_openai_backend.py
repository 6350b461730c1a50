"""rag against an OpenAI-compatible server: llama-cpp-python's own server, serving the packaged SmolLM2,
started as a subprocess; and against a URL where nothing listens."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag import Pipeline
from rag.config import Settings
from rag.errors import BackendUnavailableError, RagError
from rag.models.llm import OpenAICompatibleLLM

SERVER_START_SECONDS = 60.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _served_models(base_url: str) -> list[str]:
    with urllib.request.urlopen(f"{base_url}/models", timeout=2) as response:
        return [m["id"] for m in json.load(response)["data"]]


@pytest.fixture(scope="module")
def llama_server(smollm_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of a running `python -m llama_cpp.server` serving SmolLM2."""
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(smollm_path), "--host", "127.0.0.1",
           "--port", str(port), "--n_ctx", "2048", "--n_threads", str(os.cpu_count() or 1)]
    with log_path.open("wb") as log:
        server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while True:
            if server.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {server.returncode}:\n{_tail(log_path)}")
            try:
                if _served_models(base_url):
                    break
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"llama_cpp.server did not answer within {SERVER_START_SECONDS:.0f} s:\n{_tail(log_path)}"
                )
            time.sleep(0.25)
        yield base_url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=15)


def _tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def test_rag_streams_answers_from_an_openai_compatible_server(
    settings: Settings, llama_server: str, smollm_path: Path
) -> None:
    served = _served_models(llama_server)
    # A shorter prompt than the default keeps prompt processing on a small CI runner to a few seconds.
    server_settings = settings.model_copy(
        update={"grounding": "flag", "llm_base_url": llama_server, "max_tokens": 48, "context_tokens": 600}
    )
    with Pipeline(server_settings) as pipeline:
        assert len(pipeline.ingest().new) == 5
        assert isinstance(pipeline.llm, OpenAICompatibleLLM)
        stream = pipeline.ask("What did Joe Tsai say about open-source AI models?")
        pieces = list(stream)
        answer = stream.result
    assert len(pieces) > 1, f"the answer arrived in {len(pieces)} piece(s), not streamed"
    assert "".join(pieces).strip()
    # The name rag records is the one the server serves (llama_cpp.server names it after its --model path).
    assert answer.models["llm"] == served[0]
    assert Path(answer.models["llm"]).name == smollm_path.name
    assert answer.used_passages > 0
    timings = answer.timings
    assert timings["generated_tokens"] > 1 and timings["tokens_per_s"] > 0
    assert timings["total_ms"] >= timings["ttft_ms"] > 0 and timings["retrieval_ms"] >= 0


def _assert_one_line(error: RagError) -> None:
    message = str(error)
    assert message and "\n" not in message and "Traceback" not in message
    assert error.hint  # says what to do


def test_unreachable_server_is_a_one_line_backend_error(settings: Settings) -> None:
    url = f"http://127.0.0.1:{_free_port()}/v1"
    dead = settings.model_copy(update={"llm_base_url": url, "request_timeout": 5.0})
    started = time.monotonic()
    with Pipeline(dead) as pipeline, pytest.raises(BackendUnavailableError) as caught:
        pipeline.llm  # noqa: B018 - loading the backend asks the server for its model
    assert time.monotonic() - started < 30
    assert isinstance(caught.value, RagError)
    assert url in str(caught.value)
    _assert_one_line(caught.value)


def test_server_gone_while_asking_is_a_one_line_backend_error(settings: Settings) -> None:
    """With RAG_LLM_NAME set nothing contacts the server until the question: the failure comes mid-stream."""
    url = f"http://127.0.0.1:{_free_port()}/v1"
    named = settings.model_copy(update={"llm_base_url": url, "llm_name": "qwen2.5", "request_timeout": 5.0})
    with Pipeline(named) as pipeline:
        pipeline.ingest()
        stream = pipeline.ask("What did Joe Tsai say about open-source AI models?")
        with pytest.raises(BackendUnavailableError) as caught:
            list(stream)
    _assert_one_line(caught.value)
