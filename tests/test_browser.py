"""The Gradio UI and the embeddable widget in a real browser (Debian's Chromium, driven by Playwright).

(a) the UI over the real stack streams an answer and opens a citation in its document; (b) the widget on a page of
another origin asks with the ask key and reveals a cited passage; (c) hostile documents and answers stay text in
both; closing the widget mid-answer stops the generation. Screenshots go to /tmp/rag-shots/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from rag.pipeline import Pipeline
from rag.server.app import create_app
from tests.conftest import ScriptedLLM
from tests.servers import SHOTS, fresh_pipeline, seeded_pipeline, seeded_template, serve

QUESTION = "Which model was Alibaba's first open-source model?"
ADMIN = "admin-ui-3c1f-secret"
ASK = "ASK"

ANSWER_TIMEOUT_MS = 120_000

PAYLOADS = [
    '<img src=x onerror="window.__pwned=1">',
    "<script>window.__pwned=2</script>",
    "[click me](javascript:window.__pwned=3)",
    "<style>body{display:none}</style>",
    '<svg onload="window.__pwned=7"><circle id="pwn-circle" r="9"/></svg>',
    '<iframe src="javascript:window.__pwned=8"></iframe>',
    '<div id="pwn-overlay" style="position:fixed;inset:0;z-index:99999;background:red">covered</div>',
    '<link rel="stylesheet" href="https://evil.example.net/x.css">',
    '<meta http-equiv="refresh" content="0;url=https://evil.example.net/">',
    "[the docs](https://evil.example.net/md)",
    "https://evil.example.net/bare",
    '<a href="https://evil.example.net/a">a link</a>',
]
XSS_DOCUMENT = (
    "# Hostile notes {{window.__pwned=5}}\n\n"
    f"The zorblax report lists these payloads: {' '.join(PAYLOADS)} "
    '<a href="javascript:window.__pwned=4">an anchor</a> and template syntax ${window.__pwned=6}.\n'
)
UNBACKED = "Moonlight cheese grows on <b>glass</b> trees."  # a claim no passage backs, itself hostile
XSS_REPLY = f"The zorblax report says: {' and '.join(PAYLOADS)} [1]. {UNBACKED}"
XSS_QUESTION = "What does the zorblax report list?"

# The page the widget is embedded in, on another origin; its own CSS tries hard to break the widget.
HOST_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>A host page</title>
<style>
  * {{ color: #c00 !important; font-family: serif !important; }}
  button, section, textarea {{ display: none !important; }}
  rag-widget, #rag-widget-host {{ display: none !important; opacity: 0 !important; }}
</style></head>
<body><h1>A page of another site</h1><p>It embeds the rag widget with one script tag.</p>
<script src="{api}/widget.js" data-title="Test" data-api-key="{key}"></script>
</body></html>
"""


# -- fixtures -------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def real_server(static_site: tuple[str, Path],
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Pipeline]]:
    """The real stack (packaged embedding model and LLM) with both keys, for the UI and the widget."""
    template = seeded_template(tmp_path_factory.getbasetemp())
    # The model writes, token by token ("flag"), so the tests see an answer grow; strict and extractive answers are
    # rendered by the same code (tests/test_evidence.py).
    pipeline = seeded_pipeline(template, tmp_path_factory.mktemp("real-ui"), admin_key=ADMIN, ask_key=ASK,
                               allowed_origins=[static_site[0]], answer_mode="generate", grounding="flag")
    try:
        with serve(create_app(pipeline)) as url:
            yield url, pipeline
    finally:
        pipeline.close()


class RecordingLLM(ScriptedLLM):
    """The scripted double, also noting whether each generation ran to its end or was stopped."""

    def __init__(self, replies: list[str]) -> None:
        super().__init__(replies)
        self.outcomes: list[str] = []

    def stream_chat(self, messages: list[dict[str, str]], max_tokens: int, temperature: float) -> Iterator[str]:
        try:
            yield from super().stream_chat(messages, max_tokens, temperature)
        except GeneratorExit:
            self.outcomes.append("stopped")
            raise
        self.outcomes.append("finished")


@pytest.fixture(scope="module")
def xss_server(static_site: tuple[str, Path],
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Pipeline, RecordingLLM]]:
    llm = RecordingLLM([XSS_REPLY] * 20)
    # grounding "flag": the hostile reply stays in the answer as written, the harder case to render safely
    pipeline = fresh_pipeline(tmp_path_factory.mktemp("xss"), {"hostile.md": XSS_DOCUMENT}, llm,
                              allowed_origins=[static_site[0]], grounding="flag")
    try:
        with serve(create_app(pipeline)) as url:
            yield url, pipeline, llm
    finally:
        pipeline.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.errors = errors  # type: ignore[attr-defined]
    try:
        yield page
    finally:
        context.close()


def host_page(static_site: tuple[str, Path], name: str, api: str, key: str = ASK) -> str:
    url, folder = static_site
    (folder / name).write_text(HOST_PAGE.format(api=api, key=key), encoding="utf-8")
    return f"{url}/{name}"


def record_text_changes(page: Page, script: str) -> None:
    """Keep every text the element (found by `script`) shows, in window.__texts."""
    page.evaluate(f"""() => {{
        window.__texts = [];
        const target = {script};
        new MutationObserver(() => window.__texts.push(target.textContent))
            .observe(target, {{subtree: true, childList: true, characterData: true}});
    }}""")


def widget_shadow(script: str) -> str:
    return f"(() => {{ const root = document.getElementById('rag-widget-host').shadowRoot; return {script}; }})()"


def open_widget_and_ask(page: Page, question: str) -> Any:
    widget = page.locator("#rag-widget-host")
    widget.locator("#rag-widget-button").click()
    panel = widget.locator("#rag-widget-panel")
    panel.wait_for(state="visible")
    widget.locator("#rag-widget-input").fill(question)
    widget.locator("#rag-widget-send").click()
    return widget


def assert_no_payload_elements(page: Page) -> None:
    """Nothing from the payloads became markup: in the page, and in the widget's shadow root when it is there."""
    assert page.evaluate("typeof window.__pwned") == "undefined"
    found = page.evaluate("""() => {
        const roots = [document];
        const host = document.getElementById('rag-widget-host');
        if (host && host.shadowRoot) roots.push(host.shadowRoot);
        const hits = [];
        for (const root of roots) {
            for (const el of root.querySelectorAll('img, script, style, a, [onerror], [onload]')) {
                const tag = el.tagName.toLowerCase();
                const text = el.textContent || '';
                const href = (el.getAttribute('href') || '').trim().toLowerCase();
                if (tag === 'img' && el.getAttribute('src') === 'x') hits.push('img');
                if (text.includes('__pwned') || text.includes('body{display:none}')) hits.push(tag + ' with payload');
                if (href.startsWith('javascript:')) hits.push('a ' + href);
                if (el.hasAttribute('onerror') || el.hasAttribute('onload')) hits.push(tag + ' with a handler');
            }
        }
        return hits;
    }""")
    assert found == []
    assert page.evaluate("getComputedStyle(document.body).display") != "none"
    assert page.locator('a[href^="javascript:" i]').count() == 0  # Playwright's CSS also pierces shadow roots
    # CSS, frames, refreshes and links from a payload: none became an element (Playwright's CSS pierces shadow
    # roots), and the only links in answers and passages are the citation markers and the original file's.
    for selector in ("#pwn-overlay", "iframe", "#pwn-circle", 'link[href*="evil"]', 'meta[http-equiv="refresh" i]',
                     '[href*="evil.example"]', '[src*="evil.example"]'):
        assert page.locator(selector).count() == 0, selector
    links = page.evaluate("""() => [...document.querySelectorAll(
        '#rag-conversation a, #rag-sources a, #rag-passage a')].map(a => [a.className, a.getAttribute('href')])""")
    original = re.compile(r"/api/files/[\w.%-]+(#page=\d+)?")  # an indexed file's name, percent-encoded
    assert all(link == ["rag-cite", "#"] or (link[0] == "rag-original" and original.fullmatch(link[1]))
               for link in links), links
    assert "evil.example" not in page.url


# -- (a) the Gradio UI over the real stack -------------------------------------------------------------------------

def test_ui_streams_an_answer_and_opens_its_citation(real_server: tuple[str, Pipeline], page: Page) -> None:
    url, pipeline = real_server
    page.goto(f"{url}/login?key={ADMIN}")  # sets the key cookie and lands on the UI
    question = page.locator("#rag-question textarea")
    question.wait_for(timeout=60_000)
    record_text_changes(page, "document.querySelector('#rag-conversation')")
    question.fill(QUESTION)
    page.locator("#rag-ask").click()
    cite = page.locator("#rag-conversation a.rag-cite").first
    cite.wait_for(timeout=ANSWER_TIMEOUT_MS)  # citation links appear once the answer is complete

    final = page.locator("#rag-conversation .rag-a").last.text_content() or ""
    assert "Qwen" in final
    texts = [t.split(QUESTION, 1)[-1].strip() for t in page.evaluate("window.__texts") if QUESTION in t]
    partial = {t for t in texts if t and t != final and t != "…"}
    assert len({len(t) for t in partial}) >= 3, texts  # the answer grew in steps before it was complete

    number = cite.get_attribute("data-n")
    cite.click()
    mark = page.locator("#rag-passage mark.rag-mark")
    mark.wait_for(state="visible")
    marked = mark.text_content() or ""
    assert len(marked) > 40
    # The highlight is exactly the cited sentence, at its place in the whole document.
    cited = page.evaluate("""(n) => [...document.querySelectorAll('#rag-sources .rag-snippet')]
        .map(s => [s.querySelector('a.rag-cite').dataset.n, s.querySelector('.rag-sentence').textContent])""", number)
    snippet = dict(cited)[number].rstrip("…")
    assert marked == snippet or (len(snippet) >= 400 and marked.startswith(snippet))
    head = page.locator("#rag-passage .rag-doc-head").text_content() or ""
    file = next(d.file for d in pipeline.status().documents if d.file in head)
    assert marked in pipeline.document_text(file)
    page.wait_for_timeout(300)  # let the passage scroll into view
    page.screenshot(path=str(SHOTS / "ui-answer.png"))
    assert page.errors == []  # type: ignore[attr-defined]


# -- (b) the widget on a page of another origin ------------------------------------------------------------------

def test_widget_on_another_origin_asks_and_reveals_a_passage(real_server: tuple[str, Pipeline], page: Page,
                                                            static_site: tuple[str, Path]) -> None:
    url, pipeline = real_server
    page.goto(host_page(static_site, "widget.html", url))
    widget = page.locator("#rag-widget-host")
    button = widget.locator("#rag-widget-button")
    button.wait_for(state="visible")  # the host page's CSS cannot hide it
    box = button.bounding_box()
    assert box and box["x"] > 1280 - 120 and box["y"] > 860 - 120  # bottom right
    assert page.evaluate("document.querySelectorAll('style').length") == 1  # no CSS leaked into the page
    page.screenshot(path=str(SHOTS / "widget-closed.png"))

    widget.locator("#rag-widget-button").click()
    record_text_changes(page, widget_shadow("root.querySelector('.rag-widget-log')"))
    widget.locator("#rag-widget-input").fill(QUESTION)
    widget.locator("#rag-widget-send").click()
    cite = widget.locator(".rag-widget-answer .rag-widget-cite").first
    cite.wait_for(timeout=ANSWER_TIMEOUT_MS)
    answer = widget.locator(".rag-widget-answer").last.text_content() or ""
    assert "Qwen" in answer
    texts = [t.split(QUESTION, 1)[-1] for t in page.evaluate("window.__texts") if QUESTION in t]
    assert len({t for t in texts if t and len(t) < len(answer)}) >= 2, texts  # streamed, not one block

    passage = widget.locator(".rag-widget-passage")
    assert not passage.is_visible()
    cite.click()
    passage.wait_for(state="visible")
    file = widget.locator(".rag-widget-passage-file").text_content() or ""
    text = widget.locator(".rag-widget-passage-text").text_content() or ""
    assert len(text) > 40 and text in pipeline.document_text(file)
    marked = widget.locator(".rag-widget-passage-text mark").text_content() or ""
    assert marked and marked in text and len(marked) < len(text)  # exactly the cited sentence, inside its passage
    assert (widget.locator(".rag-widget-passage-title").text_content() or "").startswith(
        f"[{cite.get_attribute('data-n')}]")
    page.screenshot(path=str(SHOTS / "widget-answer.png"))
    cite.click()  # a second click hides it again
    passage.wait_for(state="hidden")

    # "New chat" forgets the conversation.
    widget.locator(".rag-widget-new").click()
    assert widget.locator(".rag-widget-answer").count() == 0
    assert page.errors == []  # type: ignore[attr-defined]


def test_widget_shows_refused_keys_in_one_line(real_server: tuple[str, Pipeline], page: Page,
                                              static_site: tuple[str, Path]) -> None:
    url, _ = real_server
    page.goto(host_page(static_site, "wrong-key.html", url, key="not-the-key"))
    widget = open_widget_and_ask(page, QUESTION)
    status = widget.locator(".rag-widget-status")
    status.wait_for(state="visible")
    assert "401" in (status.text_content() or "")
    assert widget.locator(".rag-widget-answer").count() == 0


# -- (c) hostile documents and answers ---------------------------------------------------------------------------

def test_ui_shows_hostile_text_as_text(xss_server: tuple[str, Pipeline, RecordingLLM], page: Page) -> None:
    url, pipeline, _ = xss_server
    assert PAYLOADS[1] in pipeline.document_text("hostile.md")  # the document really holds the payloads
    page.goto(url)
    page.locator("#rag-question textarea").fill(XSS_QUESTION)
    page.locator("#rag-ask").click()
    cite = page.locator("#rag-conversation a.rag-cite").first
    cite.wait_for(timeout=ANSWER_TIMEOUT_MS)
    shown = page.locator("#rag-conversation .rag-a").last.text_content() or ""
    for payload in PAYLOADS:
        assert payload in shown
    unbacked = page.locator("#rag-conversation .rag-unsupported")
    unbacked.wait_for(timeout=ANSWER_TIMEOUT_MS)  # marked once the answer is final, not while it streams
    assert unbacked.count() == 1 and UNBACKED in (unbacked.text_content() or "")
    assert page.locator("#rag-conversation b").count() == 0
    assert_no_payload_elements(page)
    cite.click()
    mark = page.locator("#rag-passage mark.rag-mark")
    mark.wait_for(state="visible")
    document = page.locator("#rag-passage .rag-doc").text_content() or ""
    for payload in PAYLOADS:
        assert payload in document
    assert "{{window.__pwned=5}}" in page.locator("#rag-passage").text_content()
    assert "${window.__pwned=6}" in document
    page.wait_for_timeout(300)
    assert_no_payload_elements(page)
    page.screenshot(path=str(SHOTS / "ui-xss.png"))


def test_widget_shows_hostile_text_as_text(xss_server: tuple[str, Pipeline, RecordingLLM], page: Page,
                                          static_site: tuple[str, Path]) -> None:
    url, _, _ = xss_server
    page.goto(host_page(static_site, "xss.html", url, key=""))
    widget = open_widget_and_ask(page, XSS_QUESTION)
    cite = widget.locator(".rag-widget-answer .rag-widget-cite").first
    cite.wait_for(timeout=ANSWER_TIMEOUT_MS)
    answer = widget.locator(".rag-widget-answer").last.text_content() or ""
    for payload in PAYLOADS:
        assert payload in answer
    # The only elements inside the answer are its citation markers.
    markers = widget.locator(".rag-widget-answer .rag-widget-cite").count()
    assert markers >= 1 and widget.locator(".rag-widget-answer *").count() == markers
    note = widget.locator(".rag-widget-unsupported")
    assert note.count() == 1 and UNBACKED in (note.text_content() or "")
    assert widget.locator(".rag-widget-turn b").count() == 0
    cite.click()
    passage = widget.locator(".rag-widget-passage-text")
    passage.wait_for(state="visible")
    for payload in PAYLOADS:
        assert payload in (passage.text_content() or "")
    assert "Hostile notes {{window." in (widget.locator(".rag-widget-passage-title").text_content() or "")
    assert_no_payload_elements(page)
    page.screenshot(path=str(SHOTS / "widget-xss.png"))


def test_closing_the_widget_stops_the_generation(xss_server: tuple[str, Pipeline, RecordingLLM], page: Page,
                                                static_site: tuple[str, Path]) -> None:
    url, _, llm = xss_server
    llm.block_after, llm.outcomes = 3, []
    llm.gate.clear()
    llm.reached_gate.clear()
    try:
        page.goto(host_page(static_site, "abort.html", url, key=""))
        widget = open_widget_and_ask(page, XSS_QUESTION)
        answer = widget.locator(".rag-widget-answer").last
        page.wait_for_function(widget_shadow("root.querySelector('.rag-widget-answer').textContent.length > 0"))
        assert llm.reached_gate.wait(30)
        widget.locator("#rag-widget-button").click()  # close the panel mid-answer
        widget.locator("#rag-widget-panel").wait_for(state="hidden")
        page.wait_for_function(widget_shadow("root.querySelector('.rag-widget-answer').textContent.includes('stopped')"))
        # Chromium's network process closes the socket a moment after the abort; a real model would still be
        # generating by then. Release the model: the server must notice the closed connection and stop it.
        page.wait_for_timeout(500)
        llm.gate.set()
        for _ in range(100):
            if llm.outcomes:
                break
            page.wait_for_timeout(100)
        assert llm.outcomes == ["stopped"]
        assert (answer.text_content() or "") == "The zorblax report \u2026 (stopped)"  # the 3 tokens sent
        assert widget.locator(".rag-widget-cite").count() == 0
    finally:
        llm.block_after = None
        llm.gate.set()
    # The model is free again: the next question is answered in full.
    widget.locator("#rag-widget-button").click()
    widget.locator("#rag-widget-input").fill(XSS_QUESTION)
    widget.locator("#rag-widget-send").click()
    widget.locator(".rag-widget-answer .rag-widget-cite").first.wait_for(timeout=ANSWER_TIMEOUT_MS)
    assert llm.outcomes == ["stopped", "finished"]


# -- the widget's conversation and its one-line errors -------------------------------------------------------------

def test_widget_sends_history_and_says_when_busy(static_site: tuple[str, Path], page: Page,
                                                tmp_path_factory: pytest.TempPathFactory) -> None:
    llm = ScriptedLLM(["The zorblax report lists four payloads [1].", "Marta Quillfeather wrote it [1]."])
    document = "# The zorblax report\n\nMarta Quillfeather wrote the zorblax report. It lists four payloads.\n"
    pipeline = fresh_pipeline(tmp_path_factory.mktemp("busy"), {"zorblax.md": document}, llm, ask_key=ASK,
                              allowed_origins=[static_site[0]], ask_rate_per_minute=2, grounding="flag")
    try:
        with serve(create_app(pipeline, mount_ui=False)) as url:
            page.goto(host_page(static_site, "busy.html", url))
            widget = open_widget_and_ask(page, "What does the zorblax report list?")
            widget.locator(".rag-widget-answer .rag-widget-cite").first.wait_for()
            widget.locator("#rag-widget-input").fill("Who wrote the zorblax report?")
            widget.locator("#rag-widget-input").press("Enter")
            widget.locator(".rag-widget-answer .rag-widget-cite").nth(1).wait_for()
            sent = llm.calls[-1]
            assert {"role": "user", "content": "What does the zorblax report list?"} in sent
            assert {"role": "assistant", "content": "The zorblax report lists four payloads [1]."} in sent
            # A third question within the minute: the rate limit answers 429, shown with its Retry-After.
            widget.locator("#rag-widget-input").fill("And when?")
            widget.locator("#rag-widget-send").click()
            status = widget.locator(".rag-widget-status")
            status.wait_for(state="visible")
            assert re.fullmatch(r"The assistant is busy, retry in \d+ s\.", status.text_content() or "")
            assert widget.locator(".rag-widget-answer").count() == 2
            assert widget.locator("#rag-widget-input").input_value() == "And when?"  # kept for another try
            page.screenshot(path=str(SHOTS / "widget-busy.png"))
    finally:
        pipeline.close()


def test_widget_says_when_the_server_is_unreachable(page: Page, static_site: tuple[str, Path]) -> None:
    gone = "http://127.0.0.1:9"  # nothing listens there: the script itself is served by the test
    script = (Path(__file__).resolve().parents[1] / "ui" / "widget.js").read_text(encoding="utf-8")
    page.route(f"{gone}/widget.js", lambda route: route.fulfill(body=script, content_type="text/javascript"))
    page.goto(host_page(static_site, "unreachable.html", gone))
    widget = open_widget_and_ask(page, QUESTION)
    status = widget.locator(".rag-widget-status")
    status.wait_for(state="visible")
    assert (status.text_content() or "").startswith("Cannot reach the assistant")
    assert not widget.locator("#rag-widget-send").is_disabled()  # ready for another try
