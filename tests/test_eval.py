"""`rag eval`: metrics on hand-made records, question-file validation, run comparison, and real runs
through the Pipeline (scripted LLM, the packaged SmolLM2, and the CLI in retrieval-only mode)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from rag.cli.main import app
from rag.config import Settings
from rag.evaluation import compare_runs, load_questions, run_eval
from rag.evaluation import metrics as m
from rag.evaluation.questions import Question, QuestionFileError
from rag.evaluation.runner import EvalRun, write_run
from rag.pipeline import Pipeline

from .conftest import ROOT

QUESTIONS = ROOT / "eval" / "questions.jsonl"
RECORD_FIELDS = {"id", "question", "lang", "answer", "refused", "citations", "retrieved", "timings", "passed"}


# -- metrics on hand-made values -----------------------------------------------------------------------------
def test_source_level_retrieval_metrics() -> None:
    files = ["b.txt", "a.txt", "c.txt", "a.txt"]
    hits = m.source_hits(files, ["a.txt", "c.txt"])
    assert hits == [False, True, True, True]
    assert m.hit_at_k(hits, 1) == 0.0 and m.hit_at_k(hits, 2) == 1.0
    assert m.reciprocal_rank(hits) == 0.5
    assert m.reciprocal_rank([False, False]) == 0.0
    assert m.recall_at_k(files, ["a.txt", "c.txt"], 2) == 0.5
    assert m.recall_at_k(files, ["a.txt", "c.txt"], 3) == 1.0
    assert m.recall_at_k(files, [], 3) is None  # no expected sources: does not apply


def test_evidence_is_matched_per_passage_ignoring_whitespace() -> None:
    passages = ["Intro text.", "It released its first\nopen-source   model (Qwen-7B) in August 2023.", "Other."]
    evidence = ["It released its first open-source model (Qwen-7B)", "a quote that is nowhere"]
    assert m.evidence_hits(passages, evidence) == [False, True, False]
    assert m.reciprocal_rank(m.evidence_hits(passages, evidence)) == 0.5
    assert m.evidence_recall(passages, evidence, 5) == 0.5
    assert m.evidence_recall(passages, evidence, 1) == 0.0
    assert m.evidence_recall(passages, [], 5) is None


def test_answer_contains_groups_nfkc_and_case() -> None:
    groups = [["August", "Aug"], ["2023"]]
    assert m.answer_matches("Released in AUGUST 2023 [1].", groups) is True
    assert m.answer_matches("Released in August.", groups) is False
    assert m.answer_matches("２０２３年８月发布。", [["2023"], ["8月"]]) is True  # full-width digits
    assert m.answer_matches("See [2].", [["2"]]) is False  # a citation marker is not an answer
    assert m.answer_matches("", groups) is False
    assert m.answer_matches("anything", []) is None


@pytest.mark.parametrize("text", [
    "The documents don't say.", "The passages do not mention the CEO.", "Die Dokumente sagen dazu nichts.",
    "Das wird nicht in den Quellen erwähnt.", "文档中没有提到这一点。", "资料中未提及。",
    "Les documents ne le disent pas.",  # canned French refusal: the product's patterns miss it
])
def test_refusals_are_detected_in_each_language(text: str) -> None:
    assert m.is_refused(text)


@pytest.mark.parametrize("text", ["", "Qwen-7B [1].", "Joe Tsai sprach mit Katzenberg.", "答案是Qwen-7B。"])
def test_answers_are_not_refusals(text: str) -> None:
    assert not m.is_refused(text)


def test_refusal_correctness() -> None:
    assert m.refusal_correct(answerable=True, refused=False)
    assert m.refusal_correct(answerable=False, refused=True)
    assert not m.refusal_correct(answerable=True, refused=True)
    assert not m.refusal_correct(answerable=False, refused=False)


def test_citation_validity_uses_the_raw_answer() -> None:
    assert m.citation_validity("A [1]. B [2, 7]. C [9]. D [1].", used_passages=3) == (4, 2)
    assert m.citation_validity("No markers at all.", used_passages=3) == (0, 0)
    assert m.citation_validity("Only [0].", used_passages=3) == (1, 0)


def test_citation_support() -> None:
    cited = [{"file": "x.txt", "text": "Qwen-7B came out in August 2023."}]
    assert m.citation_supported(cited, ["x.txt"], []) is True
    assert m.citation_supported(cited, ["y.txt"], ["came out in  August 2023"]) is True
    assert m.citation_supported(cited, ["y.txt"], ["not there"]) is False
    assert m.citation_supported([], ["x.txt"], []) is False  # answered without citing anything
    assert m.citation_supported(cited, [], []) is None


def test_percentiles() -> None:
    assert m.percentile([40, 10, 30, 20], 50) == 25
    assert m.percentile([10, 20, 30, 40], 95) == pytest.approx(38.5)
    assert m.percentile([7], 95) == 7
    assert m.percentile([None], 50) is None


def _record(question: dict[str, Any], files: list[str], answer: dict[str, Any] | None,
            timings: dict[str, float] | None = None, texts: list[str] | None = None) -> dict[str, Any]:
    retrieved = [{"file": f, "text": t} for f, t in zip(files, texts or [""] * len(files), strict=True)]
    scores = m.score_question(question, retrieved, 3, answer)
    return {"id": question["id"], "lang": question["lang"], "answerable": question.get("answerable", True),
            "scores": scores, "passed": m.passed(scores), "timings": timings or {}}


def _answer(text: str, raw: str | None = None, used: int = 3, invalid: list[int] | None = None,
            citations: list[dict[str, Any]] | None = None, refused: bool = False,
            unsupported: list[str] | None = None) -> dict[str, Any]:
    return {"answer": text, "raw_answer": text if raw is None else raw, "refused": refused, "used_passages": used,
            "invalid_citations": invalid or [], "citations": citations or [], "unsupported": unsupported or []}


def hand_made_records() -> list[dict[str, Any]]:
    q1 = {"id": "q1", "lang": "en", "expected_sources": ["a.txt"], "answer_contains": [["Qwen-7B"]]}
    q2 = {"id": "q2", "lang": "de", "expected_sources": ["b.txt"], "answer_contains": [["2023"]]}
    q3 = {"id": "q3", "lang": "en", "answerable": False}
    q4 = {"id": "q4", "lang": "zh", "answerable": False}
    q5 = {"id": "q5", "lang": "en", "answer_contains": [["x"]]}  # no expected sources, empty answer
    return [
        _record(q1, ["c.txt", "a.txt", "a.txt"], _answer(
            "Qwen-7B [1].", raw="Qwen-7B [1][5].", invalid=[5], citations=[{"file": "a.txt", "text": ""}]),
            {"retrieval_ms": 10, "ttft_ms": 100, "total_ms": 400, "tokens_per_s": 20}),
        _record(q2, ["c.txt", "c.txt", "c.txt"], _answer(
            "Im Jahr 2022 [2].", citations=[{"file": "c.txt", "text": ""}], unsupported=["Im Jahr 2022 [2]."]),
            {"retrieval_ms": 20, "ttft_ms": 200, "total_ms": 600, "tokens_per_s": 30}),
        _record(q3, ["a.txt"], _answer("The documents don't say.", refused=True),
                {"retrieval_ms": 30, "ttft_ms": 300, "total_ms": 300, "tokens_per_s": 0}),
        _record(q4, ["a.txt"], _answer("它是 Qwen [1]。", citations=[{"file": "a.txt", "attributed": True}]),
                {"retrieval_ms": 40, "ttft_ms": 400, "total_ms": 800, "tokens_per_s": 10}),
        _record(q5, ["a.txt"], _answer(""), {"retrieval_ms": 50, "ttft_ms": 500, "total_ms": 500}),
    ]


def test_summary_of_hand_made_records() -> None:
    s = m.summarise(hand_made_records())
    assert (s["n"], s["answerable"], s["unanswerable"]) == (5, 3, 2)
    assert s["hit@k"] == 0.5 and s["mrr"] == 0.25 and s["recall@k"] == 0.5  # only q1 and q2 have sources
    assert s["evidence_hit@k"] is None
    assert s["answer_correct"] == pytest.approx(1 / 3)  # q1 right, q2 wrong year, q5 empty
    assert s["refusal_correct"] == pytest.approx(4 / 5)  # q4 answered an unanswerable question
    assert s["correct_refusals"] == 0.5 and s["false_refusals"] == 0.0
    # raw citation numbers: q1 {1, 5}, q2 {2}, q4 {1}: 3 of 4 valid, the product removed 1 of 4
    assert s["citation_valid"] == 0.75 and s["citation_removed"] == 0.25
    assert s["citation_support"] == 0.5  # q1 cites its source, q2 does not; q5 has no sources, q3 refused
    assert s["citation_attributed"] == pytest.approx(1 / 3)  # q4's one citation was added by attribution
    assert s["unsupported_answers"] == 0.25  # q2's claim, among the four answers not refused
    assert s["retrieval_ms_p50"] == 30 and s["total_ms_p95"] == pytest.approx(760)
    assert s["tokens_per_s"] == 20  # runs that generated nothing are left out
    by_lang = m.summarise_by_lang(hand_made_records())
    assert list(by_lang) == ["en", "de", "zh"] and by_lang["zh"]["refusal_correct"] == 0.0


def test_pass_fail_per_record() -> None:
    records = {r["id"]: r["passed"] for r in hand_made_records()}
    assert records["q1"] == {"retrieval": True, "answer": True, "refusal": True, "citations": False,
                             "support": True}
    assert records["q3"] == {"retrieval": None, "answer": None, "refusal": True, "citations": None,
                             "support": None}
    assert records["q5"]["answer"] is False and records["q5"]["refusal"] is True


def test_retrieval_pass_uses_evidence_when_present() -> None:
    question = {"id": "q", "lang": "en", "expected_sources": ["a.txt"], "evidence": ["the quote"]}
    record = _record(question, ["a.txt", "b.txt"], None, texts=["nothing here", "with The  Quote inside"])
    assert record["scores"]["hit@k"] == 1.0 and record["scores"]["evidence_rr"] == 0.5
    assert record["passed"]["retrieval"] is True
    record = _record(question, ["a.txt"], None, texts=["nothing here"])
    assert record["scores"]["hit@k"] == 1.0 and record["passed"]["retrieval"] is False


# -- question files ------------------------------------------------------------------------------------------
def test_the_shipped_question_set_is_valid() -> None:
    questions = load_questions(QUESTIONS)
    assert len(questions) == 64 and len({q.id for q in questions}) == 64
    assert {q.lang for q in questions} == {"en", "de", "zh"}


def test_every_bad_line_is_reported_with_its_number(tmp_path: Path) -> None:
    lines = [
        '{"id": "ok-1", "question": "Which model came first?", "answer_contains": [["Qwen-7B"]]}',
        '{"id": "bad-json", "question": ',
        '{"id": "no-question"}',
        "",
        '{"id": "ok-1", "question": "Duplicate id?"}',
        '{"id": "flat", "question": "Alternatives as a flat list?", "answer_contains": ["a", "b"]}',
        '{"id": "typo", "question": "Misspelt field?", "expected_source": ["a.txt"], "answerable": "yes"}',
        '["not", "an", "object"]',
        '{"id": "un", "question": "Unanswerable with an answer?", "answerable": false, "answer_contains": [["x"]]}',
    ]
    path = tmp_path / "q.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(QuestionFileError) as caught:
        load_questions(path)
    problems = dict(caught.value.problems)
    assert sorted(problems) == [2, 3, 5, 6, 7, 8, 9]
    assert "not valid JSON" in problems[2] and "question" in problems[3] and "duplicate id" in problems[5]
    assert "group 1" in problems[6] and "expected_source" in problems[7] and "answerable" in problems[7]
    assert "object" in problems[8] and "unanswerable" in problems[9]
    assert "line 2:" in str(caught.value) and "line 9:" in str(caught.value)
    assert caught.value.exit_code == 2


def test_language_is_detected_when_absent_and_yaml_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "q.yaml"
    path.write_text(
        "- id: zh\n  question: 阿里巴巴的第一个开源模型是什么？\n"
        "- id: de\n  question: Mit wem unterhielt sich Joe Tsai auf dem Gipfel in Dubai auf der Bühne?\n"
        "  expected_sources: [001_c328490dffaf709f.txt]\n  answer_contains: [[Katzenberg]]\n",
        encoding="utf-8",
    )
    questions = load_questions(path)
    assert [(q.id, q.lang, q.line) for q in questions] == [("zh", "zh", 1), ("de", "de", 3)]
    assert questions[1].answer_contains == (("Katzenberg",),)
    path.write_text("- id: a\n  question: fine\n- id: b\n  answerable: maybe\n", encoding="utf-8")
    with pytest.raises(QuestionFileError) as caught:
        load_questions(path)
    assert [line for line, _ in caught.value.problems] == [3]


def test_bad_file_through_the_cli_runs_nothing(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text('{"id": "a"}\n{"id": "b", "question": 3}\n', encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "rag", "--index-dir", str(tmp_path / "ix"), "eval", str(path),
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "line 1:" in done.stderr and "line 2:" in done.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "ix").exists()


# -- comparing runs --------------------------------------------------------------------------------------------
def _write_fake_run(out: Path, records: list[dict[str, Any]]) -> None:
    summary = {"run": {"questions_file": "q.jsonl", "questions": len(records), "top_k": 3, "retrieval_only": False,
                       "models": {}, "notices": [], "warnings": [], "started_at": "", "duration_s": 0},
               "overall": m.summarise(records), "by_lang": m.summarise_by_lang(records)}
    write_run(EvalRun(records=[{**r, "answer": ""} for r in records], summary=summary), out)


def test_compare_shows_metric_differences_and_changed_questions(tmp_path: Path) -> None:
    before = hand_made_records()
    fixed = {"id": "q2", "lang": "de", "expected_sources": ["b.txt"], "answer_contains": [["2023"]]}
    after = [*before[:1], _record(fixed, ["b.txt"], _answer("2023 [1].", citations=[{"file": "b.txt"}]),
                                  {"retrieval_ms": 20, "ttft_ms": 200, "total_ms": 600}), *before[2:]]
    _write_fake_run(tmp_path / "a", before)
    _write_fake_run(tmp_path / "b", after)
    result = compare_runs(tmp_path / "a", tmp_path / "b")
    rows = {row.key: row for row in result.metrics}
    assert rows["answer_correct"].diff == pytest.approx(1 / 3)
    assert rows["answer_correct"].diffs["de"] == 1.0 and rows["answer_correct"].diffs["en"] == 0.0
    assert {(c.id, c.check, c.a, c.b) for c in result.changes} == {
        ("q2", "retrieval", False, True), ("q2", "answer", False, True), ("q2", "support", False, True)}
    assert all(c.improved for c in result.changes)
    shown = CliRunner().invoke(app, ["eval", "compare", str(tmp_path / "a"), str(tmp_path / "b")])
    assert shown.exit_code == 0, shown.output
    assert "answer correct" in shown.output and "+33.3 pp" in shown.output
    assert "Questions whose outcome changed" in shown.output and "q2" in shown.output


def test_compare_of_a_folder_that_is_no_run(tmp_path: Path) -> None:
    from rag.errors import NotFoundError

    with pytest.raises(NotFoundError):
        compare_runs(tmp_path, tmp_path)


# -- real runs through the Pipeline ---------------------------------------------------------------------------
def _subset(ids: list[str]) -> list[Question]:
    by_id = {q.id: q for q in load_questions(QUESTIONS)}
    return [by_id[i] for i in ids]


def test_scripted_run_scores_the_raw_citations(ingested: Settings, scripted_llm: type, tmp_path: Path) -> None:
    llm = scripted_llm(["Alibaba's first open-source model was Qwen-7B [1] [9].", "The documents don't say."])
    with Pipeline(ingested, llm=llm) as pipeline:
        run = run_eval(pipeline, _subset(["en-01", "un-en-04"]), top_k=3)
    first, second = run.records
    assert first["raw_answer"].count("[9]") == 1 and "[9]" not in first["answer"]
    assert first["scores"]["citations_raw"] == 2 and first["scores"]["citations_valid"] == 1
    assert first["scores"]["citations_removed"] == 1 and first["passed"]["answer"] is True
    assert second["refused"] is True and second["passed"]["refusal"] is True
    assert run.summary["overall"]["citation_valid"] == 0.5 and run.summary["overall"]["citation_removed"] == 0.5
    assert len(first["retrieved"]) == ingested.evidence_pool  # the candidates the evidence was chosen from


def test_real_run_writes_records_summary_report_and_plots(ingested: Settings, tmp_path: Path) -> None:
    settings = ingested.model_copy(update={"max_tokens": 32})
    seen: list[tuple[int, int, str]] = []
    with Pipeline(settings) as pipeline:
        run = run_eval(pipeline, _subset(["en-01", "de-02", "un-zh-01"]), out_dir=tmp_path / "run",
                       progress=lambda done, total, label: seen.append((done, total, label)), source="subset")
    assert seen[:2] == [(0, 3, "loading models"), (0, 3, "en-01")] and seen[-1] == (3, 3, "done")
    lines = (tmp_path / "run" / "records.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3
    for line in lines:
        record = json.loads(line)
        assert set(record) >= RECORD_FIELDS
        assert record["retrieved"] and {"file", "start", "end", "score", "text"} <= set(record["retrieved"][0])
        assert {"retrieval_ms", "ttft_ms", "total_ms"} <= set(record["timings"])
        assert set(record["passed"]) == {"retrieval", "answer", "refusal", "citations", "support"}
    summary = json.loads((tmp_path / "run" / "summary.json").read_text(encoding="utf-8"))
    assert summary["overall"]["n"] == 3 and set(summary["by_lang"]) == {"en", "de", "zh"}
    assert summary["run"]["models"]["llm"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    report = (tmp_path / "run" / "report.md").read_text(encoding="utf-8")
    assert "| metric | overall | en | de | zh |" in report
    for png in ("metrics_by_lang.png", "latency.png"):
        assert (tmp_path / "run" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png in report
    assert run.summary["overall"] == summary["overall"]


def test_retrieval_only_run_through_the_cli(ingested: Settings, tmp_path: Path) -> None:
    out = tmp_path / "ro"
    done = subprocess.run(
        [sys.executable, "-m", "rag", "--index-dir", str(ingested.index_dir), "--offline", "eval", str(QUESTIONS),
         "--retrieval-only", "--limit", "6", "--top-k", "4", "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "hit@4 (source)" in done.stdout and "overall" in done.stdout
    records = [json.loads(line) for line in (out / "records.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(records) == 6 and all(r["answer"] is None and len(r["retrieved"]) == 4 for r in records)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["run"]["retrieval_only"] is True and summary["overall"]["answer_correct"] is None
    assert summary["overall"]["hit@k"] is not None and (out / "report.md").is_file()
