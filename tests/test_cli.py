"""The `rag` command as a user runs it: output, JSON, exit codes, and one-line errors without tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import SEEDS


def rag(*args: str, env: dict[str, str] | None = None, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rag", *args], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "RAG_EMBEDDING_MODEL": "sentence-transformers/all-MiniLM-L6-v2", **(env or {})},
    )


@pytest.fixture
def index(tmp_path: Path) -> Path:
    path = tmp_path / "ix"
    done = rag("--index-dir", str(path), "ingest", str(SEEDS))
    assert done.returncode == 0, done.stderr
    assert "5 new, 0 changed, 0 unchanged" in done.stdout
    return path


def test_ingest_search_status_and_reingest(index: Path) -> None:
    again = rag("--index-dir", str(index), "ingest", str(SEEDS))
    assert "0 new, 0 changed, 5 unchanged" in again.stdout
    found = rag("--index-dir", str(index), "search", "first open-source model Qwen-7B", "--top-k", "3", "--json")
    passages = json.loads(found.stdout)
    assert len(passages) == 3 and {"file", "start", "end", "score", "text"} <= set(passages[0])
    status = json.loads(rag("--index-dir", str(index), "status", "--json").stdout)
    assert status["documents"] == 5 and status["chunks"] > 0
    assert status["embedding_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    text = rag("--index-dir", str(index), "status").stdout
    assert "000_a016bfee2c19fd01.txt" in text and "5 documents" in text


def test_ask_json_with_the_real_model(index: Path) -> None:
    done = rag("--index-dir", str(index), "ask", "Which model was Alibaba's first open-source model?", "--json")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["citations"] and any("Qwen-7B" in c["text"] for c in answer["citations"])
    assert {"answer", "refused", "answer_lang", "passages", "timings", "models"} <= set(answer)


def test_ask_prints_answer_then_sources(index: Path) -> None:
    done = rag("--index-dir", str(index), "ask", "Which model was Alibaba's first open-source model?")
    assert done.returncode == 0, done.stderr
    assert "Sources" in done.stdout and "[1:" not in done.stdout.split("Sources")[0][:0]


def test_skipped_files_give_nonzero_exit_and_a_line_each(tmp_path: Path) -> None:
    corpus = tmp_path / "docs"
    corpus.mkdir()
    (corpus / "good.md").write_text("# Good\nQwen is a model family from Alibaba.\n")
    (corpus / "empty.txt").write_bytes(b"")
    done = rag("--index-dir", str(tmp_path / "ix"), "ingest", str(corpus))
    assert done.returncode == 3
    assert "skipped empty.txt: empty file" in done.stderr
    assert "1 new" in done.stdout and "1 skipped" in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["search", "anything"], "the index is empty"),
        (["ingest", "/no/such/folder"], "no such file or folder"),
        (["remove", "nope.txt"], "not in the index"),
    ],
)
def test_expected_failures_are_one_line_without_traceback(tmp_path: Path, args: list[str], message: str) -> None:
    done = rag("--index-dir", str(tmp_path / "ix"), *args)
    assert done.returncode != 0
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_bad_config_file_and_config_command(tmp_path: Path) -> None:
    (tmp_path / "rag.toml").write_text("top_k = 0\n")
    done = rag("status")
    assert done.returncode == 2 and "invalid setting top_k" in done.stderr and "Traceback" not in done.stderr
    (tmp_path / "rag.toml").write_text("top_k = 4\n")
    shown = rag("--index-dir", "elsewhere", "config", env={"RAG_CHUNK_SIZE": "120"}).stdout
    lines = {line.split()[0]: line for line in shown.splitlines() if line.strip()}
    assert "rag.toml" in lines["top_k"] and "env RAG_CHUNK_SIZE" in lines["chunk_size"]
    assert "flag" in lines["index_dir"] and "default" in lines["collection"]


def test_help_teaches() -> None:
    done = rag("--help")
    assert done.returncode == 0
    for command in ("ingest", "search", "ask", "chat", "status", "remove", "config"):
        assert command in done.stdout


def test_missing_llm_file_is_one_line(index: Path) -> None:
    done = rag("--index-dir", str(index), "--llm-model", "/nope/model.gguf", "ask", "What is Qwen?")
    assert done.returncode == 1 and "LLM file /nope/model.gguf not found" in done.stderr
    assert "Traceback" not in done.stderr
