"""Sentence-aware chunking for English, German and Chinese with exact character offsets.

Sizes are counted in tokens of the embedding model, so a chunk never exceeds what the model reads.
A chunk is always `text[start:end]` of the normalised document and never cuts a word or number.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

# Bump when the splitting rules change: the index records it and re-chunks on the next ingest.
CHUNKER_VERSION = 2  # 2: chunks carry pages and sections

TokenOffsets = Callable[[str], Sequence[tuple[int, int]]]
"""Character spans of the tokens of a text (a fast tokenizer's offset mapping, special tokens excluded)."""
TOKEN_WINDOW = 1 << 18  # characters tokenized at once: ~40 MB of tokenizer memory, whatever the document size

_ABBREVIATIONS = {
    "e.g", "i.e", "etc", "vs", "mr", "mrs", "ms", "dr", "prof", "inc", "ltd", "co", "corp", "jr", "sr", "st",
    "no", "nr", "vol", "fig", "approx", "z.b", "bzw", "ca", "usw", "vgl", "d.h", "u.a", "evtl", "ggf", "inkl",
    "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "okt", "dez",
}
_CJK_CHAR = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\u3000-\u303f\uff00-\uffef]")
# End of a sentence: CJK terminators anywhere; Latin ones when followed by space and a likely sentence start.
_CJK_END = re.compile(r"[。！？!?][”」』）)\]]*")
_LATIN_END = re.compile(r"[.!?…]+[\"'”’»)\]]*(?:\[\d+\])*(?=\s+[\"'“„«(\[]?[A-ZÄÖÜ0-9\u4e00-\u9fff])")
_WORD_BEFORE = re.compile(r"([\w.]+)$")


@dataclass(frozen=True)
class Chunk:
    index: int
    start: int
    end: int
    text: str


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Spans of sentences; line breaks always end a sentence (paragraphs, list items, table rows)."""
    spans: list[tuple[int, int]] = []
    for line in re.finditer(r"[^\n]+", text):
        cuts = sorted({m.end() for m in _CJK_END.finditer(line.group())} | _latin_cuts(line.group()))
        begin = 0
        for cut in [*cuts, len(line.group())]:
            _append_stripped(spans, text, line.start() + begin, line.start() + cut)
            begin = cut
    return spans


def _latin_cuts(line: str) -> set[int]:
    cuts = set()
    for match in _LATIN_END.finditer(line):
        # Only the word before matters: searching from the line start made a long line quadratic.
        before = _WORD_BEFORE.search(line, max(0, match.start() - 64), match.start())
        word = before.group(1).lower() if before else ""
        if match.group().startswith("."):
            if word in _ABBREVIATIONS or len(word) == 1 or re.fullmatch(r"(\w\.)+\w", word):
                continue
            if re.fullmatch(r"\d{1,2}", word):  # German ordinals and dates: "13. Februar"
                continue
        cuts.add(match.end())
    return cuts


def _append_stripped(spans: list[tuple[int, int]], text: str, start: int, end: int) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start < end:
        spans.append((start, end))


def _joined(left: str, right: str) -> bool:
    """True when a cut between these two characters would split a word or a number."""
    if not left or not right or left.isspace() or right.isspace():
        return False
    if _CJK_CHAR.match(left) or _CJK_CHAR.match(right):
        return False
    return (left.isalnum() or left in "-.,'’_/") and (right.isalnum() or right in "-.,'’_/%")


def chunk_text(text: str, token_offsets: TokenOffsets, chunk_size: int, chunk_overlap: int = 0) -> list[Chunk]:
    """Pack whole sentences into chunks of at most `chunk_size` tokens; split only overlong sentences,
    and then only where no word or number is cut. Neighbouring chunks share up to `chunk_overlap`
    tokens of whole sentences."""
    if not text.strip():
        return []
    chunks: list[Chunk] = []
    current: list[tuple[int, int, int]] = []
    for piece in _pieces(text, _token_starts(text, token_offsets), chunk_size):
        if current and sum(p[2] for p in current) + piece[2] > chunk_size:
            chunks.append(_make_chunk(text, len(chunks), current))
            current = _overlap_tail(current, chunk_overlap, chunk_size - piece[2])
        current.append(piece)
    if current:
        chunks.append(_make_chunk(text, len(chunks), current))
    return chunks


def _token_starts(text: str, token_offsets: TokenOffsets, window: int = TOKEN_WINDOW) -> Iterator[int]:
    """Where each token of `text` starts, tokenizing a window at a time: a tokenizer's offsets for a whole 50 MB
    line take gigabytes. Windows end at a line break or space (no token spans one), so a text shorter than a
    window, or cut at blanks, gets exactly the offsets of one call; only a window with no blank in its second
    half is cut hard, which may count one word as two tokens there."""
    begin = 0
    while begin < len(text):
        end = min(len(text), begin + window)
        if end < len(text):
            for blank in ("\n", " "):
                found = text.rfind(blank, begin + window // 2, end)
                if found > begin:
                    end = found
                    break
        for start, _ in token_offsets(text[begin:end]):
            yield begin + start
        begin = end


def _pieces(text: str, token_starts: Iterator[int], limit: int) -> Iterator[tuple[int, int, int]]:
    """(start, end, tokens) of every sentence, overlong ones cut at token boundaries that separate words (spaces,
    CJK characters); reads the token stream once, holding only the tokens of the piece being built."""
    pending: int | None = next(token_starts, None)
    for start, end in sentence_spans(text):
        while pending is not None and pending < start:
            pending = next(token_starts, None)
        piece_start, held = start, []  # held: the token starts of the piece being built
        while pending is not None and pending < end:
            if len(held) >= limit:
                cut = next((t for t in [pending, *reversed(held[1:])] if not _joined(text[t - 1], text[t])), pending)
                kept = held.index(cut) if cut != pending else len(held)
                yield from _stripped_piece(text, piece_start, cut, kept)
                piece_start, held = cut, held[kept:]
            held.append(pending)
            pending = next(token_starts, None)
        yield from _stripped_piece(text, piece_start, end, len(held))


def _overlap_tail(previous: list[tuple[int, int, int]], overlap: int, room: int) -> list[tuple[int, int, int]]:
    tail: list[tuple[int, int, int]] = []
    budget = min(overlap, room)
    for piece in reversed(previous[1:]):  # never repeat a whole chunk
        if piece[2] > budget:
            break
        tail.insert(0, piece)
        budget -= piece[2]
    return tail


def _stripped_piece(text: str, start: int, end: int, tokens: int) -> list[tuple[int, int, int]]:
    spans: list[tuple[int, int]] = []
    _append_stripped(spans, text, start, end)
    return [(s, e, tokens) for s, e in spans]


def _make_chunk(text: str, index: int, pieces: list[tuple[int, int, int]]) -> Chunk:
    start, end = pieces[0][0], pieces[-1][1]
    return Chunk(index=index, start=start, end=end, text=text[start:end])
