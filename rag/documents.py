"""Read files into normalised documents: text, title, date, language and hash.

PDF and Word files go through llama-index's readers; plain text and HTML are decoded here because a corpus
nobody cleaned has every encoding, and HTML needs its navigation and scripts dropped, not flattened.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from . import text as textlib
from .errors import DocumentError

TEXT_SUFFIXES = {".txt", ".text", ".md", ".markdown", ".rst"}
HTML_SUFFIXES = {".html", ".htm", ".xhtml"}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | {".pdf", ".docx"}
_HTML_DROP = ["script", "style", "noscript", "nav", "header", "footer", "aside", "form", "iframe", "svg", "template"]
_HTML_BLOCKS = ["p", "div", "section", "article", "li", "tr", "br", "h1", "h2", "h3", "h4", "h5", "h6", "pre",
                "blockquote", "table", "ul", "ol", "dd", "dt", "figcaption", "main"]


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


def read_document(path: Path, file: str) -> Document:
    """Parse and normalise one file; raises DocumentError with a reason a person can act on."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DocumentError(f"unsupported file type '{suffix or path.name}'",
                            f"supported: {', '.join(sorted(SUPPORTED_SUFFIXES))}")
    try:
        stat = path.stat()
        sha = sha256_of(path)
        if stat.st_size == 0:
            raise DocumentError("empty file")
        raw = _extract(path, suffix)
    except OSError as exc:
        raise DocumentError(f"cannot read it ({exc.strerror or exc})") from exc
    text = textlib.drop_boilerplate(textlib.normalise(raw))
    if not textlib.has_words(text):
        raise DocumentError("no text in it" + (" (a scanned PDF needs OCR first)" if suffix == ".pdf" else ""))
    title = textlib.find_title(text) or path.stem
    return Document(
        file=file, source=path, sha256=sha, size=stat.st_size, mtime_ns=stat.st_mtime_ns, text=text,
        title=title, date=textlib.find_date(text), lang=textlib.detect_language(text),
    )


def _extract(path: Path, suffix: str) -> str:
    if suffix in TEXT_SUFFIXES:
        return decode_text(path.read_bytes())
    if suffix in HTML_SUFFIXES:
        return html_to_text(decode_text(path.read_bytes()))
    if suffix == ".pdf":
        return _read_with_llama_index(path, "PDFReader")
    return _read_with_llama_index(path, "DocxReader")


def _read_with_llama_index(path: Path, reader_name: str) -> str:
    from llama_index.readers import file as readers

    reader = getattr(readers, reader_name)()
    try:
        docs = reader.load_data(path)
    except Exception as exc:  # readers raise whatever their parser raises
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        if "encrypt" in reason.lower() or "password" in reason.lower():
            raise DocumentError("the PDF is encrypted", "decrypt it first (e.g. qpdf --decrypt)") from exc
        raise DocumentError(f"cannot parse it ({reason})", "check the file opens in its usual program") from exc
    return "\n\n".join(doc.text for doc in docs)


def decode_text(data: bytes) -> str:
    """Decode bytes of unknown encoding; raises DocumentError for binary data."""
    for bom, codec in ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"),
                       (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")):
        if data.startswith(bom):
            try:
                return data.decode(codec)
            except UnicodeDecodeError as exc:
                raise DocumentError(f"invalid {codec} text") from exc
    if b"\x00" in data[:8192]:
        raise DocumentError("binary data, not text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data[: 1 << 20]).best()
    if best is None:
        raise DocumentError("binary data or unknown text encoding", "convert it to UTF-8")
    return data.decode(best.encoding, errors="replace")


def html_to_text(html: str) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(_HTML_DROP):
        tag.decompose()
    body = soup.find("article") or soup.find("main") or soup.body or soup
    for block in body.find_all(_HTML_BLOCKS):
        block.insert_before("\n")
        block.insert_after("\n")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    text = body.get_text("")
    return f"{title}\n\n{text}" if title and title not in text[:500] else text

