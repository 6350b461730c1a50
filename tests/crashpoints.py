"""Kill `rag` with SIGKILL at named points, for tests/test_crash.py. The product carries no test hooks: each point
wraps one library function so the process kills itself at a fixed call, then the real `rag` CLI runs.

    python tests/crashpoints.py POINT RAG_ARGS...   one run: dies at POINT (or pauses there, see PAUSE_ENV)
    python tests/crashpoints.py --serve              a fork server: loads the embedding model once, then runs one
                                                     `rag` command per JSON line on stdin in a forked child

Loading torch and the model costs ~5 s a process; forking a parent that has loaded (never run) the model makes
each run cost what the command itself costs. The parent must never run the model: forked OpenMP threads hang.
"""

from __future__ import annotations

import functools
import json
import os
import select
import signal
import subprocess
import sys
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# While PAUSE_ENV names a file, a point creates that file and waits until it is deleted instead of killing.
PAUSE_ENV = "CRASHPOINT_PAUSE_FILE"


def _die() -> None:
    pause = os.environ.get(PAUSE_ENV)
    if not pause:
        os.kill(os.getpid(), signal.SIGKILL)
    import time

    Path(pause).touch()
    while Path(pause).exists():
        time.sleep(0.02)


def _at(owner: Any, name: str, nth: int, when: str = "before") -> None:
    """Die at the `nth` call of owner.name, before it runs or after it returned."""
    original = getattr(owner, name)
    calls = 0

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == nth and when == "before":
            _die()
        result = original(*args, **kwargs)
        if calls == nth and when == "after":
            _die()
        return result

    setattr(owner, name, wrapper)


def _inside_upsert(nth_add: int) -> None:
    """Die inside the nth EdgeVectorStore.add, after its first upsert batch reached Qdrant and before its second."""
    from rag.store import edge

    edge._UPSERT_BATCH = 2  # several batches even for a short document
    real = edge._import_edge()
    state = {"adds": 0, "upserts": 0}

    class Operations:
        def __getattr__(self, name: str) -> Any:
            return getattr(real.UpdateOperation, name)

        @staticmethod
        def upsert_points(points: Any) -> Any:
            state["upserts"] += 1
            if state["adds"] == nth_add and state["upserts"] == 2:
                _die()
            return real.UpdateOperation.upsert_points(points)

    class Edge:
        UpdateOperation = Operations()

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

    proxy = Edge()
    edge._import_edge = lambda: proxy
    original = edge.EdgeVectorStore.add

    def add(self: Any, nodes: Any, **kwargs: Any) -> Any:
        state["adds"] += 1
        state["upserts"] = 0
        return original(self, nodes, **kwargs)

    edge.EdgeVectorStore.add = add


def _inside_optimize() -> None:
    """Die while Qdrant Edge optimises. Ingest optimises only past tens of thousands of points, and Edge only
    builds its index past its size threshold: this run lowers both, so a few dozen points get a real HNSW graph.
    The binding holds the GIL, so a Python thread cannot interrupt it; a timer on this process's own CPU time (not
    wall time: a busy machine does not move it) does, ~5 ms into the ~75 ms of CPU the optimiser spends here.
    SIGPROF's default action ends the process as abruptly as SIGKILL: no handler, no cleanup, no flush; dying
    by SIGPROF, not by the SIGKILL after the call, proves the kill landed inside."""
    from rag.store import edge

    real = edge._import_edge()

    class Edge:
        @staticmethod
        def EdgeConfig(**kwargs: Any) -> Any:  # noqa: N802  (stands in for the class)
            return real.EdgeConfig(**kwargs, optimizers=real.EdgeOptimizersConfig(indexing_threshold=1))

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

    proxy = Edge()
    edge._import_edge = lambda: proxy
    edge.EdgeVectorStore.needs_optimize = lambda self: True  # type: ignore[method-assign]
    original = edge.EdgeVectorStore.optimize

    def optimize(self: Any) -> None:
        signal.signal(signal.SIGPROF, signal.SIG_DFL)
        signal.setitimer(signal.ITIMER_PROF, 0.005)
        original(self)
        _die()  # it was faster than the timer: still die before anything after it

    edge.EdgeVectorStore.optimize = optimize  # type: ignore[method-assign]


def _points() -> dict[str, Callable[[], None]]:
    import shutil

    from rag.ingest import ingester as ingest
    from rag.ingest.registry import Registry
    from rag.models.embeddings import Embedder
    from rag.store.edge import EdgeVectorStore

    return {
        "read-1st-file": lambda: _at(ingest, "read_document", 1),
        "read-2nd-file": lambda: _at(ingest, "read_document", 2),
        "embedding-batch": lambda: _at(Embedder, "_encode", 2),  # the first batch is done, the second not
        "embedded": lambda: _at(Embedder, "embed_passages", 1, "after"),
        "pending-2nd": lambda: _at(Registry, "mark_pending", 2, "after"),
        "upsert-1st": lambda: _inside_upsert(1),
        "upsert-2nd": lambda: _inside_upsert(2),
        "before-flush": lambda: _at(EdgeVectorStore, "flush", 1),
        "after-flush": lambda: _at(EdgeVectorStore, "flush", 1, "after"),
        "between-files": lambda: _at(Registry, "mark_complete", 1, "after"),
        "after-write": lambda: _at(ingest.Ingester, "_write", 1, "after"),
        "after-delete": lambda: _at(EdgeVectorStore, "delete", 1, "after"),
        "optimize": _inside_optimize,
        "rebuild-rmtree": lambda: _at(shutil, "rmtree", 1, "after"),
    }


POINTS = (
    "read-1st-file", "read-2nd-file", "embedding-batch", "embedded", "pending-2nd", "upsert-1st", "upsert-2nd",
    "before-flush", "after-flush", "between-files", "after-write", "after-delete", "optimize", "rebuild-rmtree",
)


def run_cli(point: str | None, args: list[str]) -> int:
    """Install `point` (if any), then run the real `rag` command; returns its exit code."""
    if point:
        _points()[point]()
    from rag.cli.main import main

    sys.argv = ["rag", *args]
    try:
        main()
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    return 0


def _serve() -> None:
    from rag.config import load_settings
    from rag.models.embeddings import _load
    from rag.models.resolve import resolve_embedding

    _load(str(resolve_embedding(load_settings(), None).path))  # loaded, never run (see the module docstring)
    import rag.cli  # noqa: F401  (imported once, here, not in every child)

    print("ready", flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.environ.update(request.get("env", {}))
                for fd, name in ((1, "out"), (2, "err")):
                    os.dup2(os.open(request[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
                code = run_cli(request.get("crash"), request["args"])
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"code": os.waitstatus_to_exitcode(status)}), flush=True)


# -- the client side, for tests ----------------------------------------------------------------------------
HELPER = Path(__file__)


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


class ForkServer:
    """Runs `rag ARGS` (optionally dying at a crash point) in a child of the helper; see crashpoints.py."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.folder = folder
        self.count = 0
        self.process = subprocess.Popen(
            [sys.executable, str(HELPER), "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env={**os.environ, **env}, cwd=folder,
        )
        assert self._line(120) == "ready"

    def _line(self, timeout: float) -> str:
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        assert ready, f"the crash helper gave no answer in {timeout} s"
        return self.process.stdout.readline().strip()

    def __call__(self, *args: str, crash: str | None = None, env: dict[str, str] | None = None) -> Done:
        assert self.process.stdin is not None
        self.count += 1
        out, err = self.folder / f"{self.count}.out", self.folder / f"{self.count}.err"
        request = {"args": list(args), "crash": crash, "env": env or {}, "out": str(out), "err": str(err)}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        code = json.loads(self._line(180))["code"]
        return Done(code, out.read_text(encoding="utf-8", errors="replace"),
                    err.read_text(encoding="utf-8", errors="replace"))

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def make_corpus(folder: Path) -> Path:
    """Four short articles (English, German, Chinese): about ten chunks each at RAG_CHUNK_SIZE=48."""
    folder.mkdir(parents=True)
    for number, seed in enumerate(sorted((Path(__file__).parents[1] / "seeds").glob("*.txt"))[:4], 1):
        text = seed.read_text(encoding="utf-8")
        cut = text.find("\n", 1200)
        (folder / f"doc{number}.txt").write_text(text[: cut if cut > 0 else 1200], encoding="utf-8")
    return folder


# -- reading an index back, for comparisons ---------------------------------------------------------------------
def snapshot(index_dir: Path) -> dict[str, dict[str, Any]]:
    """Every point of the embedded index: id -> file, sha256, chunk, start, end, text and dense vector."""
    from rag.store.edge import EdgeVectorStore, _import_edge

    qe = _import_edge()
    store = EdgeVectorStore(index_dir / "qdrant")
    points: dict[str, dict[str, Any]] = {}
    try:
        if store.client is None:
            return points
        offset = None
        while True:
            records, offset = store.client.scroll(qe.ScrollRequest(offset=offset, limit=256, with_payload=True,
                                                                   with_vector=True))
            for record in records:
                payload = dict(record.payload)
                vector = record.vector.get("dense") if isinstance(record.vector, dict) else record.vector
                points[str(uuid.UUID(str(record.id)))] = {
                    "file": payload["file"], "sha256": payload["sha256"], "chunk": payload["chunk"],
                    "start": payload["start"], "end": payload["end"],
                    "text": json.loads(payload["_node_content"])["text"], "vector": vector,
                }
            if offset is None:
                return points
    finally:
        store.close()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        _serve()
    else:
        sys.exit(run_cli(sys.argv[1], sys.argv[2:]))
