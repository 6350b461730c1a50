"""Where a document's pages and sections are: pure functions over its normalised text, no I/O.

A page or section is a mark, (offset in the document's text, value), valid until the next mark; everything
that has document offsets (chunks, passages, evidence, citations) looks its page and section up here.
"""

from __future__ import annotations

import bisect
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

SECTION_SEPARATOR = " › "
_HEADER_LINES = 3
_HEADER_WORDS = 12  # lines at the top and at the bottom of a page where running headers and footers sit
_DIGITS = re.compile(r"\d+")
_ROMAN_PAGE = re.compile(r"^[ivxlc]+$")
_MD_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*$", re.MULTILINE)
_NUMBERING = re.compile(r"^(\d+(\.\d+)*\.?|[A-Z](\.\d+)*\.?|[IVX]+\.)\s+")
_LIST_ITEM = re.compile(r"^([•▪◦‣·*–—-]|\(?\d{1,3}[.)]|\(?[a-z][.)])\s")
_HYPHENATED = re.compile(r"[^\W\d_]{2}-$")
_CJK_END_CHAR = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]$")
_SENTENCE_END = re.compile(r"[.!?。！？:;…]['\"”’»)\]]*$")


@dataclass(frozen=True)
class Layout:
    pages: tuple[tuple[int, int], ...] = ()  # (offset, 1-based page number), ascending
    sections: tuple[tuple[int, str], ...] = ()  # (offset, "2 Design › 2.1 Storage"), ascending
    page_count: int = 0

    def page_at(self, offset: int) -> int | None:
        return _mark_at(self.pages, offset)

    def page_span(self, start: int, end: int) -> tuple[int | None, int | None]:
        """First and last page of the text [start, end)."""
        return self.page_at(start), self.page_at(max(start, end - 1))

    def section_at(self, offset: int) -> str:
        return _mark_at(self.sections, offset) or ""

    def page_bounds(self, page: int, text_length: int) -> tuple[int, int] | None:
        """[start, end) of a page's text in the document, or None when the page has no text."""
        for i, (offset, number) in enumerate(self.pages):
            if number == page:
                end = self.pages[i + 1][0] if i + 1 < len(self.pages) else text_length
                return offset, end
        return None

    def to_dict(self) -> dict[str, object]:
        return {"pages": [list(p) for p in self.pages], "sections": [list(s) for s in self.sections],
                "page_count": self.page_count}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Layout:
        pages = tuple((int(o), int(p)) for o, p in data.get("pages") or [])  # type: ignore[union-attr]
        sections = tuple((int(o), str(s)) for o, s in data.get("sections") or [])  # type: ignore[union-attr]
        return cls(pages=pages, sections=sections, page_count=int(data.get("page_count") or 0))  # type: ignore[arg-type]


@dataclass(frozen=True)
class DocumentInfo:
    """What a whole-document answer needs of an indexed document."""

    file: str
    title: str
    date: str | None
    layout: Layout
    key: list[list[int]]  # [start, end, chunk index] of its key sentences (ingest.keypoints)


def _mark_at(marks: Sequence[tuple[int, object]], offset: int):  # type: ignore[no-untyped-def]
    if not marks:
        return None
    i = bisect.bisect_right([m[0] for m in marks], offset) - 1
    return marks[max(i, 0)][1]


def page_window(layout: Layout, page: int | None, page_end: int | None, length: int) -> tuple[int, int]:
    """[start, end) of the pages a citation spans, or the whole text for a document without pages."""
    first = layout.page_bounds(page, length) if page is not None else None
    last = layout.page_bounds(page_end, length) if page_end is not None else first
    if first is None or last is None:
        return 0, length
    return first[0], last[1]


def page_label(page: int | None, page_end: int | None) -> str:
    """"p. 5", "pp. 5–6", or "" for text without pages."""
    if page is None:
        return ""
    return f"pp. {page}–{page_end}" if page_end is not None and page_end != page else f"p. {page}"


class Placed(Protocol):
    file: str
    page: int | None
    page_end: int | None
    section: str


def where(item: Placed) -> str:
    """"report.pdf p. 5 · 2 Design › 2.1 Storage": a passage's or citation's place, as every front end shows it."""
    return " · ".join(p for p in (f"{item.file} {page_label(item.page, item.page_end)}".strip(), item.section) if p)


def strip_running_lines(pages: list[list[str]]) -> list[list[str]]:
    """Drop running headers and footers, so they are neither text nor title: a line among the first or last few
    of a page that recurs on most pages, its numbers aside ("Page 5 of 6"), or a numbered first or last line
    that recurs there on other pages ("Chapter 2: Design 7", a lone page number)."""
    counted = [p for p in pages if p]
    if len(counted) < 2:
        return pages
    seen: Counter[str] = Counter()
    outermost: Counter[str] = Counter()
    for lines in counted:
        seen.update({_running_key(line) for line in _edges(lines)})
        outermost.update({_running_key(lines[0]), _running_key(lines[-1])})
    needed = max(2, -(-len(counted) * 3 // 5))  # most pages: at least 60% of those with text
    running = {key for key, count in seen.items() if count >= needed and key}
    numbered = {key for key, count in outermost.items() if count >= 2 and "#" in key}
    out: list[list[str]] = []
    for lines in pages:
        edge = set(range(min(_HEADER_LINES, len(lines)))) | set(range(max(0, len(lines) - _HEADER_LINES), len(lines)))
        keep = [line for i, line in enumerate(lines)
                if not (i in edge and _running_key(line) in running)
                and not (i in (0, len(lines) - 1) and _running_key(line) in numbered)]
        out.append(keep)
    return out


def _edges(lines: list[str]) -> list[str]:
    return lines[:_HEADER_LINES] + lines[-_HEADER_LINES:]


def _running_key(line: str) -> str:
    """The line with its numbers as "#"; "" (never running) for a line longer than a header or footer is."""
    if len(line.split()) > _HEADER_WORDS:
        return ""
    key = _DIGITS.sub("#", " ".join(line.lower().split()))
    return "#" if _ROMAN_PAGE.match(key) else key


def unwrap_lines(lines: list[str]) -> list[str]:
    """Join the visual lines of a PDF page back into paragraphs: a line as wide as the page's full lines runs on
    into the next one, unless that one starts a list item. Without this every wrapped line would end a sentence."""
    if len(lines) < 3:
        return lines
    widths = sorted(len(line) for line in lines)
    full = widths[int(len(widths) * 0.9) - (len(widths) >= 10)] * 0.75
    out = [lines[0]]
    for line in lines[1:]:
        previous = out[-1]
        if len(previous.rsplit("\n", 1)[-1]) >= full and not _LIST_ITEM.match(line):
            if _HYPHENATED.search(previous) and line[:1].islower():  # "man-" + "agement": one word again
                out[-1] = previous[:-1] + line
            else:
                out[-1] = previous + ("" if _CJK_END_CHAR.search(previous) else " ") + line
        else:
            out.append(line)
    return out


def join_pages(pages: list[list[str]]) -> tuple[str, tuple[tuple[int, int], ...]]:
    """One text of the pages' lines and where each page with text starts. A sentence that runs on over a page
    break is joined with a space, so the chunker does not cut it in two."""
    text = ""
    marks: list[tuple[int, int]] = []
    for number, lines in enumerate(pages, start=1):
        body = "\n".join(lines).strip()
        if not body:
            continue
        if text:
            runs_on = not _SENTENCE_END.search(text) and body[0].islower()
            text += " " if runs_on else "\n\n"
        marks.append((len(text), number))
        text += body
    return text, tuple(marks)


def markdown_headings(text: str) -> list[tuple[int, int, str]]:
    """(offset, level, title) of every `#` heading."""
    return [(m.start(), len(m.group(1)), m.group(2)) for m in _MD_HEADING.finditer(text)]


def locate_headings(text: str, headings: Sequence[tuple[int, str]],
                    floors: Sequence[int] | None = None) -> list[tuple[int, int, str]]:
    """Find headings, (level, title) in document order, as lines of the text; `floors` (one per heading) are
    offsets each is searched from (a PDF outline's page start). Those not found are left out."""
    found: list[tuple[int, int, str]] = []
    position = 0
    for i, (level, title) in enumerate(headings):
        wanted = " ".join(title.split()).casefold()
        begin = max(position, floors[i]) if floors else position
        line = _find_line(text, wanted, begin)
        if line is None and floors and floors[i] >= position:  # the page an outline points at lacks the title
            line = floors[i], title
        if line is not None:
            found.append((line[0], level, line[1]))
            position = line[0]
    return found


def _find_line(text: str, wanted: str, begin: int) -> tuple[int, str] | None:
    """Offset and text of the first line from `begin` that is the heading, perhaps after its number ("2.1")."""
    for match in re.finditer(r"[^\n]+", text[begin:]):
        line = " ".join(match.group().split())
        bare = _NUMBERING.sub("", line).casefold()
        if wanted in (line.casefold(), bare) or (bare.startswith(wanted) and len(bare) - len(wanted) < 4):
            return begin + match.start(), line
    return None


def section_marks(headings: Sequence[tuple[int, int, str]]) -> tuple[tuple[int, str], ...]:
    """(offset, path) for each heading: its title after those of the open headings above it."""
    open_titles: list[tuple[int, str]] = []
    marks: list[tuple[int, str]] = []
    for offset, level, title in headings:
        while open_titles and open_titles[-1][0] >= level:
            open_titles.pop()
        open_titles.append((level, " ".join(title.split())))
        marks.append((offset, SECTION_SEPARATOR.join(t for _, t in open_titles)))
    return tuple(marks)


def first_heading_line(text: str, max_words: int = 14) -> str:
    """The first short line that reads like a heading: letters, no sentence end, not just a number."""
    for line in text.split("\n")[:30]:
        words = line.split()
        if 1 <= len(words) <= max_words and re.search(r"[^\W\d_]{2}", line) and not _SENTENCE_END.search(line):
            return line.strip()
    return ""
