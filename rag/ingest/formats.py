"""Each file format to normalised text and its layout (pages, sections) and, where the format has one, a title.

Plain text and HTML are decoded here because a corpus nobody cleaned has every encoding, and HTML needs its
navigation and scripts dropped, not flattened. Word files go through python-docx, which keeps the heading styles
that give sections; PDFs through PDFium (rag/ingest/pdf.py), page by page.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from rag.errors import DocumentError
from rag.ingest import text as textlib
from rag.ingest.decode import decode_text
from rag.ingest.html import read_html
from rag.ingest.layout import (
    Layout,
    first_heading_line,
    join_pages,
    locate_headings,
    markdown_headings,
    section_marks,
    strip_running_lines,
    unwrap_lines,
)
from rag.ingest.pdf import ocr_available, read_pdf

TEXT_SUFFIXES = {".txt", ".text", ".md", ".markdown", ".rst"}
MARKDOWN_SUFFIXES = {".md", ".markdown"}
HTML_SUFFIXES = {".html", ".htm", ".xhtml"}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | {".pdf", ".docx"}


@dataclass(frozen=True)
class Parsed:
    text: str
    layout: Layout = Layout()
    title: str = ""  # the format's own: a PDF's metadata or its first page's heading
    notes: tuple[str, ...] = field(default=())  # what a person should know, e.g. pages without text


def parse(path: Path, suffix: str) -> Parsed:
    if suffix in TEXT_SUFFIXES:
        text = textlib.drop_boilerplate(textlib.normalise(decode_text(path.read_bytes())))
        if suffix not in MARKDOWN_SUFFIXES:  # a .txt keeps reading as it always did
            return Parsed(text)
        headings = [(o, level, textlib.clean_inline_markup(t)) for o, level, t in markdown_headings(text)]
        return Parsed(text, Layout(sections=section_marks(headings)))
    if suffix in HTML_SUFFIXES:
        raw, headings = read_html(decode_text(path.read_bytes()))
        return _with_headings(textlib.drop_boilerplate(textlib.normalise(raw)), headings)
    if suffix == ".pdf":
        return _parse_pdf(path)
    return _parse_docx(path)


def _with_headings(text: str, headings: list[tuple[int, str]]) -> Parsed:
    return Parsed(text, Layout(sections=section_marks(locate_headings(text, headings))))


def _parse_pdf(path: Path) -> Parsed:
    pdf = read_pdf(path)
    lines = [[line for line in textlib.normalise(page).split("\n") if line] for page in pdf.pages]
    pages = [unwrap_lines(textlib.drop_boilerplate_lines(page)) for page in strip_running_lines(lines)]
    text, marks = join_pages(pages)
    starts = dict((page, offset) for offset, page in marks)
    floors = [_floor(starts, entry.page) for entry in pdf.outline]
    located = locate_headings(text, [(e.level + 1, e.title) for e in pdf.outline], floors)
    layout = Layout(pages=marks, sections=section_marks(located), page_count=len(pdf.pages))
    first_page = "\n".join(pages[0]) if pages else ""
    notes: list[str] = []
    if pdf.ocr_pages:
        notes.append(f"read {_pages(pdf.ocr_pages)} by OCR (tesseract)")
    if pdf.blank_pages and text.strip():
        hint = "" if ocr_available() else "; install tesseract to read scanned pages"
        notes.append(f"{_pages(pdf.blank_pages)} without text skipped{hint}")
    return Parsed(text, layout, pdf.title or first_heading_line(first_page), tuple(notes))


def _floor(starts: dict[int, int], page: int) -> int:
    """Where the text of `page` starts, or of the next page with text."""
    later = [offset for number, offset in starts.items() if number >= page]
    return min(later) if later else max(starts.values(), default=0)


def _pages(numbers: list[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:8]) + (" …" if len(numbers) > 8 else "")
    return f"page{'s' if len(numbers) > 1 else ''} {shown}"


def _parse_docx(path: Path) -> Parsed:
    try:
        lines, headings = _docx_blocks(path)
    except Exception:  # python-docx wants a well-formed package; docx2txt reads what Word wrote regardless
        lines, headings = [_docx_text(path)], []
    return _with_headings(textlib.drop_boilerplate(textlib.normalise("\n".join(lines))), headings)


def _docx_blocks(path: Path) -> tuple[list[str], list[tuple[int, str]]]:
    """Paragraphs and table rows in order, and the headings among them (Word's heading styles)."""
    import docx
    from docx.table import Table

    document = docx.Document(str(path))
    lines: list[str] = []
    headings: list[tuple[int, str]] = []
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            lines.extend(" | ".join(cell.text.strip() for cell in row.cells) for row in block.rows)
            continue
        lines.append(block.text)
        level = _heading_level(block.style.name if block.style is not None else "")
        if level and block.text.strip():
            headings.append((level, block.text))
    return lines, headings


def _docx_text(path: Path) -> str:
    import docx2txt

    try:
        return str(docx2txt.process(str(path)) or "")
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        reason = str(exc).splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise DocumentError(f"cannot parse it ({reason})", "check the file opens in its usual program") from exc


def _heading_level(style: str) -> int:
    """Word's built-in heading styles: "Title" and "Heading 1" are level 1, "Heading 2" level 2, ..."""
    if style == "Title":
        return 1
    name, _, number = style.partition(" ")
    return int(number) if name == "Heading" and number.isdigit() else 0
