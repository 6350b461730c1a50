"""What a question is about: passages (most questions), one whole document ("summarize report.pdf", "what is this
document about?" with one document selected or indexed), or the corpus ("which documents talk about Y?", "what
documents do you have?"). Rules on the question's words and the indexed files' names and titles; no model."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal

_SUMMARY = re.compile(
    r"\b(summar(y|ies|i[sz]e[sd]?|i[sz]ing)|overview|outline|gist|tl;?dr|abstract of|main (points|ideas|findings|"
    r"topics)|key (points|findings|takeaways|ideas)|zusammenfass\w*|fass\w*\b.{0,80}\bzusammen|überblick|"
    r"hauptpunkte|kernaussagen)|(总结|概括|摘要|概述|主要内容)", re.IGNORECASE)
_ABOUT = re.compile(
    r"\b(what('s| is| are)\b.{0,60}\babout|what does\b.{0,60}\b(say|cover|discuss)|worum geht|wovon handelt|"
    r"inhalt von)\b|(讲了什么|讲什么|说了什么|是关于什么|关于什么)", re.IGNORECASE)
_THIS_DOCUMENT = re.compile(
    r"\b(this|the|that|the attached|the uploaded|dieses?|dem|das|diese[rnm]?)\s+(document|file|report|paper|"
    r"article|pdf|text|dokument|datei|bericht|artikel|papier)\b|(这|该|此)(份|篇|个)?(文档|文件|报告|文章|论文)",
    re.IGNORECASE)
_WHICH_DOCUMENTS = re.compile(
    r"^\s*(which|what)\s+(documents?|files?|articles?|reports?|papers?|sources?|texts?)\b\s*(do|does|are|is|"
    r"talk|mention|discuss|cover|say|contain|deal|write|have|refer)?\w*\s*(about|on|with|of|to)?\s*|"
    r"^\s*welche\s+(dokumente|dateien|artikel|berichte|quellen|texte)\s*(handeln|sprechen|erwähnen|behandeln|"
    r"enthalten|gibt es|hast du|haben sie)?\s*(über|von|zu|vom|zum)?\s*|"
    r"^\s*(哪些|哪个|哪几)(份|篇|个)?(文档|文件|文章|报告|资料)\s*(提到|讲|谈到|涉及|关于|有关|包含|说)?(了)?\s*",
    re.IGNORECASE)
_LIST_ALL = re.compile(
    r"\b(list|show)( me)? (all |the )?(documents|files|articles|sources)\b|\bwhat (documents|files|articles|"
    r"sources) (do|are|have)\b.{0,30}\b(you|there|indexed|have|available)\b|\bwhat('s| is) in (the|your) "
    r"(index|corpus|library)\b|\b(all|every) (the )?(documents|files)\b|welche (dokumente|dateien) (hast du|"
    r"gibt es|kennst du)|(有哪些|有什么)(文档|文件|文章|资料)|列出(所有)?(文档|文件)", re.IGNORECASE)
_TOPIC_FILLER = re.compile(r"[?？。.!！\s]+$|^(the topic of|the subject of|das thema)\s+", re.IGNORECASE)


@dataclass(frozen=True)
class Scope:
    kind: Literal["passages", "document", "corpus"] = "passages"
    file: str = ""  # the document, for kind "document"
    topic: str = ""  # what the documents should be about, for kind "corpus" ("" = every document)


def scope_of(question: str, documents: Callable[[], Sequence[tuple[str, str]]],
             selected: Sequence[str] | None = None) -> Scope:
    """`documents`: (file, title) of the indexed documents, read only for a question that may be about one;
    `selected`: the files the question is limited to."""
    text = " ".join(question.split())
    if _LIST_ALL.search(text):
        return Scope("corpus")
    which = _WHICH_DOCUMENTS.match(text)
    if which and which.group().strip():
        topic = _TOPIC_FILLER.sub("", text[which.end():]).strip()
        return Scope("corpus", topic=topic)
    if not (_SUMMARY.search(text) or _ABOUT.search(text)):
        return Scope()
    indexed = documents()
    named = _named_document(text, indexed)
    if named:
        return Scope("document", file=named)
    pool = list(selected) if selected else [file for file, _ in indexed]
    if len(pool) == 1 and (_THIS_DOCUMENT.search(text) or _asks_bare_summary(text)):
        return Scope("document", file=pool[0])
    return Scope()


def _asks_bare_summary(text: str) -> bool:
    """"Summarize." or "Give me an overview": a whole-document request with no other subject."""
    words = re.findall(r"\w+", text)
    return len(words) <= 6 and bool(_SUMMARY.search(text))


def _named_document(text: str, documents: Sequence[tuple[str, str]]) -> str:
    """The document whose file name (with or without its suffix) or title the question contains; the longest
    name wins, so "report-2025.pdf" is not taken for "report.pdf"."""
    lowered = text.casefold()
    best, length = "", 0
    for file, title in documents:
        path = PurePosixPath(file)
        names = {path.name.casefold(), path.stem.casefold(), path.stem.replace("_", " ").replace("-", " ").casefold()}
        if len(title) >= 8:
            names.add(title.casefold())
        for name in names:
            if len(name) >= 3 and len(name) > length and re.search(rf"(?<!\w){re.escape(name)}(?!\w)", lowered):
                best, length = file, len(name)
    return best
