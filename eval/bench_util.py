"""What every part of the benchmark shares: the machine, memory, percentiles, the corpora and the packaged models."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from scifact import load as load_scifact  # eval/scifact.py: the SciFact loader of the retrieval benchmark

from rag.config import Settings
from rag.models.resolve import PACKAGED_EMBEDDING_ID, PACKAGED_LLM_ID
from rag.store.scale import machine_memory_mb

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "seeds"
DEFAULT_DATA = ROOT.parent / "shared" / "datasets" / "scifact"
EVAL_DIR = Path(__file__).resolve().parent


def machine() -> dict[str, Any]:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "unknown")
    memory = machine_memory_mb() or 0
    from importlib.metadata import version

    import llama_cpp
    import qdrant_edge  # noqa: F401 - its version is the package's
    import sentence_transformers
    import torch

    return {
        "cpu": model, "cores": os.cpu_count(), "memory_mb": memory, "python": platform.python_version(),
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "sentence_transformers": sentence_transformers.__version__, "llama_cpp_python": llama_cpp.__version__,
        "qdrant_edge": version("qdrant-edge-py"), "load_average": list(os.getloadavg()),
    }


def rss_mb() -> float:
    """Resident memory of this process now (psutil is not a dependency; Linux only)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def disk_mb(path: Path) -> float:
    # Edge preallocates sparse files: count the blocks on disk, as `rag status` does.
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file()) / 1e6


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    rank = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[rank]


def settings_for(corpus: Path, index: Path, **extra: Any) -> Settings:
    """The packaged models (no hub), as the tests and an air-gapped user get them."""
    return Settings(corpus_dir=corpus, index_dir=index, embedding_model=PACKAGED_EMBEDDING_ID,
                    llm_model=PACKAGED_LLM_ID, offline=True, **extra)


def write_scifact(data: Path, folder: Path, count: int) -> list[str]:
    """The first `count` abstracts as one .txt file each (title line + text), as eval/scifact.py does."""
    corpus, _, _ = load_scifact(data)
    folder.mkdir(parents=True, exist_ok=True)
    ids = list(corpus)[:count]
    for doc_id in ids:
        doc = corpus[doc_id]
        (folder / f"{doc_id}.txt").write_text(f"{doc['title']}\n{doc['text']}\n", encoding="utf-8")
    return ids


def scifact_claims(data: Path, count: int) -> list[str]:
    _, queries, qrels = load_scifact(data)
    return [queries[q] for q in queries if q in qrels][:count]


def copy_seeds(folder: Path) -> Path:
    shutil.copytree(SEEDS, folder)
    return folder


def run_rag(*args: str, timeout: int = 1800, env: dict[str, str] | None = None) -> tuple[float, dict[str, Any]]:
    """`rag ARGS --json` as a user runs it, whole process, `env` added to its environment; (wall seconds, parsed
    output)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error", **(env or {})}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "rag", *args, "--json"], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 3):
        raise RuntimeError(f"rag {' '.join(args)} failed: {done.stderr.strip()[-500:]}")
    return seconds, json.loads(done.stdout)


def run_helper(module: str, *args: str, timeout: int = 1800) -> dict[str, Any]:
    """Run an eval/bench_*.py entry point in a fresh process (open time and RSS need one) and read its JSON."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    done = subprocess.run([sys.executable, str(EVAL_DIR / f"{module}.py"), *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"{module} {' '.join(args)} failed: {done.stderr.strip()[-800:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


class Clock:
    """`with Clock() as c: ...; c.seconds`"""

    seconds = 0.0

    def __enter__(self) -> Clock:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._start
