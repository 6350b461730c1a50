"""eval/loadtest.py cannot rot: the script runs end to end for a few seconds (real `rag ingest`, `rag serve` with the
packaged models, clients, an upload under load) with a queue of one, so the 429 + Retry-After path runs too."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.servers import ROOT


def test_loadtest_script_runs_and_reports(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "qwen.md").write_text(
        "# Qwen\n\nAlibaba released Qwen-7B, its first open-source model, in August 2023. Joe Tsai said open source "
        "helps developers build on Qwen.\n", encoding="utf-8")
    out = tmp_path / "load.json"
    run = subprocess.run(
        [sys.executable, str(ROOT / "eval" / "loadtest.py"), "--corpus", str(corpus), "--warm-clients", "1",
         "--warm-duration", "2", "--clients", "4", "--duration", "4", "--queue-size", "1", "--max-tokens", "16",
         "--uploads", "1", "--drain", "120", "--out", str(out)],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["passed"] and all(result["checks"].values())
    small, big = result["phases"]
    assert (small["clients"], big["clients"]) == (1, 4)
    for phase in (small, big):
        assert phase["failed"] == 0 and phase["answered"] >= 1
        assert phase["answered"] + phase["rejected_429"] == phase["requests"]
        assert phase["latency_ms"]["p50"] <= phase["latency_ms"]["p95"] <= phase["latency_ms"]["max"]
    # Four clients on a queue of one: some were told to come back later, with a Retry-After.
    assert big["rejected_429"] >= 1 and big["retry_after_s"]["min"] >= 1
    assert result["uploads"]["load-lantern.md"]["status"] == 200
    assert result["documents"] == {"documents_before": 1, "documents_after": 2, "problems": []}
    assert result["rss_mb"]["peak"] > 0 and result["server_alive"]
    assert "p95 ms" in run.stdout and "ok   no request failed" in run.stdout
