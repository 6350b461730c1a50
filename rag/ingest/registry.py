"""The document registry: which files the index holds, their hashes, metadata and normalised text.

SQLite, so every change is atomic: a document is `complete` only after its chunks are in the vector store,
and a crash mid-ingest leaves it `pending`, to be redone by the next ingest.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rag.errors import IndexCorruptError

SCHEMA_VERSION = "1"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    file TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    title TEXT NOT NULL,
    date TEXT,
    lang TEXT NOT NULL,
    chunks INTEGER NOT NULL,
    status TEXT NOT NULL,
    ingested_at TEXT NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS documents_by_sha256 ON documents (sha256);
CREATE TABLE IF NOT EXISTS layouts (file TEXT PRIMARY KEY, layout TEXT NOT NULL);
"""


@dataclass(frozen=True)
class DocumentRecord:
    file: str
    source: str
    sha256: str
    size: int
    mtime_ns: int
    title: str
    date: str | None
    lang: str
    chunks: int
    status: str
    ingested_at: str

    @property
    def complete(self) -> bool:
        return self.status == "complete"


_COLUMNS = "file, source, sha256, size, mtime_ns, title, date, lang, chunks, status, ingested_at"


class Registry:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.executescript(_SCHEMA)
            version = self.meta("schema_version")
        except sqlite3.DatabaseError as exc:
            raise IndexCorruptError(
                f"the document registry {path} is unreadable ({exc})", "rebuild the index with `rag ingest --rebuild`"
            ) from exc
        if version is None:
            self.set_meta(schema_version=SCHEMA_VERSION)

    def meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, **values: object) -> None:
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [(k, str(v)) for k, v in values.items()]
            )

    def documents(self) -> list[DocumentRecord]:
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM documents ORDER BY file").fetchall()
        return [DocumentRecord(*row) for row in rows]

    def complete_count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM documents WHERE status = 'complete'").fetchone()[0])

    def complete_chunks(self) -> int:
        return int(self._db.execute("SELECT COALESCE(SUM(chunks), 0) FROM documents WHERE status = 'complete'")
                   .fetchone()[0])

    def complete_file_with(self, sha256: str, other_than: str) -> str | None:
        row = self._db.execute("SELECT file FROM documents WHERE sha256 = ? AND file != ? AND status = 'complete' "
                               "ORDER BY file LIMIT 1", (sha256, other_than)).fetchone()
        return row[0] if row else None

    def get(self, file: str) -> DocumentRecord | None:
        row = self._db.execute(f"SELECT {_COLUMNS} FROM documents WHERE file = ?", (file,)).fetchone()
        return DocumentRecord(*row) if row else None

    def text(self, file: str) -> str | None:
        row = self._db.execute("SELECT text FROM documents WHERE file = ?", (file,)).fetchone()
        return row[0] if row else None

    def layout(self, file: str) -> dict[str, object]:
        """Pages, sections and key sentences recorded at ingest (JSON); {} for documents indexed before them."""
        row = self._db.execute("SELECT layout FROM layouts WHERE file = ?", (file,)).fetchone()
        return json.loads(row[0]) if row else {}

    def page_counts(self) -> dict[str, int]:
        """Pages of every document that has them (PDFs)."""
        rows = self._db.execute("SELECT file, json_extract(layout, '$.page_count') FROM layouts").fetchall()
        return {file: int(count) for file, count in rows if count}

    def mark_pending(self, record: DocumentRecord, text: str, layout: dict[str, object] | None = None) -> None:
        with self._db:
            self._db.execute(
                f"INSERT OR REPLACE INTO documents ({_COLUMNS}, text) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (*_values(record, status="pending"), text),
            )
            self._db.execute("INSERT OR REPLACE INTO layouts (file, layout) VALUES (?, ?)",
                             (record.file, json.dumps(layout or {}, ensure_ascii=False)))

    def set_pending(self, file: str) -> None:
        """Before a document's chunks are deleted: until it is gone from here too, it is not complete."""
        with self._db:
            self._db.execute("UPDATE documents SET status = 'pending' WHERE file = ?", (file,))

    def mark_complete(self, file: str, chunks: int) -> None:
        with self._db:
            self._db.execute(
                "UPDATE documents SET status = 'complete', chunks = ?, ingested_at = ? WHERE file = ?",
                (chunks, now(), file),
            )

    def remove(self, file: str) -> None:
        with self._db:
            self._db.execute("DELETE FROM documents WHERE file = ?", (file,))
            self._db.execute("DELETE FROM layouts WHERE file = ?", (file,))

    def clear(self) -> None:
        with self._db:
            self._db.execute("DELETE FROM documents")
            self._db.execute("DELETE FROM layouts")
            self._db.execute("DELETE FROM meta WHERE key != 'schema_version'")

    def __iter__(self) -> Iterator[DocumentRecord]:
        return iter(self.documents())

    def close(self) -> None:
        self._db.close()


def _values(record: DocumentRecord, status: str) -> tuple[object, ...]:
    return (
        record.file, record.source, record.sha256, record.size, record.mtime_ns, record.title, record.date,
        record.lang, record.chunks, status, record.ingested_at,
    )


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
