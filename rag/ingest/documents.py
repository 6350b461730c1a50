"""Read files into normalised documents: text, title, date, language and hash.

PDF and Word files go through llama-index's readers; plain text and HTML are decoded here because a corpus
nobody cleaned has every encoding, and HTML needs its navigation and scripts dropped, not flattened.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat as stat_kind
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from rag.errors import DocumentError
from rag.ingest import text as textlib

TEXT_SUFFIXES = {".txt", ".text", ".md", ".markdown", ".rst"}
HTML_SUFFIXES = {".html", ".htm", ".xhtml"}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | {".pdf", ".docx"}
_HTML_DROP = ["script", "style", "noscript", "nav", "header", "footer", "aside", "form", "iframe", "svg", "template"]
_HTML_BLOCKS = ["p", "div", "section", "article", "li", "tr", "br", "h1", "h2", "h3", "h4", "h5", "h6", "pre",
                "blockquote", "table", "ul", "ol", "dd", "dt", "figcaption", "main"]
_HTML_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track",
              "wbr"}
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
        raw = _extract(path, suffix)
    except OSError as exc:
        raise DocumentError(f"cannot read it ({exc.strerror or exc})") from exc
    _check_size(len(raw), max_mb)
    text = textlib.drop_boilerplate(textlib.normalise(raw))
    if not textlib.has_words(text):
        raise DocumentError("no text in it" + (" (a scanned PDF needs OCR first)" if suffix == ".pdf" else ""))
    title = textlib.find_title(text) or path.stem
    return Document(
        file=file, source=path, sha256=sha, size=stat.st_size, mtime_ns=stat.st_mtime_ns, text=text,
        title=title, date=textlib.find_date(text), lang=textlib.detect_language(text),
    )


def _check_size(size: int, max_mb: float) -> None:
    if size > max_mb * 1e6:
        raise DocumentError(f"{size / 1e6:.1f} MB of text, more than max_document_mb ({max_mb:g} MB)",
                            "split it, or raise max_document_mb")


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

    # pypdf logs each repair of a damaged file as a warning line; the skip line already says what is wrong.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    reader = getattr(readers, reader_name)()
    try:
        docs = reader.load_data(path)
    except Exception as exc:  # readers raise whatever their parser raises
        # The PDF reader retries (tenacity) and then raises RetryError around the parser's own error.
        last = getattr(exc, "last_attempt", None)
        cause = (last.exception() if last is not None else None) or exc
        text = str(cause)
        if any(word in f"{type(cause).__name__} {text}".lower() for word in ("encrypt", "decrypt", "password")):
            raise DocumentError("the PDF is encrypted", "decrypt it first (e.g. qpdf --decrypt)") from exc
        reason = text.splitlines()[0][:120] if text.strip() else type(cause).__name__
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
    # UTF-8 with a few damaged bytes: keep it UTF-8 (a guessed single-byte codec would garble every umlaut) and
    # mark the damage with U+FFFD. Latin-1 and the like have no valid multi-byte sequences, so they go on below.
    lenient = data.decode("utf-8", errors="replace")
    damaged = lenient.count("\ufffd")
    if sum(1 for ch in lenient if ord(ch) > 127) - damaged > damaged:
        return lenient
    from charset_normalizer import from_bytes

    best = from_bytes(data[: 1 << 20]).best()
    if best is None:
        raise DocumentError("binary data or unknown text encoding", "convert it to UTF-8")
    return data.decode(best.encoding, errors="replace")


def html_to_text(html: str) -> str:
    """The readable text of a page: the first <article>, else <main>, else <body>, without scripts, navigation
    and the like, with line breaks around blocks. One streaming pass with a stack, so deeply nested or broken
    markup costs linear time (a tree library took minutes on 100,000 nested <div>s)."""
    parser = _PageText()
    parser.feed(html)
    parser.close()
    parts = parser.parts
    text = "".join(next((parts[k] for k in ("article", "main", "body") if k in parser.seen), parts["all"]))
    title = " ".join(" ".join(parser.title).split())
    return f"{title}\n\n{text}" if title and title not in text[:500] else text


class _PageText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.open: dict[str, int] = {}  # how many of each tag are on the stack: end tags never scan it
        self.dropped = 0  # inside script, nav, footer...
        self.capturing: dict[str, int] = {}  # article/main/body -> its depth on the stack, while inside it
        self.seen: set[str] = set()
        self.parts: dict[str, list[str]] = {"all": [], "body": [], "main": [], "article": []}
        self.title: list[str] = []
        self.in_title = False

    def _emit(self, text: str) -> None:
        if self.dropped:
            return
        self.parts["all"].append(text)
        for name in self.capturing:
            self.parts[name].append(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HTML_BLOCKS:
            self._emit("\n")
        if tag in _HTML_VOID:
            if tag in _HTML_BLOCKS:
                self._emit("\n")
            return
        if tag in ("article", "main", "body") and tag not in self.seen and not self.dropped:
            self.seen.add(tag)
            self.capturing[tag] = len(self.stack)
        self.dropped += tag in _HTML_DROP
        self.in_title = self.in_title or tag == "title"
        self.stack.append(tag)
        self.open[tag] = self.open.get(tag, 0) + 1

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HTML_BLOCKS:
            self._emit("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if self.open.get(tag):  # close it and whatever was left open inside it
            while self.stack:
                top = self.stack.pop()
                self.open[top] -= 1
                self.dropped -= top in _HTML_DROP
                self.in_title = self.in_title and top != "title"
                for name, depth in list(self.capturing.items()):
                    if depth >= len(self.stack):
                        del self.capturing[name]
                if top == tag:
                    break
        if tag in _HTML_BLOCKS:
            self._emit("\n")

    def handle_data(self, data: str) -> None:
        if self.in_title and not self.dropped:
            self.title.append(data)
        self._emit(data)
