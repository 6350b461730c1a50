"""A sentence citing a passage in another language is judged by meaning (the multilingual embedder) and numbers,
since its words cannot overlap; in one language the words decide. Real packaged multilingual-e5-small."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag import Pipeline
from rag.answer.support import SupportJudge
from rag.config import Settings
from rag.models.calibration import support_threshold
from rag.models.embeddings import Embedder
from rag.models.packaged_e5 import PACKAGED_MULTILINGUAL_ID
from rag.models.resolve import resolve_embedding
from rag.search.retrieve import Passage

ENGLISH = Passage(
    id="p1", file="qwen.md", title="Qwen", start=0, end=0, score=0.9, lang="en",
    text="Alibaba opened its Tongyi Qianwen model to third-party developers. It supports AI content generation in "
    "both English and Chinese and includes a seven-billion-parameter model.",
)


@pytest.fixture
def judge(e5_folder: Path) -> SupportJudge:
    embedder = Embedder(resolve_embedding(Settings(embedding_model=PACKAGED_MULTILINGUAL_ID, offline=True), None))
    threshold = support_threshold(PACKAGED_MULTILINGUAL_ID)
    assert threshold is not None, "the packaged multilingual model has a calibrated support threshold"
    return SupportJudge(embedder.embed_queries, threshold)


@pytest.mark.parametrize("sentence", [
    "Das Modell kann Inhalte auf Englisch und Chinesisch erzeugen [1].",
    "Alibaba öffnete sein Modell Tongyi Qianwen für Drittentwickler [1].",
    "该模型支持中英文内容生成[1]。",
])
def test_a_translation_of_the_passage_is_backed(judge: SupportJudge, sentence: str) -> None:
    assert judge(sentence, ENGLISH)


@pytest.mark.parametrize("sentence", [
    "Alibaba verkauft Raketen an Marskolonien [1].",  # another subject
    "Das Modell kann Inhalte in 12 Sprachen erzeugen [1].",  # a number the passage does not hold
    "The system writes text in two languages, one of them spoken in Beijing [1].",  # one language: words decide
])
def test_what_the_passage_does_not_say_is_not_backed(judge: SupportJudge, sentence: str) -> None:
    assert not judge(sentence, ENGLISH)


def test_without_a_calibration_only_words_count() -> None:
    judge = SupportJudge(lambda texts: pytest.fail("no model should be asked"), None)
    assert not judge("Das Modell kann Inhalte auf Englisch und Chinesisch erzeugen [1].", ENGLISH)
    assert judge("It supports AI content generation in English and Chinese [1].", ENGLISH)


def test_a_german_answer_citing_an_english_passage_is_verified(
    e5_folder: Path, tmp_path: Path, scripted_llm  # type: ignore[no-untyped-def]
) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "qwen.md").write_text(ENGLISH.text, encoding="utf-8")
    llm = scripted_llm(["Das Modell kann Inhalte auf Englisch und Chinesisch erzeugen [1]. "
                        "Alibaba verkauft außerdem Raketen an Marskolonien [1]."])
    settings = Settings(corpus_dir=corpus, index_dir=tmp_path / "index", embedding_model=PACKAGED_MULTILINGUAL_ID,
                        offline=True, relevance_threshold=0)
    with Pipeline(settings, llm=llm) as pipeline:
        pipeline.ingest()
        answer = pipeline.ask("In welchen Sprachen kann das Modell Inhalte erzeugen?").result
    # The German sentence is backed by the English evidence in meaning and stays; the invented one is held apart.
    assert [claim.text for claim in answer.unsupported] == ["Alibaba verkauft außerdem Raketen an Marskolonien."]
    assert "Englisch und Chinesisch" in answer.answer and "Marskolonien" not in answer.answer
    assert answer.citations and answer.citations[0].verified is True
