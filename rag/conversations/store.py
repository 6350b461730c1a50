"""The conversation store: SQLite under the index folder (its own file, so `rag ingest --rebuild` keeps it).

One transaction per finished answer: the conversation row and the new turn are written together, in WAL mode with
full sync, so a crash loses at most the answer being generated and never leaves a turn without its conversation.
Reads need no lock on the index: `rag feedback list` works while `rag serve` runs.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rag.answer.result import Answer
from rag.conversation import Turn
from rag.conversations.records import (
    RATINGS,
    Conversation,
    ConversationSummary,
    RatedTurn,
    StoredTurn,
    new_id,
    title_of,
    turn_data,
)
from rag.errors import ConversationStoreError, IndexCorruptError, NotFoundError, RagError

FILE_NAME = "conversations.sqlite"
SCHEMA_VERSION = "1"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    owner TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_by_update ON conversations (updated_at);
CREATE INDEX IF NOT EXISTS conversations_by_owner ON conversations (owner, updated_at);
CREATE TABLE IF NOT EXISTS turns (
    answer_id TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    created_at TEXT NOT NULL,
    data TEXT NOT NULL,
    rating TEXT CHECK (rating IN ('up', 'down')),
    comment TEXT,
    rated_at TEXT,
    UNIQUE (conversation_id, position)
);
CREATE INDEX IF NOT EXISTS turns_by_rating ON turns (rated_at) WHERE rating IS NOT NULL;
"""
_TURN = "answer_id, conversation_id, position, question, answer, created_at, data, rating, comment, rated_at"
_SUMMARY = ("SELECT c.id, c.title, c.created_at, c.updated_at, COUNT(t.answer_id), COUNT(t.rating), c.owner != '' "
            "FROM conversations c LEFT JOIN turns t ON t.conversation_id = c.id")
Clock = Callable[[], datetime]


class ConversationStore:
    """`owner` is who started a conversation ("" in the chat UI); reading with `owner=None` sees everyone's."""

    def __init__(self, path: Path, max_conversations: int = 0, clock: Clock | None = None) -> None:
        self.path = path
        self.max_conversations = max_conversations
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()  # one connection for every thread: a transaction must not interleave
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=15)
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = FULL")
            self._db.execute("PRAGMA foreign_keys = ON")
            self._db.executescript(_SCHEMA)
            self._db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
        except sqlite3.DatabaseError as exc:
            raise IndexCorruptError(
                f"the conversation store {path} is unreadable ({exc})",
                "move it away to start with no saved conversations (the document index does not need it)",
            ) from exc

    # -- plumbing --------------------------------------------------------------------------------------------
    def _now(self) -> str:
        return self._clock().astimezone(UTC).isoformat(timespec="milliseconds")

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        with self._lock, _failures(self.path):
            yield self._db

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """One transaction; taken at once (IMMEDIATE), so a second process waits instead of failing half-way."""
        with self._lock, _failures(self.path):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- conversations ---------------------------------------------------------------------------------------
    def record(self, conversation_id: str | None, question: str, answer: Answer, owner: str = "") -> StoredTurn:
        """Store a finished answer as the next turn of its conversation (a new one when `conversation_id` is
        None); the one write of an answer. A conversation continued by someone else keeps its owner."""
        conversation_id = conversation_id or new_id()
        stamp = self._now()
        turn = StoredTurn(answer_id=new_id(), conversation_id=conversation_id, position=0, question=question,
                          answer=answer.answer, created_at=stamp, data=turn_data(answer))
        with self._writing() as db:
            db.execute("INSERT INTO conversations (id, title, owner, created_at, updated_at) VALUES (?, ?, ?, ?, ?) "
                       "ON CONFLICT (id) DO UPDATE SET updated_at = excluded.updated_at",
                       (conversation_id, title_of(question), owner, stamp, stamp))
            position = db.execute("SELECT COALESCE(MAX(position) + 1, 0) FROM turns WHERE conversation_id = ?",
                                  (conversation_id,)).fetchone()[0]
            db.execute(f"INSERT INTO turns ({_TURN}) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL)",
                       (turn.answer_id, conversation_id, position, question, turn.answer, stamp,
                        json.dumps(turn.data, ensure_ascii=False)))
            if self.max_conversations:
                db.execute("DELETE FROM conversations WHERE id IN (SELECT id FROM conversations "
                           "ORDER BY updated_at DESC, rowid DESC LIMIT -1 OFFSET ?)", (self.max_conversations,))
        return StoredTurn(**{**turn.__dict__, "position": position})

    def conversations(self, owner: str | None = None, limit: int = 100) -> list[ConversationSummary]:
        """Newest (most recently continued) first."""
        where, args = ("WHERE c.owner = ?", [owner]) if owner is not None else ("", [])
        with self._reading() as db:
            rows = db.execute(f"{_SUMMARY} {where} GROUP BY c.id ORDER BY c.updated_at DESC, c.rowid DESC LIMIT ?",
                              (*args, limit)).fetchall()
        return [_summary(row) for row in rows]

    def get(self, conversation_id: str, owner: str | None = None) -> Conversation:
        with self._reading() as db:
            row = db.execute(f"{_SUMMARY} WHERE c.id = ? AND (? IS NULL OR c.owner = ?) GROUP BY c.id",
                             (conversation_id, owner, owner)).fetchone()
            turns = db.execute(f"SELECT {_TURN} FROM turns WHERE conversation_id = ? ORDER BY position",
                               (conversation_id,)).fetchall() if row else []
        if row is None:
            raise _no_conversation(conversation_id)
        return Conversation(_summary(row), [_turn(t) for t in turns])

    def history(self, conversation_id: str, owner: str | None = None) -> list[Turn]:
        """The conversation's turns as the next question reads them."""
        return [Turn(t.question, t.answer) for t in self.get(conversation_id, owner).turns]

    def delete(self, conversation_id: str, owner: str | None = None) -> None:
        with self._writing() as db:
            gone = db.execute("DELETE FROM conversations WHERE id = ? AND (? IS NULL OR owner = ?)",
                              (conversation_id, owner, owner)).rowcount
        if not gone:
            raise _no_conversation(conversation_id)

    def prune(self, older_than: timedelta) -> int:
        """Delete the conversations nobody continued for `older_than`, their turns and feedback with them."""
        cutoff = (self._clock() - older_than).astimezone(UTC).isoformat(timespec="milliseconds")
        with self._writing() as db:
            return db.execute("DELETE FROM conversations WHERE updated_at < ?", (cutoff,)).rowcount

    # -- feedback --------------------------------------------------------------------------------------------
    def rate(self, answer_id: str, rating: str, comment: str | None = None, owner: str | None = None) -> StoredTurn:
        """Thumbs up or down on an answer, with an optional comment (None keeps the one given before)."""
        if rating not in RATINGS:
            raise RagError(f"a rating is up or down, not {rating!r}", "send rating: up or down")
        with self._writing() as db:
            changed = db.execute(
                "UPDATE turns SET rating = ?, comment = COALESCE(?, comment), rated_at = ? WHERE answer_id = ? AND "
                "conversation_id IN (SELECT id FROM conversations WHERE ? IS NULL OR owner = ?)",
                (rating, comment.strip() if comment is not None else None, self._now(), answer_id, owner, owner),
            ).rowcount
            row = db.execute(f"SELECT {_TURN} FROM turns WHERE answer_id = ?", (answer_id,)).fetchone()
        if not changed or row is None:
            raise NotFoundError(f"no answer {answer_id!r} to rate", "rate an answer of one of your conversations")
        return _turn(row)

    def ratings(self, rating: str | None = None, limit: int | None = None) -> list[RatedTurn]:
        """Rated answers, most recently rated first; `rating` keeps only up or only down."""
        with self._reading() as db:
            rows = db.execute(
                f"SELECT {', '.join('t.' + c.strip() for c in _TURN.split(','))}, c.title, "
                "(SELECT p.question FROM turns p WHERE p.conversation_id = t.conversation_id "
                "AND p.position = t.position - 1) FROM turns t JOIN conversations c ON c.id = t.conversation_id "
                "WHERE t.rating IS NOT NULL AND (? IS NULL OR t.rating = ?) ORDER BY t.rated_at DESC, t.rowid DESC "
                "LIMIT ?", (rating, rating, -1 if limit is None else limit)).fetchall()
        return [RatedTurn(_turn(row[:10]), row[10], row[11]) for row in rows]

    # -- housekeeping ----------------------------------------------------------------------------------------
    def check(self) -> str:
        """SQLite's own consistency check: "ok", or what is wrong."""
        with self._reading() as db:
            return "; ".join(str(row[0]) for row in db.execute("PRAGMA quick_check").fetchall())

    def close(self) -> None:
        with self._lock:
            self._db.close()


@contextmanager
def _failures(path: Path) -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        raise ConversationStoreError(f"cannot use the conversation store {path} ({exc})",
                                     "check the disk, or move the file away to start afresh") from exc


def _no_conversation(conversation_id: str) -> NotFoundError:
    return NotFoundError(f"no conversation {conversation_id!r}", "it may have been deleted; start a new one")


def _summary(row: Any) -> ConversationSummary:
    return ConversationSummary(id=row[0], title=row[1], created_at=row[2], updated_at=row[3], turns=int(row[4]),
                               rated=int(row[5]), owned=bool(row[6]))


def _turn(row: Any) -> StoredTurn:
    return StoredTurn(answer_id=row[0], conversation_id=row[1], position=int(row[2]), question=row[3],
                      answer=row[4], created_at=row[5], data=json.loads(row[6]), rating=row[7],
                      comment=row[8] or None, rated_at=row[9])  # "" is a comment taken back
