"""Load test of `rag serve` on loopback: a temporary copy of a corpus (the seeds by default) with the packaged
models, then W clients (default 4) and then C clients (default 50) asking through the HTTP API, each for a set
time, while documents are uploaded in the middle of the big phase.

Every request must be answered, or refused with 429 and a Retry-After the client then honours; nothing may fail,
the server must stay up with its memory (RSS, sampled) under a limit, and the uploads must all be searchable
afterwards with no document lost. Prints throughput and p50/p95 latency per phase, writes everything as JSON, and
exits 1 when a check fails. Bounded: each phase by its duration (plus a drain time for answers under way) and by
--max-requests; the server listens on 127.0.0.1 only and is stopped at the end.

    .venv/bin/python eval/loadtest.py                              # 30 s with 4 clients, 120 s with 50
    .venv/bin/python eval/loadtest.py --duration 20 --out /tmp/load.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = [
    "Which model was Alibaba's first open-source model?",
    "When did Alibaba release Qwen-7B?",
    "What did Joe Tsai say about open source?",
    "How many derivative models are based on Qwen?",
    "Wann fand der World Government Summit statt?",
    "What is Qwen2.5-Max?",
    "Which company develops the Qwen models?",
    "How large is the context window of Qwen2.5-1M?",
]
# Facts no seed holds, so that a search for them can only find the upload.
UPLOADS = [
    ("load-lantern.md", "The Zephyr-9 lantern", "Marta Quillfeather invented the Zephyr-9 lantern in Tallinn in 1911."),
    ("load-ferry.md", "The Glimmerholm ferry", "The Glimmerholm ferry crosses the Vexsund strait twice a day."),
    ("load-orchard.md", "The Brindlewood orchard", "The Brindlewood orchard grows forty-two kinds of quince."),
]


@dataclass
class Phase:
    name: str
    clients: int
    duration: float
    latencies: list[float] = field(default_factory=list)
    first_tokens: list[float] = field(default_factory=list)
    retry_afters: list[int] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)
    started: int = 0
    wall: float = 0.0

    def fail(self, reason: str) -> None:
        self.failures[reason] = self.failures.get(reason, 0) + 1

    def summary(self) -> dict[str, Any]:
        answered = len(self.latencies)
        return {
            "name": self.name, "clients": self.clients, "duration_s": self.duration, "wall_s": round(self.wall, 1),
            "requests": self.started, "answered": answered, "rejected_429": len(self.retry_afters),
            "failed": sum(self.failures.values()), "failures": self.failures,
            "throughput_per_s": round(answered / self.wall, 3) if self.wall else 0.0,
            "latency_ms": percentiles(self.latencies), "first_token_ms": percentiles(self.first_tokens),
            "retry_after_s": {"min": min(self.retry_afters), "max": max(self.retry_afters)} if self.retry_afters
            else None,
        }


def percentiles(seconds: list[float]) -> dict[str, float] | None:
    if not seconds:
        return None
    ordered = sorted(seconds)

    def at(share: float) -> float:  # nearest rank
        return round(ordered[min(len(ordered) - 1, max(0, int(share * len(ordered) + 0.999999) - 1))] * 1000, 1)

    return {"p50": at(0.50), "p95": at(0.95), "max": round(ordered[-1] * 1000, 1),
            "mean": round(sum(ordered) / len(ordered) * 1000, 1)}


# -- the server --------------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(work: Path, port: int, keys: dict[str, str], args: argparse.Namespace) -> dict[str, str]:
    from rag.models.resolve import PACKAGED_EMBEDDING_ID, PACKAGED_LLM_ID

    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update({
        "HF_HUB_OFFLINE": "1", "RAG_OFFLINE": "true", "RAG_CORPUS_DIR": str(work / "corpus"),
        "RAG_INDEX_DIR": str(work / "index"), "RAG_EMBEDDING_MODEL": PACKAGED_EMBEDDING_ID,
        "RAG_LLM_MODEL": PACKAGED_LLM_ID, "RAG_N_CTX": "2048", "RAG_MAX_TOKENS": str(args.max_tokens),
        "RAG_HOST": "127.0.0.1", "RAG_PORT": str(port), "RAG_ADMIN_KEY": keys["admin"], "RAG_ASK_KEY": keys["ask"],
        "RAG_ASK_RATE_PER_MINUTE": str(args.ask_rate), "RAG_QUEUE_SIZE": str(args.queue_size),
    })
    return env


@contextmanager
def rag_server(work: Path, env: dict[str, str], url: str,
               timings: dict[str, float]) -> Iterator[subprocess.Popen[bytes]]:
    """`rag ingest` the corpus, then `rag serve` it; yields the server process once /healthz answers."""
    rag = [sys.executable, "-m", "rag"]
    started = time.monotonic()
    ingest = subprocess.run([*rag, "ingest"], cwd=work, env=env, capture_output=True, text=True, timeout=900)
    if ingest.returncode != 0:
        raise SystemExit(f"rag ingest failed ({ingest.returncode}): {ingest.stderr.strip()[-400:]}")
    timings["ingest_s"] = round(time.monotonic() - started, 1)
    log = (work / "server.log").open("wb")
    started = time.monotonic()
    server = subprocess.Popen([*rag, "serve"], cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        while True:
            if server.poll() is not None:
                raise SystemExit(f"rag serve exited with {server.returncode}; see {work / 'server.log'}")
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() - started > 600:
                raise SystemExit("rag serve did not answer /healthz within 600 s")
            time.sleep(0.25)
        timings["startup_s"] = round(time.monotonic() - started, 1)
        yield server
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown; it also releases the index
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(10)
        log.close()


class RssSampler(threading.Thread):
    """The server's resident memory every `every` seconds, from /proc (Linux)."""

    def __init__(self, pid: int, every: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.samples: list[tuple[float, float]] = []
        self.marks: dict[str, float] = {}
        self.stop = threading.Event()
        self.t0 = time.monotonic()

    def rss_mb(self) -> float | None:
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def mark(self, name: str) -> None:
        if (rss := self.rss_mb()) is not None:
            self.marks[name] = round(rss, 1)

    def run(self) -> None:
        while not self.stop.wait(self.every):
            if (rss := self.rss_mb()) is not None:
                self.samples.append((round(time.monotonic() - self.t0, 1), round(rss, 1)))


# -- the clients ------------------------------------------------------------------------------------------------

async def ask_once(http: httpx.AsyncClient, question: str, headers: dict[str, str]) -> tuple[str, float, Any]:
    """('answer', latency, first-token latency) | ('busy', retry-after, None) | ('failed', 0, reason)."""
    sent = time.monotonic()
    first: float | None = None
    async with http.stream("POST", "/api/ask", json={"question": question}, headers=headers) as response:
        if response.status_code == 429:
            await response.aread()
            retry = response.headers.get("retry-after", "")
            return ("busy", int(retry), None) if retry.isdigit() else ("failed", 0, "429 without Retry-After")
        if response.status_code != 200:
            await response.aread()
            return "failed", 0, f"HTTP {response.status_code}"
        event = ""
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event == "token" and first is None:
                first = time.monotonic() - sent
            elif line.startswith("data:") and event == "answer":
                answer = json.loads(line[5:])
                if not isinstance(answer.get("answer"), str):
                    return "failed", 0, "answer event without an answer"
                latency = time.monotonic() - sent
                return "answer", latency, first if first is not None else latency
    return "failed", 0, "stream ended without an answer"


async def run_phase(url: str, phase: Phase, ask_key: str, max_requests: int, drain: float) -> None:
    deadline = time.monotonic() + phase.duration
    headers = {"Authorization": f"Bearer {ask_key}"}
    limits = httpx.Limits(max_connections=phase.clients + 4, max_keepalive_connections=phase.clients + 4)
    timeout = httpx.Timeout(connect=10, read=phase.duration + drain, write=30, pool=30)

    async def client(number: int, http: httpx.AsyncClient) -> None:
        turn = 0
        while time.monotonic() < deadline and phase.started < max_requests:
            phase.started += 1
            question = QUESTIONS[(number + turn) % len(QUESTIONS)]
            turn += 1
            try:
                kind, value, extra = await ask_once(http, question, headers)
            except (httpx.HTTPError, json.JSONDecodeError) as exc:
                phase.fail(type(exc).__name__)
                continue
            if kind == "answer":
                phase.latencies.append(value)
                phase.first_tokens.append(extra)
            elif kind == "busy":
                phase.retry_afters.append(value)
                await asyncio.sleep(max(0.0, min(value, deadline - time.monotonic())))  # honour Retry-After
            else:
                phase.fail(extra)

    started = time.monotonic()
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout) as http:
        tasks = [asyncio.create_task(client(i, http)) for i in range(phase.clients)]
        done, pending = await asyncio.wait(tasks, timeout=phase.duration + drain)
        for task in pending:  # still waiting for an answer long after the phase: that is a failure
            task.cancel()
            phase.fail("no answer within the drain time")
        await asyncio.gather(*pending, return_exceptions=True)
    phase.wall = time.monotonic() - started


def upload_during_load(url: str, admin_key: str, delay: float, results: dict[str, Any], count: int) -> None:
    """Upload `count` documents, one request each, `delay` seconds into the big phase."""
    time.sleep(delay)
    with httpx.Client(base_url=url, headers={"X-API-Key": admin_key}, timeout=600) as http:
        for name, title, fact in UPLOADS[:count]:
            started = time.monotonic()
            content = f"# {title}\n\n{fact}\n".encode()
            response = http.post("/api/documents", files={"files": (name, content, "text/markdown")})
            entry = {"status": response.status_code, "seconds": round(time.monotonic() - started, 2)}
            if response.status_code == 200:
                entry["chunks"] = response.json()["ingested"][0]["chunks"]
            results[name] = entry


def check_documents(url: str, admin_key: str, before: dict[str, Any], uploads: dict[str, Any]) -> dict[str, Any]:
    """After the load: every document present before is still complete with its chunks, every upload is indexed
    and is what a search for its fact finds first."""
    with httpx.Client(base_url=url, headers={"X-API-Key": admin_key}, timeout=600) as http:
        after = {d["file"]: d for d in http.get("/api/documents").json()}
        problems = [f"{f} changed or vanished" for f, d in before.items()
                    if (after.get(f) or {}).get("chunks") != d["chunks"] or after[f]["status"] != "complete"]
        for name, _, fact in UPLOADS:
            if name not in uploads:
                continue
            file = f"uploads/{name}"
            listed = after.get(file)
            if uploads[name]["status"] != 200 or not listed or listed["status"] != "complete":
                problems.append(f"{file} was not indexed ({uploads[name]['status']})")
                continue
            with http.stream("POST", "/api/ask", json={"question": f"{fact} What is this about?"}) as response:
                text = "".join(response.iter_text())
            found = [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:") and '"passages"'
                     in line]
            if not found or found[-1]["passages"][0]["file"] != file:
                problems.append(f"a search for the fact of {file} does not find it first")
    return {"documents_before": len(before), "documents_after": len(after), "problems": problems}


# -- the run ------------------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0],
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=ROOT / "seeds", help="documents to serve (copied first)")
    parser.add_argument("--warm-clients", type=int, default=4)
    parser.add_argument("--warm-duration", type=float, default=30.0, help="seconds of the small phase")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of the big phase")
    parser.add_argument("--drain", type=float, default=300.0, help="seconds answers under way may take after a phase")
    parser.add_argument("--max-requests", type=int, default=5000, help="most requests per phase")
    parser.add_argument("--uploads", type=int, default=3, choices=range(len(UPLOADS) + 1))
    parser.add_argument("--queue-size", type=int, default=16, help="the server's queue_size")
    parser.add_argument("--ask-rate", type=int, default=600, help="the server's ask_rate_per_minute")
    parser.add_argument("--max-tokens", type=int, default=64, help="the server's max_tokens")
    parser.add_argument("--rss-limit-mb", type=float, default=3072.0, help="the server's RSS may never exceed this")
    parser.add_argument("--out", type=Path, default=ROOT / "eval" / "runs" / "loadtest.json")
    args = parser.parse_args(argv)
    if args.clients < 1 or args.warm_clients < 1 or args.clients > 200:
        parser.error("clients must be between 1 and 200")

    keys = {"admin": secrets.token_urlsafe(16), "ask": secrets.token_urlsafe(16)}
    port = free_port()
    url = f"http://127.0.0.1:{port}"  # loopback only, whatever the environment says
    timings: dict[str, float] = {}
    work = Path(tempfile.mkdtemp(prefix="rag-load-"))
    try:
        shutil.copytree(args.corpus, work / "corpus")
        with rag_server(work, server_env(work, port, keys, args), url, timings) as server:
            sampler = RssSampler(server.pid)
            sampler.start()
            sampler.mark("start")
            before = {d["file"]: d for d in httpx.get(f"{url}/api/documents", headers={"X-API-Key": keys["admin"]},
                                                       timeout=60).json()}
            phases = [Phase(f"{args.warm_clients} clients", args.warm_clients, args.warm_duration),
                      Phase(f"{args.clients} clients", args.clients, args.duration)]
            uploads: dict[str, Any] = {}
            for index, phase in enumerate(phases):
                print(f"phase {phase.name}: {phase.duration:g} s ...", file=sys.stderr, flush=True)
                uploader = None
                if index == len(phases) - 1 and args.uploads:
                    uploader = threading.Thread(target=upload_during_load, daemon=True,
                                                args=(url, keys["admin"], phase.duration / 3, uploads, args.uploads))
                    uploader.start()
                asyncio.run(run_phase(url, phase, keys["ask"], args.max_requests, args.drain))
                if uploader is not None:
                    uploader.join(args.drain)
                sampler.mark(f"after {phase.name}")
            alive = server.poll() is None and httpx.get(f"{url}/healthz", timeout=10).status_code == 200
            documents = check_documents(url, keys["admin"], before, uploads) if alive else {"problems": ["server down"]}
            sampler.stop.set()
            sampler.join()
        rss = [mb for _, mb in sampler.samples]
        result = {
            "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "cpu_count": os.cpu_count(), "timings": timings, "phases": [p.summary() for p in phases],
            "rss_mb": {"peak": max(rss, default=None), "marks": sampler.marks, "samples": sampler.samples},
            "uploads": uploads, "documents": documents, "server_alive": alive,
        }
        checks = {
            "no request failed": all(not p.failures for p in phases),
            "every phase answered questions": all(p.latencies for p in phases),
            "the server stayed up": alive,
            f"RSS stayed under {args.rss_limit_mb:g} MB": bool(rss) and max(rss) <= args.rss_limit_mb,
            "uploads during load lost nothing": not documents["problems"] and len(uploads) == args.uploads,
        }
        result["checks"] = checks
        result["passed"] = all(checks.values())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    report(result)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0 if result["passed"] else 1


def report(result: dict[str, Any]) -> None:
    print(f"{'phase':<12} {'answered':>8} {'429':>5} {'failed':>6} {'answers/s':>9} {'p50 ms':>8} {'p95 ms':>8} "
          f"{'first-token p50':>15}")
    for p in result["phases"]:
        latency, first = p["latency_ms"] or {}, p["first_token_ms"] or {}
        print(f"{p['name']:<12} {p['answered']:>8} {p['rejected_429']:>5} {p['failed']:>6} "
              f"{p['throughput_per_s']:>9.2f} {latency.get('p50', 0):>8.0f} {latency.get('p95', 0):>8.0f} "
              f"{first.get('p50', 0):>15.0f}")
    rss = result["rss_mb"]
    print(f"server RSS: peak {rss['peak']} MB; {rss['marks']}")
    for name, ok in result["checks"].items():
        print(f"{'ok  ' if ok else 'FAIL'} {name}")
    for problem in result["documents"].get("problems", []):
        print(f"     {problem}")


if __name__ == "__main__":
    sys.exit(main())
