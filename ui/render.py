"""HTML for the chat UI. Every piece of document text and model output goes through `escape`: nothing from a
document or an answer is ever interpreted as markup, script or template syntax."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from rag.ingest.layout import page_label

_CITATION = re.compile(r"\[(\d{1,3})\]")
# Gradio's HTML component runs its value through a template engine: neutralise its syntax too.
_TEMPLATE_CHARS = str.maketrans({"{": "&#123;", "}": "&#125;", "$": "&#36;", "`": "&#96;"})


def escape(text: str) -> str:
    return html.escape(text, quote=True).translate(_TEMPLATE_CHARS)


def _with_citation_links(text: str, turn: int, numbers: set[int]) -> str:
    """Escaped text in which each [n] that names a cited passage becomes a link to it; nothing else links."""
    out, pos = [], 0
    for match in _CITATION.finditer(text):
        out.append(escape(text[pos : match.start()]))
        number = int(match.group(1))
        if number in numbers:
            out.append(f'<a href="#" class="rag-cite" data-turn="{turn}" data-n="{number}" '
                       f'title="Show passage {number}">[{number}]</a>')
        else:
            out.append(escape(match.group()))
        pos = match.end()
    out.append(escape(text[pos:]))
    return "".join(out).replace("\n", "<br>")


def _with_unsupported_marked(text: str, turn: int, numbers: set[int], claims: Sequence[Mapping[str, Any]]) -> str:
    """The answer's HTML with each claim no passage backs underlined and marked ⚠ (with the reason on hover)."""
    out, pos = [], 0
    for claim in sorted(claims, key=lambda c: int(c["start"])):
        start, end = int(claim["start"]), int(claim["end"])
        if start < pos or text[start:end] != claim["text"]:
            continue  # spans from another text (the answer still streaming) mark nothing
        out.append(_with_citation_links(text[pos:start], turn, numbers))
        out.append(f'<span class="rag-unsupported" title="No passage backs this sentence">'
                   f"{_with_citation_links(text[start:end], turn, numbers)} ⚠</span>")
        pos = end
    out.append(_with_citation_links(text[pos:], turn, numbers))
    return "".join(out)


def conversation(turns: Sequence[Mapping[str, Any]]) -> str:
    if not turns:
        return ('<div class="rag-empty">Ask a question about your documents. Answers cite their evidence as '
                "[1], [2] … — click a number to read the sentence in its document.</div>")
    parts = []
    for index, turn in enumerate(turns):
        numbers = {int(c["number"]) for c in turn.get("citations", [])}
        answer = turn.get("answer") or "…"
        badges = {"refused": "refused", "extractive": "quoted from the documents"}
        mode = "refused" if turn.get("refused") else turn.get("answer_mode", "")
        status = f' <span class="rag-badge">{badges[mode]}</span>' if mode in badges else ""
        claims = turn.get("unsupported") or []
        apart = turn.get("grounding") == "strict"
        body = _with_citation_links(answer, index, numbers) if apart \
            else _with_unsupported_marked(answer, index, numbers, claims)
        parts.append(
            f'<div class="rag-turn"><div class="rag-q">{escape(turn["question"])}</div>'
            f'<div class="rag-a">{body}{status}</div>{_shown_apart(claims) if apart else ""}'
            f"{_rating(index, turn)}</div>"
        )
    return "".join(parts)


# Drawn, not emoji: a machine without an emoji font shows the glyphs as empty boxes. (Material's thumb icons.)
THUMBS = {
    "up": "M1 21h4V9H1v12zm22-11c0-1.1-.9-2-2-2h-6.31l.95-4.57.03-.32c0-.41-.17-.79-.44-1.06L14.17 1 7.59 7.59"
          "C7.22 7.95 7 8.45 7 9v10c0 1.1.9 2 2 2h9c.83 0 1.54-.5 1.84-1.22l3.02-7.05c.09-.23.14-.47.14-.73v-2z",
    "down": "M15 3H6c-.83 0-1.54.5-1.84 1.22l-3.02 7.05c-.09.23-.14.47-.14.73v2c0 1.1.9 2 2 2h6.31l-.95 4.57-.03.32"
            "c0 .41.17.79.44 1.06L9.83 23l6.59-6.59c.36-.36.58-.86.58-1.41V5c0-1.1-.9-2-2-2zm4 0v12h4V3h-4z",
}


def _rating(turn_index: int, turn: Mapping[str, Any]) -> str:
    """Thumbs up and down under a stored answer, the given one pressed, and the comment left with it."""
    if not turn.get("answer_id"):
        return ""
    buttons = "".join(
        f'<button type="button" class="rag-rate" data-turn="{turn_index}" data-rating="{value}" '
        f'aria-pressed="{str(turn.get("rating") == value).lower()}" title="{label}" aria-label="{label}">'
        f'<svg viewBox="0 0 24 24" aria-hidden="true"><path d="{THUMBS[value]}"/></svg></button>'
        for value, label in (("up", "A good answer"), ("down", "A wrong or unhelpful answer")))
    comment = f'<span class="rag-comment">“{escape(str(turn["comment"]))}”</span>' if turn.get("comment") else ""
    return f'<div class="rag-rating">{buttons}{comment}</div>'


def _shown_apart(claims: Sequence[Mapping[str, Any]]) -> str:
    """What the model wrote that no evidence backs: under the answer, marked, never as part of it."""
    if not claims:
        return ""
    items = "".join(f"<li>{escape(str(c['text']))}</li>" for c in claims)
    return (f'<div class="rag-apart" title="No evidence backs these sentences">⚠ Not in the documents:'
            f"<ul>{items}</ul></div>")


def sources(turn_index: int, turn: Mapping[str, Any] | None) -> str:
    """The evidence behind an answer, grouped by document (its title once), each sentence with its number."""
    if not turn or not turn.get("context"):
        return '<div class="rag-empty">The evidence behind the latest answer appears here.</div>'
    cited = {int(c["number"]): c for c in turn.get("citations", [])}
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for item in turn["context"]:
        groups.setdefault(str(item["file"]), []).append(item)
    parts = []
    for file, items in groups.items():
        when = f" · {escape(str(items[0]['date']))}" if items[0].get("date") else ""
        rows = "".join(_evidence_row(turn_index, item, cited) for item in items)
        parts.append(f'<div class="rag-source"><b>{escape(str(items[0]["title"]))}</b>'
                     f'<div class="rag-meta">{escape(file)}{when}</div>{rows}</div>')
    return "".join(parts)


def _evidence_row(turn_index: int, item: Mapping[str, Any], cited: Mapping[int, Mapping[str, Any]]) -> str:
    number = int(item["number"])
    mark = "cited" if number in cited else "evidence"
    if cited.get(number, {}).get("attributed"):
        mark = "cited by attribution"
    if number in cited and not cited[number].get("verified", True):
        mark += " · ⚠ not verified: the sentence does not back the answer"
    snippet = item["text"][:400] + ("…" if len(item["text"]) > 400 else "")
    return (f'<div class="rag-snippet"><a href="#" class="rag-cite" data-turn="{turn_index}" data-n="{number}">'
            f"[{number}]</a> <span class=\"rag-sentence\">{escape(snippet)}</span> <span class=\"rag-meta\">"
            f"{_place(item)} · "
            f"score {item['score']:.3f} · {mark}</span></div>")


def _place(item: Mapping[str, Any]) -> str:
    """Where a sentence stands in its document (the file is named above it): page and section, else offsets."""
    parts = [page_label(item.get("page"), item.get("page_end")), str(item.get("section") or "")]
    return escape(" · ".join(p for p in parts if p) or f"{item['start']}–{item['end']}")


def passage_in_document(passage: Mapping[str, Any], document: str, shown: tuple[int, int] | None = None) -> str:
    """The cited page(s), or the whole document without pages, escaped, with the cited sentence(s) highlighted
    (and scrolled to by the page script), and a link that opens the original file at the page."""
    start, end = int(passage["start"]), int(passage["end"])
    begin, stop = shown or (0, len(document))
    begin, stop = min(begin, start), max(stop, end)
    page = passage.get("page")
    label = page_label(page, passage.get("page_end"))
    place = " · ".join(p for p in (escape(passage["file"]), label, escape(passage.get("section") or "")) if p)
    url = f"/api/files/{quote(str(passage['file']))}" + (f"#page={int(page)}" if page else "")
    opening = f"Open the original at {label}" if label else "Open the original file"
    return (
        f'<div class="rag-doc-head"><b>{escape(passage["title"])}</b><br><span class="rag-meta">{place} · '
        f'<a href="{escape(url)}" target="_blank" rel="noopener" class="rag-original">{opening}</a></span></div>'
        f'<div class="rag-doc">{escape(document[begin:start])}<mark class="rag-mark">{escape(document[start:end])}'
        f"</mark>{escape(document[end:stop])}</div>"
    )


def documents(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return '<div class="rag-empty">No documents yet: upload some above.</div>'
    items = "".join(
        f"<tr><td>{escape(r['file'])}</td><td>{escape(r['title'][:80])}</td><td>{escape(r['lang'])}</td>"
        f"<td>{r.get('pages') or ''}</td><td>{r['chunks']}</td><td>{escape(r['status'])}</td></tr>"
        for r in rows
    )
    return ('<table class="rag-docs"><tr><th>file</th><th>title</th><th>lang</th><th>pages</th><th>chunks</th>'
            f"<th>status</th></tr>{items}</table>")


CSS = """
.rag-turn { margin: 0 0 1.2em 0; }
.rag-q { font-weight: 600; margin-bottom: .3em; white-space: pre-wrap; }
.rag-a { line-height: 1.55; }
.rag-cite { text-decoration: none; font-weight: 600; padding: 0 1px; }
.rag-unsupported { text-decoration: underline dotted #b45309; text-underline-offset: 3px; }
.rag-apart { margin-top: .4em; font-size: .88em; color: #92400e; }
.rag-apart ul { margin: .2em 0 0 1.2em; padding: 0; }
.rag-badge { font-size: .75em; border: 1px solid currentColor; border-radius: 4px; padding: 0 4px; opacity: .7; }
.rag-source { margin-bottom: .9em; }
.rag-meta { opacity: .7; font-size: .85em; }
.rag-snippet { font-size: .9em; margin-top: .2em; white-space: pre-wrap; }
.rag-doc { white-space: pre-wrap; max-height: 60vh; overflow-y: auto; font-size: .92em; line-height: 1.5; }
.rag-mark { background: #ffe58f; color: #111; }
.rag-empty { opacity: .7; }
.rag-docs { width: 100%; border-collapse: collapse; }
.rag-docs td, .rag-docs th { padding: 2px 6px; text-align: left; font-size: .9em; vertical-align: top; }
.rag-docs td:first-child { overflow-wrap: anywhere; min-width: 9em; }
.rag-docs td:nth-child(2) { min-width: 10em; }
.rag-rating { margin-top: .3em; display: flex; gap: .3em; align-items: center; font-size: .9em; }
.rag-rate { border: 1px solid transparent; background: none; border-radius: 6px; padding: 3px 5px; cursor: pointer;
  opacity: .5; color: inherit; line-height: 0; }
.rag-rate svg { width: 15px; height: 15px; fill: currentColor; }
.rag-rate:hover { opacity: 1; border-color: currentColor; }
.rag-rate[aria-pressed="true"] { opacity: 1; color: #2457d6; border-color: #2457d6; background: rgba(36,87,214,.12); }
.rag-comment { opacity: .75; font-style: italic; }
"""

# Clicks on [n] travel to Python as an event carrying the turn and the passage number.
CITATION_CLICKS = (
    "element.addEventListener('click', (e) => { const a = e.target.closest('a.rag-cite'); if (!a) return; "
    "e.preventDefault(); trigger('click', {turn: Number(a.dataset.turn), number: Number(a.dataset.n)}); });"
)
# A thumb raises the `like` event (gr.Chatbot's name for it) with the turn and the rating.
RATING_CLICKS = (
    "element.addEventListener('click', (e) => { const b = e.target.closest('button.rag-rate'); if (!b) return; "
    "e.preventDefault(); trigger('like', {turn: Number(b.dataset.turn), rating: b.dataset.rating}); });"
)
SCROLL_TO_MARK = (
    "watch('value', () => { const m = element.querySelector('mark.rag-mark'); "
    "if (m) m.scrollIntoView({block: 'center'}); });"
)
