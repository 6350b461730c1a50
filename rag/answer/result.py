"""What an answer is: its text, citations, the passages behind it, the claims nothing backs, timings; and the
stream a front end iterates while it is generated."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from rag.answer.evidence import Evidence
from rag.search.retrieve import Passage


@dataclass(frozen=True)
class Citation:
    """[n] of an answer: the exact sentence span in its document it points at, and the passage it came from."""

    number: int
    file: str
    title: str
    start: int  # the cited sentence(s), in the document's text
    end: int
    text: str
    score: float
    attributed: bool = False  # rag added the marker: the sentence had none, and this evidence backs it
    verified: bool = True  # every sentence citing it is backed by it (numbers and content words, or meaning)
    date: str | None = None
    passage_id: str = ""
    passage_start: int = 0
    passage_end: int = 0
    passage_text: str = ""  # the whole passage, so a front end can show the sentence highlighted in it
    page: int | None = None  # first and last page of the cited sentence(s); None for formats without pages
    page_end: int | None = None
    section: str = ""

    @classmethod
    def of(cls, evidence: Evidence, passage_text: str = "", attributed: bool = False,
           verified: bool = True) -> Citation:
        return cls(number=evidence.number, file=evidence.file, title=evidence.title, start=evidence.start,
                   end=evidence.end, text=evidence.text, score=evidence.score, attributed=attributed,
                   verified=verified, date=evidence.date, passage_id=evidence.passage_id,
                   passage_start=evidence.passage_start, passage_end=evidence.passage_end,
                   passage_text=passage_text, page=evidence.page, page_end=evidence.page_end,
                   section=evidence.section)


@dataclass(frozen=True)
class Claim:
    """A sentence no evidence backs. With grounding "flag" it stands in the answer, at these offsets into
    `Answer.answer`; with "strict" it is shown apart, and the offsets are into `Answer.raw_answer`."""

    start: int
    end: int
    text: str


# How the answer was made: the model wrote it from the evidence, rag quoted the evidence, or rag refused.
AnswerMode = Literal["generated", "extractive", "refused"]


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
    context: list[Evidence]  # the evidence sentences (given to the model, or quoted), numbered from 1
    used_passages: int  # evidence pieces given
    relevance: dict[str, float | bool | None]  # best dense cosine, the gate's threshold, whether it refused
    invalid_citations: list[int]
    timings: dict[str, float]
    models: dict[str, str]
    notices: list[str] = field(default_factory=list)
    unsupported: list[Claim] = field(default_factory=list)  # claims no evidence backs (see Claim)
    answer_mode: AnswerMode = "generated"
    grounding: str = "strict"
    coverage: dict[str, object] = field(default_factory=dict)  # the answerability check (answerable.Coverage)

    @property
    def evidence(self) -> list[Evidence]:
        return self.context

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["context"] = [e.to_dict() for e in self.context]
        data["evidence"] = data["context"]
        data["passages"] = [{**p.to_dict(), **self._numbers_of(p)} for p in self.passages]
        return data

    def _numbers_of(self, passage: Passage) -> dict[str, Any]:
        """The evidence numbers that came from a retrieved passage (the first as `number`), if any did."""
        numbers = [e.number for e in self.context if e.passage_id == passage.id]
        return {"number": numbers[0] if numbers else None, "evidence_numbers": numbers}


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
