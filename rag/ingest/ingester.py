"""files → chunks → vectors → store, incrementally by content hash; returns an IngestReport."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode

from rag.errors import DocumentError
from rag.ingest.chunking import CHUNKER_VERSION, Chunk, chunk_text
from rag.ingest.documents import (
    DEFAULT_MAX_DOCUMENT_MB,
    SUPPORTED_SUFFIXES,
    Document,
    iter_files,
    read_document,
    sha256_of,
)
from rag.ingest.keypoints import key_sentences
from rag.ingest.registry import DocumentRecord, Registry, now
from rag.ingest.text import printable
from rag.models.embeddings import Embedder
from rag.store import VectorStore
from rag.store.lexical import LEXICAL_VERSION

# What the vectors in the store are; an index in another format is rebuilt, never mixed.
INDEX_FORMAT = f"dense+sparse/lexical-v{LEXICAL_VERSION}"
_NODE_NAMESPACE = uuid.UUID("5b0c1a52-8f0e-4f7e-9d7e-6a1d2f1c9b11")
_GROUP_CHUNKS = 512  # chunks embedded per round; bounds memory on huge corpora


class Progress(Protocol):
    def start(self, stage: str, total: int) -> None: ...
    def advance(self, stage: str, amount: int = 1) -> None: ...
    def grow(self, stage: str, amount: int) -> None: ...
    def skipped(self, file: str, reason: str) -> None: ...


class NoProgress:
    def start(self, stage: str, total: int) -> None: ...
    def advance(self, stage: str, amount: int = 1) -> None: ...
    def grow(self, stage: str, amount: int) -> None: ...
    def skipped(self, file: str, reason: str) -> None: ...


@dataclass
class IngestReport:
    new: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    chunks: int = 0
    seconds: float = 0.0
    model_load_seconds: float = 0.0  # of `seconds`: loading the embedding model, a fixed cost per process
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = (f"{len(self.new)} new, {len(self.changed)} changed, {len(self.unchanged)} unchanged, "
                f"{len(self.removed)} removed, {len(self.skipped)} skipped; {self.chunks} chunks embedded "
                f"in {self.seconds:.1f} s")
        return text

    def to_dict(self) -> dict[str, object]:
        return {"new": self.new, "changed": self.changed, "unchanged": len(self.unchanged), "removed": self.removed,
                "skipped": [{"file": f, "reason": r} for f, r in self.skipped], "chunks": self.chunks,
                "seconds": round(self.seconds, 3), "model_load_seconds": round(self.model_load_seconds, 3),
                "notes": self.notes}


def chunking_signature(chunk_size: int, chunk_overlap: int) -> str:
    return f"size={chunk_size},overlap={chunk_overlap},version={CHUNKER_VERSION}"


def node_id(file: str, sha256: str, index: int) -> str:
    """Deterministic, so an interrupted ingest redone writes the very same points."""
    return str(uuid.uuid5(_NODE_NAMESPACE, f"{file}\x00{sha256}\x00{index}"))


def file_key(path: Path, root: Path, corpus_dir: Path) -> str:
    resolved = path.absolute()
    for base in (corpus_dir.absolute(), root.absolute()):
        try:
            return resolved.relative_to(base).as_posix()
        except ValueError:
            continue
    return path.name


class Ingester:
    def __init__(
        self,
        registry: Registry,
        store: VectorStore,
        embedder: Callable[[], Embedder],
        chunk_size: int,
        chunk_overlap: int,
        corpus_dir: Path,
        progress: Progress,
        max_document_mb: float = DEFAULT_MAX_DOCUMENT_MB,
    ) -> None:
        self.registry = registry
        self.max_document_mb = max_document_mb
        self.store = store
        self._embedder_factory = embedder
        self._embedder: Embedder | None = None
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self.corpus_dir = corpus_dir
        self.progress = progress
        self.report = IngestReport()

    @property
    def embedder(self) -> Embedder:
        # Loading the model costs seconds: an ingest with nothing new never does it.
        if self._embedder is None:
            began = time.perf_counter()
            self._embedder = self._embedder_factory()
            self.report.model_load_seconds = time.perf_counter() - began
        return self._embedder

    def run(self, paths: list[Path], prune: bool) -> IngestReport:
        started = time.perf_counter()
        signature = chunking_signature(self.chunk_size, self.chunk_overlap)
        rechunk = self.registry.meta("chunking") not in (None, signature)
        files = list(iter_files(paths))
        self.progress.start("files", len(files))
        todo: list[tuple[Path, str, DocumentRecord | None]] = []
        for path, root in files:
            key = file_key(path, root, self.corpus_dir)
            record = self.registry.get(key)
            state = self._state(path, key, record, rechunk)
            if state == "unchanged":
                self.report.unchanged.append(key)
                self.progress.advance("files")
            elif state:
                self._skip(key, state)
            else:
                todo.append((path, key, record))
        if todo:
            self.registry.set_meta(chunking=signature)
            self._process(todo)
        if prune:
            self._prune()
        self.store.flush()
        self._optimize()
        self.report.seconds = time.perf_counter() - started
        return self.report

    def _optimize(self) -> None:
        """Build the embedded index's search structures once enough points are searched exactly that queries
        would get slow (the store decides; a Qdrant server optimizes by itself)."""
        needs = getattr(self.store, "needs_optimize", None)
        if needs is None or not needs():
            return
        began = time.perf_counter()
        self.store.optimize()  # type: ignore[attr-defined]
        self.report.notes.append(f"built the search index (HNSW) in {time.perf_counter() - began:.0f} s")

    def _state(self, path: Path, key: str, record: DocumentRecord | None, rechunk: bool) -> str:
        """'unchanged', '' (to ingest) or the reason to skip."""
        if path.suffix.lower() not in SUPPORTED_SUFFIXES:
            return f"unsupported file type '{path.suffix or path.name}'"
        if record is None or not record.complete or rechunk:
            return ""
        try:
            stat = path.stat()
            if (stat.st_size, stat.st_mtime_ns) == (record.size, record.mtime_ns):
                return "unchanged"
            return "unchanged" if sha256_of(path) == record.sha256 else ""
        except OSError as exc:
            return f"cannot read it ({exc.strerror or exc})"

    def _skip(self, key: str, reason: str) -> None:
        self.report.skipped.append((key, reason))
        self.progress.skipped(printable(key), reason)  # a file name with a line break still makes one line
        self.progress.advance("files")

    def _process(self, todo: list[tuple[Path, str, DocumentRecord | None]]) -> None:
        self.progress.start("chunks", 0)
        group: list[tuple[Document, list[Chunk], bool]] = []
        pending_chunks = 0
        seen: dict[str, str] = {}  # sha256 -> the first file with it in this run
        for path, key, record in todo:
            try:
                document = read_document(path, key, self.max_document_mb)
            except DocumentError as exc:
                self._skip(key, str(exc))
                continue
            first = seen.setdefault(document.sha256, key)
            twin = first if first != key else self.registry.complete_file_with(document.sha256, key)
            if record is None and twin:  # the same bytes under a second name: one copy in search results
                self._skip(key, f"same content as {printable(twin)}, which is indexed")
                continue
            chunks = chunk_text(document.text, self.embedder.token_offsets, self._chunk_limit(), self.chunk_overlap)
            group.append((document, chunks, record is not None))
            pending_chunks += len(chunks)
            self.progress.grow("chunks", len(chunks))
            if pending_chunks >= _GROUP_CHUNKS:
                self._write(group)
                group, pending_chunks = [], 0
        if group:
            self._write(group)

    def _chunk_limit(self) -> int:
        return min(self.chunk_size, self.embedder.passage_token_limit)

    def _write(self, group: list[tuple[Document, list[Chunk], bool]]) -> None:
        texts = [chunk.text for _, chunks, _ in group for chunk in chunks]
        vectors = self.embedder.embed_passages(texts, on_batch=lambda n: self.progress.advance("chunks", n))
        # The hub is a note for `rag status`: the same model from another hub is the same model (one name).
        self.registry.set_meta(embedding_model=self.embedder.name, embedding_hub=self.embedder.ref.hub,
                               dimension=self.embedder.dimension, index_format=INDEX_FORMAT)
        offset = 0
        for document, chunks, _ in group:
            doc_vectors = vectors[offset : offset + len(chunks)]
            offset += len(chunks)
            record = DocumentRecord(
                file=document.file, source=str(document.source.absolute()), sha256=document.sha256,
                size=document.size, mtime_ns=document.mtime_ns, title=document.title, date=document.date,
                lang=document.lang, chunks=len(chunks), status="pending", ingested_at=now(),
            )
            layout = {**document.layout.to_dict(), "key": key_sentences(
                document.text, document.lang, document.layout, chunks, doc_vectors)}
            self.registry.mark_pending(record, document.text, layout)
            self.report.notes.extend(f"{printable(document.file)}: {note}" for note in document.notes)
            self.store.delete(document.file)
            self.store.add([_node(document, chunk, vector.tolist()) for chunk, vector in zip(chunks, doc_vectors,
                                                                                           strict=True)])
        # One flush per group, not per document (a flush per abstract cost 6-30% of ingest); a document is still
        # marked complete only after a flush that holds all its points.
        self.store.flush()
        for document, chunks, existed in group:
            self.registry.mark_complete(document.file, len(chunks))
            (self.report.changed if existed else self.report.new).append(document.file)
            self.report.chunks += len(chunks)
            self.progress.advance("files")

    def _prune(self) -> None:
        for record in self.registry.documents():
            if not Path(record.source).exists():
                # Pending first: a crash mid-way must not leave it listed complete with its chunks gone.
                self.registry.set_pending(record.file)
                self.store.delete(record.file)
                self.store.flush()
                self.registry.remove(record.file)
                self.report.removed.append(record.file)


def _node(document: Document, chunk: Chunk, vector: list[float]) -> TextNode:
    layout = document.layout
    page, page_end = layout.page_span(chunk.start, chunk.end)
    inside = {  # the marks a passage needs to place its own sentences; JSON, as payload values must be flat
        "page_marks": [list(m) for m in layout.pages if chunk.start < m[0] < chunk.end],
        "section_marks": [list(m) for m in layout.sections if chunk.start < m[0] < chunk.end],
    }
    return TextNode(
        id_=node_id(document.file, document.sha256, chunk.index),
        text=chunk.text,
        embedding=vector,
        metadata={
            "file": document.file, "sha256": document.sha256, "start": chunk.start, "end": chunk.end,
            "title": document.title, "date": document.date or "", "lang": document.lang, "chunk": chunk.index,
            "page": page, "page_end": page_end, "section": layout.section_at(chunk.start),
            **{key: json.dumps(marks, ensure_ascii=False) for key, marks in inside.items() if marks},
        },
        relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=document.file)},
    )
