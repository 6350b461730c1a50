"""What an answer is: its text, citations, the passages behind it, the claims nothing backs, timings; and the
stream a front end iterates while it is generated."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from rag.search.retrieve import Passage


@dataclass(frozen=True)
class Citation:
    number: int
    file: str
    title: str
    start: int
    end: int
    text: str
    score: float
    attributed: bool = False
    verified: bool = True  # every sentence citing it is backed by the passage (numbers and content words)


@dataclass(frozen=True)
class Claim:
    """A sentence of the answer, by character offsets into `Answer.answer`."""

    start: int
    end: int
    text: str


@dataclass
class Answer:
    question: str
    standalone_question: str
    answer: str
    raw_answer: str
    refused: bool
    question_lang: str
    answer_lang: str
    citations: list[Citation]
    passages: list[Passage]  # everything retrieved, in rank order
    context: list[Passage]  # what the model was given, numbered from 1 (neighbours merged)
    used_passages: int
    relevance: dict[str, float | bool | None]  # best dense cosine, the gate's threshold, whether it refused
    invalid_citations: list[int]
    timings: dict[str, float]
    models: dict[str, str]
    notices: list[str] = field(default_factory=list)
    unsupported: list[Claim] = field(default_factory=list)  # claims no passage backs: shown with a warning

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["context"] = [{**p.to_dict(), "number": i + 1} for i, p in enumerate(self.context)]
        data["passages"] = [{**p.to_dict(), "number": self._number_of(p)} for p in self.passages]
        return data

    def _number_of(self, passage: Passage) -> int | None:
        """The number under which a retrieved passage reached the model (inside a merged one), if it did."""
        for i, given in enumerate(self.context):
            if given.file == passage.file and given.start <= passage.start and passage.end <= given.end:
                return i + 1
        return None


class AnswerStream:
    """Iterate to receive the answer text as it is generated; `result` holds the finished Answer."""

    def __init__(self, run: Callable[[AnswerStream], Iterator[str]]) -> None:
        self._result: Answer | None = None
        self.cancelled = threading.Event()
        self._chunks = run(self)

    def __iter__(self) -> Iterator[str]:
        yield from self._chunks

    def cancel(self) -> None:
        """Stop generating (a Stop button, a closed tab); safe from any thread. The answer so far is kept."""
        self.cancelled.set()

    @property
    def result(self) -> Answer:
        if self._result is None:
            for _ in self._chunks:
                pass
        assert self._result is not None
        return self._result

    def finish(self, answer: Answer) -> None:
        self._result = answer
