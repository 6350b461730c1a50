"""Conversations that last and feedback on answers: the store (SQLite under the index), the API over a real socket
(who may see and rate which conversation), and feedback exported as a question set that `rag eval` runs and
reports on. Real `rag serve` processes, restarts, kills and the browser are in tests/test_conversations_live.py."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from rag.answer.evidence import Evidence
from rag.answer.result import Answer, Citation
from rag.cli.main import app
from rag.conversations import FILE_NAME, ConversationStore
from rag.errors import NotFoundError, RagError
from rag.evaluation import load_questions
from rag.pipeline import Pipeline
from rag.server.app import create_app
from tests.conftest import ScriptedLLM
from tests.servers import fresh_pipeline, seeded_pipeline, seeded_template, serve
from tests.test_api import sse_events

QUESTION = "Which model was Alibaba's first open-source model?"
REPLY = "Qwen-7B was the first open-source model that Alibaba released [1]."
ADMIN = "admin-conv-91ac-secret"
ASK = "ask-conv-public"
ORIGIN = "https://docs.example.org"
BROWSER_A = "browser-a-" + "1" * 22
BROWSER_B = "browser-b-" + "2" * 22


def made_answer(question: str, text: str, file: str = "notes.md", refused: bool = False) -> Answer:
    """An Answer as the pipeline makes one, citing one sentence of `file`."""
    evidence = Evidence(number=1, file=file, title="Notes", start=10, end=40, text="Qwen-7B came out in 2023.",
                        score=0.8, lang="en", date=None, passage_id="p1", passage_start=0, passage_end=60)
    citations = [] if refused else [Citation.of(evidence, passage_text="x" * 60)]
    return Answer(question=question, standalone_question=question, answer=text, raw_answer=text, refused=refused,
                  question_lang="en", answer_lang="en", citations=citations, passages=[], context=[evidence],
                  used_passages=1, relevance={}, invalid_citations=[], timings={"total_ms": 12.5},
                  models={"llm": "scripted", "embedding": "e"})


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


# -- the store -------------------------------------------------------------------------------------------------

def test_a_conversation_survives_reopening_the_store(tmp_path: Path) -> None:
    clock = Clock()
    store = ConversationStore(tmp_path / FILE_NAME, clock=clock)
    first = store.record(None, "  When was   Qwen-7B released?  ", made_answer("q", "In August 2023 [1]."))
    clock.advance(minutes=1)
    second = store.record(first.conversation_id, "And who made it?", made_answer("q", "Alibaba [1]."))
    clock.advance(minutes=1)
    other = store.record(None, "Something else", made_answer("q", "No.", refused=True))
    store.close()

    store = ConversationStore(tmp_path / FILE_NAME, clock=clock)
    assert [c.id for c in store.conversations()] == [other.conversation_id, first.conversation_id]  # newest first
    found = store.get(first.conversation_id)
    assert found.summary.title == "When was Qwen-7B released?" and found.summary.turns == 2
    assert found.summary.created_at < found.summary.updated_at
    assert [(t.position, t.question, t.answer) for t in found.turns] == [
        (0, "  When was   Qwen-7B released?  ", "In August 2023 [1]."), (1, "And who made it?", "Alibaba [1].")]
    turn = found.turns[1].to_dict()
    assert turn["answer_id"] == second.answer_id
    assert turn["citations"][0]["file"] == "notes.md" and turn["citations"][0]["passage_text"] == "x" * 60
    assert turn["evidence"][0]["text"] == "Qwen-7B came out in 2023."
    assert turn["models"]["llm"] == "scripted" and turn["timings"]["total_ms"] == 12.5
    assert [h.answer for h in store.history(first.conversation_id)] == ["In August 2023 [1].", "Alibaba [1]."]
    assert store.check() == "ok"
    mode = sqlite3.connect(tmp_path / FILE_NAME).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_titles_are_the_first_question_shortened(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / FILE_NAME)
    long = "Why " + "really " * 30 + "?"
    turn = store.record(None, long, made_answer(long, "Because."))
    title = store.get(turn.conversation_id).summary.title
    assert len(title) == 80 and title.endswith("…") and title.startswith("Why really")


def test_retention_deletes_the_least_recently_continued_first(tmp_path: Path) -> None:
    clock = Clock()
    store = ConversationStore(tmp_path / FILE_NAME, max_conversations=2, clock=clock)
    ids = []
    for name in ("one", "two"):
        ids.append(store.record(None, name, made_answer(name, name)).conversation_id)
        clock.advance(minutes=1)
    store.record(ids[0], "one again", made_answer("one", "again"))  # "one" is now the most recent
    clock.advance(minutes=1)
    three = store.record(None, "three", made_answer("three", "three")).conversation_id
    assert [c.id for c in store.conversations()] == [three, ids[0]]
    with pytest.raises(NotFoundError):
        store.get(ids[1])
    left = sqlite3.connect(tmp_path / FILE_NAME).execute("SELECT COUNT(*) FROM turns").fetchone()[0]
    assert left == 3  # the deleted conversation's turn went with it


def test_prune_by_age_from_the_command_line(tmp_path: Path) -> None:
    index = tmp_path / "index"
    clock = Clock()
    clock.now = datetime.now(UTC) - timedelta(days=30)
    store = ConversationStore(index / FILE_NAME, clock=clock)
    old = store.record(None, "old", made_answer("old", "old")).conversation_id
    clock.now = datetime.now(UTC) - timedelta(days=2)
    recent = store.record(None, "recent", made_answer("recent", "recent")).conversation_id
    store.close()
    runner = CliRunner()
    done = runner.invoke(app, ["--index-dir", str(index), "conversations", "prune", "--older-than", "7"])
    assert done.exit_code == 0, done.output
    assert "deleted 1 conversation last continued over 7 days ago" in done.output
    listed = runner.invoke(app, ["--index-dir", str(index), "conversations", "list", "--json"])
    assert [c["id"] for c in json.loads(listed.output)] == [recent] and old != recent


def test_ratings_are_checked_and_kept_with_the_answer(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / FILE_NAME)
    mine = store.record(None, "q", made_answer("q", "a"), owner="me")
    rated = store.rate(mine.answer_id, "down", "  wrong year  ")
    assert (rated.rating, rated.comment) == ("down", "wrong year") and rated.rated_at
    assert store.rate(mine.answer_id, "up").comment == "wrong year"  # no comment given: the earlier one stays
    assert store.rate(mine.answer_id, "up", "").comment is None  # "" takes it back
    with pytest.raises(RagError, match="up or down"):
        store.rate(mine.answer_id, "meh")
    with pytest.raises(NotFoundError):
        store.rate("0" * 24, "up")
    with pytest.raises(NotFoundError):
        store.rate(mine.answer_id, "down", owner="someone else")
    assert store.get(mine.conversation_id).turns[0].rating == "up"
    assert [r.turn.answer_id for r in store.ratings("up")] == [mine.answer_id] and store.ratings("down") == []


def test_a_rebuilt_index_keeps_its_conversations(tmp_path: Path) -> None:
    pipeline = fresh_pipeline(tmp_path, {"notes.md": "# Notes\n\nQwen-7B came out in August 2023.\n"})
    try:
        turn = pipeline.conversations.record(None, "When?", made_answer("When?", "In 2023 [1]."))
        pipeline.ingest(rebuild=True)
        assert pipeline.conversations.get(turn.conversation_id).turns[0].answer == "In 2023 [1]."
    finally:
        pipeline.close()


# -- the API ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return seeded_template(tmp_path_factory.getbasetemp())


@contextmanager
def running(template: Path, folder: Path, llm: Any, **overrides: Any) -> Iterator[tuple[str, Pipeline]]:
    pipeline = seeded_pipeline(template, folder, llm, grounding="flag", **overrides)
    try:
        with serve(create_app(pipeline, mount_ui=False)) as url:
            yield url, pipeline
    finally:
        pipeline.close()


def ask(client: httpx.Client, question: str = QUESTION, **body: Any) -> tuple[httpx.Response, dict[str, Any]]:
    with client.stream("POST", "/api/ask", json={"question": question, **body}) as response:
        if response.status_code != 200:
            response.read()
            return response, {}
        events = list(sse_events(response))
    assert events[-1][0] == "answer", events
    return response, events[-1][1]


def one_line(response: httpx.Response) -> str:
    body = response.json()
    message = body.get("detail") or body.get("error")
    assert isinstance(message, str) and "\n" not in message, body
    return message


@pytest.fixture(scope="module")
def keyed(template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Pipeline, ScriptedLLM]]:
    llm = ScriptedLLM([REPLY] * 100)
    with running(template, tmp_path_factory.mktemp("keyed"), llm, admin_key=ADMIN, ask_key=ASK,
                 allowed_origins=[ORIGIN], ask_rate_per_minute=1000) as (url, pipeline):
        yield url, pipeline, llm


def client(url: str, key: str, browser: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}", "Origin": ORIGIN, **({"X-Client-Id": browser} if browser else {})}
    return httpx.Client(base_url=url, headers=headers, timeout=60)


def test_ask_stores_the_conversation_and_continues_it(keyed: tuple[str, Pipeline, ScriptedLLM]) -> None:
    url, pipeline, llm = keyed
    with client(url, ADMIN) as admin:
        _, first = ask(admin)
        conversation_id, answer_id = first["conversation_id"], first["answer_id"]
        assert conversation_id and answer_id and first["answer"] == REPLY
        stored = admin.get(f"/api/conversations/{conversation_id}").json()
        assert stored["title"] == QUESTION and len(stored["turns"]) == 1
        turn = stored["turns"][0]
        assert turn["answer_id"] == answer_id and turn["answer"] == REPLY and turn["rating"] is None
        assert turn["citations"] == first["citations"] and turn["evidence"] == first["evidence"]
        assert {"models", "timings", "unsupported"} <= set(turn)

        # The stored turns are the history: the model reads the first turn though the request does not send it.
        _, second = ask(admin, "And when was it released?", conversation_id=conversation_id,
                        history=[{"question": "a decoy", "answer": "never sent to the model"}])
        assert second["conversation_id"] == conversation_id and second["answer_id"] != answer_id
        sent = llm.calls[-1]
        assert {"role": "user", "content": QUESTION} in sent and {"role": "assistant", "content": REPLY} in sent
        assert not any("decoy" in m["content"] for m in sent)
        turns = admin.get(f"/api/conversations/{conversation_id}").json()["turns"]
        assert [t["question"] for t in turns] == [QUESTION, "And when was it released?"]
        assert admin.get("/api/conversations").json()[0]["id"] == conversation_id  # most recent first

        missing, _ = ask(admin, conversation_id="ab" * 12)
        assert missing.status_code == 404 and "no conversation" in one_line(missing)
        assert pipeline.conversations.get(conversation_id).summary.turns == 2


BAD_FEEDBACK = [
    ({"rating": "up"}, "answer_id"),
    ({"answer_id": "ab" * 12}, "rating"),
    ({"answer_id": "ab" * 12, "rating": "meh"}, "rating"),
    ({"answer_id": "ab" * 12, "rating": 1}, "rating"),
    ({"answer_id": "not-hex!", "rating": "up"}, "answer_id"),
    ({"answer_id": "ab" * 12, "rating": "up", "comment": "x" * 2001}, "comment"),
    ({"answer_id": "ab" * 12, "rating": "up", "stars": 5}, "stars"),
    ([], "body"),
]


def test_feedback_is_validated_in_one_line_and_stored(keyed: tuple[str, Pipeline, ScriptedLLM]) -> None:
    url, pipeline, _ = keyed
    with client(url, ADMIN) as admin:
        _, answer = ask(admin)
        for body, field in BAD_FEEDBACK:
            response = admin.post("/api/feedback", json=body)
            assert response.status_code == 422, (body, response.text)
            assert one_line(response).startswith(field), (body, response.text)
        not_json = admin.post("/api/feedback", content=b"{nope", headers={"Content-Type": "application/json"})
        assert not_json.status_code == 422 and one_line(not_json)
        unknown = admin.post("/api/feedback", json={"answer_id": "ab" * 12, "rating": "up"})
        assert unknown.status_code == 404 and "no answer" in one_line(unknown)

        rated = admin.post("/api/feedback", json={"answer_id": answer["answer_id"], "rating": "down",
                                                  "comment": "It should say August 2023."})
        assert rated.status_code == 200, rated.text
        assert rated.json()["rating"] == "down" and rated.json()["conversation_id"] == answer["conversation_id"]
        again = admin.post("/api/feedback", json={"answer_id": answer["answer_id"], "rating": "up"})
        assert again.json()["comment"] == "It should say August 2023."
        turn = admin.get(f"/api/conversations/{answer['conversation_id']}").json()["turns"][0]
        assert (turn["rating"], turn["comment"]) == ("up", "It should say August 2023.") and turn["rated_at"]
    stored = pipeline.conversations.get(answer["conversation_id"]).turns[0]
    assert (stored.rating, stored.comment) == ("up", "It should say August 2023.")


def test_an_ask_key_reaches_only_its_own_conversations(keyed: tuple[str, Pipeline, ScriptedLLM]) -> None:
    url, _, _ = keyed
    with client(url, ASK, BROWSER_A) as a, client(url, ASK, BROWSER_B) as b, client(url, ASK) as nameless, \
            client(url, ADMIN) as admin:
        _, mine = ask(a)
        conversation, answer = mine["conversation_id"], mine["answer_id"]
        assert [c["id"] for c in a.get("/api/conversations").json()] == [conversation]
        assert a.get(f"/api/conversations/{conversation}").status_code == 200
        assert a.post("/api/feedback", json={"answer_id": answer, "rating": "down"}).status_code == 200
        assert ask(a, "And then?", conversation_id=conversation)[1]["conversation_id"] == conversation

        # Another browser with the same (public) key sees none of it, and learns nothing from the ids.
        assert b.get("/api/conversations").json() == []
        for response in (b.get(f"/api/conversations/{conversation}"),
                         b.post("/api/feedback", json={"answer_id": answer, "rating": "up"}),
                         ask(b, conversation_id=conversation)[0], b.delete(f"/api/conversations/{conversation}")):
            assert response.status_code == 404, response.text
            assert "no " in one_line(response)
        _, theirs = ask(b)
        assert theirs["conversation_id"] != conversation
        assert [c["id"] for c in b.get("/api/conversations").json()] == [theirs["conversation_id"]]

        # An ask key that does not name its browser may ask, but reaches no stored conversation.
        _, anonymous = ask(nameless)
        assert anonymous["conversation_id"] and anonymous["answer_id"]
        for response in (nameless.get("/api/conversations"), nameless.get(f"/api/conversations/{conversation}"),
                         nameless.post("/api/feedback", json={"answer_id": anonymous["answer_id"], "rating": "up"}),
                         ask(nameless, conversation_id=anonymous["conversation_id"])[0]):
            assert response.status_code == 422 and "X-Client-Id" in one_line(response)
        bad_id = a.get("/api/conversations", headers={"X-Client-Id": "short"})
        assert bad_id.status_code == 422 and "X-Client-Id" in one_line(bad_id)

        # The admin key sees and may rate everyone's.
        listed = {c["id"]: c for c in admin.get("/api/conversations").json()}
        assert {conversation, theirs["conversation_id"], anonymous["conversation_id"]} <= set(listed)
        assert listed[conversation]["source"] == "client" and listed[conversation]["turns"] == 2
        assert admin.get(f"/api/conversations/{conversation}").json()["turns"][0]["rating"] == "down"
        assert admin.post("/api/feedback", json={"answer_id": theirs["answer_id"], "rating": "up"}).status_code == 200

        assert a.delete(f"/api/conversations/{conversation}").status_code == 200
        assert a.get(f"/api/conversations/{conversation}").status_code == 404
        assert conversation not in {c["id"] for c in admin.get("/api/conversations").json()}


def test_conversation_routes_need_a_key(keyed: tuple[str, Pipeline, ScriptedLLM]) -> None:
    url, _, _ = keyed
    with httpx.Client(base_url=url, timeout=30) as anyone:
        for method, path in [("GET", "/api/conversations"), ("GET", "/api/conversations/" + "ab" * 12),
                             ("DELETE", "/api/conversations/" + "ab" * 12), ("POST", "/api/feedback")]:
            assert anyone.request(method, path).status_code == 401, (method, path)
    preflight = httpx.options(f"{url}/api/feedback", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,x-client-id"})
    assert preflight.status_code == 200 and "x-client-id" in preflight.headers["access-control-allow-headers"].lower()


def test_the_openai_endpoint_stays_stateless(keyed: tuple[str, Pipeline, ScriptedLLM]) -> None:
    url, pipeline, _ = keyed
    before = len(pipeline.conversations.conversations(limit=500))
    with client(url, ADMIN) as admin:
        done = admin.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": QUESTION}]})
    assert done.status_code == 200 and "conversation_id" not in done.json() and "answer_id" not in done.json()
    assert len(pipeline.conversations.conversations(limit=500)) == before


# -- feedback becomes evaluation -------------------------------------------------------------------------------

def test_feedback_export_runs_in_rag_eval_and_says_what_changed(template: Path, tmp_path: Path) -> None:
    """Two rated answers: one the pipeline gives again word for word, one that differs from today's answer."""
    pipeline = seeded_pipeline(template, tmp_path / "ix")
    settings = pipeline.settings
    try:
        first = pipeline.ask(QUESTION).result  # the packaged SmolLM2: extractive, the same answer every time
        assert first.citations and first.answer_mode == "extractive"
        kept = pipeline.conversations.record(None, QUESTION, first)
        pipeline.conversations.rate(kept.answer_id, "down", "Say the month too.")
        other = "When did the World Government Summit take place?"
        then = replace(pipeline.ask(other).result, answer="It took place in 1999 [1].")
        follow = pipeline.conversations.record(kept.conversation_id, other, then)
        pipeline.conversations.rate(follow.answer_id, "up")
    finally:
        pipeline.close()
    flags = ["--index-dir", str(settings.index_dir), "--corpus-dir", str(settings.corpus_dir),
             "--llm-model", str(settings.llm_model), "--offline"]
    runner = CliRunner()
    listed = runner.invoke(app, [*flags, "feedback", "list"])
    assert listed.exit_code == 0 and "Say the month too." in listed.output and kept.answer_id in listed.output

    questions = tmp_path / "feedback.jsonl"
    done = runner.invoke(app, [*flags, "feedback", "export", "--out", str(questions)])
    assert done.exit_code == 0, done.output
    assert "wrote 2 questions" in done.output and "1 were follow-ups" in done.output
    entries = {e["rated"]["answer_id"]: e for e in map(json.loads, questions.read_text().splitlines())}
    down = entries[kept.answer_id]
    assert down["question"] == QUESTION and down["lang"] == "en" and down["note"] == "Say the month too."
    assert down["expected_sources"] == sorted({c.file for c in first.citations})
    assert down["rated"]["rating"] == "down" and down["rated"]["answer"] == first.answer
    assert entries[follow.answer_id]["rated"]["follow_up_to"] == QUESTION
    assert len(load_questions(questions)) == 2  # what rag eval reads

    only_down = tmp_path / "down.jsonl"
    assert runner.invoke(app, [*flags, "feedback", "export", "--out", str(only_down), "--rating", "down"]).exit_code \
        == 0
    assert [json.loads(line)["rated"]["rating"] for line in only_down.read_text().splitlines()] == ["down"]

    run = tmp_path / "run"
    evaluated = runner.invoke(app, [*flags, "eval", str(questions), "--out", str(run)])
    assert evaluated.exit_code == 0, evaluated.output
    assert "1 of 2 rated answers changed since they were rated (0 rated down, 1 rated up)" in evaluated.output
    records = {r["id"]: r for r in map(json.loads, (run / "records.jsonl").read_text().splitlines())}
    assert records[down["id"]]["rated"]["changed"] is False
    changed = records[entries[follow.answer_id]["id"]]["rated"]
    assert changed["changed"] is True and changed["answer_before"] == "It took place in 1999 [1]."
    assert json.loads((run / "summary.json").read_text())["rated"] == {
        "rated": 2, "changed": 1, "changed_down": 0, "changed_up": 1}
    report = (run / "report.md").read_text()
    assert "## Answers rated in feedback" in report and "It took place in 1999" in report


def test_ratings_and_comments_render_as_text_in_the_chat_ui() -> None:
    from ui import render

    hostile = '<img src=x onerror="window.__pwned=1"> {{window.__pwned=2}} ${x}'
    html = render.conversation([{"question": "q", "answer": "An answer [1].", "citations": [], "answer_id": "ab12",
                                 "rating": "down", "comment": hostile}])
    assert "<img" not in html and "{{" not in html and "${" not in html and "&lt;img" in html
    assert 'data-rating="down" aria-pressed="true"' in html and 'data-rating="up" aria-pressed="false"' in html
    assert "rag-rate" not in render.conversation([{"question": "q", "answer": "streaming…"}])  # not stored yet
