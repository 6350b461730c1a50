"""Questions that came from feedback (`rag feedback export`): whether today's answer differs from the one
somebody rated, and what that looks like in the summary and the report."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rag.answer.result import Answer

SHOWN_CHARS = 160


def _same_text(a: str, b: str) -> bool:
    return " ".join(a.split()) == " ".join(b.split())


def rated_outcome(rated: Mapping[str, Any] | None, answer: Answer | None) -> dict[str, Any] | None:
    """How the answer compares with the rated one; None when the question was not rated or nothing was answered
    (a retrieval-only run)."""
    if rated is None or answer is None:
        return None
    sources_now = sorted({c.file for c in answer.citations})
    sources_before = sorted(set(rated.get("sources") or []))
    changed = not _same_text(str(rated["answer"]), answer.answer)
    return {
        "rating": rated["rating"], "changed": changed, "rated_at": rated.get("rated_at"),
        "answer_before": rated["answer"], "sources_before": sources_before, "sources_now": sources_now,
        "sources_changed": sources_before != sources_now,
        "refused_before": bool(rated.get("refused")), "refused_now": answer.refused,
    }


def summarise(records: Sequence[Mapping[str, Any]]) -> dict[str, int] | None:
    outcomes = [r["rated"] for r in records if r.get("rated")]
    if not outcomes:
        return None
    return {"rated": len(outcomes), "changed": sum(o["changed"] for o in outcomes),
            "changed_down": sum(o["changed"] for o in outcomes if o["rating"] == "down"),
            "changed_up": sum(o["changed"] for o in outcomes if o["rating"] == "up")}


def changed_records(records: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [r for r in records if r.get("rated") and r["rated"]["changed"]]


def headline(summary: Mapping[str, int]) -> str:
    return (f"{summary['changed']} of {summary['rated']} rated answers changed since they were rated "
            f"({summary['changed_down']} rated down, {summary['changed_up']} rated up)")


def report_lines(records: Sequence[Mapping[str, Any]], cell: Any) -> list[str]:
    """The report's section on rated answers; `cell` makes one Markdown table row of its cells."""
    summary = summarise(records)
    if summary is None:
        return []
    lines = ["## Answers rated in feedback", "", headline(summary) + ".", ""]
    changed = changed_records(records)
    if changed:
        lines += [cell(["id", "rated", "answer when rated", "answer now"]), cell(["---"] * 4)]
        lines += [cell([r["id"], r["rated"]["rating"], short(r["rated"]["answer_before"]), short(r["answer"])])
                  for r in changed]
        lines.append("")
    return lines


def short(text: str | None) -> str:
    shown = " ".join((text or "").split())
    return shown[:SHOWN_CHARS] + ("…" if len(shown) > SHOWN_CHARS else "")
