"""Answering around the model, with a scripted LLM: streaming, citations, refusals, follow-ups, JSON shape."""

from __future__ import annotations

import threading
import time

import pytest

from rag import Pipeline
from rag.config import Settings
from rag.conversation import Turn
from rag.search.follow_ups import needs_rewrite

QUESTION = "Which model was Alibaba's first open-source model?"


def eventually(condition, seconds: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    """The model runs on a thread of its own: what it produced reaches the reader a moment later."""
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return bool(condition())


def read_in_background(stream) -> tuple[threading.Thread, list[str]]:  # type: ignore[no-untyped-def]
    received: list[str] = []
    reader = threading.Thread(target=lambda: received.extend(stream))
    reader.start()
    return reader, received


def test_first_token_arrives_before_generation_ends(ingested: Settings, scripted_llm) -> None:  # type: ignore[no-untyped-def]
    """grounding = "flag" streams token by token; "strict" a sentence at a time (see the next test)."""
    llm = scripted_llm(["Alibaba released Qwen-7B first [1] in August 2023."], block_after=3)
    with Pipeline(ingested.model_copy(update={"grounding": "flag"}), llm=llm) as pipeline:
        reader, received = read_in_background(pipeline.ask(QUESTION))
        assert llm.reached_gate.wait(30)
        # streamed while the model is blocked
        assert eventually(lambda: "".join(received).startswith("Alibaba released Qwen-7B")), received
        llm.gate.set()
        reader.join(30)
        assert "".join(received) == "Alibaba released Qwen-7B first [1] in August 2023."


def test_a_strict_answer_streams_each_backed_sentence_before_generation_ends(ingested: Settings, scripted_llm) -> None:  # type: ignore[no-untyped-def]
    first = "Alibaba released its first open-source model, Qwen-7B, in August 2023."
    llm = scripted_llm([f"{first} It was trained on Mars by 400 engineers."], block_after=14)
    with Pipeline(ingested, llm=llm) as pipeline:
        reader, received = read_in_background(pipeline.ask(QUESTION))
        assert llm.reached_gate.wait(30)
        # the first sentence is released while the model is still blocked
        assert eventually(lambda: "".join(received).startswith(first.rstrip("."))), received
        assert "Mars" not in "".join(received)
        llm.gate.set()
        reader.join(30)
        assert "Mars" not in "".join(received)  # held apart, never shown as part of the answer


def test_answer_json_shape_and_citation_offsets(ingested: Settings, scripted_llm) -> None:  # type: ignore[no-untyped-def]
    llm = scripted_llm(["Qwen-7B was first [1]. It came in 2023 [1][9]."])
    with Pipeline(ingested.model_copy(update={"grounding": "flag"}), llm=llm) as pipeline:
        result = pipeline.ask(QUESTION).result
        data = result.to_dict()
        for key in ("answer", "refused", "answer_lang", "citations", "passages", "timings", "models"):
            assert key in data
        assert data["answer"] == "Qwen-7B was first [1]. It came in 2023 [1]."
        assert data["invalid_citations"] == [9]
        assert data["refused"] is False and data["answer_lang"] == "en"
        assert [c["number"] for c in data["citations"]] == [1]
        for c in data["citations"]:
            assert pipeline.document_text(c["file"])[c["start"] : c["end"]] == c["text"]
            assert {"file", "title", "start", "end", "text", "score"} <= set(c)
        assert len(data["passages"]) == ingested.evidence_pool  # the candidates the evidence was chosen from
        assert 1 <= len(data["context"]) <= 8 and data["evidence"] == data["context"]
        for e in data["evidence"]:
            assert pipeline.document_text(e["file"])[e["start"] : e["end"]] == e["text"]
        assert {"retrieval_ms", "ttft_ms", "total_ms", "generated_tokens", "tokens_per_s", "prompt_tokens",
                "evidence_ms", "evidence_budget_tokens"} <= set(data["timings"])
        assert data["answer_mode"] == "generated" and data["grounding"] == "flag"
        assert data["models"] == {"llm": "scripted", "embedding": "sentence-transformers/all-MiniLM-L6-v2"}


def test_prompt_numbers_passages_fences_them_and_uses_the_template(ingested: Settings, scripted_llm) -> None:  # type: ignore[no-untyped-def]
    # The first call translates the question for the English-only test embedder; the answer is asked as asked.
    llm = scripted_llm(["What did Joe Tsai say about open source?", "ok"])
    with Pipeline(ingested.model_copy(update={"grounding": "flag"}), llm=llm) as pipeline:
        assert pipeline.ask("Was sagte Joe Tsai über Open Source?").result.answer == "ok"
    system, user = llm.calls[1][0]["content"], llm.calls[1][-1]["content"]
    assert "untrusted" in system and "German" in system and "Die Dokumente sagen dazu nichts." in system
    assert '<passage source="' in user and "\n[1] " in user and "\n[2] " in user  # numbered sentences
    assert user.rstrip().endswith("Question: Was sagte Joe Tsai über Open Source?")


def test_uncited_answer_gets_attributed_citation(ingested: Settings, scripted_llm) -> None:  # type: ignore[no-untyped-def]
    llm = scripted_llm(["Alibaba released its first open-source model, Qwen-7B, in August 2023."])
    with Pipeline(ingested, llm=llm) as pipeline:
        result = pipeline.ask(QUESTION).result
    assert result.citations and all(c.attributed for c in result.citations)
    assert any("Qwen-7B" in c.text for c in result.citations)
    assert "[" in result.answer


def test_rag_adds_no_citation_that_its_own_check_rejects(ingested: Settings, scripted_llm) -> None:  # type: ignore[no-untyped-def]
    """An uncited sentence with a number no passage holds: attributing it would show a source marked
    unverified; it is flagged as a claim no passage backs instead."""
    llm = scripted_llm(["Alibaba released its first open-source model, Qwen-7B, in August 1999."])
    with Pipeline(ingested.model_copy(update={"grounding": "flag"}), llm=llm) as pipeline:
        result = pipeline.ask(QUESTION).result
    assert result.citations == [] and "[" not in result.answer
    assert [claim.text for claim in result.unsupported] == [result.answer]


def test_refusal_is_detected_and_cites_nothing(ingested: Settings, scripted_llm) -> None:  # type: ignore[no-untyped-def]
    llm = scripted_llm(["The documents don't say [2]."])
    with Pipeline(ingested.model_copy(update={"relevance_threshold": 0.0}), llm=llm) as pipeline:
        result = pipeline.ask(QUESTION).result
    # The model's refusal stands, followed by the closest evidence, quoted and cited: never the model's [2].
    assert result.refused and result.answer.startswith("The documents don't say. The closest the documents come:")
    assert [c.number for c in result.citations] == [int(result.answer.rsplit("[", 1)[1].rstrip("]"))]


@pytest.mark.parametrize(
    ("question", "lang", "expected"),
    [("and when was it released?", "en", True), ("What about QwQ?", "en", True),
     ("Which company released Qwen-7B in August 2023?", "en", False),
     ("Und wann wurde es veröffentlicht?", "de", True), ("Welche Firma hat Qwen-7B veröffentlicht?", "de", False),
     ("它是什么时候发布的？", "zh", True), ("阿里巴巴的第一个开源模型是什么？", "zh", False)],
)
def test_needs_rewrite(question: str, lang: str, expected: bool) -> None:
    assert needs_rewrite(question, lang, [Turn("q", "a")]) is expected
    assert needs_rewrite(question, lang, []) is False


def test_empty_question_and_empty_index_are_clear_errors(settings: Settings, scripted_llm) -> None:  # type: ignore[no-untyped-def]
    from rag.errors import RagError

    with Pipeline(settings, llm=scripted_llm([])) as pipeline:
        with pytest.raises(RagError, match="empty"):
            pipeline.ask("  ")
        with pytest.raises(RagError, match="rag ingest"):
            pipeline.ask("Anything?")


def test_history_is_trimmed_to_fit_the_context(ingested: Settings, scripted_llm) -> None:  # type: ignore[no-untyped-def]
    long_turns = [Turn(question=f"question {i} " + "word " * 200, answer="answer " * 200) for i in range(20)]
    llm = scripted_llm(["Qwen-7B [1]."], n_ctx=2048)
    with Pipeline(ingested, llm=llm) as pipeline:
        assert pipeline.ask("Which company released Qwen-7B in August 2023?", history=long_turns).result.answer
    sent = llm.calls[-1]
    assert 1 < len(sent) < 2 + 2 * len(long_turns)
    assert sum(llm.count_tokens(m["content"]) for m in sent) < 2048


def test_cancel_stops_generation_and_keeps_the_partial_answer(ingested: Settings, scripted_llm) -> None:  # type: ignore[no-untyped-def]
    llm = scripted_llm(["Qwen-7B was first " + "and more " * 200], block_after=3)
    with Pipeline(ingested.model_copy(update={"grounding": "flag"}), llm=llm) as pipeline:
        stream = pipeline.ask(QUESTION)
        reader, received = read_in_background(stream)
        assert llm.reached_gate.wait(30)
        stream.cancel()
        llm.gate.set()
        reader.join(30)
        assert not reader.is_alive()
        assert stream.result.answer.startswith("Qwen-7B was first") and len(received) < 10


def test_unsupported_citation_is_flagged(ingested: Settings, scripted_llm) -> None:  # type: ignore[no-untyped-def]
    llm = scripted_llm(["Qwen-7B was released in 1999 [1]."])
    with Pipeline(ingested.model_copy(update={"grounding": "flag"}), llm=llm) as pipeline:
        result = pipeline.ask(QUESTION).result
    assert result.citations and result.citations[0].verified is False
    assert result.to_dict()["citations"][0]["verified"] is False


def test_relevance_gate_refuses_off_topic_questions_without_the_llm(ingested: Settings, scripted_llm) -> None:  # type: ignore[no-untyped-def]
    from rag.models.calibration import relevance_threshold

    threshold = relevance_threshold(None, "sentence-transformers/all-MiniLM-L6-v2")
    assert threshold is not None, "the packaged embedder has a calibrated gate"
    llm = scripted_llm(["Qwen-7B [1]."])
    with Pipeline(ingested, llm=llm) as pipeline:
        off_topic = pipeline.ask("How do I bake a cheesecake with quark?").result
        assert llm.calls == [] and off_topic.refused and off_topic.relevance["gated"] is True
        assert off_topic.answer == "The documents don't say." and off_topic.citations == []
        # Calibrated on English only: a German question is not judged by an English-only embedder's scores.
        assert relevance_threshold(None, "sentence-transformers/all-MiniLM-L6-v2", "de") is None
        on_topic = pipeline.ask(QUESTION).result
        assert len(llm.calls) == 1 and not on_topic.relevance["gated"]
        assert on_topic.relevance["top_score"] >= threshold
    with Pipeline(ingested.model_copy(update={"relevance_threshold": 0.0}), llm=scripted_llm(["ok"])) as pipeline:
        assert pipeline.ask("How do I bake a cheesecake with quark?").result.relevance["gated"] is False


def test_a_claim_no_passage_backs_is_flagged_in_json_and_ui(ingested: Settings, scripted_llm) -> None:  # type: ignore[no-untyped-def]
    from ui import render

    llm = scripted_llm(["Alibaba's first open-source model was Qwen-7B [1]. Alibaba also sells rockets to Mars."])
    with Pipeline(ingested.model_copy(update={"grounding": "flag"}), llm=llm) as pipeline:
        result = pipeline.ask(QUESTION).result
    assert [claim.text for claim in result.unsupported] == ["Alibaba also sells rockets to Mars."]
    claim = result.to_dict()["unsupported"][0]
    assert result.answer[claim["start"] : claim["end"]] == claim["text"]
    html = render.conversation([result.to_dict()])
    assert '<span class="rag-unsupported" title="No passage backs this sentence">Alibaba also sells rockets to ' \
           "Mars. ⚠</span>" in html
    assert "Qwen-7B" in html.split("rag-unsupported")[0]  # the backed sentence is not marked
