"""The optional cross-encoder reranker, on a tiny cross-encoder the test builds itself (none ships on PyPI)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rag import Pipeline
from rag.config import Settings
from rag.models.resolve import packaged_embedding_path


@pytest.fixture(scope="session")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-layer BERT with one output, random weights, and MiniLM's vocabulary: a real CrossEncoder."""
    import torch
    from sentence_transformers import CrossEncoder
    from transformers import BertConfig, BertForSequenceClassification

    folder = tmp_path_factory.mktemp("tiny-cross-encoder")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512, num_labels=1)
    BertForSequenceClassification(config).save_pretrained(folder)
    source = packaged_embedding_path()
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(source / name, folder / name)
    CrossEncoder(str(folder), device="cpu")  # it must load as what it claims to be
    return folder


def test_reranker_scores_every_candidate_and_sorts_before_cutting(settings: Settings, tiny_cross_encoder: Path) -> None:
    from sentence_transformers import CrossEncoder

    question = "Which model was Alibaba's first open-source model?"
    with Pipeline(settings) as pipeline:
        pipeline.ingest()
        candidates = pipeline.search(question, top_k=12)
    reranked_settings = settings.model_copy(update={"reranker_model": str(tiny_cross_encoder),
                                                    "rerank_candidates": 12})
    with Pipeline(reranked_settings) as pipeline:
        found = pipeline.search(question, top_k=4)
        assert pipeline.reranker is not None and pipeline.notices() == []
    scores = CrossEncoder(str(tiny_cross_encoder), device="cpu").predict([(question, p.text) for p in candidates])
    expected = [p.id for _, p in sorted(zip(scores, candidates, strict=True), key=lambda pair: -pair[0])][:4]
    assert expected != [p.id for p in candidates[:4]], "the case needs a reranker that disagrees with retrieval"
    assert [p.id for p in found] == expected  # the best 4 of all 12, not a re-sort of the first 4
    assert all(p.rerank_score is not None for p in found)
    assert [p.rerank_score for p in found] == sorted((p.rerank_score for p in found), reverse=True)


def test_unavailable_reranker_is_off_with_a_notice(settings: Settings) -> None:
    with Pipeline(settings.model_copy(update={"reranker_model": "nobody/no-such-cross-encoder"})) as pipeline:
        pipeline.ingest()
        assert len(pipeline.search("Qwen-7B", top_k=3)) == 3
        assert pipeline.reranker is None
        assert any("reranking is off" in notice for notice in pipeline.notices())
