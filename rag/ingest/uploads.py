"""Files that arrive over the network: safe names, bounded sizes, kept inside the corpus folder."""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path

from rag.errors import DocumentError
from rag.ingest.documents import SUPPORTED_SUFFIXES

UPLOADS_DIR = "uploads"
_UNSAFE = re.compile(r"[^\w.\- ]+")


def safe_filename(name: str) -> str:
    """A plain file name: no folders, no leading dots, no control or shell characters, at most 120 chars."""
    base = unicodedata.normalize("NFC", name).replace("\\", "/").split("/")[-1]
    base = _UNSAFE.sub("_", base).strip(" .")
    stem, dot, suffix = base.rpartition(".")
    if not dot:
        stem, suffix = base, ""
    stem = stem[:100] or "upload"
    cleaned = f"{stem}.{suffix.lower()}" if suffix else stem
    if Path(cleaned).suffix.lower() not in SUPPORTED_SUFFIXES:
        raise DocumentError(f"unsupported file type for {cleaned!r}",
                            f"upload one of {', '.join(sorted(SUPPORTED_SUFFIXES))}")
    return cleaned


def save_upload(corpus_dir: Path, name: str, chunks: Iterable[bytes], max_bytes: int) -> Path:
    """Write an upload to corpus_dir/uploads/NAME atomically; refuses anything larger than `max_bytes`."""
    folder = (corpus_dir / UPLOADS_DIR).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    target = (folder / safe_filename(name)).resolve()
    if target.parent != folder:  # belt and braces: safe_filename already removed every separator
        raise DocumentError(f"refusing to write outside the corpus: {name!r}")
    partial = target.with_name(f".{target.name}.partial")
    size = 0
    try:
        with partial.open("wb") as handle:
            for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise DocumentError(f"{target.name} is larger than {max_bytes / 1e6:.0f} MB",
                                        "split it, or raise max_upload_mb")
                handle.write(chunk)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target
