"""Feedback as evaluation questions: each rated answer becomes an entry of a question set `rag eval` runs
(rag/evaluation/questions.py), carrying the answer as it was rated so a later run can say what changed."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rag.conversations.records import RatedTurn
from rag.errors import RagError
from rag.ingest.text import detect_language

ID_PREFIX = "feedback-"


def question_entry(rated: RatedTurn) -> dict[str, Any]:
    """The rated answer's question, its language, the files its answer cited as the expected sources (a
    starting point: for a wrong answer they may be the wrong files), the comment as a note, and the answer."""
    turn = rated.turn
    refused = bool(turn.data.get("refused"))
    entry: dict[str, Any] = {
        "id": ID_PREFIX + turn.answer_id[:12], "question": turn.question,
        "lang": turn.data.get("question_lang") or detect_language(turn.question),
        "expected_sources": turn.cited_files,
    }
    if turn.rating == "up" and refused:
        entry["answerable"] = False  # refusing was right: the documents do not answer it
    if turn.comment:
        entry["note"] = turn.comment
    entry["rated"] = {
        "rating": turn.rating, "answer": turn.answer, "refused": refused, "sources": turn.cited_files,
        "rated_at": turn.rated_at, "answer_id": turn.answer_id, "conversation_id": turn.conversation_id,
        **({"follow_up_to": rated.previous_question} if rated.previous_question else {}),
    }
    return entry


def write_question_set(path: Path, rated: Sequence[RatedTurn]) -> int:
    """Write the entries as JSONL (all or nothing: a half-written set would fail `rag eval` later)."""
    entries = [question_entry(r) for r in rated]
    part = path.with_name(path.name + ".part")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with part.open("w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(e, ensure_ascii=False) + "\n" for e in entries)
        os.replace(part, path)
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise RagError(f"cannot write {path} ({exc.strerror or exc})", "choose another --out file") from exc
    return len(entries)
