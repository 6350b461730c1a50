"""What the conversation store holds: a conversation's summary, its turns (each a finished answer with what it
cited, and the feedback it got), and how an Answer becomes a stored turn."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any, Literal

from rag.answer.result import Answer

Rating = Literal["up", "down"]
RATINGS: tuple[str, ...] = ("up", "down")
TITLE_CHARS = 80
# Of Answer.to_dict(): enough to show an answer again exactly as it was (citations clickable, unsupported claims
# marked) and to say later what it was made from. Not the retrieved passages: they are large and say little then.
_KEPT = ("standalone_question", "refused", "question_lang", "answer_lang", "citations", "evidence", "unsupported",
         "answer_mode", "grounding", "invalid_citations", "models", "timings", "notices")


def new_id() -> str:
    """Unguessable: an id is never a way into someone else's conversation, but it should not be a hint either."""
    return secrets.token_hex(12)


def title_of(question: str) -> str:
    text = " ".join(question.split())
    return text if len(text) <= TITLE_CHARS else text[: TITLE_CHARS - 1].rstrip() + "…"


def turn_data(answer: Answer) -> dict[str, Any]:
    data = answer.to_dict()
    return {key: data[key] for key in _KEPT if key in data}


@dataclass(frozen=True)
class ConversationSummary:
    id: str
    title: str
    created_at: str
    updated_at: str
    turns: int
    rated: int
    owned: bool  # started by a client that named itself (a widget's browser), not in the chat UI

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "created_at": self.created_at, "updated_at": self.updated_at,
                "turns": self.turns, "rated": self.rated, "source": "client" if self.owned else "ui"}


@dataclass(frozen=True)
class StoredTurn:
    answer_id: str
    conversation_id: str
    position: int
    question: str
    answer: str
    created_at: str
    data: dict[str, Any] = field(default_factory=dict)
    rating: str | None = None
    comment: str | None = None
    rated_at: str | None = None

    @property
    def cited_files(self) -> list[str]:
        return sorted({str(c["file"]) for c in self.data.get("citations", [])})

    def to_dict(self) -> dict[str, Any]:
        return {"answer_id": self.answer_id, "position": self.position, "question": self.question,
                "answer": self.answer, **self.data, "created_at": self.created_at, "rating": self.rating,
                "comment": self.comment, "rated_at": self.rated_at}


@dataclass(frozen=True)
class Conversation:
    summary: ConversationSummary
    turns: list[StoredTurn]

    def to_dict(self) -> dict[str, Any]:
        return {**self.summary.to_dict(), "turns": [t.to_dict() for t in self.turns]}


@dataclass(frozen=True)
class RatedTurn:
    """An answer with its feedback, and the question before it (a follow-up is read with it)."""

    turn: StoredTurn
    title: str
    previous_question: str | None = None

    def to_dict(self) -> dict[str, Any]:
        turn = self.turn
        return {"answer_id": turn.answer_id, "conversation_id": turn.conversation_id, "title": self.title,
                "question": turn.question, "answer": turn.answer, "rating": turn.rating, "comment": turn.comment,
                "rated_at": turn.rated_at, "lang": turn.data.get("question_lang"),
                "refused": bool(turn.data.get("refused")), "cited_files": turn.cited_files,
                "follow_up_to": self.previous_question}
