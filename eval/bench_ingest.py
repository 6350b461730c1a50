"""Ingest: `rag ingest` (whole process) against the raw SentenceTransformer.encode of the very chunk texts it
produced, with the same batch size (the limit); then re-ingest of the unchanged corpus."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from bench_util import Clock, run_rag, write_scifact

from rag.config import Settings
from rag.models.embeddings import Precision, resolve_precision
from rag.models.resolve import PACKAGED_EMBEDDING_ID, packaged_embedding_path


def stored_chunks(index: Path) -> tuple[list[str], np.ndarray, list[dict[str, Any]]]:
    """Every chunk in an embedded index: texts, dense vectors and metadata, read back through Edge."""
    from llama_index.core.vector_stores.utils import metadata_dict_to_node
    from qdrant_edge import ScrollRequest

    from rag.store.edge import EdgeVectorStore
    from rag.store.hybrid import DENSE

    store = EdgeVectorStore(index / "qdrant")
    texts, vectors, metadata = [], [], []
    offset = None
    while True:
        records, offset = store.client.scroll(ScrollRequest(offset=offset, limit=1000, with_payload=True,
                                                            with_vector=[DENSE]))
        for record in records:
            node = metadata_dict_to_node(dict(record.payload))
            texts.append(node.get_content())
            vectors.append(record.vector[DENSE] if isinstance(record.vector, dict) else record.vector)
            metadata.append(dict(node.metadata))
        if offset is None:
            break
    store.close()
    return texts, np.asarray(vectors, dtype=np.float32), metadata


def raw_encode(texts: list[str], batch_size: int, precision: Precision) -> float:
    """Seconds for SentenceTransformer.encode over the chunk texts: the physical limit of ingest here. Under the
    same autocast as rag's Embedder, or the ratio would compare bf16 against fp32 arithmetic."""
    from rag.models.embeddings import _load, autocast  # the SentenceTransformer itself, loaded once per process

    model = _load(str(packaged_embedding_path()))
    with autocast(precision):
        model.encode(texts[:batch_size], batch_size=batch_size)  # warm-up: first call allocates
        with Clock() as clock:
            model.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                         show_progress_bar=False)
    return clock.seconds


def planned_chunks(corpus: Path) -> list[str]:
    """The chunk texts `rag ingest` will embed, made by its own reader and chunker (the embedder's tokenizer only)."""
    from rag.ingest.chunking import chunk_text
    from rag.ingest.documents import read_document
    from rag.models.embeddings import Embedder
    from rag.models.resolve import ModelRef

    embedder = Embedder(ModelRef(name=PACKAGED_EMBEDDING_ID, path=packaged_embedding_path()))
    limit = min(200, embedder.passage_token_limit)  # rag's default chunk_size and overlap
    texts = []
    for path in sorted(corpus.iterdir()):
        document = read_document(path, path.name)
        texts += [c.text for c in chunk_text(document.text, embedder.token_offsets, limit, 32)]
    return texts


def run(work: Path, data: Path, documents: int, batch_size: int = 32, sample: int = 0) -> tuple[
        dict[str, Any], list[str], np.ndarray, list[dict[str, Any]]]:
    """`sample` > 0: time raw encode on that many chunks drawn at random (same length mix, less waiting). Raw
    encode is timed just before and just after `rag ingest` and averaged, so a load change on a shared machine
    hits both sides alike. Both sides use embedding_precision from RAG_EMBEDDING_PRECISION (else auto), which the
    `rag ingest` child inherits."""
    corpus, index = work / "ingest-corpus", work / "ingest-index"
    precision = resolve_precision(Settings().embedding_precision)
    write_scifact(data, corpus, documents)
    megabytes = sum(p.stat().st_size for p in corpus.iterdir()) / 1e6
    planned = planned_chunks(corpus)
    timed = planned
    if 0 < sample < len(planned):
        picked = np.random.default_rng(0).choice(len(planned), sample, replace=False)
        timed = [planned[i] for i in sorted(picked)]
    before_s = raw_encode(timed, batch_size, precision)
    flags = ["--index-dir", str(index), "--corpus-dir", str(corpus), "--embedding-model", PACKAGED_EMBEDDING_ID,
             "--offline", "ingest", str(corpus)]
    first_s, first = run_rag(*flags)
    after_s = raw_encode(timed, batch_size, precision)
    again_s, again = run_rag(*flags)
    texts, vectors, metadata = stored_chunks(index)
    raw_s = (before_s + after_s) / 2 * len(texts) / len(timed)
    chunks = first["chunks"]
    # The ingest stage against raw encode with the model loaded on both sides; the whole process includes loading.
    stage_s = first["seconds"] - first["model_load_seconds"]
    result = {
        "documents": documents, "megabytes": round(megabytes, 2), "chunks": chunks, "batch_size": batch_size,
        "embedding_precision": precision,
        "rag_ingest_s": first["seconds"], "rag_model_load_s": first["model_load_seconds"],
        "rag_process_s": round(first_s, 2), "raw_encode_s": round(raw_s, 2),
        "rag_chunks_per_s": round(chunks / stage_s, 1),
        "rag_process_chunks_per_s": round(chunks / first_s, 1),
        "raw_chunks_per_s": round(len(texts) / raw_s, 1), "raw_encode_timed_chunks": len(timed),
        "raw_encode_before_after_s": [round(before_s, 2), round(after_s, 2)], "planned_chunks": len(planned),
        "rag_mb_per_s": round(megabytes / stage_s, 3), "raw_mb_per_s": round(megabytes / raw_s, 3),
        "ratio_ingest_vs_raw": round(raw_s / stage_s * chunks / len(texts), 3),
        "ratio_process_vs_raw": round(raw_s / first_s * chunks / len(texts), 3),
        "reingest_process_s": round(again_s, 2), "reingest_unchanged": again["unchanged"],
        "reingest_embedded_chunks": again["chunks"],
        "ratio_reingest_vs_first": round(again_s / first_s, 3),
    }
    return result, texts, vectors, metadata
