"""Conversations that outlive the process: real `rag serve` processes restarted (the API and the chat UI in Chromium
find the conversation, its citations and its rating again), killed with SIGKILL mid-answer and mid-write (what
was stored stays readable), and the widget in two browsers (each keeps its own conversation; neither reaches the
other's). Screenshots go to /tmp/rag-shots/."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page

from rag.conversations import FILE_NAME, ConversationStore
from rag.models.resolve import PACKAGED_EMBEDDING_ID, PACKAGED_LLM_ID
from rag.server.app import create_app
from tests.conftest import ScriptedLLM
from tests.servers import ROOT, SHOTS, free_port, seeded_pipeline, seeded_template, serve
from tests.test_api import sse_events
from tests.test_browser import HOST_PAGE

QUESTION = "Which model was Alibaba's first open-source model?"
ADMIN = "admin-live-5e1d-secret"
ASK = "ask-live-public"
SITES = "https://a.example,https://b.example"  # comma-separated, as an operator writes it in the environment
BROWSER_A = "live-browser-a-" + "7" * 20

SERVE_ENV = {"RAG_EMBEDDING_MODEL": PACKAGED_EMBEDDING_ID, "RAG_LLM_MODEL": PACKAGED_LLM_ID, "RAG_OFFLINE": "1",
             "HF_HUB_OFFLINE": "1", "RAG_N_CTX": "2048", "RAG_MAX_TOKENS": "96", "TOKENIZERS_PARALLELISM": "false",
             "RAG_ADMIN_KEY": ADMIN, "RAG_ASK_KEY": ASK, "RAG_ALLOWED_ORIGINS": SITES}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return seeded_template(tmp_path_factory.getbasetemp())


def seeded_folder(template: Path, folder: Path) -> Path:
    """A private copy of the seeded corpus and index, closed again so a `rag serve` process can take it."""
    seeded_pipeline(template, folder).close()
    return folder


@contextmanager
def rag_serve(folder: Path, **env: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """The installed `rag serve` in a process of its own; stopped with SIGTERM unless the test killed it."""
    port = free_port()
    log = (folder / f"serve-{port}.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "rag", "--index-dir", str(folder / "index"), "--corpus-dir", str(folder / "corpus"),
         "serve", "--port", str(port)], env={**os.environ, **SERVE_ENV, **env}, stdout=log, stderr=subprocess.STDOUT,
        text=True, cwd=folder)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, (folder / f"serve-{port}.log").read_text()[-3000:]
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "rag serve did not start in 180 s"
            time.sleep(0.1)
        yield url, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


def admin(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"X-API-Key": ADMIN}, timeout=120)


def ask(client: httpx.Client, question: str = QUESTION, **body: Any) -> dict[str, Any]:
    with client.stream("POST", "/api/ask", json={"question": question, **body}) as response:
        assert response.status_code == 200, response.read()
        events = list(sse_events(response))
    assert events[-1][0] == "answer", events
    return events[-1][1]


@contextmanager
def new_page(browser: Browser) -> Iterator[Page]:
    """A browser profile of its own (its own localStorage), failing the test on any page error."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield page
        assert errors == []
    finally:
        context.close()


def wait_for(condition: Any, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"no {what} in {timeout} s"
        time.sleep(0.1)


# -- a restart of rag serve -----------------------------------------------------------------------------------

def test_conversations_survive_a_restart_of_rag_serve(template: Path, tmp_path: Path, browser: Browser) -> None:
    folder = seeded_folder(template, tmp_path)
    widget = {"Authorization": f"Bearer {ASK}", "Origin": "https://b.example", "X-Client-Id": BROWSER_A}
    with rag_serve(folder) as (url, _), admin(url) as client:
        first = ask(client)  # the packaged SmolLM2: answers are quoted evidence, cited
        assert first["citations"] and first["conversation_id"]
        rated = client.post("/api/feedback", json={"answer_id": first["answer_id"], "rating": "down",
                                                   "comment": "Name the month as well."})
        assert rated.status_code == 200, rated.text
        with httpx.Client(base_url=url, headers=widget, timeout=120) as page_client:
            theirs = ask(page_client, "When did the World Government Summit take place?")
    with rag_serve(folder) as (url, _), admin(url) as client:
        listed = {c["id"]: c for c in client.get("/api/conversations").json()}
        assert {first["conversation_id"], theirs["conversation_id"]} <= set(listed)
        turn = client.get(f"/api/conversations/{first['conversation_id']}").json()["turns"][0]
        assert turn["answer"] == first["answer"] and turn["citations"] == first["citations"]
        assert (turn["rating"], turn["comment"]) == ("down", "Name the month as well.")
        with httpx.Client(base_url=url, headers=widget, timeout=120) as page_client:
            assert [c["id"] for c in page_client.get("/api/conversations").json()] == [theirs["conversation_id"]]
            later = ask(page_client, "Who spoke there?", conversation_id=theirs["conversation_id"])
            assert later["conversation_id"] == theirs["conversation_id"]
        with new_page(browser) as page:
            reopen_in_the_ui(page, url, folder, client, first)


def reopen_in_the_ui(page: Page, url: str, folder: Path, client: httpx.Client, first: dict[str, Any]) -> None:
    """In the chat UI of the restarted server: the conversation is listed; reopened, its citations open their
    passage, its rating shows, a thumb changes it, a follow-up continues it, and Delete removes another one."""
    page.goto(f"{url}/login?key={ADMIN}")
    entry = page.locator("#rag-history label", has_text=QUESTION)
    entry.wait_for(timeout=60_000)
    labels = page.locator("#rag-history label").all_text_contents()
    assert len(labels) == 2 and "widget" in labels[0] and QUESTION in labels[1]  # newest first
    entry.click()
    cite = page.locator("#rag-conversation a.rag-cite").first
    cite.wait_for(timeout=30_000)
    assert page.locator("#rag-conversation .rag-q").all_text_contents() == [QUESTION]
    down = page.locator("#rag-conversation .rag-rate[data-rating=down]")
    assert down.get_attribute("aria-pressed") == "true"
    assert "Name the month as well." in (page.locator("#rag-conversation .rag-comment").text_content() or "")
    cite.click()
    mark = page.locator("#rag-passage mark.rag-mark")
    mark.wait_for(state="visible")
    marked = mark.text_content() or ""
    assert marked and any(marked in (folder / "corpus" / c["file"]).read_text(encoding="utf-8")
                          for c in first["citations"])

    page.locator("#rag-conversation .rag-rate[data-rating=up]").click()
    page.locator("#rag-comment textarea").wait_for()
    page.locator("#rag-comment textarea").fill("Right after all: it does say August 2023.")
    page.locator("#rag-save-comment").click()

    def stored() -> dict[str, Any]:
        return client.get(f"/api/conversations/{first['conversation_id']}").json()

    wait_for(lambda: stored()["turns"][0]["comment"] == "Right after all: it does say August 2023.", "comment")
    assert stored()["turns"][0]["rating"] == "up"
    page.locator("#rag-question textarea").fill("And when was it released?")
    page.locator("#rag-ask").click()
    wait_for(lambda: len(stored()["turns"]) == 2, "second turn")
    page.locator("#rag-conversation .rag-rating").nth(1).wait_for()
    page.wait_for_timeout(300)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(SHOTS / "ui-conversations.png"))

    page.locator("#rag-history label", has_text="widget").click()
    page.locator("#rag-conversation .rag-q", has_text="World Government Summit").wait_for()
    page.locator("#rag-delete").click()
    wait_for(lambda: len(client.get("/api/conversations").json()) == 1, "deleted conversation")
    page.locator("#rag-history label").nth(1).wait_for(state="detached")
    assert page.locator("#rag-conversation .rag-turn").count() == 0


# -- kills ----------------------------------------------------------------------------------------------------

def test_a_kill_during_an_answer_leaves_the_stored_conversations_readable(template: Path, tmp_path: Path) -> None:
    folder = seeded_folder(template, tmp_path)
    # The model writes, token by token, so there is an answer in the making to kill.
    with rag_serve(folder, RAG_ANSWER_MODE="generate", RAG_GROUNDING="flag", RAG_MAX_TOKENS="300") as (url, server), \
            admin(url) as client:
        first = ask(client)
        assert client.post("/api/feedback", json={"answer_id": first["answer_id"], "rating": "up"}).status_code == 200
        seen = []
        with client.stream("POST", "/api/ask", json={"question": "And who released it?",
                                                     "conversation_id": first["conversation_id"]}) as response:
            for name, _ in sse_events(response):
                seen.append(name)
                server.kill()  # SIGKILL at the first token: no handler, no cleanup, no flush
                break
        assert server.wait(30) == -signal.SIGKILL and seen == ["token"]
    store = ConversationStore(folder / "index" / FILE_NAME)
    try:
        assert store.check() == "ok"
        turns = store.get(first["conversation_id"]).turns
        assert [(t.answer_id, t.answer, t.rating) for t in turns] == [(first["answer_id"], first["answer"], "up")]
    finally:
        store.close()
    listed = subprocess.run([sys.executable, "-m", "rag", "--index-dir", str(folder / "index"), "conversations",
                             "list", "--json"], capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert [(c["id"], c["turns"], c["rated"]) for c in json.loads(listed.stdout)] == [
        (first["conversation_id"], 1, 1)]


DIE_INSIDE_THE_WRITE = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from rag.conversations import ConversationStore
    from tests.test_conversations import made_answer

    store = ConversationStore(Path(sys.argv[1]), max_conversations=50)
    kept = store.record(None, "kept", made_answer("kept", "Kept [1]."))
    store.rate(kept.answer_id, "down", "a comment")
    print(kept.conversation_id, flush=True)
    real = store._db

    class DiesBeforeCommit:  # the conversation and the turn are written; the transaction is not committed
        def __getattr__(self, name):
            return getattr(real, name)

        def execute(self, sql, *args):
            if sql.startswith("DELETE FROM conversations WHERE id IN"):
                os.kill(os.getpid(), signal.SIGKILL)
            return real.execute(sql, *args)

    store._db = DiesBeforeCommit()
    store.record(kept.conversation_id, "lost", made_answer("lost", "Lost."))
""")


def test_a_kill_inside_the_write_loses_only_that_answer(tmp_path: Path) -> None:
    path = tmp_path / FILE_NAME
    done = subprocess.run([sys.executable, "-c", DIE_INSIDE_THE_WRITE, str(path)], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == -signal.SIGKILL, done.stderr
    conversation_id = done.stdout.strip()
    assert (tmp_path / f"{FILE_NAME}-wal").exists()  # the killed write reached the log, uncommitted
    store = ConversationStore(path)
    try:
        assert store.check() == "ok"
        turns = store.get(conversation_id).turns
        assert [(t.question, t.rating, t.comment) for t in turns] == [("kept", "down", "a comment")]
        from tests.test_conversations import made_answer

        again = store.record(conversation_id, "again", made_answer("again", "Again."))
        assert again.position == 1
    finally:
        store.close()


# -- the widget in two browsers -------------------------------------------------------------------------------

def widget_ask(page: Page, question: str) -> Any:
    widget = page.locator("#rag-widget-host")
    if not widget.locator("#rag-widget-panel").is_visible():
        widget.locator("#rag-widget-button").click()
    count = widget.locator(".rag-widget-rating").count()
    widget.locator("#rag-widget-input").fill(question)
    widget.locator("#rag-widget-send").click()
    widget.locator(".rag-widget-rating").nth(count).wait_for(timeout=60_000)  # the answer is stored
    return widget


def stored_ids(page: Page, origin: str) -> dict[str, str | None]:
    return page.evaluate("""(origin) => ({client: localStorage.getItem('rag-widget:' + origin + ':client'),
        conversation: localStorage.getItem('rag-widget:' + origin + ':conversation')})""", origin)


def test_the_widget_keeps_a_conversation_per_browser_and_rates_answers(
        template: Path, tmp_path: Path, browser: Browser, static_site: tuple[str, Path]) -> None:
    replies = ["Qwen-7B was the first open-source model that Alibaba released [1].", "Alibaba released it [1]."]
    llm = ScriptedLLM(replies + ["Another browser's answer [1]."] * 5)
    pipeline = seeded_pipeline(template, tmp_path, llm, ask_key=ASK, admin_key=ADMIN, allowed_origins=[static_site[0]],
                               grounding="flag")
    store = pipeline.conversations
    try:
        with serve(create_app(pipeline, mount_ui=False)) as url, new_page(browser) as a, new_page(browser) as b:
            (static_site[1] / "feedback.html").write_text(HOST_PAGE.format(api=url, key=ASK), encoding="utf-8")
            page_url = f"{static_site[0]}/feedback.html"
            a.goto(page_url)
            widget = widget_ask(a, QUESTION)
            ids = stored_ids(a, url)
            assert ids["client"] and ids["conversation"]
            widget.locator(".rag-widget-rate[data-rating=down]").click()
            widget.locator(".rag-widget-comment input").fill("Say when it was released.")
            a.screenshot(path=str(SHOTS / "widget-feedback.png"))
            widget.locator(".rag-widget-comment button").click()
            widget.locator(".rag-widget-thanks", has_text="comment is saved").wait_for()
            turn = store.get(ids["conversation"]).turns[0]
            assert (turn.rating, turn.comment) == ("down", "Say when it was released.")

            a.reload()  # the conversation is the server's: a reload shows it again, rating and comment included
            widget = a.locator("#rag-widget-host")
            widget.locator("#rag-widget-button").click()
            widget.locator(".rag-widget-answer .rag-widget-cite").first.wait_for()
            assert widget.locator(".rag-widget-rate[data-rating=down]").get_attribute("aria-pressed") == "true"
            assert "Say when it was released." in (widget.locator(".rag-widget-thanks").text_content() or "")
            widget_ask(a, "And who released it?")
            assert {"role": "assistant", "content": replies[0]} in llm.calls[-1]  # the stored turn is the history
            assert [t.question for t in store.get(ids["conversation"]).turns] == [QUESTION, "And who released it?"]
            a.screenshot(path=str(SHOTS / "widget-restored.png"))

            # Another browser: its own id, an empty widget, and A's conversation id (leaked, say) gets it nothing.
            b.goto(page_url)
            b.evaluate("([key, value]) => localStorage.setItem(key, value)",
                       [f"rag-widget:{url}:conversation", ids["conversation"]])
            b.reload()
            other = b.locator("#rag-widget-host")
            other.locator("#rag-widget-button").click()
            b.wait_for_function("() => !localStorage.getItem(" + json.dumps(f"rag-widget:{url}:conversation") + ")")
            assert other.locator(".rag-widget-turn").count() == 0
            assert stored_ids(b, url)["client"] not in (None, ids["client"])
            widget_ask(b, "Which model came first?")
            assert stored_ids(b, url)["conversation"] not in (None, ids["conversation"])
            assert len(store.get(ids["conversation"]).turns) == 2  # untouched by B

            widget.locator(".rag-widget-new").click()  # New chat: the next question starts a new conversation
            assert stored_ids(a, url)["conversation"] is None
            widget_ask(a, QUESTION)
            assert stored_ids(a, url)["conversation"] not in (None, ids["conversation"])
    finally:
        pipeline.close()
