"""What `rag status` reports: the indexed documents and where and how the index lives."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rag.ingest.registry import DocumentRecord


@dataclass(frozen=True)
class Status:
    documents: list[DocumentRecord]
    embedding_model: str | None
    index_dir: Path
    index_bytes: int
    backend: str
    chunking: str | None

    @property
    def chunks(self) -> int:
        return sum(d.chunks for d in self.documents if d.complete)

    def to_dict(self) -> dict[str, object]:
        return {
            "documents": len(self.documents), "chunks": self.chunks, "embedding_model": self.embedding_model,
            "index_dir": str(self.index_dir), "index_bytes": self.index_bytes, "backend": self.backend,
            "chunking": self.chunking,
            "files": [{"file": d.file, "title": d.title, "date": d.date, "lang": d.lang, "chunks": d.chunks,
                       "status": d.status, "sha256": d.sha256, "ingested_at": d.ingested_at} for d in self.documents],
        }


def disk_usage(folder: Path) -> int:
    """Bytes on disk under `folder`: Edge preallocates sparse files, so count blocks, not apparent sizes."""
    return sum(p.stat().st_blocks * 512 for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0
