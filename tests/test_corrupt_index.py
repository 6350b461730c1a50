"""A damaged index (garbage or truncated files under index/, the vector folder gone): every command says so in
one line with the way out (`rag ingest --rebuild`), never a traceback, and the corpus is never touched."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rag.models.resolve import PACKAGED_EMBEDDING_ID

from .crashpoints import ForkServer, make_corpus

ENV = {"RAG_EMBEDDING_MODEL": PACKAGED_EMBEDDING_ID, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x8f not what was here \x00\xff" * 40)


def _halve(path: Path, keep: int | None = None) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2 if keep is None else keep])


def _segment(index: Path) -> Path:
    return next((index / "qdrant" / "segments").iterdir())


CORRUPTIONS: dict[str, Callable[[Path], object]] = {
    "registry-garbage": lambda ix: _garbage(ix / "registry.sqlite"),
    "registry-truncated": lambda ix: _halve(ix / "registry.sqlite"),
    "edge-config-garbage": lambda ix: _garbage(ix / "qdrant" / "edge_config.json"),
    "wal-garbage": lambda ix: [_garbage(p) for p in (ix / "qdrant" / "wal").iterdir()],
    "segment-config-garbage": lambda ix: _garbage(_segment(ix) / "segment.json"),
    "payload-garbage": lambda ix: _garbage(_segment(ix) / "payload_storage" / "page_0.dat"),
    "vectors-truncated": lambda ix: _halve(_segment(ix) / "vector_storage-dense" / "vectors" / "chunk_0.mmap", 0),
    "vector-folder-gone": lambda ix: shutil.rmtree(ix / "qdrant"),
}
# What must fail, per damage: the registry is read by every command, the vectors by search and ask.
READS_VECTORS = ("search", "ask")


@pytest.fixture(scope="module")
def rag(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ForkServer]:
    server = ForkServer(tmp_path_factory.mktemp("forks"), ENV)
    yield server
    server.close()


@pytest.fixture(scope="module")
def clean(rag: ForkServer, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("clean")
    corpus = make_corpus(root / "corpus")
    done = rag("--index-dir", str(root / "index"), "ingest", str(corpus))
    assert done.returncode == 0, done.stderr
    return root / "index", corpus


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("damage", list(CORRUPTIONS))
def test_every_command_says_so_in_one_line_and_rebuild_recovers(
    damage: str, rag: ForkServer, clean: tuple[Path, Path], tmp_path: Path
) -> None:
    source_index, corpus = clean
    index = tmp_path / "index"
    shutil.copytree(source_index, index)
    CORRUPTIONS[damage](index)
    before = _digest(corpus)
    commands = {"status": ["status"], "search": ["search", "Alibaba"], "ask": ["ask", "Who chairs Alibaba?"],
                "ingest": ["ingest", str(corpus)]}
    for name, args in commands.items():
        done = rag("--index-dir", str(index), *args)
        lines = done.stderr.strip().splitlines()
        assert "Traceback" not in done.stderr, f"{name}: {done.stderr}"
        if damage.startswith("registry") or name in READS_VECTORS:
            assert done.returncode == 1, f"{name} did not notice {damage}: {done.stdout[:300]}"
        if done.returncode:
            assert len(lines) == 1, f"{name}: {done.stderr}"
            assert "rag ingest --rebuild" in lines[0] and "index" in lines[0], lines[0]
        else:  # it did not need the damaged part (status lists the registry; ingest had nothing new to write)
            assert len(lines) <= 1, f"{name}: {done.stderr}"
    rebuilt = rag("--index-dir", str(index), "ingest", "--rebuild", str(corpus))
    assert rebuilt.returncode == 0 and "4 new" in rebuilt.stdout, rebuilt.stderr
    found = rag("--index-dir", str(index), "search", "Alibaba", "--json")
    assert found.returncode == 0 and '"file"' in found.stdout, found.stderr
    assert _digest(corpus) == before  # the corpus is never touched
