"""Sentence-aware chunking: exact offsets, sizes in model tokens, no cut words or numbers, EN/DE/ZH."""

from __future__ import annotations

import re
from functools import cache

import pytest

from rag.ingest.chunking import chunk_text, sentence_spans
from rag.models.resolve import packaged_embedding_path

EN = ("Alibaba released Qwen-7B in August 2023. It was the first open model of the family! "
      "By February 2025, over 90,000 derivative models existed, e.g. fine-tunes. Dr. Smith agreed.")
DE = ("Das WGS 2025 fand vom 11. bis 13. Februar statt. Über 200 Experten kamen zusammen. "
      "Bereits 2023 veröffentlichte Alibaba sein erstes Open-Source-Modell, Qwen-7B, das über 90.000 Derivate "
      "inspiriert hat.")
ZH = "阿里巴巴于2023年8月发布了通义千问。它是第一个开源模型！超过9万个衍生模型已经出现。开发者怎么看？"


def whitespace_offsets(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in re.finditer(r"\S+", text)]


@cache
def minilm_tokenizer():  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(packaged_embedding_path()))


def minilm_offsets(text: str) -> list[tuple[int, int]]:
    encoded = minilm_tokenizer()(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    return [span for span in encoded["offset_mapping"] if span[1] > span[0]]


def texts(text: str) -> list[str]:
    return [text[s:e] for s, e in sentence_spans(text)]


def test_english_sentences_respect_abbreviations_and_numbers() -> None:
    assert texts(EN) == [
        "Alibaba released Qwen-7B in August 2023.",
        "It was the first open model of the family!",
        "By February 2025, over 90,000 derivative models existed, e.g. fine-tunes.",
        "Dr. Smith agreed.",
    ]


def test_german_ordinals_do_not_end_sentences() -> None:
    assert texts(DE)[0] == "Das WGS 2025 fand vom 11. bis 13. Februar statt."
    assert len(texts(DE)) == 3


def test_chinese_sentences_end_at_chinese_punctuation() -> None:
    assert texts(ZH) == [
        "阿里巴巴于2023年8月发布了通义千问。", "它是第一个开源模型！", "超过9万个衍生模型已经出现。", "开发者怎么看？"
    ]


def test_source_reference_markers_stay_with_their_sentence() -> None:
    text = "Tsai made the point clearly [1][5][24] Group 1: Adoption. Next sentence here."
    spans = texts(text)
    assert any("[1][5][24]" in s for s in spans)
    assert all(not s.startswith("[") for s in spans)


@pytest.mark.parametrize("text", [EN, DE, ZH, EN + "\n" + DE + "\n" + ZH])
@pytest.mark.parametrize("size", [8, 16, 40, 400])
def test_offsets_are_exact_and_sizes_hold_with_the_real_tokenizer(text: str, size: int) -> None:
    chunks = chunk_text(text, minilm_offsets, chunk_size=size, chunk_overlap=min(4, size // 2))
    assert chunks
    for chunk in chunks:
        assert text[chunk.start : chunk.end] == chunk.text
        assert chunk.text == chunk.text.strip()
        assert len(minilm_offsets(chunk.text)) <= size
    covered = "".join(c.text for c in chunks)
    for word in re.findall(r"\w+", text):  # nothing lost
        assert word in covered


def test_no_word_or_number_is_cut() -> None:
    text = "Qwen2.5-1M and 90,000 models and Derivatemodelle " * 20
    chunks = chunk_text(text, minilm_offsets, chunk_size=12)
    for chunk in chunks:
        before = text[chunk.start - 1] if chunk.start else " "
        after = text[chunk.end] if chunk.end < len(text) else " "
        assert before.isspace() and after.isspace(), (before, chunk.text, after)


def test_whole_sentences_are_packed_and_overlap_repeats_whole_sentences() -> None:
    text = " ".join(f"Sentence number {i} is here." for i in range(30))
    chunks = chunk_text(text, whitespace_offsets, chunk_size=20, chunk_overlap=5)
    assert len(chunks) > 3
    for chunk in chunks:
        assert chunk.text.startswith("Sentence") and chunk.text.endswith("here.")
    assert chunks[1].start < chunks[0].end  # overlap
    assert all(len(c.text.split()) <= 20 for c in chunks)


def test_overlong_chinese_sentence_is_split_between_characters_not_inside_numbers() -> None:
    text = "阿里巴巴" * 40 + "发布了Qwen2.5-1M模型" + "开源" * 40 + "。"
    chunks = chunk_text(text, minilm_offsets, chunk_size=30)
    assert len(chunks) > 2
    assert any("Qwen2.5-1M" in c.text for c in chunks)
    assert "".join(c.text for c in chunks) == text


def test_empty_text_gives_no_chunks() -> None:
    assert chunk_text("  \n ", whitespace_offsets, chunk_size=10) == []
