"""What `rag status` reports: the indexed documents, where and how the index lives, and where each model comes
from."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from rag.config import DEFAULT_EMBEDDING_MODEL, Settings
from rag.errors import RagError
from rag.ingest.registry import DocumentRecord
from rag.models import hubs
from rag.models.resolve import ModelRef, find_embedding, find_llm, llm_name

SERVER = "server"


@dataclass(frozen=True)
class Status:
    documents: list[DocumentRecord]
    embedding_model: str | None
    index_dir: Path
    index_bytes: int
    backend: str
    chunking: str | None
    embedding_hub: str | None = None  # where the model that built the index came from (hubs.SOURCES keys)
    pages: dict[str, int] = field(default_factory=dict)  # file -> pages, for documents with pages

    @property
    def chunks(self) -> int:
        return sum(d.chunks for d in self.documents if d.complete)

    def to_dict(self) -> dict[str, object]:
        return {
            "documents": len(self.documents), "chunks": self.chunks, "embedding_model": self.embedding_model,
            "embedding_hub": self.embedding_hub, "index_dir": str(self.index_dir), "index_bytes": self.index_bytes,
            "backend": self.backend, "chunking": self.chunking,
            "files": [{"file": d.file, "title": d.title, "date": d.date, "lang": d.lang, "chunks": d.chunks,
                       "pages": self.pages.get(d.file), "status": d.status, "sha256": d.sha256,
                       "ingested_at": d.ingested_at} for d in self.documents],
        }


@dataclass(frozen=True)
class ModelSource:
    """Where one model comes from. `hub`: a hubs.SOURCES key, SERVER for an LLM server, "" while it is not on this
    machine (its first use downloads it)."""

    role: str
    name: str
    hub: str
    path: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def model_sources(settings: Settings, recorded: str | None, embedder: ModelRef | None,
                  llm: ModelRef | None) -> list[ModelSource]:
    """The embedding model and the LLM: the loaded ones, else the copies on this machine that would be loaded;
    nothing is downloaded and no hub is asked."""
    wanted = settings.embedding_model or recorded or DEFAULT_EMBEDDING_MODEL
    sources = [_source("embedding", embedder or find_embedding(settings, recorded),
                       hubs.hub_model(wanted, settings.model_hub).name)]
    if settings.llm_base_url:
        return [*sources, ModelSource("llm", settings.llm_name, SERVER, settings.llm_base_url)]
    try:
        found, name = llm or find_llm(settings), llm_name(settings)
    except RagError:  # a missing GGUF path: loading it would say so; here it is simply not there
        found, name = None, settings.llm_model
    return [*sources, _source("llm", found, name)]


def _source(role: str, ref: ModelRef | None, wanted: str) -> ModelSource:
    if ref is None:
        return ModelSource(role, wanted, "", "")
    return ModelSource(role, ref.name, ref.hub, str(ref.path))


def disk_usage(folder: Path) -> int:
    """Bytes on disk under `folder`: Edge preallocates sparse files, so count blocks, not apparent sizes."""
    return sum(p.stat().st_blocks * 512 for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0
