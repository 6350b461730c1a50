"""The HTTP API of `rag serve` over a real socket: the OpenAI-compatible API with the real `openai` client, the
SSE ask route, keys, CORS, uploads, the queue and the rate limit. The real packaged model answers the
openai-client tests; the scripted LLM double stands in where the test is about the code around the model."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from rag.pipeline import Pipeline
from rag.server.app import create_app
from tests.conftest import ScriptedLLM
from tests.servers import ROOT, seeded_pipeline, seeded_template, serve

QUESTION = "Which model was Alibaba's first open-source model?"
REPLY = "Qwen-7B was the first open-source model that Alibaba released [1]."
ADMIN = "admin-7f3c9e1b-very-secret"
ASK = "ask-public-5d2a"
ALLOWED = "https://docs.example.org"
OTHER = "https://evil.example.net"
_ABSOLUTE = re.compile(r"(?<![\w:/.])/(?:tmp|work|home|root|usr|var|etc|opt|srv|mnt)/")


# -- helpers ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return seeded_template(tmp_path_factory.getbasetemp())


@contextmanager
def running(template: Path, folder: Path, llm: Any = None, mount_ui: bool = False,
            **overrides: Any) -> Iterator[tuple[str, Pipeline]]:
    pipeline = seeded_pipeline(template, folder, llm, **overrides)
    try:
        with serve(create_app(pipeline, mount_ui=mount_ui)) as url:
            yield url, pipeline
    finally:
        pipeline.close()


def scripted(n: int = 40, **kwargs: Any) -> ScriptedLLM:
    return ScriptedLLM([REPLY] * n, **kwargs)


def sse_events(response: httpx.Response) -> Iterator[tuple[str, Any]]:
    """(event, data) pairs of a text/event-stream response, data parsed as JSON when it is JSON."""
    name, data = "message", []
    for line in response.iter_lines():
        if not line:
            if data:
                text = "\n".join(data)
                try:
                    yield name, json.loads(text)
                except json.JSONDecodeError:
                    yield name, text
            name, data = "message", []
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)


def ask(client: httpx.Client, question: str = QUESTION, **body: Any) -> tuple[httpx.Response, list[tuple[str, Any]]]:
    with client.stream("POST", "/api/ask", json={"question": question, **body}) as response:
        if response.status_code == 200:
            events = list(sse_events(response))
        else:
            response.read()
            events = []
    return response, events


def assert_discreet(response: httpx.Response, *folders: Path) -> None:
    """An answer that names neither the admin key nor a folder of this machine."""
    text = response.text
    assert ADMIN not in text, text
    for folder in (ROOT, *folders):
        assert str(folder) not in text, text
    assert not _ABSOLUTE.search(text), text


# -- the OpenAI-compatible API, real packaged model -----------------------------------------------------------

@pytest.fixture(scope="module")
def real_server(template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # The model writes (not the extractive default for SmolLM2), and token by token ("flag"), as an API client sees it.
    with running(template, tmp_path_factory.mktemp("real"), ask_key=ASK, answer_mode="generate",
                 grounding="flag") as (url, _):
        yield url


def test_openai_client_non_streaming(real_server: str) -> None:
    client = openai.OpenAI(base_url=f"{real_server}/v1", api_key=ASK, max_retries=0, timeout=120)
    assert [m.id for m in client.models.list().data] == ["rag"]
    completion = client.chat.completions.create(model="rag", messages=[{"role": "user", "content": QUESTION}])
    text = completion.choices[0].message.content
    assert text and completion.choices[0].finish_reason == "stop"
    citations = completion.model_extra["citations"]
    assert citations, text
    assert any("Qwen-7B" in c["text"] for c in citations)
    for citation in citations:
        assert {"number", "file", "title", "start", "end", "text", "score", "attributed"} <= set(citation)
        assert f"[{citation['number']}]" in text
    for claim in completion.model_extra["unsupported"]:  # sentences no passage backs, by offsets into the answer
        assert text[claim["start"] : claim["end"]] == claim["text"]


def test_openai_client_streaming(real_server: str) -> None:
    client = openai.OpenAI(base_url=f"{real_server}/v1", api_key=ASK, max_retries=0, timeout=120)
    stream = client.chat.completions.create(
        model="rag", stream=True,
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": QUESTION}],
    )
    chunks = list(stream)
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) >= 3, pieces  # token by token, not one block
    assert "Qwen" in "".join(pieces)
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    citations = last.model_extra["citations"]
    assert citations and any("Qwen-7B" in c["text"] for c in citations)
    assert isinstance(last.model_extra["unsupported"], list)
    assert all("citations" not in (c.model_extra or {}) for c in chunks[:-1])


def test_openai_client_needs_the_key(real_server: str) -> None:
    client = openai.OpenAI(base_url=f"{real_server}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.models.list()


# -- /api/ask over SSE --------------------------------------------------------------------------------------

def test_ask_streams_tokens_before_the_answer_ends(template: Path, tmp_path: Path) -> None:
    llm = scripted(block_after=3)
    with (running(template, tmp_path, llm, grounding="flag") as (url, _), httpx.Client(base_url=url, timeout=30)
          as client,
          client.stream("POST", "/api/ask", json={"question": QUESTION}) as response):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response)
        first = next(events)
        # Text has reached the client, and the model now waits after its third token: it is not done.
        assert first == ("token", {"text": "Qwen-7B"})
        assert llm.reached_gate.wait(10) and not llm.gate.is_set()
        llm.gate.set()
        rest = list(events)
    tokens = [first[1]["text"]] + [data["text"] for name, data in rest if name == "token"]
    names = [name for name, _ in rest]
    assert names[-1] == "answer" and names.count("answer") == 1 and len(tokens) >= 5
    answer = rest[-1][1]
    assert answer["answer"] == "".join(tokens).strip() == REPLY
    assert not answer["refused"]
    assert [c["number"] for c in answer["citations"]] == [1]
    assert answer["citations"][0]["text"] == answer["context"][0]["text"]
    assert {"file", "title", "start", "end", "text", "score", "attributed"} <= set(answer["citations"][0])


# -- keys and CORS ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def keyed_server(template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running(template, tmp_path_factory.mktemp("keyed"), scripted(), mount_ui=True, admin_key=ADMIN,
                 ask_key=ASK, allowed_origins=[ALLOWED]) as (url, _):
        yield url


ROUTES = [
    ("GET", "/"), ("GET", "/config"), ("GET", "/gradio_api/info"), ("GET", "/api/documents"),
    ("POST", "/api/documents"), ("DELETE", "/api/documents/000_a016bfee2c19fd01.txt"), ("POST", "/api/ask"),
    ("GET", "/v1/models"), ("POST", "/v1/chat/completions"), ("GET", "/api/passages/x"), ("GET", "/docs"),
]


def test_without_a_key_every_route_is_401(keyed_server: str) -> None:
    with httpx.Client(base_url=keyed_server, timeout=30) as client:
        for method, path in ROUTES:
            response = client.request(method, path)
            assert response.status_code == 401, (method, path, response.text)
            assert_discreet(response)
        page = client.get("/", headers={"Accept": "text/html"})
        assert page.status_code == 401 and "/login?key=" in page.text
        wrong = client.get("/api/documents", headers={"Authorization": "Bearer not-the-key"})
        assert wrong.status_code == 401
        assert client.get("/healthz").status_code == 200
        widget = client.get("/widget.js")
        assert widget.status_code == 200 and "javascript" in widget.headers["content-type"]
        assert "attachShadow" in widget.text


def test_ask_key_may_ask_but_not_manage(keyed_server: str) -> None:
    headers = {"Authorization": f"Bearer {ASK}", "Origin": ALLOWED}
    with httpx.Client(base_url=keyed_server, headers=headers, timeout=30) as client:
        response, events = ask(client)
        assert response.status_code == 200 and events[-1][0] == "answer"
        assert client.get("/v1/models").status_code == 200
        chat = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": QUESTION}]})
        assert chat.status_code == 200 and chat.json()["citations"]
        by_header = client.get("/v1/models", headers={"Authorization": "", "X-API-Key": ASK})
        assert by_header.status_code == 200
        for method, path in [("GET", "/api/documents"), ("DELETE", "/api/documents/000_a016bfee2c19fd01.txt"),
                             ("GET", "/"), ("GET", "/config")]:
            response = client.request(method, path)
            assert response.status_code == 403, (method, path, response.text)
        upload = client.post("/api/documents", files={"files": ("x.md", b"# X\n\nhello there", "text/markdown")})
        assert upload.status_code == 403
        assert len(httpx.get(f"{keyed_server}/api/documents", headers={"X-API-Key": ADMIN}).json()) == 5


def test_ask_key_may_read_a_cited_passage(keyed_server: str) -> None:
    headers = {"Authorization": f"Bearer {ASK}", "Origin": ALLOWED}
    with httpx.Client(base_url=keyed_server, headers=headers, timeout=30) as client:
        _, events = ask(client)
        cited = events[-1][1]["passages"][0]
        found = client.get(f"/api/passages/{cited['id']}")
        assert found.status_code == 200, found.text
        part, context = found.json(), found.json()["context"]
        # An answer's passage may be neighbouring chunks merged; its id names the best of them.
        assert part["file"] == cited["file"] and cited["start"] <= part["start"] < part["end"] <= cited["end"]
        assert part["text"] in cited["text"] and part["text"] in context["text"]
        assert client.get("/api/passages/not-a-passage").status_code == 404


def test_ask_key_needs_a_listed_origin(keyed_server: str) -> None:
    with httpx.Client(base_url=keyed_server, timeout=30) as client:
        for origin in (None, OTHER, "null"):
            headers = {"Authorization": f"Bearer {ASK}", **({"Origin": origin} if origin else {})}
            response = client.post("/api/ask", json={"question": QUESTION}, headers=headers)
            assert response.status_code == 401, origin
            assert client.get("/v1/models", headers=headers).status_code == 401


def test_admin_key_may_do_everything(keyed_server: str) -> None:
    with httpx.Client(base_url=keyed_server, headers={"X-API-Key": ADMIN}, timeout=60) as client:
        page = client.get("/", headers={"Accept": "text/html"})
        assert page.status_code == 200 and "gradio" in page.text.lower()
        assert client.get("/config").status_code == 200
        assert len(client.get("/api/documents").json()) == 5
        response, events = ask(client)
        assert response.status_code == 200 and events[-1][0] == "answer"
        upload = client.post("/api/documents", files={"files": ("admin.md", b"# Admin note\n\nA short note.",
                                                                "text/markdown")})
        assert upload.status_code == 200, upload.text
        assert upload.json()["ingested"][0]["new"] == ["uploads/admin.md"]
        assert client.delete("/api/documents/uploads/admin.md").status_code == 200
        assert len(client.get("/api/documents").json()) == 5
        assert client.get("/v1/models", headers={"Origin": OTHER}).status_code == 200  # admin: any origin


def test_login_sets_the_key_cookie(keyed_server: str) -> None:
    with httpx.Client(base_url=keyed_server, timeout=30) as client:
        for key in (ASK, "nope"):
            refused = client.get("/login", params={"key": key}, follow_redirects=False)
            assert refused.status_code == 401 and "set-cookie" not in refused.headers
            assert_discreet(refused)
        response = client.get("/login", params={"key": ADMIN}, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/"
        cookie = response.headers["set-cookie"]
        assert cookie.startswith("rag_key=") and "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
        assert client.cookies.get("rag_key") == ADMIN
        assert client.get("/api/documents").status_code == 200
        page = client.get("/", headers={"Accept": "text/html"})
        assert page.status_code == 200 and "gradio" in page.text.lower()


def test_cors_only_for_allowed_origins(keyed_server: str) -> None:
    preflight = {"Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type"}
    with httpx.Client(base_url=keyed_server, timeout=30) as client:
        good = client.options("/api/ask", headers={"Origin": ALLOWED, **preflight})
        assert good.status_code == 200
        assert good.headers["access-control-allow-origin"] == ALLOWED
        assert "authorization" in good.headers["access-control-allow-headers"].lower()
        assert "POST" in good.headers["access-control-allow-methods"]
        bad = client.options("/api/ask", headers={"Origin": OTHER, **preflight})
        assert "access-control-allow-origin" not in bad.headers

        with httpx.Client(base_url=keyed_server, timeout=30,
                          headers={"Authorization": f"Bearer {ASK}", "Origin": ALLOWED}) as page:
            response, events = ask(page)
        assert response.status_code == 200 and events[-1][0] == "answer"
        assert response.headers["access-control-allow-origin"] == ALLOWED
        # The widget reads Retry-After from a 429: a cross-origin page may only when the header is exposed.
        assert "retry-after" in response.headers.get("access-control-expose-headers", "").lower()

        admin = {"X-API-Key": ADMIN}
        other = client.get("/v1/models", headers={**admin, "Origin": OTHER})
        assert other.status_code == 200 and "access-control-allow-origin" not in other.headers
        listed = client.get("/v1/models", headers={**admin, "Origin": ALLOWED})
        assert listed.headers["access-control-allow-origin"] == ALLOWED
        refused = client.get("/v1/models", headers={"Origin": ALLOWED})
        assert refused.status_code == 401
        assert refused.headers["access-control-allow-origin"] == ALLOWED  # so the page can read the error


def test_questions_longer_than_the_limit_are_413(keyed_server: str) -> None:
    too_long = "why " * 501  # 2004 characters; the limit is 2000
    with httpx.Client(base_url=keyed_server, headers={"X-API-Key": ADMIN}, timeout=30) as client:
        response = client.post("/api/ask", json={"question": too_long})
        assert response.status_code == 413 and "2000" in response.text
        chat = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": too_long}]})
        assert chat.status_code == 413
        fits, events = ask(client, "why " * 499)
        assert fits.status_code == 200 and events[-1][0] == "answer"


# -- uploads --------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def upload_server(template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Pipeline]]:
    with running(template, tmp_path_factory.mktemp("uploads"), scripted(), admin_key=ADMIN,
                 max_upload_mb=0.001) as server:
        yield server


def admin_client(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=60)


def upload(client: httpx.Client, name: str, content: bytes, kind: str = "text/markdown") -> httpx.Response:
    return client.post("/api/documents", files={"files": (name, content, kind)})


LANTERN = b"# The Zephyr lantern\n\nThe Zephyr-9 lantern was invented by Marta Quillfeather in Tallinn in 1911.\n"


def test_uploaded_markdown_is_searchable_at_once(upload_server: tuple[str, Pipeline]) -> None:
    url, pipeline = upload_server
    with admin_client(url) as client:
        response = upload(client, "lantern.md", LANTERN)
        assert response.status_code == 200, response.text
        report = response.json()["ingested"][0]
        assert report["new"] == ["uploads/lantern.md"] and report["chunks"] >= 1
        assert (pipeline.settings.corpus_dir / "uploads" / "lantern.md").read_bytes() == LANTERN
        listed = {d["file"]: d for d in client.get("/api/documents").json()}
        assert listed["uploads/lantern.md"]["status"] == "complete"
        _, events = ask(client, "Who invented the Zephyr-9 lantern?")
        passages = events[-1][1]["passages"]
        assert passages[0]["file"] == "uploads/lantern.md" and "Quillfeather" in passages[0]["text"]


def test_upload_over_the_size_limit_is_413(upload_server: tuple[str, Pipeline]) -> None:
    url, pipeline = upload_server
    with admin_client(url) as client:
        response = upload(client, "big.md", b"# Big\n\n" + b"word " * 400)  # 2 kB; the limit is 1 kB
        assert response.status_code == 413, response.text
        assert_discreet(response, pipeline.settings.corpus_dir)
        assert not list((pipeline.settings.corpus_dir / "uploads").glob("*big*"))  # no partial file left
        assert "uploads/big.md" not in {d["file"] for d in client.get("/api/documents").json()}


@pytest.mark.parametrize("name", ["../../evil.md", "..\\evil.md", "..\\..\\evil.md", "/tmp/evil.md", "./.evil.md"])
def test_upload_names_cannot_leave_the_uploads_folder(upload_server: tuple[str, Pipeline], name: str,
                                                      tmp_path_factory: pytest.TempPathFactory) -> None:
    url, pipeline = upload_server
    uploads = (pipeline.settings.corpus_dir / "uploads").resolve()
    with admin_client(url) as client:
        response = upload(client, name, b"# Evil\n\nNothing to see here, only text.\n")
        assert response.status_code == 200, response.text
        assert response.json()["ingested"][0]["new"] == ["uploads/evil.md"]
        assert (uploads / "evil.md").is_file()
        outside = [p for p in tmp_path_factory.getbasetemp().rglob("*evil*") if p.parent != uploads]
        assert outside == []
        assert not Path("/tmp/evil.md").exists() and not (ROOT / "evil.md").exists()
        assert client.delete("/api/documents/uploads/evil.md").status_code == 200


def test_unsupported_upload_is_400(upload_server: tuple[str, Pipeline]) -> None:
    url, pipeline = upload_server
    with admin_client(url) as client:
        for name in ("tool.exe", "archive.zip", "noextension"):
            response = upload(client, name, b"MZ\x90\x00binary", "application/octet-stream")
            assert response.status_code == 400, (name, response.text)
            assert "unsupported" in response.json()["detail"]
            assert_discreet(response, pipeline.settings.corpus_dir)
        assert not [p for p in (pipeline.settings.corpus_dir / "uploads").iterdir() if p.suffix != ".md"]


def test_unreadable_upload_is_400_and_not_kept(upload_server: tuple[str, Pipeline]) -> None:
    url, pipeline = upload_server
    with admin_client(url) as client:
        for name, content in (("empty.md", b""), ("binary.txt", b"\x00\x01" * 50)):
            response = upload(client, name, content)
            assert response.status_code == 400, (name, response.text)
            assert not (pipeline.settings.corpus_dir / "uploads" / name).exists()


def test_delete_removes_an_upload_from_the_index(upload_server: tuple[str, Pipeline]) -> None:
    url, pipeline = upload_server
    stored = pipeline.settings.corpus_dir / "uploads" / "ferry.md"
    with admin_client(url) as client:
        content = b"# Ferries\n\nThe Glimmerholm ferry crosses the Vexsund strait twice a day.\n"
        assert upload(client, "ferry.md", content).status_code == 200
        _, events = ask(client, "Which ferry crosses the Vexsund strait?")
        assert events[-1][1]["passages"][0]["file"] == "uploads/ferry.md"
        response = client.delete("/api/documents/uploads/ferry.md")
        assert response.status_code == 200 and response.json() == {"removed": "uploads/ferry.md"}
        assert not stored.exists()
        assert "uploads/ferry.md" not in {d["file"] for d in client.get("/api/documents").json()}
        _, events = ask(client, "Which ferry crosses the Vexsund strait?")
        assert all(p["file"] != "uploads/ferry.md" for p in events[-1][1]["passages"])
        again = client.delete("/api/documents/uploads/ferry.md")
        assert again.status_code == 404
        assert_discreet(again, pipeline.settings.corpus_dir)
        # Seed documents are taken out of the index, never deleted from the corpus.
        seed = pipeline.settings.corpus_dir / "004_0a1d1531aeb0332c.txt"
        assert client.delete("/api/documents/004_0a1d1531aeb0332c.txt").status_code == 200
        assert seed.is_file()


def test_errors_name_neither_the_key_nor_a_folder(upload_server: tuple[str, Pipeline]) -> None:
    url, pipeline = upload_server
    folders = (pipeline.settings.corpus_dir, pipeline.settings.index_dir)
    with admin_client(url) as client:
        responses = [
            upload(client, "broken.pdf", b"%PDF-1.4 this is no PDF at all", "application/pdf"),
            upload(client, "blob.txt", bytes(range(256)) * 3, "text/plain"),
            upload(client, "empty.md", b""),
            client.post("/api/ask", json={"question": ""}),
            client.post("/api/ask", json={"question": QUESTION, "files": ["/etc/passwd"]}),
            client.post("/api/ask", content=b"{not json", headers={"Content-Type": "application/json"}),
            client.get("/api/passages/no-such-passage"),
            client.delete("/api/documents/../../etc/passwd"),
            client.post("/v1/chat/completions", json={"messages": [{"role": "assistant", "content": "hi"}]}),
            httpx.get(f"{url}/api/documents", headers={"Authorization": f"Bearer {ADMIN}x"}),
        ]
    for response in responses:
        assert_discreet(response, *folders)
    assert [r.status_code for r in responses[3:]] == [422, 200, 422, 404, 404, 400, 401]


# -- the queue and the rate limit ---------------------------------------------------------------------------

def test_full_queue_answers_429_and_the_server_stays_up(template: Path, tmp_path: Path) -> None:
    llm = scripted(block_after=1)
    results: dict[int, tuple[int, str | None, list[str]]] = {}

    def fire(number: int, url: str) -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            response, events = ask(client)
            results[number] = (response.status_code, response.headers.get("retry-after"), [n for n, _ in events])

    with running(template, tmp_path, llm, queue_size=1) as (url, _):
        first = threading.Thread(target=fire, args=(0, url))
        first.start()
        assert llm.reached_gate.wait(30)  # question 0 holds the model
        others = [threading.Thread(target=fire, args=(n, url)) for n in (1, 2)]
        for thread in others:
            thread.start()
        deadline = time.monotonic() + 20
        while not any(r[0] == 429 for r in results.values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        llm.gate.set()
        for thread in [first, *others]:
            thread.join(60)
        assert sorted(r[0] for r in results.values()) == [200, 200, 429], results
        for status, retry_after, names in results.values():
            if status == 429:
                assert retry_after and int(retry_after) >= 1
            else:
                assert names[-1] == "answer"
        assert results[0][0] == 200
        assert httpx.get(f"{url}/healthz").status_code == 200
        with httpx.Client(base_url=url, timeout=30) as client:
            response, events = ask(client)
            assert response.status_code == 200 and events[-1][0] == "answer"


def test_rate_limit_per_ask_key(template: Path, tmp_path: Path) -> None:
    with running(template, tmp_path, scripted(), admin_key=ADMIN, ask_key=ASK, ask_rate_per_minute=2) as (url, _):
        with httpx.Client(base_url=url, headers={"X-API-Key": ASK}, timeout=30) as client:
            statuses = [ask(client)[0] for _ in range(3)]
            assert [r.status_code for r in statuses] == [200, 200, 429]
            assert 1 <= int(statuses[2].headers["retry-after"]) <= 61
            assert_discreet(statuses[2])
            assert client.get("/v1/models").status_code == 200  # reading is not asking
        with admin_client(url) as admin:  # the admin is not rate limited
            assert all(ask(admin)[0].status_code == 200 for _ in range(3))
