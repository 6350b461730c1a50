"""Hybrid retrieval: BM25-style terms beside dense vectors, fused in Qdrant, the same on both backends."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag import Pipeline
from rag.config import Settings
from rag.errors import IndexMismatchError
from rag.store.lexical import document_vector, query_vector, terms

TOPICS = ["cloud computing revenue", "open-source language models", "multimodal image generation",
          "AI chips and inference cost", "e-commerce logistics", "developer communities"]


def test_model_names_and_numbers_are_whole_terms_and_parts() -> None:
    assert {"qwen2.5-1m", "qwen2.5", "1m"} <= set(terms("Alibaba released Qwen2.5-1M.", "en"))
    assert "90000" in terms("über 90.000 Derivate", "de") and "90000" in terms("over 90,000 models", "en")


def test_german_is_folded_and_stemmed() -> None:
    assert terms("Veröffentlichungen", "de") == terms("veroffentlichung", "de")
    assert "modell" in terms("Open-Source-Modelle", "de")
    assert "uber" not in terms("über", "de")  # a stopword, folded or not


def test_chinese_is_split_into_bigrams_and_keeps_latin_names() -> None:
    found = terms("阿里巴巴开源了通义千问Qwen-7B模型", "zh")
    assert {"通义", "义千", "千问", "qwen-7b", "模型"} <= set(found)
    doc, query = document_vector("阿里巴巴开源了通义千问模型", "zh"), query_vector("通义千问", "zh")
    assert set(query[0]) <= set(doc[0])


@pytest.fixture
def haystack(tmp_path: Path, settings: Settings) -> Settings:
    """Many near-identical release notes; one names an exact build number nobody else mentions."""
    corpus = tmp_path / "notes"
    corpus.mkdir()
    for i in range(40):
        topic = TOPICS[i % len(TOPICS)]
        (corpus / f"note{i:02d}.md").write_text(
            f"# Release note {i}\nThe team shipped build {3000 + 37 * i} with an update about {topic}. Users "
            f"reported better results and the roadmap continues with more improvements to {topic}.\n",
            encoding="utf-8")
    (corpus / "note99.md").write_text(
        "# Kitchen rota\nThe canteen menu changes weekly: soup on Monday, pasta on Tuesday and curry on Thursday. "
        "Facilities confirmed the coffee machine repair together with build 4417 of the booking tool.\n",
        encoding="utf-8")
    return settings.model_copy(update={"corpus_dir": corpus})


@pytest.mark.parametrize("backend", ["edge", "qdrant-client"])
def test_hybrid_finds_an_exact_code_that_dense_search_ranks_low(haystack: Settings, tmp_path: Path,
                                                                backend: str) -> None:
    if backend == "qdrant-client":
        haystack = haystack.model_copy(update={"qdrant_url": f"file://{tmp_path / 'server'}"})

    def rank(mode: str) -> int:
        with Pipeline(haystack.model_copy(update={"retrieval_mode": mode})) as pipeline:
            files = [p.file for p in pipeline.search("What shipped in build 4417?", top_k=41)]
        return files.index("note99.md")

    with Pipeline(haystack) as pipeline:
        pipeline.ingest()
    dense, lexical, fused = rank("dense"), rank("lexical"), rank("hybrid")
    assert dense > 5, f"the case is only meaningful when dense search ranks it low (rank {dense})"
    assert lexical == 0
    assert fused <= 1


def test_hybrid_scores_are_dense_cosines_not_fused_ranks(settings: Settings) -> None:
    with Pipeline(settings) as pipeline:
        pipeline.ingest()
        hybrid = {p.id: p.score for p in pipeline.search("Qwen-7B release", top_k=5)}
    with Pipeline(settings.model_copy(update={"retrieval_mode": "dense"})) as pipeline:
        dense = {p.id: p.score for p in pipeline.search("Qwen-7B release", top_k=40)}
    for passage_id, score in hybrid.items():
        if passage_id in dense:
            assert score == pytest.approx(dense[passage_id], abs=1e-4)


def test_an_index_from_before_hybrid_search_is_rebuilt_not_mixed(settings: Settings) -> None:
    with Pipeline(settings) as pipeline:
        pipeline.ingest()
        pipeline.registry.set_meta(index_format="dense-only")  # what an older rag wrote
        with pytest.raises(IndexMismatchError, match="--rebuild"):
            pipeline.search("Qwen")
        report = pipeline.ingest()
        assert len(report.new) == 5 and report.notes and "rebuilt" in report.notes[0]
        assert pipeline.search("Qwen", top_k=1)
