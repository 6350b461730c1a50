"""Crashes and concurrency: `rag ingest` killed with SIGKILL at named points (tests/crashpoints.py), then run
again, ends with the very index a clean ingest builds, and `rag status` never calls a half-written document
complete in between. Two processes on one embedded index: the second gets one clear line, nothing breaks.

The commands run in children forked from one helper that has the embedding model loaded (see crashpoints.py);
one scenario runs every step as a separate real process to show the two agree.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rag.ingest.ingester import node_id
from rag.models.resolve import PACKAGED_EMBEDDING_ID

from .crashpoints import HELPER, PAUSE_ENV, POINTS, Done, ForkServer, make_corpus, snapshot

# Short chunks and batches, so four short files make dozens of chunks and several batches and upserts each.
ENV = {"RAG_EMBEDDING_MODEL": PACKAGED_EMBEDDING_ID, "RAG_CHUNK_SIZE": "48", "RAG_CHUNK_OVERLAP": "8",
       "RAG_EMBEDDING_BATCH_SIZE": "4", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


@pytest.fixture(scope="module")
def rag(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ForkServer]:
    server = ForkServer(tmp_path_factory.mktemp("forks"), ENV)
    yield server
    server.close()


def change_corpus(corpus: Path) -> None:
    """doc2 rewritten (fewer chunks than before, but several upsert batches) and a new doc5."""
    sentences = [f"Qwen2.5-Max release note {n}: the model was trained on over 20 trillion tokens of text and code, "
                 f"then tuned with supervised fine-tuning and reinforcement learning from human feedback."
                 for n in range(1, 7)]
    (corpus / "doc2.txt").write_text("\n\n".join(sentences) + "\n", encoding="utf-8")
    (corpus / "doc5.md").write_text("# Notes\n\nTongyi Qianwen is the Chinese name of Qwen. It means 'asking a "
                                    "thousand questions'.\n", encoding="utf-8")


@dataclass
class Reference:
    points: dict[str, dict[str, Any]]
    files: dict[str, tuple[str, int]]  # file -> (sha256, chunks), every one complete


def status_of(rag: ForkServer, index: Path) -> dict[str, Any]:
    done = rag("--index-dir", str(index), "status", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def reference_of(rag: ForkServer, index: Path, corpus: Path) -> Reference:
    done = rag("--index-dir", str(index), "ingest", str(corpus))
    assert done.returncode == 0, done.stderr
    files = status_of(rag, index)["files"]
    assert {f["status"] for f in files} == {"complete"}
    return Reference(snapshot(index), {f["file"]: (f["sha256"], f["chunks"]) for f in files})


@pytest.fixture(scope="module")
def references(rag: ForkServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Clean ingests, made once: the corpus as is, changed, and with doc3 deleted; plus the index of the first."""
    root = tmp_path_factory.mktemp("reference")
    corpus = make_corpus(root / "corpus")
    plain = reference_of(rag, root / "index", corpus)
    changed_corpus = make_corpus(root / "changed")
    change_corpus(changed_corpus)
    changed = reference_of(rag, root / "changed-index", changed_corpus)
    pruned = Reference({k: p for k, p in plain.points.items() if p["file"] != "doc3.txt"},
                       {f: v for f, v in plain.files.items() if f != "doc3.txt"})
    assert len(plain.files) == 4 and all(chunks >= 5 for _, chunks in plain.files.values())
    return {"fresh": plain, "rebuild": plain, "changed": changed, "pruned": pruned}


def assert_nothing_half_written_is_complete(status: dict[str, Any], points: dict[str, dict[str, Any]],
                                            reference: Reference) -> int:
    """Every document `rag status` calls complete has exactly its chunks in the vector store, as a clean
    ingest writes them; returns how many are complete."""
    by_file: dict[str, set[str]] = defaultdict(set)
    for key, point in points.items():
        by_file[point["file"]].add(key)
    complete = [f for f in status["files"] if f["status"] == "complete"]
    for f in complete:
        assert (f["sha256"], f["chunks"]) == reference.files[f["file"]], f"{f['file']} is complete but stale"
        wanted = {node_id(f["file"], f["sha256"], i) for i in range(f["chunks"])}
        assert by_file[f["file"]] == wanted, f"{f['file']} is shown complete but its chunks are not all there"
        for key in wanted:
            assert points[key]["text"] == reference.points[key]["text"]
    return len(complete)


def assert_same_index(index: Path, status: dict[str, Any], reference: Reference) -> None:
    points = snapshot(index)
    assert len(points) == len(reference.points)  # same count
    assert set(points) == set(reference.points)  # same chunk ids: none missing, none extra
    assert len({(p["file"], p["chunk"]) for p in points.values()}) == len(points)  # no chunk twice
    for key, point in points.items():
        want = reference.points[key]
        assert {k: v for k, v in point.items() if k != "vector"} == {k: v for k, v in want.items() if k != "vector"}
        assert float(np.dot(point["vector"], want["vector"])) > 0.999  # normalised: cosine
    assert {f["file"]: (f["sha256"], f["chunks"]) for f in status["files"]} == reference.files
    assert {f["status"] for f in status["files"]} == {"complete"}
    assert status["chunks"] == len(points)


@dataclass(frozen=True)
class Scenario:
    point: str
    setup: str  # fresh: empty index; changed / pruned / rebuild: a clean index, then the corpus changes
    settled: bool = False  # every document was written and marked complete before the kill

    def __str__(self) -> str:
        return f"{self.point}@{self.setup}"


SCENARIOS = [
    Scenario("read-1st-file", "fresh"),
    Scenario("read-2nd-file", "fresh"),
    Scenario("embedding-batch", "fresh"),  # inside an embedding batch
    Scenario("embedded", "fresh"),
    Scenario("pending-2nd", "fresh"),
    Scenario("upsert-2nd", "fresh"),  # inside the write to Qdrant
    Scenario("before-flush", "fresh"),
    Scenario("after-flush", "fresh"),
    Scenario("between-files", "fresh"),  # one document marked complete, the next not yet
    Scenario("after-write", "fresh", settled=True),
    Scenario("optimize", "fresh", settled=True),  # inside Edge's segment optimiser (HNSW build)
    Scenario("after-delete", "changed"),  # the old chunks of doc2 are gone, its new ones not yet written
    Scenario("upsert-1st", "changed"),
    Scenario("after-delete", "pruned"),  # doc3 deleted from the corpus, `ingest --prune` killed mid-prune
    Scenario("rebuild-rmtree", "rebuild"),  # `ingest --rebuild` killed once the old vectors are gone
]
assert {s.point for s in SCENARIOS} == set(POINTS)


def prepare(rag: ForkServer, setup: str, folder: Path) -> tuple[Path, Path, list[str]]:
    index, corpus = folder / "index", make_corpus(folder / "corpus")
    args = ["--index-dir", str(index), "ingest", str(corpus)]
    if setup != "fresh":  # a clean index of this corpus (ingested here: the registry records absolute paths)
        assert rag(*args).returncode == 0
    if setup == "changed":
        change_corpus(corpus)
    elif setup == "pruned":
        (corpus / "doc3.txt").unlink()
        args.append("--prune")
    return index, corpus, args


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_ingest_killed_then_rerun_equals_a_clean_ingest(
    scenario: Scenario, rag: ForkServer, references: dict[str, Any], tmp_path: Path
) -> None:
    reference: Reference = references[scenario.setup]
    index, corpus, args = prepare(rag, scenario.setup, tmp_path)
    killed = rag(*args, *(["--rebuild"] if scenario.setup == "rebuild" else []), crash=scenario.point)
    died_by = signal.SIGPROF if scenario.point == "optimize" else signal.SIGKILL  # see crashpoints._inside_optimize
    assert killed.returncode == -died_by, f"never reached {scenario.point}: {killed.stderr[-2000:]}"
    status = status_of(rag, index)
    complete = assert_nothing_half_written_is_complete(status, snapshot(index), reference)
    if scenario.settled:
        assert complete == len(reference.files)
    else:  # it died mid-way: something is left to do, and is not shown complete
        assert complete < len(reference.files) or any(f["status"] != "complete" for f in status["files"])
    again = rag(*args)
    assert again.returncode == 0, again.stderr
    assert_same_index(index, status_of(rag, index), reference)
    assert (corpus / "doc1.txt").exists()  # the corpus is never touched


def test_killed_in_real_processes_then_rag_ingest(rag: ForkServer, references: dict[str, Any], tmp_path: Path) -> None:
    """The same, every step a process of its own, the rerun being the installed `rag ingest`."""
    index, corpus, args = prepare(rag, "fresh", tmp_path)
    env = {**os.environ, **ENV}
    killed = subprocess.run([sys.executable, str(HELPER), "between-files", *args], env=env, capture_output=True,
                            text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    shown = subprocess.run([sys.executable, "-m", "rag", "--index-dir", str(index), "status", "--json"], env=env,
                           capture_output=True, text=True, timeout=120)
    reference = references["fresh"]
    assert assert_nothing_half_written_is_complete(json.loads(shown.stdout), snapshot(index), reference) == 1
    again = subprocess.run([sys.executable, "-m", "rag", *args], env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "1 unchanged, 0 removed, 0 skipped" in again.stdout, again.stderr
    shown = subprocess.run([sys.executable, "-m", "rag", "--index-dir", str(index), "status", "--json"], env=env,
                           capture_output=True, text=True, timeout=120)
    assert_same_index(index, json.loads(shown.stdout), reference)


# -- two processes on one embedded index ----------------------------------------------------------------------
def _wait_for(condition: Any, what: str, process: subprocess.Popen[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"it ended before {what}: {process.communicate()[1][-2000:]}"
        assert time.monotonic() < deadline, f"no {what} in {timeout} s"
        time.sleep(0.05)


def assert_one_line(done: Done, *phrases: str) -> None:
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr, done.stderr
    for phrase in phrases:
        assert phrase in done.stderr


def test_a_second_process_is_refused_in_one_line_while_an_ingest_runs(
    rag: ForkServer, references: dict[str, Any], tmp_path: Path
) -> None:
    index, corpus, args = prepare(rag, "fresh", tmp_path)
    pause = tmp_path / "paused"
    first = subprocess.Popen([sys.executable, str(HELPER), "between-files", *args], text=True,
                             env={**os.environ, **ENV, PAUSE_ENV: str(pause)}, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    try:
        _wait_for(pause.exists, "pause after the first file", first)
        second = rag(*args)
        assert_one_line(second, f"in use by rag (pid {first.pid})", "wait for it to finish")
        assert_one_line(rag("--index-dir", str(index), "search", "Qwen"), "in use by rag")
        status = status_of(rag, index)  # reading the registry needs no lock, and shows the truth
        assert [f["file"] for f in status["files"] if f["status"] == "complete"] == ["doc1.txt"]
        pause.unlink()
        _, err = first.communicate(timeout=300)
        assert first.returncode == 0, err
    finally:
        if first.poll() is None:
            first.kill()
    assert_same_index(index, status_of(rag, index), references["fresh"])


def test_ingest_is_refused_in_one_line_while_rag_serve_runs(
    rag: ForkServer, references: dict[str, Any], tmp_path: Path
) -> None:
    from .servers import free_port

    index, corpus, args = prepare(rag, "rebuild", tmp_path)  # the clean index
    (corpus / "doc5.md").write_text("# New\n\nA new note about Qwen.\n", encoding="utf-8")
    server = subprocess.Popen([sys.executable, "-m", "rag", "--index-dir", str(index), "serve", "--port",
                               str(free_port())], env={**os.environ, **ENV}, text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    lock = index / ".lock"
    try:
        _wait_for(lambda: "rag serve" in (lock.read_text() if lock.exists() else ""), "lock held by the server",
                  server)
        refused = rag(*args)
        assert_one_line(refused, f"in use by rag serve (pid {server.pid})", "add documents through its page or API")
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.communicate()
    assert_same_index(index, status_of(rag, index), references["fresh"])  # the refused ingest changed nothing
