"""Follow-up questions: how they are searched (with the recent questions, or rewritten by the LLM), the stable
prompt prefix they share with the previous turn, and that prefix read into llama.cpp while the user types."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rag import Pipeline
from rag.config import Settings
from rag.conversation import Turn, conversation_prefix
from rag.models.llm import LlamaCppLLM
from rag.models.resolve import ModelRef

OPENER = Turn(question="What was Alibaba's first open-source model?", answer="Qwen-7B [1].")
FOLLOW_UP = "and when was it released?"


def test_follow_up_is_searched_with_the_recent_questions_without_an_llm_call(ingested: Settings,
                                                                            scripted_llm: Any) -> None:
    summit = Turn(question="Where was the World Government Summit 2025 held?", answer="In Dubai [1].")
    follow_up = "and who spoke there?"
    llm = scripted_llm(["Joe Tsai [1]."])
    with Pipeline(ingested, llm=llm) as pipeline:
        alone = pipeline.search(follow_up)
        result = pipeline.ask(follow_up, history=[summit]).result
    assert len(llm.calls) == 1  # the answer only: no rewrite call before it
    assert result.standalone_question == follow_up
    assert "Dubai" in result.passages[0].text
    assert "Dubai" not in alone[0].text  # the question alone does not point there
    sent = llm.calls[0]
    assert [m["content"] for m in sent[1:3]] == [summit.question, summit.answer]  # the model sees the history


def test_rewrite_mode_asks_the_llm_as_the_next_message_of_the_conversation(ingested: Settings,
                                                                          scripted_llm: Any) -> None:
    llm = scripted_llm(["When was Qwen-7B released?", "In August 2023 [1]."])
    with Pipeline(ingested.model_copy(update={"follow_ups": "rewrite"}), llm=llm) as pipeline:
        result = pipeline.ask(FOLLOW_UP, history=[OPENER]).result
        assert result.standalone_question == "When was Qwen-7B released?"
        assert any("Qwen-7B" in p.text for p in result.passages)
        rewrite, answer = llm.calls
        assert FOLLOW_UP in rewrite[-1]["content"] and "Rewrite" in rewrite[-1]["content"]
        assert rewrite[:-1] == answer[:-1]  # system prompt and history: one prefix, evaluated once
        llm.replies = ["The documents don't say.", "It was Qwen-7B [1]."]
        refused_rewrite = pipeline.ask(FOLLOW_UP, history=[OPENER]).result
        assert refused_rewrite.standalone_question == FOLLOW_UP  # a refusal is no rewrite
        llm.replies, before = ["It was Qwen-7B [1]."], len(llm.calls)
        assert pipeline.ask("Which company released Qwen-7B in August 2023?", history=[OPENER]).result.citations
        assert len(llm.calls) == before + 1  # no rewrite call for a self-contained question


def test_a_conversation_prefills_the_next_turns_prefix(ingested: Settings, scripted_llm: Any) -> None:
    llm = scripted_llm(["Qwen-7B [1].", "In August 2023 [1]."])
    with Pipeline(ingested, llm=llm) as pipeline:
        first = pipeline.ask(OPENER.question, conversation=True).result
        pipeline.settle()
        assert llm.prefills == [conversation_prefix("en", [Turn(OPENER.question, first.answer)])]
        assert pipeline.ask(FOLLOW_UP, history=[Turn(OPENER.question, first.answer)]).result.answer
        pipeline.settle()
    assert llm.calls[1][:-1] == llm.prefills[0]  # the next prompt starts with exactly what was prefilled
    assert len(llm.prefills) == 1  # a one-off question (conversation=False) prefills nothing


# -- real llama.cpp ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def smollm(smollm_path: Path) -> LlamaCppLLM:
    return LlamaCppLLM(ModelRef(name="SmolLM2", path=smollm_path), n_ctx=2048)


def test_prefilled_prefix_is_reused_and_the_answer_is_unchanged(smollm: LlamaCppLLM, count_evals: Any) -> None:
    prefix = conversation_prefix("en", [OPENER, Turn("Who made it?", "Alibaba Cloud made Qwen-7B [1].")])
    question = {"role": "user", "content": "Passages:\n[1] Alibaba released Qwen-7B in August 2023 as open "
                                           "source.\n\nQuestion: When was it released?"}
    unrelated = [{"role": "user", "content": "Say hello."}]
    evaluated = count_evals(smollm)
    list(smollm.stream_chat(unrelated, 4, 0.0))  # the cache now holds another prompt
    cold = "".join(smollm.stream_chat([*prefix, question], 24, 0.0))
    whole = len(smollm._render([*prefix, question]))

    list(smollm.stream_chat(unrelated, 4, 0.0))
    evaluated.clear()
    read = smollm.prefill(prefix)
    assert read == sum(evaluated) > 0 and read <= len(smollm._render(prefix))
    assert smollm.prefill(prefix) == 0  # already in place: nothing to evaluate
    evaluated.clear()
    warm = "".join(smollm.stream_chat([*prefix, question], 24, 0.0))
    prompt_evaluated = evaluated[0]
    assert prompt_evaluated <= whole - len(smollm._render(prefix)) + 8  # only the new turn (and the reply opening)
    assert warm == cold  # reusing the cache changes nothing in what the model says


def test_prefill_gives_way_to_a_waiting_generation(smollm: LlamaCppLLM) -> None:
    prefix = conversation_prefix("en", [OPENER])
    with smollm.lock:  # a generation is running
        assert smollm.prefill(prefix) == 0
    smollm._waiting = 1  # one is queued for the model
    try:
        list(smollm.stream_chat([{"role": "user", "content": "Say hello."}], 2, 0.0))
        assert smollm.prefill(prefix) == 0
    finally:
        smollm._waiting = 0
    assert smollm.prefill(prefix) > 0
