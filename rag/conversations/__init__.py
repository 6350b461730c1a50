"""Conversations that last: every finished answer stored as a turn of its conversation (SQLite under the index
folder), feedback on answers (thumbs up or down and a comment), retention, and feedback exported as a question
set for `rag eval`. Library code: the front ends decide who may see which conversation."""

from rag.conversations.export import question_entry, write_question_set
from rag.conversations.records import Conversation, ConversationSummary, RatedTurn, StoredTurn
from rag.conversations.store import FILE_NAME, ConversationStore

__all__ = ["FILE_NAME", "Conversation", "ConversationStore", "ConversationSummary", "RatedTurn", "StoredTurn",
           "question_entry", "write_question_set"]
