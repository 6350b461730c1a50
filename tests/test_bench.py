"""`rag bench` and what it made faster: the command runs and writes its JSON, table and plot (timings are never
asserted), embeddings keep their order when batched by length, and the embedded index is optimized when asked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rag import Pipeline
from rag.config import Settings
from rag.store import edge
from rag.store.scale import outgrown_notice

from .conftest import ROOT


def tiny_scifact(folder: Path, documents: int = 6) -> Path:
    """A corpus in SciFact's BEIR layout, written by the test (the real one is not part of the repository)."""
    (folder / "qrels").mkdir(parents=True)
    topics = ["insulin resistance in muscle cells", "malaria parasites in red blood cells",
              "statins lower cholesterol", "tumour suppressor genes", "gut bacteria and obesity",
              "vitamin D and bone density"]
    docs = [{"_id": str(i), "title": f"Study {i} on {topics[i % len(topics)]}",
             "text": f"We measured {topics[i % len(topics)]} in {20 + i} patients. " * 12} for i in range(documents)]
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps(d) for d in docs) + "\n")
    claims = [{"_id": f"q{i}", "text": f"{topics[i]} change with treatment"} for i in range(len(topics))]
    (folder / "queries_train.jsonl").write_text("\n".join(json.dumps(q) for q in claims) + "\n")
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n" +
                                                "".join(f"q{i}\t{i}\t1\n" for i in range(len(topics))))
    return folder


def test_rag_bench_help_lists_its_options() -> None:
    done = subprocess.run([sys.executable, "-m", "rag", "bench", "--help"], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    for option in ("--quick", "--out", "--sections", "--sizes"):
        assert option in done.stdout


def test_bench_smoke_run_writes_json_table_and_plot(tmp_path: Path) -> None:
    data, out = tiny_scifact(tmp_path / "scifact"), tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "rag", "bench", "--quick", "--sections", "ingest,scale", "--documents", "6",
         "--sizes", "120,300", "--data", str(data), "--out", str(out)],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((out / "bench.json").read_text())
    assert results["machine"]["cores"] >= 1 and results["machine"]["cpu"]
    ingest = results["ingest"]
    assert ingest["documents"] == 6 and ingest["chunks"] >= 6
    assert ingest["reingest_unchanged"] == 6 and ingest["reingest_embedded_chunks"] == 0
    assert [row["chunks"] for row in results["scale"]["rows"]] == [120, 300]
    assert all(row["exact"]["points"] == row["chunks"] for row in results["scale"]["rows"])
    assert "hybrid p50/p95 at 300 chunks" in (out / "bench.md").read_text()
    assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "rag bench" in done.stdout


def test_ingest_optimizes_the_embedded_index_when_the_store_asks(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Pipeline(settings) as pipeline:
        first = pipeline.ingest()
        assert not any("search index" in note for note in first.notes)  # a few dozen chunks: exact search
        assert pipeline.store.unindexed_points() >= first.chunks  # no HNSW graph yet: every dense vector
        monkeypatch.setattr(edge, "OPTIMIZE_MIN_UNINDEXED", 1)
        (settings.corpus_dir / "extra.md").write_text("# Extra\n\nQwen3 was released in April 2025.\n")
        second = pipeline.ingest()
        assert any("built the search index" in note for note in second.notes)
        assert pipeline.store.count() == first.chunks + second.chunks
        found = pipeline.search("When was Qwen3 released?", top_k=3)
        assert any(p.file == "extra.md" for p in found)


def test_outgrown_corpus_gets_a_notice_with_the_way_out() -> None:
    assert outgrown_notice(50_000, embedded=True, memory_mb=16_000) is None
    assert outgrown_notice(5_000_000, embedded=False, memory_mb=16_000) is None  # a server already
    big = outgrown_notice(1_200_000, embedded=True, memory_mb=64_000)
    assert big is not None and "RAG_QDRANT_URL" in big and "--rebuild" in big
    assert outgrown_notice(400_000, embedded=True, memory_mb=2_000) is not None  # more than half the memory
