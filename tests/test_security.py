"""Hostile HTTP clients against `rag serve` over a real socket: every route the app has (its own, FastAPI's docs and
all of Gradio's) refuses a request without the key; path tricks, odd keys and encoded traversals do not get
around that or out of the corpus; request bodies and uploads are bounded; errors stay discreet."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from rag.pipeline import Pipeline
from rag.server.app import create_app
from rag.server.guard import MAX_BODY_BYTES, MAX_FILES_PER_UPLOAD, PUBLIC
from tests.conftest import ScriptedLLM
from tests.servers import fresh_pipeline, serve

ADMIN = "admin-sec-41d9-very-secret"
ASK = "ask-sec-public-88"
ORIGIN = "https://docs.example.org"
DOCUMENT = "# The Zephyr lantern\n\nThe Zephyr-9 lantern was invented by Marta Quillfeather in Tallinn in 1911.\n"
ASK_PATHS = {"/api/ask", "/v1/chat/completions", "/v1/models", "/api/passages/{passage_id}", "/api/files/{file:path}",
             "/api/feedback", "/api/conversations", "/api/conversations/{conversation_id}"}  # the last three: a
# caller's own only
_ABSOLUTE = re.compile(r"(?<![\w:/.])/(?:tmp|work|home|root|usr|var|etc|opt|srv|mnt)/")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Pipeline, Any]]:
    folder = tmp_path_factory.mktemp("security")
    (folder / "outside.md").write_text("# Outside\n\nA file next to the corpus, never to be touched.\n")
    pipeline = fresh_pipeline(folder, {"lantern.md": DOCUMENT}, ScriptedLLM(["It was Marta [1]."] * 50),
                              admin_key=ADMIN, ask_key=ASK, allowed_origins=[ORIGIN], max_upload_mb=0.01)
    app = create_app(pipeline)
    try:
        with serve(app) as url:
            yield url, pipeline, app
    finally:
        pipeline.close()


def all_routes(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    """(method, path) of every HTTP route, mounted apps and included routers (Gradio's) included."""
    for route in routes:
        path = prefix + (getattr(route, "path", "") or "")
        inner = getattr(route, "routes", None)
        if inner is None and hasattr(getattr(route, "app", None), "routes"):
            inner = route.app.routes
        if inner is None and hasattr(route, "original_router"):
            inner = route.original_router.routes
        if inner:
            yield from all_routes(inner, path)
        for method in getattr(route, "methods", None) or ():
            yield method, path


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


def assert_discreet(response: httpx.Response, *folders: Path) -> None:
    text = response.text
    assert ADMIN not in text and ASK not in text, text
    for folder in folders:
        assert str(folder) not in text, text
    assert not _ABSOLUTE.search(text), text


# -- keys ----------------------------------------------------------------------------------------------------------

def test_every_route_refuses_a_request_without_the_key(server: tuple[str, Pipeline, Any]) -> None:
    url, pipeline, app = server
    routes = sorted(set(all_routes(app.routes)))
    paths = {path for _, path in routes}
    # The enumeration really reaches Gradio's API, FastAPI's docs and every route of our own.
    assert {"/gradio_api/queue/join", "/gradio_api/upload", "/gradio_api/file={path_or_url:path}", "/config",
            "/docs", "/openapi.json", "/api/documents", "/api/documents/{file:path}", "/api/passages/{passage_id}",
            "/gradio_api/info", "/monitoring"} <= paths
    assert len(routes) > 60
    folders = (pipeline.settings.corpus_dir, pipeline.settings.index_dir)
    with httpx.Client(base_url=url, timeout=30) as client:
        for method, path in routes:
            if path in PUBLIC and method in ("GET", "HEAD"):
                continue
            for headers, expected in (({}, 401), ({"Authorization": "Bearer wrong"}, 401),
                                      ({"X-API-Key": ASK, "Origin": ORIGIN}, 403)):
                if expected == 403 and path in ASK_PATHS:
                    continue
                response = client.request(method, concrete(path), headers=headers)
                assert response.status_code == expected, (method, path, headers, response.text)
                assert_discreet(response, *folders)
            # Not a CORS preflight (no Access-Control-Request-Method): OPTIONS is no way around the key either.
            assert client.options(concrete(path)).status_code == 401, path
        assert client.get("/healthz").status_code == 200 and client.get("/widget.js").status_code == 200


def test_the_ask_key_reaches_only_the_ask_routes(server: tuple[str, Pipeline, Any]) -> None:
    url, _, _ = server
    headers = {"X-API-Key": ASK, "Origin": ORIGIN}
    with httpx.Client(base_url=url, timeout=30, headers=headers) as client:
        assert client.get("/v1/models").status_code == 200
        assert client.get("/api/passages/no-such-id").status_code == 404
        assert client.post("/api/ask", json={"question": "Who invented the Zephyr-9 lantern?"}).status_code == 200
        # A passage path that climbs out of /api/passages/ is no admin route for an ask key.
        for path in ("/api/passages/../documents", "/api/passages/..%2f..%2fapi%2fdocuments",
                     "/api/passages/%2e%2e/%2e%2e/config", "/api/passages/../../gradio_api/info",
                     "/api/conversations/../documents", "/api/conversations/%2e%2e/%2e%2e/config"):
            response = client.get(path)
            assert response.status_code in (403, 404), (path, response.text)
            assert "lantern" not in response.text.lower()


@pytest.mark.parametrize("path", [
    "//api/documents", "/api/documents/", "/API/documents", "/%61pi/documents", "/api%2fdocuments",
    "/healthz/../api/documents", "/widget.js/../api/documents", "/login/../config", "/healthz%2f..%2fconfig",
    "/gradio_api/file=/etc/passwd", "/static/../../../etc/passwd",
])
def test_path_tricks_do_not_skip_the_key(server: tuple[str, Pipeline, Any], path: str) -> None:
    url, _, _ = server
    with httpx.Client(base_url=url, timeout=30) as client:
        response = client.get(path)
        assert response.status_code == 401, response.text
        assert "lantern" not in response.text.lower() and "root:" not in response.text


def test_gradio_login_and_odd_keys_are_refused(server: tuple[str, Pipeline, Any]) -> None:
    url, _, _ = server
    with httpx.Client(base_url=url, timeout=30) as client:
        # Gradio has its own POST /login next to our public GET /login: it must not be reachable without a key.
        assert client.post("/login", data={"username": "admin", "password": "admin"}).status_code == 401
        for key in ("ä".encode("latin-1"), b"\xff\xfe", ADMIN.encode()[:-1], ADMIN.upper().encode(), b"Bearer"):
            response = client.get("/api/documents", headers={"X-API-Key": key})
            assert response.status_code == 401, key  # not a 500 from comparing a non-ASCII key
            assert client.get("/login", params={"key": key.decode("latin-1")}).status_code == 401


def test_gradio_file_route_serves_no_file_of_this_machine(server: tuple[str, Pipeline, Any]) -> None:
    url, pipeline, _ = server
    corpus, index = pipeline.settings.corpus_dir, pipeline.settings.index_dir
    with httpx.Client(base_url=url, timeout=30, headers={"X-API-Key": ADMIN}) as client:
        for target in ("/etc/passwd", str(corpus / "lantern.md"), str(index / "registry.sqlite"),
                       str(corpus.parent / "outside.md"), "../../../../etc/passwd"):
            for route in ("/gradio_api/file=", "/gradio_api/file/"):
                response = client.get(route + target)
                assert response.status_code in (403, 404), (route, target, response.status_code)
                assert "root:" not in response.text and "Quillfeather" not in response.text


# -- CORS ----------------------------------------------------------------------------------------------------------

def test_cors_never_opens_to_other_origins(server: tuple[str, Pipeline, Any]) -> None:
    url, _, _ = server
    with httpx.Client(base_url=url, timeout=30) as client:
        for origin in ("https://evil.example.net", "null", "https://docs.example.org.evil.net", "http://docs.example.org"):
            preflight = client.options("/api/ask", headers={"Origin": origin, "Access-Control-Request-Method": "POST"})
            assert "access-control-allow-origin" not in preflight.headers, origin
            asked = client.post("/api/ask", json={"question": "Who?"},
                                headers={"Origin": origin, "X-API-Key": ASK})
            assert asked.status_code == 401 and "access-control-allow-origin" not in asked.headers, origin
        good = client.options("/api/ask", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"})
        assert good.headers["access-control-allow-origin"] == ORIGIN
        assert "access-control-allow-credentials" not in good.headers  # cookies never travel cross-origin


# -- bounded requests ----------------------------------------------------------------------------------------------

def test_request_bodies_are_bounded(server: tuple[str, Pipeline, Any]) -> None:
    url, _, _ = server
    big = b'{"question": "' + b"a" * (MAX_BODY_BYTES + 10) + b'"}'

    def chunked() -> Iterator[bytes]:  # no Content-Length: the server must count as it reads
        yield b'{"question": "'
        for _ in range(MAX_BODY_BYTES // 65536 + 2):
            yield b"a" * 65536
        yield b'"}'

    json_headers = {"X-API-Key": ADMIN, "Content-Type": "application/json"}
    with httpx.Client(base_url=url, timeout=60) as client:
        assert client.post("/api/ask", content=big, headers=json_headers).status_code == 413
        assert client.post("/api/ask", content=chunked(), headers=json_headers).status_code == 413
        assert client.post("/v1/chat/completions", content=chunked(), headers=json_headers).status_code == 413
        assert client.post("/gradio_api/queue/join", content=chunked(), headers=json_headers).status_code == 413
        # Inside the limit, every part of a question is bounded too.
        long_turn = [{"question": "q", "answer": "a" * 20_001}]
        cases = [
            ("/api/ask", {"question": "Who invented it?", "history": long_turn}),
            ("/api/ask", {"question": "Who invented it?", "history": [{"question": "q", "answer": "a"}] * 21}),
            ("/api/ask", {"question": "Who invented it?", "files": ["x" * 1001]}),
            ("/v1/chat/completions", {"messages": [{"role": "user", "content": "q" * 20_001}]}),
            ("/v1/chat/completions", {"messages": [{"role": "user", "content": "q"}] * 43}),
        ]
        for route, body in cases:
            response = client.post(route, json=body, headers={"X-API-Key": ADMIN})
            assert response.status_code == 422, (route, response.text[:200])
        assert client.post("/api/ask", json={"question": "x" * 2001}, headers={"X-API-Key": ADMIN}).status_code == 413


def test_uploads_are_bounded_in_size_and_count(server: tuple[str, Pipeline, Any]) -> None:
    url, pipeline, _ = server
    uploads = pipeline.settings.corpus_dir / "uploads"
    note = b"# Note\n\nA short note about lanterns.\n"
    with httpx.Client(base_url=url, timeout=60, headers={"X-API-Key": ADMIN}) as client:
        many = [("files", (f"n{i}.md", note, "text/markdown")) for i in range(MAX_FILES_PER_UPLOAD + 1)]
        response = client.post("/api/documents", files=many)
        assert response.status_code == 413, response.text
        assert not uploads.exists() or not list(uploads.glob("n*.md"))
        # 10 kB per file is the limit here: the whole request is refused before it is stored, even unannounced.
        huge = b"# Huge\n\n" + b"lantern " * 200_000

        def parts() -> Iterator[bytes]:
            yield (b'--b\r\nContent-Disposition: form-data; name="files"; filename="huge.md"\r\n'
                   b"Content-Type: text/markdown\r\n\r\n")
            for start in range(0, len(huge), 65536):
                yield huge[start:start + 65536]
            yield b"\r\n--b--\r\n"

        response = client.post("/api/documents", content=parts(),
                               headers={"Content-Type": "multipart/form-data; boundary=b"})
        assert response.status_code == 413
        assert not uploads.exists() or not list(uploads.glob("*huge*"))
        assert {d["file"] for d in client.get("/api/documents").json()} == {"lantern.md"}
        assert_discreet(response, pipeline.settings.corpus_dir)


# -- no way out of the corpus ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", [
    "%2e%2e%2f%2e%2e%2fevil.md", "..%2F..%2Fevil.md", "..%5c..%5cevil.md", "....//....//evil.md", "..／..／evil.md",
    "..∕..∕evil.md", "C:\\Windows\\evil.md", "evil.md\x00.exe.md", "\n../evil.md", "uploads/../../evil.md",
])
def test_encoded_upload_names_stay_in_the_uploads_folder(server: tuple[str, Pipeline, Any], name: str) -> None:
    url, pipeline, _ = server
    corpus = pipeline.settings.corpus_dir
    uploads = (corpus / "uploads").resolve()
    with httpx.Client(base_url=url, timeout=60, headers={"X-API-Key": ADMIN}) as client:
        content = b"# Evil\n\nOnly text here.\n"
        response = client.post("/api/documents", files={"files": (name, content, "text/markdown")})
        assert response.status_code in (200, 400), response.text
        if response.status_code == 200:
            (stored,) = response.json()["ingested"][0]["new"]
            path = (corpus / stored).resolve()
            assert path.parent == uploads and path.is_file(), stored
            assert client.delete(f"/api/documents/{stored}").status_code == 200
        assert not [p for p in corpus.parent.rglob("*evil*") if p.parent != uploads]
        assert not Path("/tmp/evil.md").exists()


def test_document_ids_cannot_reach_outside_the_index(server: tuple[str, Pipeline, Any]) -> None:
    url, pipeline, _ = server
    outside = pipeline.settings.corpus_dir.parent / "outside.md"
    folders = (pipeline.settings.corpus_dir, pipeline.settings.index_dir)
    with httpx.Client(base_url=url, timeout=30, headers={"X-API-Key": ADMIN}) as client:
        for file in ("../outside.md", "..%2foutside.md", "%2e%2e/outside.md", "%2e%2e%2foutside.md",
                     "uploads/../../outside.md", "..\\outside.md", str(outside), f"%2f{str(outside)[1:]}",
                     "lantern.md/../../outside.md", "%252e%252e%252foutside.md", "lantern.md%00"):
            response = client.delete(f"/api/documents/{file}")
            assert response.status_code == 404, (file, response.status_code, response.text)
            assert_discreet(response, *folders)
        asked = client.post("/api/ask", json={"question": "What is next to the corpus?",
                                               "files": ["../outside.md", str(outside)]})
        assert asked.status_code == 200 and "never to be touched" not in asked.text
        for passage in ("..%2f..%2foutside.md", "%2e%2e", "' OR 1=1 --", "*"):
            assert client.get(f"/api/passages/{passage}").status_code == 404
        assert outside.is_file() and (pipeline.settings.corpus_dir / "lantern.md").is_file()
        assert [d["file"] for d in client.get("/api/documents").json()] == ["lantern.md"]
