"""Cross-lingual places: in an index of several languages, the passage of another language that is closer in
meaning to the question than one shown is shown too, though the lexical side cannot match it."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag import Pipeline
from rag.config import Settings
from rag.models.packaged_e5 import PACKAGED_MULTILINGUAL_ID

ANSWER = "imkerei.md"
# Only the German note says what the hives are treated with; the English ones share the question's words.
CORPUS = {
    ANSWER: "Die Imkerei behandelt ihre Bienenstöcke im Winter mit Oxalsäure, wenn die Völker keine Brut haben "
    "und die Varroamilben offen auf den Bienen sitzen.",
    "flu.md": "Doctors treat more patients with flu in winter, when people spend their days indoors.",
    "hotel.md": "Mountain hotels treat their guests with hot chocolate in winter after a day on the slopes.",
    "roads.md": "Cities treat their roads with salt in winter so that the ice melts before the morning traffic.",
    "sweets.md": "Children treat themselves with sweets in winter markets, where stalls sell roasted almonds.",
    "pipes.md": "Plumbers treat frozen pipes with warm air in winter instead of an open flame.",
}
QUESTION = "What do beekeepers treat their hives with in winter against Varroa mites?"


def _settings(tmp_path: Path, backend: str, **update: object) -> Settings:
    corpus = tmp_path / "corpus"
    if not corpus.exists():
        corpus.mkdir()
        for name, text in CORPUS.items():
            (corpus / name).write_text(text, encoding="utf-8")
    settings = Settings(corpus_dir=corpus, index_dir=tmp_path / "index", embedding_model=PACKAGED_MULTILINGUAL_ID,
                        offline=True, query_translation="off")
    if backend == "qdrant-client":
        settings = settings.model_copy(update={"qdrant_url": f"file://{tmp_path / 'server'}"})
    return settings.model_copy(update=update)


@pytest.mark.parametrize("backend", ["edge", "qdrant-client"])
def test_an_answer_in_another_language_gets_a_place(e5_folder: Path, tmp_path: Path, backend: str) -> None:
    with Pipeline(_settings(tmp_path, backend)) as pipeline:
        pipeline.ingest()
        shown = pipeline.search(QUESTION, top_k=3)
    with Pipeline(_settings(tmp_path, backend, cross_lingual=False)) as pipeline:
        same_language = pipeline.search(QUESTION, top_k=3)
    assert ANSWER not in [p.file for p in same_language], "the case needs the fused ranking to miss it"
    assert [p.file for p in shown][:2] == [p.file for p in same_language][:2]  # only the last place changes
    assert shown[-1].file == ANSWER and shown[-1].lang == "de"
    assert shown[-1].score > min(p.score for p in same_language)  # it is closer in meaning than one it replaced


def test_one_language_ranks_as_before(e5_folder: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, text in CORPUS.items():
        if name != ANSWER:
            (corpus / name).write_text(text, encoding="utf-8")
    with Pipeline(_settings(tmp_path, "edge")) as pipeline:
        pipeline.ingest()
        on = [(p.id, p.score) for p in pipeline.search(QUESTION, top_k=4)]
    with Pipeline(_settings(tmp_path, "edge", cross_lingual=False)) as pipeline:
        off = [(p.id, p.score) for p in pipeline.search(QUESTION, top_k=4)]
    assert on == off


def test_a_farther_passage_in_another_language_takes_no_place(e5_folder: Path, tmp_path: Path) -> None:
    """Every shown passage is closer in meaning than the German one: the ranking stands."""
    with Pipeline(_settings(tmp_path, "edge")) as pipeline:
        pipeline.ingest()
        shown = pipeline.search("Which hotels treat their guests with hot chocolate?", top_k=2)
    assert ANSWER not in [p.file for p in shown]


def test_no_place_across_languages_the_embedder_cannot_read(e5_folder: Path, tmp_path: Path) -> None:
    """An English-only embedder's cosine between English and German says nothing: it never decides a place."""
    from rag.search.retrieve import QueryForm, Retriever

    with Pipeline(_settings(tmp_path, "edge")) as pipeline:
        pipeline.ingest()
        retriever = Retriever(pipeline.embedder, pipeline.store)
        form = QueryForm(QUESTION, "en")
        found = retriever.search(QUESTION, 3)
        assert retriever.with_other_languages(found, form, readable=frozenset({"en"})) == found
        assert retriever.with_other_languages(found, form, readable=frozenset({"en", "de"}))[-1].file == ANSWER
