"""What the index knows about its documents, apart from search: their text, layout and key sentences, their
original files, and passages by id. Reads only; the Pipeline holds one."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from rag.config import Settings
from rag.errors import NotFoundError
from rag.ingest.ingester import node_id
from rag.ingest.layout import DocumentInfo, Layout
from rag.ingest.registry import Registry
from rag.search.retrieve import Passage, to_passage
from rag.status import Status, disk_usage
from rag.store import VectorStore

_NOT_INDEXED = "see `rag status` for the indexed files"


class Catalog:
    def __init__(self, registry: Callable[[], Registry], store: Callable[[], VectorStore],
                 index: threading.RLock) -> None:
        self._registry = registry
        self._store = store
        self._index = index

    def status(self, settings: Settings) -> Status:
        registry = self._registry()
        return Status(
            documents=registry.documents(), embedding_model=registry.meta("embedding_model"),
            index_dir=settings.index_dir.absolute(), index_bytes=disk_usage(settings.index_dir),
            backend=f"Qdrant server {settings.qdrant_url}" if settings.qdrant_url else "Qdrant Edge (embedded)",
            chunking=registry.meta("chunking"), embedding_hub=registry.meta("embedding_hub"),
            pages=registry.page_counts(),
        )

    def text(self, file: str) -> str:
        text = self._registry().text(file)
        if text is None:
            raise NotFoundError(f"{file} is not in the index", _NOT_INDEXED)
        return text

    def layout(self, file: str) -> Layout:
        return Layout.from_dict(self._registry().layout(file))

    def source(self, file: str) -> Path:
        """The original file of an indexed document; only names the registry lists, so no path is ever built
        from what a caller sent."""
        record = self._registry().get(file)
        if record is None or not record.complete:
            raise NotFoundError(f"{file} is not in the index", _NOT_INDEXED)
        path = Path(record.source)
        if not path.is_file():
            raise NotFoundError(f"the original of {file} is gone ({path})", "ingest it again, or with --prune")
        return path

    def titles(self) -> list[tuple[str, str]]:
        return [(r.file, r.title) for r in self._registry().documents() if r.complete]

    def newest(self, count: int) -> tuple[list[DocumentInfo], int]:
        """The `count` newest documents (by their date, then title) and how many there are in all."""
        records = sorted((r for r in self._registry().documents() if r.complete),
                         key=lambda r: (r.date or "", r.title), reverse=True)
        infos = [info for r in records[:count] if (info := self.info(r.file)) is not None]
        return infos, len(records)

    def info(self, file: str) -> DocumentInfo | None:
        record = self._registry().get(file)
        if record is None or not record.complete:
            return None
        data = self._registry().layout(file)
        return DocumentInfo(file=file, title=record.title, date=record.date, layout=Layout.from_dict(data),
                            key=[list(map(int, k)) for k in data.get("key") or []])  # type: ignore[union-attr]

    def chunks(self, file: str, indices: list[int]) -> dict[int, Passage]:
        record = self._registry().get(file)
        if record is None:
            return {}
        ids = {node_id(file, record.sha256, i): i for i in indices}
        with self._index:
            nodes = self._store().get_nodes(node_ids=list(ids))
        return {ids[n.node_id]: to_passage(n, 1.0) for n in nodes if n.node_id in ids}

    def passage(self, passage_id: str) -> Passage:
        with self._index:  # a lookup by id: no model needed
            nodes = self._store().get_nodes(node_ids=[passage_id])
        if not nodes:
            raise NotFoundError(f"no passage {passage_id!r} in the index", "search again: the index may have changed")
        return to_passage(nodes[0], 0.0)
