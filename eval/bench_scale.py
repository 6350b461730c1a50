"""Retrieval at scale in embedded mode: p50/p95 query latency (hybrid and dense, query embedding excluded), open
time, index size on disk and RSS at growing corpus sizes, before and after Edge's optimize().

Larger corpora are made from the real chunks ingested by the ingest stage (SciFact abstracts): copy k > 0 of a
chunk keeps its text (so its BM25 terms, and term statistics scale like a k-times larger corpus of the same
kind) and gets its dense vector plus Gaussian noise (cosine ~0.9 to the original), under the file name
`cK/<file>`. Each measurement runs in a fresh process: `bench_scale.py serve INDEX QUERIES.npz`."""

from __future__ import annotations

import json
import sys
import time
import uuid
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

_NAMESPACE = uuid.UUID("0b7c2d9e-51a4-4c1e-9b1f-3c5d7e9a1b2c")
_NOISE = 0.025  # per dimension on 384-d unit vectors: cosine to the original about 0.9
_ADD_BATCH = 2000


def build(path: Path, size: int, texts: list[str], vectors: np.ndarray, metadata: list[dict[str, Any]]) -> float:
    """An Edge index of `size` chunks written through rag's own store adapter; returns the upsert seconds."""
    from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode

    from rag.store import hybrid
    from rag.store.edge import EdgeVectorStore

    # Copies share their text: compute each text's BM25 vector once (the ingest stage timed that cost).
    original = hybrid.passage_sparse
    cached = lru_cache(maxsize=None)(lambda text, lang: original(TextNode(text=text, metadata={"lang": lang})))
    hybrid.passage_sparse = lambda node: cached(node.get_content(), node.metadata.get("lang") or "en")
    rng = np.random.default_rng(size)
    store = EdgeVectorStore(path)
    started = time.perf_counter()
    try:
        for begin in range(0, size, _ADD_BATCH):
            nodes = []
            for i in range(begin, min(size, begin + _ADD_BATCH)):
                source, copy = i % len(texts), i // len(texts)
                vector = vectors[source]
                if copy:
                    vector = vector + rng.normal(0.0, _NOISE, vector.shape).astype(np.float32)
                    vector /= np.linalg.norm(vector)
                meta = dict(metadata[source])
                if copy:
                    meta["file"] = f"c{copy}/{meta['file']}"
                nodes.append(TextNode(
                    id_=str(uuid.uuid5(_NAMESPACE, str(i))), text=texts[source], embedding=vector.tolist(),
                    metadata=meta, relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=meta["file"])},
                ))
            store.add(nodes)
        store.flush()
        return time.perf_counter() - started
    finally:
        hybrid.passage_sparse = original
        store.close()


def optimize(path: Path) -> dict[str, Any]:
    from rag.store.edge import EdgeVectorStore

    store = EdgeVectorStore(path)
    unindexed, wanted = store.unindexed_points(), store.needs_optimize()
    started = time.perf_counter()
    store.optimize()
    seconds = time.perf_counter() - started
    left = store.unindexed_points()
    store.close()
    return {"optimize_s": round(seconds, 2), "unindexed_before": unindexed, "unindexed_after": left,
            "product_would_optimize": wanted}


def serve(path: Path, queries: Path) -> dict[str, Any]:
    """In a fresh process: open the index, query it, and report times and memory."""
    from bench_util import disk_mb, percentile, rss_mb
    from llama_index.core.vector_stores.types import VectorStoreQuery, VectorStoreQueryMode

    from rag.store.edge import EdgeVectorStore

    data = np.load(queries)
    texts, vectors = [str(t) for t in data["texts"]], data["vectors"]
    before = rss_mb()
    started = time.perf_counter()
    store = EdgeVectorStore(path)
    open_s = time.perf_counter() - started

    def ask(i: int, mode: VectorStoreQueryMode) -> float:
        t = time.perf_counter()
        store.query(VectorStoreQuery(query_embedding=vectors[i].tolist(), similarity_top_k=5, query_str=texts[i],
                                     mode=mode), lang="en", fusion="dbsf")
        return (time.perf_counter() - t) * 1000

    first_ms = ask(0, VectorStoreQueryMode.HYBRID)
    opened = rss_mb()
    hybrid_ms = [ask(i, VectorStoreQueryMode.HYBRID) for i in range(1, len(texts))]
    dense_ms = [ask(i, VectorStoreQueryMode.DEFAULT) for i in range(1, len(texts))]
    result = {
        "points": store.count(), "open_s": round(open_s, 3), "first_query_ms": round(first_ms, 1),
        "hybrid_p50_ms": round(percentile(hybrid_ms, 50), 2), "hybrid_p95_ms": round(percentile(hybrid_ms, 95), 2),
        "dense_p50_ms": round(percentile(dense_ms, 50), 2), "dense_p95_ms": round(percentile(dense_ms, 95), 2),
        "rss_before_open_mb": round(before, 1), "rss_open_mb": round(opened, 1), "rss_serving_mb": round(rss_mb(), 1),
        "disk_mb": round(disk_mb(path), 1), "unindexed": store.unindexed_points(), "queries": len(hybrid_ms),
    }
    store.close()
    return result


def run(work: Path, sizes: list[int], texts: list[str], vectors: np.ndarray, metadata: list[dict[str, Any]],
        query_texts: list[str], query_vectors: np.ndarray, optimize_sizes: set[int]) -> list[dict[str, Any]]:
    from bench_util import run_helper

    queries = work / "queries.npz"
    np.savez(queries, texts=np.array(query_texts), vectors=query_vectors)
    rows = []
    for size in sizes:
        path = work / f"scale-{size}"
        upsert_s = build(path, size, texts, vectors, metadata)
        row: dict[str, Any] = {"chunks": size, "upsert_s": round(upsert_s, 2),
                               "exact": run_helper("bench_scale", "serve", str(path), str(queries))}
        if size in optimize_sizes:
            row.update(optimize(path))
            row["optimized"] = run_helper("bench_scale", "serve", str(path), str(queries))
        rows.append(row)
        print(f"  scale {size}: {json.dumps(row)}", file=sys.stderr)
    return rows


def slope_mb_per_1k(rows: list[dict[str, Any]], key: str = "exact") -> dict[str, float]:
    """Least-squares line RSS = a + b * chunks over the sizes measured (b in MB per 1,000 chunks)."""
    xs = np.array([r["chunks"] for r in rows], dtype=float)
    ys = np.array([r[key]["rss_serving_mb"] for r in rows], dtype=float)
    if len(xs) < 2:
        return {"mb_per_1k_chunks": 0.0, "intercept_mb": float(ys[0]) if len(ys) else 0.0}
    b, a = np.polyfit(xs, ys, 1)
    return {"mb_per_1k_chunks": round(float(b) * 1000, 2), "intercept_mb": round(float(a), 1)}


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "serve":
        print(json.dumps(serve(Path(sys.argv[2]), Path(sys.argv[3]))))
    else:
        sys.exit("usage: bench_scale.py serve INDEX QUERIES.npz")
