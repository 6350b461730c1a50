"""Sentence-aware chunking for English, German and Chinese with exact character offsets.

Sizes are counted in tokens of the embedding model, so a chunk never exceeds what the model reads.
A chunk is always `text[start:end]` of the normalised document and never cuts a word or number.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# Bump when the splitting rules change: the index records it and re-chunks on the next ingest.
CHUNKER_VERSION = 1

TokenOffsets = Callable[[str], Sequence[tuple[int, int]]]
"""Character spans of the tokens of a text (a fast tokenizer's offset mapping, special tokens excluded)."""

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
        before = _WORD_BEFORE.search(line, 0, match.start())
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
    token_spans = list(token_offsets(text))
    token_starts = [s for s, _ in token_spans]

    def tokens_in(start: int, end: int) -> int:
        return bisect.bisect_left(token_starts, end) - bisect.bisect_left(token_starts, start)

    pieces: list[tuple[int, int, int]] = []  # (start, end, tokens)
    for start, end in sentence_spans(text):
        count = tokens_in(start, end)
        if count <= chunk_size:
            pieces.append((start, end, count))
        else:
            pieces.extend(_split_long(text, start, end, token_spans, token_starts, chunk_size))

    chunks: list[Chunk] = []
    current: list[tuple[int, int, int]] = []
    for piece in pieces:
        if current and sum(p[2] for p in current) + piece[2] > chunk_size:
            chunks.append(_make_chunk(text, len(chunks), current))
            current = _overlap_tail(current, chunk_overlap, chunk_size - piece[2])
        current.append(piece)
    if current:
        chunks.append(_make_chunk(text, len(chunks), current))
    return chunks


def _overlap_tail(previous: list[tuple[int, int, int]], overlap: int, room: int) -> list[tuple[int, int, int]]:
    tail: list[tuple[int, int, int]] = []
    budget = min(overlap, room)
    for piece in reversed(previous[1:]):  # never repeat a whole chunk
        if piece[2] > budget:
            break
        tail.insert(0, piece)
        budget -= piece[2]
    return tail


def _split_long(
    text: str,
    start: int,
    end: int,
    token_spans: list[tuple[int, int]],
    token_starts: list[int],
    limit: int,
) -> list[tuple[int, int, int]]:
    """Cut an overlong sentence at token boundaries that separate words (spaces, CJK characters)."""
    first = bisect.bisect_left(token_starts, start)
    last = bisect.bisect_left(token_starts, end)
    pieces: list[tuple[int, int, int]] = []
    piece_start, piece_first = start, first
    i = first
    while i < last:
        if i - piece_first >= limit:
            cut_token = next(
                (j for j in range(i, piece_first, -1)
                 if not _joined(text[token_spans[j][0] - 1], text[token_spans[j][0]])),
                i,  # a single "word" longer than the limit: a hard cut is the only option
            )
            cut = token_spans[cut_token][0]
            _append_piece(pieces, text, piece_start, cut, cut_token - piece_first)
            piece_start, piece_first = cut, cut_token
        i += 1
    _append_piece(pieces, text, piece_start, end, last - piece_first)
    return pieces


def _append_piece(pieces: list[tuple[int, int, int]], text: str, start: int, end: int, tokens: int) -> None:
    spans: list[tuple[int, int]] = []
    _append_stripped(spans, text, start, end)
    pieces.extend((s, e, tokens) for s, e in spans)


def _make_chunk(text: str, index: int, pieces: list[tuple[int, int, int]]) -> Chunk:
    start, end = pieces[0][0], pieces[-1][1]
    return Chunk(index=index, start=start, end=end, text=text[start:end])
