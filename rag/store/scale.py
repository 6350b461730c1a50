"""When a corpus has outgrown one machine: a notice after ingest that says so and how to scale out.

The figures come from `rag bench` (eval/bench.py) on a 2-core machine: an embedded (Qdrant Edge) index serves
hybrid queries in 4 ms (p95) at 100k chunks once optimized, and opens in 0.3 s; its resident memory grows by about
2 MB per 1,000 chunks optimized and 4.8 MB exactly searched, and optimize() blocks for 20-60 s at 100k chunks,
growing a little faster than linearly. Past about a million chunks, or when the index would take half the
machine's memory, a Qdrant server (or cluster: sharded, replicated, optimizing in the background) is the better
home for the index.
"""

from __future__ import annotations

from pathlib import Path

EMBEDDED_MAX_CHUNKS = 1_000_000
MB_PER_1K_CHUNKS = 4.8  # the exactly-searched (worst) case measured by rag bench
_MEMINFO = Path("/proc/meminfo")


def machine_memory_mb(meminfo: Path = _MEMINFO) -> int | None:
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def outgrown_notice(chunks: int, embedded: bool, memory_mb: int | None = None) -> str | None:
    """One line for the user when the embedded index is too big for one process on this machine; else None."""
    if not embedded:
        return None
    memory_mb = machine_memory_mb() if memory_mb is None else memory_mb
    needed = chunks * MB_PER_1K_CHUNKS / 1000
    too_big = chunks >= EMBEDDED_MAX_CHUNKS or (memory_mb is not None and needed > memory_mb / 2)
    if not too_big:
        return None
    return (f"the embedded index holds {chunks:,} chunks (about {needed / 1024:.1f} GB of memory to serve, and "
            "optimizing it blocks ingest for minutes): move it to a Qdrant server or cluster: set "
            "qdrant_url = \"http://HOST:6333\" (or RAG_QDRANT_URL) and run `rag ingest --rebuild`")
