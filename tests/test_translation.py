"""Query translation for a monolingual embedding model: a German question also searched in English (translated
by the LLM), both forms fused, so it finds the English passage that answers it."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag import Pipeline
from rag.config import Settings
from rag.models.resolve import PACKAGED_LLM_ID, packaged_embedding_path
from rag.search.translate import can_translate, model_languages, translation_target
from tests.conftest import ScriptedLLM

FACTS = [
    ("lighthouse", "The old lighthouse on the northern cape was completed in 1871 after six years of work."),
    ("bakery", "The village bakery sells rye bread, pretzels and cheesecake every morning except Sunday."),
    ("railway", "A narrow-gauge railway once carried slate from the quarry down to the harbour."),
    ("orchestra", "The town orchestra rehearses on Wednesday evenings in the school gymnasium."),
    ("library", "The public library lends board games as well as books and audio recordings."),
    ("festival", "Every August a kite festival fills the beach with hundreds of colourful kites."),
]
QUESTION = "Wann wurde der Leuchtturm fertiggestellt?"
TRANSLATION = "When was the lighthouse completed?"


@pytest.fixture
def english_facts(tmp_path: Path, settings: Settings) -> Settings:
    corpus = tmp_path / "facts"
    corpus.mkdir()
    for name, text in FACTS:
        (corpus / f"{name}.txt").write_text(text + "\n", encoding="utf-8")
    return settings.model_copy(update={"corpus_dir": corpus})


def test_the_packaged_embedder_declares_english_only() -> None:
    path = packaged_embedding_path()
    assert path is not None
    assert model_languages(path) == frozenset({"en"})


def test_translation_target_follows_the_embedders_languages() -> None:
    english = frozenset({"en"})
    assert translation_target("auto", english, "de") == "en"
    assert translation_target("auto", english, "en") is None
    assert translation_target("auto", None, "de") is None  # a card that names no language: assume it reads any
    assert translation_target("auto", frozenset({"de", "en", "zh"}), "zh") is None
    assert translation_target("always", frozenset({"de", "en", "zh"}), "zh") == "en"
    assert translation_target("off", english, "de") is None
    # measured to make retrieval worse (eval/README.md), so `auto` does not ask the tiny offline model
    assert not can_translate(PACKAGED_LLM_ID) and can_translate("Qwen/Qwen2.5-1.5B-Instruct-GGUF")


def test_a_german_question_finds_the_english_passage_through_its_translation(english_facts: Settings) -> None:
    def top(mode: str, llm: ScriptedLLM) -> tuple[str, float]:
        with Pipeline(english_facts.model_copy(update={"query_translation": mode}), llm=llm) as pipeline:
            pipeline.ingest()
            found = pipeline.search(QUESTION, 3)
            assert [p.id for p in found] == [p.id for p in pipeline.search(QUESTION, 3)]
            return found[0].file, found[0].score

    translator = ScriptedLLM([TRANSLATION])
    file, score = top("auto", translator)
    assert file == "lighthouse.txt" and score > 0.5
    assert len(translator.calls) == 1  # the second search used the remembered translation
    prompt = translator.calls[0][-1]["content"]
    assert QUESTION in prompt and "into English" in prompt and "German" in prompt

    untouched = ScriptedLLM([])
    file, score = top("off", untouched)
    assert untouched.calls == []
    assert file != "lighthouse.txt" and score < 0.3, "the test needs a question MiniLM cannot match in German"


@pytest.mark.parametrize("reply", ["", QUESTION, "Sure! " + "I am a helpful assistant. " * 30])
def test_an_unusable_translation_leaves_the_question_as_asked(english_facts: Settings, reply: str) -> None:
    with Pipeline(english_facts, llm=ScriptedLLM([reply])) as pipeline:
        pipeline.ingest()
        forms = pipeline.query_forms(QUESTION, "de")
    assert [(f.text, f.lang, f.mode) for f in forms] == [(QUESTION, "de", None)]


def test_the_original_is_searched_by_its_terms_beside_the_translation(english_facts: Settings) -> None:
    with Pipeline(english_facts, llm=ScriptedLLM([TRANSLATION])) as pipeline:
        pipeline.ingest()
        forms = pipeline.query_forms(QUESTION, "de")
        assert [(f.text, f.lang, f.mode) for f in forms] == [(QUESTION, "de", "lexical"), (TRANSLATION, "en", None)]
        answer = pipeline.ask(QUESTION).result
    assert answer.passages[0].file == "lighthouse.txt"
    assert answer.passages[0].score > 0.5  # the dense cosine to the translation, not to the unreadable original
    assert "translate_ms" in answer.timings


def test_the_gate_never_refuses_on_a_translations_cosine(english_facts: Settings) -> None:
    # A poor translation scores low whether or not the documents answer: only the LLM may refuse here.
    llm = ScriptedLLM(["Who became football world champion in 2014?", "Die Dokumente sagen dazu nichts."])
    with Pipeline(english_facts, llm=llm) as pipeline:
        pipeline.ingest()
        answer = pipeline.ask("Wer wurde 2014 Fußball-Weltmeister?").result
    assert answer.relevance["gated"] is False and answer.relevance["threshold"] is None
    # The translation was asked for; the refusal comes from the evidence, which never names 2014, not the gate.
    assert len(llm.calls) == 1 and answer.refused and "2014" in answer.coverage["missing"], answer.coverage
