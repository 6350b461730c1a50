"""Text normalisation, boilerplate rules, titles, dates and language: pure functions, no I/O."""

from __future__ import annotations

import re
import unicodedata
from datetime import date

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]")
_KANA = re.compile(r"[\u3040-\u30ff]")
_HANGUL = re.compile(r"[\uac00-\ud7af]")
_LETTER = re.compile(r"[^\W\d_]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b\u200c\u200d\u2060\ufeff]")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]+")
_BLANK_RUNS = re.compile(r"\n{3,}")
# Typographic ligatures (PDFs keep them): "ﬁnance" must be found by "finance".
_LIGATURES = {code: unicodedata.normalize("NFKC", chr(code)) for code in range(0xFB00, 0xFB07)}

# Lines that are site furniture in any corpus, not article text.
_BOILERPLATE_LINE = re.compile(
    r"^(©|\(c\)\s|copyright\b)|all rights reserved|alle rechte vorbehalten|版权所有"
    r"|^(lesezeit|reading time|read time)\b|^\d+\s*(min|minute|minuten)\s*(read|lesezeit)\b"
    r"|^(accept|akzeptieren).{0,40}cookies?|^we use cookies|wir verwenden cookies",
    re.IGNORECASE,
)
# A "more articles" marker near the end starts a block of links and teasers, never article text.
_RELATED_MARKER = re.compile(
    r"^(related( articles| posts| stories)?|read more|more (articles|stories|news)( on| about)?"
    r"|mehr zum thema|noch mehr beiträge|weitere artikel|das könnte sie auch interessieren|"
    r"相关阅读|相关文章|推荐阅读)\b",
    re.IGNORECASE,
)
# Headlines may end in "!" or "?" but not in a full stop, colon or comma (quotes and brackets aside).
_STATEMENT_END = re.compile(r"[.。:;：；…,，][\"'”’»)\]]*$")


def normalise(raw: str) -> str:
    """NFC, one space for any run of blanks, no trailing blanks, at most one empty line in a row."""
    text = unicodedata.normalize("NFC", raw).translate(_LIGATURES).replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip()


def drop_boilerplate_lines(lines: list[str]) -> list[str]:
    """Without copyright, cookie and reading-time lines."""
    return [line for line in lines if not _BOILERPLATE_LINE.search(line)]


def drop_boilerplate(text: str) -> str:
    """Remove copyright/cookie/reading-time lines, a trailing related-links block, and a trailing run of
    three or more headline-like lines (teasers for other articles)."""
    lines = drop_boilerplate_lines(text.split("\n"))
    body_end = len(lines)
    for i in range(len(lines) * 2 // 3, len(lines)):
        if _RELATED_MARKER.search(lines[i]):
            body_end = i
            break
    lines = lines[:body_end]
    headline_run = 0
    for line in reversed(lines):
        if not line:
            continue
        if _is_headline(line):
            headline_run += 1
        else:
            break
    if headline_run >= 3 and headline_run < _count_nonempty(lines):
        kept = _count_nonempty(lines) - headline_run
        out: list[str] = []
        for line in lines:
            if line and kept == 0:
                break
            out.append(line)
            kept -= bool(line)
        lines = out
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip()


def _is_headline(line: str) -> bool:
    words = line.split()
    return 2 <= len(words) <= 30 and not _STATEMENT_END.search(line) and not line.startswith(("-", "*", "|"))


def _count_nonempty(lines: list[str]) -> int:
    return sum(1 for line in lines if line)


_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_MD_MARKS = re.compile(r"(\*\*|__|\*|_|`)(?=\S)|(?<=\S)(\*\*|__|\*|_|`)")
_HEADING = re.compile(r"^#{1,6}\s+(.+)$")


def clean_inline_markup(line: str) -> str:
    line = _MD_LINK.sub(r"\1", line)
    line = _MD_MARKS.sub("", line)
    return _SPACES.sub(" ", line).strip(" #")


def find_title(text: str, max_chars: int = 160) -> str:
    """The first heading, else the first line, without markup, shortened at a word boundary."""
    lines = [line for line in text.split("\n")[:40] if line.strip()]
    headings = [m.group(1) for line in lines if (m := _HEADING.match(line))]
    title = clean_inline_markup(headings[0] if headings else (lines[0] if lines else ""))
    if len(title) > max_chars:  # a first paragraph, not a title: its first sentence may do
        sentence = re.match(r"(.{20,}?[.!?。！？])(\s|$)", title)
        title = sentence.group(1) if sentence else title
    if len(title) > max_chars:
        cut = title[:max_chars].rsplit(" ", 1)[0] if " " in title[:max_chars] else title[:max_chars]
        title = cut.rstrip(",;:-–") + "…"
    return title


_MONTHS = {
    **{m: i + 1 for i, m in enumerate(
        ["january", "february", "march", "april", "may", "june", "july", "august", "september",
         "october", "november", "december"])},
    **{m: i + 1 for i, m in enumerate(
        ["januar", "februar", "märz", "april", "mai", "juni", "juli", "august", "september",
         "oktober", "november", "dezember"])},
    **{m: i + 1 for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])},
}
_MONTH = "|".join(sorted(_MONTHS, key=len, reverse=True))
_DATE_PATTERNS = [
    (re.compile(r"\b((?:19|20)\d\d)-(\d\d)-(\d\d)\b"), ("y", "m", "d")),
    (re.compile(r"((?:19|20)\d\d)\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日"), ("y", "m", "d")),
    (re.compile(rf"\b({_MONTH})\.?\s+(\d{{1,2}}),?\s+((?:19|20)\d\d)\b", re.IGNORECASE), ("M", "d", "y")),
    (re.compile(rf"\b(\d{{1,2}})\.?\s+({_MONTH})\.?,?\s+((?:19|20)\d\d)\b", re.IGNORECASE), ("d", "M", "y")),
    (re.compile(r"\b((?:19|20)\d\d)(\d\d)(\d\d)\b"), ("y", "m", "d")),
]


def find_date(text: str, within: int = 1000) -> str | None:
    """The earliest full date (day, month, year) stated near the top, as ISO 8601."""
    head = text[:within]
    found: list[tuple[int, str]] = []
    for pattern, order in _DATE_PATTERNS:
        for match in pattern.finditer(head):
            parts = dict(zip(order, match.groups(), strict=True))
            month = int(parts["m"]) if "m" in parts else _MONTHS[parts["M"].lower().rstrip(".")]
            try:
                found.append((match.start(), date(int(parts["y"]), month, int(parts["d"])).isoformat()))
            except ValueError:
                continue
    return min(found)[1] if found else None


def cjk_ratio(text: str) -> float:
    letters = len(_LETTER.findall(text))
    return len(_CJK.findall(text)) / letters if letters else 0.0


# Short texts (questions) by their function words: langdetect reads "When did Alibaba launch ModelScope?" as
# Spanish and "Wie viele Parameter hat das Modell QwQ?" as English, swayed by the names in them.
_FUNCTION_WORD_TEXT = {
    "en": ("the a an of to in on for is are was were did does do what which who whom whose when where why how "
           "many much has have had and or with from about by its their this that summarize summarise summary "
           "overview document documents"),
    "de": ("der die das den dem des ein eine einen und oder ist sind war waren hat haben wie wann was welche "
           "welcher welches wer wem wo warum mit von für über auf im zum zur nicht auch sich es fasse zusammen "
           "zusammenfassung überblick dokument dokumente datei"),
    "fr": ("le la les un une des du de et est sont qui que quoi quand où pourquoi comment quel quelle avec "
           "pour dans sur par résume résumé"),
    "es": ("el la los las un una unos unas y es son qué cuál cuándo dónde por cómo quién con para en del al "
           "fue fueron resume resumen documento documentos"),
}
# A file named in a question ("Summarize report.pdf") says nothing of its language.
_FILE_NAME = re.compile(r"[\w.-]+\.(?:pdf|docx|txt|text|md|markdown|rst|html?|xhtml)\b", re.IGNORECASE)
_FUNCTION_WORDS = {lang: frozenset(words.split()) for lang, words in _FUNCTION_WORD_TEXT.items()}
_SHORT_TEXT = 200


def _by_function_words(text: str) -> str | None:
    words = re.findall(r"[^\W\d_]+", text.casefold())
    counts = {lang: sum(w in vocabulary for w in words) for lang, vocabulary in _FUNCTION_WORDS.items()}
    ranked = sorted(counts.items(), key=lambda item: -item[1])
    needed = 1 if len(words) <= 2 else 2  # "Summarize report.pdf": one word, and it is the question's language
    return ranked[0][0] if ranked[0][1] >= needed and ranked[0][1] > ranked[1][1] else None


def detect_language(text: str, hint: str | None = None) -> str:
    """ISO 639-1 code of the text's main language; 'und' when it has no letters. A `hint` (the language the
    text is expected in) wins whenever it is a plausible reading: short texts are ambiguous."""
    sample = text[:3000]
    if len(sample) < _SHORT_TEXT and _LETTER.search(without := _FILE_NAME.sub(" ", sample)):
        sample = without
    if not _LETTER.search(sample):
        return "und"
    if cjk_ratio(sample) > 0.3:
        if _KANA.search(sample):
            return "ja"
        if _HANGUL.search(sample):
            return "ko"
        return "zh"
    if len(sample) < _SHORT_TEXT and (by_words := _by_function_words(sample)) and not hint:
        return by_words
    from langdetect import DetectorFactory, LangDetectException, detect_langs

    DetectorFactory.seed = 0  # langdetect is random by default; answers must be reproducible
    try:
        candidates = detect_langs(sample)
    except LangDetectException:
        return "und"
    if hint and any(c.lang.split("-")[0] == hint and c.prob >= 0.1 for c in candidates):
        return hint
    return candidates[0].lang.split("-")[0]


def printable(name: str) -> str:
    """A file name fit for one line of output: line breaks and other control characters as escapes."""
    return "".join(ch if ch.isprintable() or ch == " " else ch.encode("unicode_escape").decode() for ch in name)


def has_words(text: str) -> bool:
    return bool(re.search(r"[^\W_]", text))
