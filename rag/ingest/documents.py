"""Read files into normalised documents: text, layout (pages, sections), title, date, language and hash."""

from __future__ import annotations

import hashlib
import os
import stat as stat_kind
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rag.errors import DocumentError
from rag.ingest import text as textlib
from rag.ingest.decode import decode_text
from rag.ingest.formats import HTML_SUFFIXES, SUPPORTED_SUFFIXES, TEXT_SUFFIXES, parse
from rag.ingest.layout import Layout

__all__ = ["SUPPORTED_SUFFIXES", "Document", "decode_text", "iter_files", "read_document", "sha256_of"]

# Larger documents are skipped: embedding 20 MB of text takes the better part of an hour on a laptop, and one
# file that size is almost always a dump to split, not a document. Settings can raise it (max_document_mb).
DEFAULT_MAX_DOCUMENT_MB = 20.0


@dataclass(frozen=True)
class Document:
    file: str
    source: Path
    sha256: str
    size: int
    mtime_ns: int
    text: str
    title: str
    date: str | None
    lang: str
    layout: Layout = field(default_factory=Layout)
    notes: tuple[str, ...] = ()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def iter_files(paths: list[Path]) -> Iterator[tuple[Path, Path]]:
    """(file, root) for every file under `paths`, sorted, skipping hidden entries; the root is what
    file names are made relative to. Symlinked folders are not followed, so link loops cannot hang us."""
    for path in paths:
        if path.is_dir():
            for folder, dirs, files in os.walk(path, followlinks=False):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if not name.startswith("."):
                        yield Path(folder) / name, path
        else:
            yield path, path.parent


def read_document(path: Path, file: str, max_mb: float = DEFAULT_MAX_DOCUMENT_MB) -> Document:
    """Parse and normalise one file; raises DocumentError with a reason a person can act on."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DocumentError(f"unsupported file type '{suffix or path.name}'",
                            f"supported: {', '.join(sorted(SUPPORTED_SUFFIXES))}")
    try:
        stat = path.stat()
        if not stat_kind.S_ISREG(stat.st_mode):  # a FIFO named notes.txt would block the read forever
            raise DocumentError("not a regular file")
        if stat.st_size == 0:
            raise DocumentError("empty file")
        if suffix in TEXT_SUFFIXES | HTML_SUFFIXES:  # text files: refuse before reading it all
            _check_size(stat.st_size, max_mb)
        sha = sha256_of(path)
        parsed = parse(path, suffix)
    except OSError as exc:
        raise DocumentError(f"cannot read it ({exc.strerror or exc})") from exc
    text = parsed.text
    _check_size(len(text), max_mb)
    if not textlib.has_words(text):
        raise DocumentError("no text in it" + (" (a scanned PDF needs OCR first)" if suffix == ".pdf" else ""))
    title = parsed.title or textlib.find_title(text) or path.stem
    return Document(
        file=file, source=path, sha256=sha, size=stat.st_size, mtime_ns=stat.st_mtime_ns, text=text,
        title=title, date=textlib.find_date(text), lang=textlib.detect_language(text), layout=parsed.layout,
        notes=parsed.notes,
    )


def _check_size(size: int, max_mb: float) -> None:
    if size > max_mb * 1e6:
        raise DocumentError(f"{size / 1e6:.1f} MB of text, more than max_document_mb ({max_mb:g} MB)",
                            "split it, or raise max_document_mb")
