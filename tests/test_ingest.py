"""Incremental ingest on both vector-store backends: add, change, delete, prune, remove, rebuild."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rag import Pipeline
from rag.config import Settings
from rag.errors import IndexCorruptError, IndexLockedError, IndexMismatchError, RagError
from rag.ingest.documents import read_document

BACKENDS = ["edge", "qdrant-client"]


@pytest.fixture(params=BACKENDS)
def backend_settings(request: pytest.FixtureRequest, settings: Settings, tmp_path: Path) -> Settings:
    if request.param == "qdrant-client":  # qdrant-client's local mode speaks the server's client API
        return settings.model_copy(update={"qdrant_url": f"file://{tmp_path / 'qdrant-server'}"})
    return settings


def test_ingest_then_reingest_embeds_nothing(backend_settings: Settings) -> None:
    with Pipeline(backend_settings) as pipeline:
        first = pipeline.ingest()
        assert len(first.new) == 5 and first.chunks > 20 and not first.skipped
        second = pipeline.ingest()
        assert (len(second.new), len(second.changed), len(second.unchanged), second.chunks) == (0, 0, 5, 0)
        assert second.summary().startswith("0 new, 0 changed, 5 unchanged")
        assert 0 < first.model_load_seconds < first.seconds and second.model_load_seconds == 0  # nothing new: no model
        status = pipeline.status()
        assert len(status.documents) == 5 and status.chunks == first.chunks
        assert pipeline.store.count() == first.chunks


def test_changed_file_replaces_its_chunks_and_prune_removes_deleted(backend_settings: Settings) -> None:
    corpus = backend_settings.corpus_dir
    with Pipeline(backend_settings) as pipeline:
        pipeline.ingest()
        total = pipeline.store.count()
        target = next(corpus.glob("003_*.txt"))
        old_chunks = pipeline.registry.get(target.name).chunks
        target.write_text("Qwen3 was announced with a brand-new fact: the answer is 4242.\n", encoding="utf-8")
        (corpus / "new.md").write_text("# New note\nTongyi Qianwen has a new sibling model.\n", encoding="utf-8")
        report = pipeline.ingest()
        assert report.changed == [target.name] and report.new == ["new.md"]
        assert pipeline.store.count() == total - old_chunks + 1 + 1
        hits = pipeline.search("brand-new fact 4242", top_k=3)
        assert hits[0].file == target.name and "4242" in hits[0].text
        (corpus / "new.md").unlink()
        assert pipeline.ingest().removed == []  # without --prune nothing is removed
        pruned = pipeline.ingest(prune=True)
        assert pruned.removed == ["new.md"]
        assert pipeline.store.count() == total - old_chunks + 1
        pipeline.remove(target.name)
        assert pipeline.store.count() == total - old_chunks
        assert target.name not in [d.file for d in pipeline.status().documents]
        with pytest.raises(RagError, match="not in the index"):
            pipeline.remove("nope.txt")


def test_search_results_carry_exact_offsets_and_metadata(backend_settings: Settings) -> None:
    with Pipeline(backend_settings) as pipeline:
        pipeline.ingest()
        passages = pipeline.search("Which was Alibaba's first open-source model?", top_k=5)
        assert len(passages) == 5
        assert all(-1.0 <= p.score <= 1.0 for p in passages)  # dense cosine, whatever ranked the passage
        for p in passages:
            source = read_document(backend_settings.corpus_dir / p.file, p.file)
            assert source.text[p.start : p.end] == p.text == pipeline.document_text(p.file)[p.start : p.end]
            assert p.title == source.title
        assert any("Qwen-7B" in p.text for p in passages)
        only = pipeline.search("Qwen", top_k=5, files=[passages[-1].file])
        assert {p.file for p in only} == {passages[-1].file}


def test_changing_chunk_settings_rechunks_instead_of_reporting_nothing(settings: Settings) -> None:
    with Pipeline(settings) as pipeline:
        first = pipeline.ingest()
    with Pipeline(settings.model_copy(update={"chunk_size": 80, "chunk_overlap": 8})) as pipeline:
        report = pipeline.ingest()
        assert len(report.changed) == 5 and report.chunks > first.chunks
        assert pipeline.store.count() == report.chunks


def test_a_different_explicit_embedding_model_is_refused(settings: Settings, tmp_path: Path) -> None:
    with Pipeline(settings) as pipeline:
        pipeline.ingest()
    other = tmp_path / "other-model"
    import shutil

    from rag.models.resolve import packaged_embedding_path

    shutil.copytree(packaged_embedding_path(), other)
    with Pipeline(settings.model_copy(update={"embedding_model": str(other)})) as pipeline:
        with pytest.raises(IndexMismatchError, match="--rebuild"):
            pipeline.search("Qwen")
        assert len(pipeline.ingest(rebuild=True).new) == 5


def test_unconfigured_model_uses_the_one_that_built_the_index(settings: Settings) -> None:
    with Pipeline(settings) as pipeline:
        pipeline.ingest()
    with Pipeline(settings.model_copy(update={"embedding_model": ""})) as pipeline:
        assert pipeline.search("Qwen-7B", top_k=1)
        assert pipeline.embedder.name == "sentence-transformers/all-MiniLM-L6-v2"


def test_bad_files_are_skipped_and_the_rest_ingested(settings: Settings) -> None:
    corpus = settings.corpus_dir
    (corpus / "empty.txt").write_bytes(b"")
    (corpus / "binary.txt").write_bytes(b"\x00\xff" * 64)
    (corpus / "photo.jpg").write_bytes(b"\xff\xd8\xff")
    with Pipeline(settings) as pipeline:
        report = pipeline.ingest()
    assert len(report.new) == 5
    assert dict(report.skipped) == {
        "binary.txt": "binary data, not text", "empty.txt": "empty file",
        "photo.jpg": "unsupported file type '.jpg'",
    }


def test_a_second_process_gets_a_clear_lock_error(settings: Settings) -> None:
    with Pipeline(settings) as pipeline:
        pipeline.ingest()
        code = (
            "from rag import Pipeline; from rag.config import Settings; from pathlib import Path\n"
            f"p = Pipeline(Settings(index_dir=Path({str(settings.index_dir)!r})))\n"
            "try:\n    p.store\nexcept Exception as e:\n    print(type(e).__name__, '|', e)\n"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
        assert out.startswith("IndexLockedError |") and "in use" in out
    with Pipeline(settings) as pipeline:  # released on close
        assert pipeline.store.count() > 0


def test_edge_lock_is_reported_even_without_our_lock_file(settings: Settings) -> None:
    from rag.store.edge import EdgeVectorStore

    with Pipeline(settings) as pipeline:
        pipeline.ingest()
        with pytest.raises(IndexLockedError):
            EdgeVectorStore(settings.index_dir / "qdrant")


def test_corrupt_index_files_give_one_line(settings: Settings) -> None:
    with Pipeline(settings) as pipeline:
        pipeline.ingest()
    (settings.index_dir / "registry.sqlite").write_bytes(b"garbage" * 100)
    with Pipeline(settings) as pipeline, pytest.raises(IndexCorruptError, match="rebuild"):
        pipeline.status()
    with Pipeline(settings) as pipeline:
        assert len(pipeline.ingest(rebuild=True).new) == 5


def test_corrupt_edge_shard_gives_one_line(settings: Settings) -> None:
    with Pipeline(settings) as pipeline:
        pipeline.ingest()
    config = settings.index_dir / "qdrant" / "edge_config.json"
    config.write_text("{not json")
    with Pipeline(settings) as pipeline, pytest.raises(IndexCorruptError, match="rag ingest --rebuild"):
        pipeline.search("Qwen")
    assert all(p.exists() for p in settings.corpus_dir.iterdir())  # the corpus is never touched


def test_unreachable_qdrant_server_is_one_line(settings: Settings) -> None:
    from rag.errors import BackendUnavailableError

    unreachable = settings.model_copy(update={"qdrant_url": "http://127.0.0.1:9", "request_timeout": 3})
    with Pipeline(unreachable) as pipeline, pytest.raises(BackendUnavailableError) as error:
        pipeline.ingest()
    assert "cannot reach the Qdrant server at http://127.0.0.1:9" in str(error.value)
    assert "\n" not in str(error.value)
