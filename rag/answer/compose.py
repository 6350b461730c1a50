"""The answer stage's plan for one question: choose the evidence from the retrieved passages within a budget sized
by the model's measured speed, check that it covers the question, and pick the way to answer (refuse, quote,
or let the model write)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np

from rag.answer import answerable, evidence, respond
from rag.answer.result import AnswerStream
from rag.config import Settings
from rag.conversation import Turn, conversation_prefix
from rag.models.calibration import answerable_coverage, can_answer
from rag.models.llm import ChatLLM
from rag.search.retrieve import Passage
from rag.store import lexical

_TEMPLATE_TOKENS = 40  # the user message's own words and the chat template around it


@dataclass(frozen=True)
class Question:
    text: str  # as asked
    standalone: str  # what is searched and answered (a follow-up may have been rewritten)
    lang: str
    history: Sequence[Turn]
    started: float


def answer_mode(setting: str, llm_name: str) -> str:
    """"generate" or "extractive": auto quotes the evidence with models measured too weak to answer."""
    if setting == "auto":
        return "generate" if can_answer(llm_name) else "extractive"
    return setting


def evidence_budget(rate: float | None, target_s: float, fixed_tokens: int, ceiling: int) -> int:
    """Tokens of evidence such that reading the whole prompt takes about `target_s` at the measured prompt speed
    (the floor of a few sentences is the selection's); the ceiling while the speed is unknown."""
    if not rate:
        return ceiling
    return max(0, min(ceiling, int(rate * target_s) - fixed_tokens))


def within_budget(chosen: Sequence[evidence.Evidence], budget_tokens: int, count_tokens: Callable[[str], int],
                  floor: int = 3) -> list[evidence.Evidence]:
    """The first pieces that fit the budget (at least `floor`), in their order."""
    kept: list[evidence.Evidence] = []
    used = 0
    for item in chosen:
        cost = count_tokens(item.text) + 6
        if used + cost > budget_tokens and len(kept) >= floor:
            break
        kept.append(item)
        used += cost
    return kept


class Composer:
    """One per pipeline: it keeps the sentence vectors of the passages it has read."""

    def __init__(self, settings: Settings, embed_sentences: Callable[[Sequence[str]], np.ndarray],
                 embed_query: Callable[[str], list[float]]) -> None:
        self.settings = settings
        self.vectors = evidence.SentenceVectors(embed_sentences)
        self._embed_query = embed_query
        self._choosing_s = 0.5  # a moving average of the time evidence selection takes

    def embed_query(self, text: str) -> list[float]:
        return self._embed_query(text)

    def budget(self, llm: ChatLLM | None, question: Question, window_tokens: int) -> int:
        """`window_tokens`: what the model's context window leaves for evidence."""
        ceiling = min(self.settings.context_tokens, window_tokens)
        if llm is None:
            return ceiling
        rate = llm.prompt_tokens_per_s() if hasattr(llm, "prompt_tokens_per_s") else None
        fixed = llm.count_tokens(conversation_prefix(question.lang, [])[0]["content"]) \
            + llm.count_tokens(question.standalone) + _TEMPLATE_TOKENS
        # What the model may spend reading: the target less the time already gone (search) and the time choosing
        # the evidence takes (as measured on the last questions).
        left = self.settings.ttft_target_s - (time.perf_counter() - question.started) - self._choosing_s
        return evidence_budget(rate, max(0.0, left), fixed, ceiling)

    def choose(self, question: Question, passages: Sequence[Passage], budget: int,
               count_tokens: Callable[[str], int], document_text: Callable[[str], str]
               ) -> tuple[list[evidence.Evidence], answerable.Coverage]:
        """The evidence (numbered, grouped by document) and whether it covers the question."""
        found = evidence.candidates(passages, document_text)
        vector = np.asarray(self._embed_query(question.standalone), dtype=np.float32)
        ranked = evidence.score_sentences(vector, question.standalone, question.lang, found, self.vectors)
        chosen = evidence.select(ranked, budget, count_tokens, self.settings.min_evidence_sentences)
        chosen = [replace(e, passage_end=min(e.passage_end, len(document_text(e.file)))) for e in chosen]
        by_score = sorted(chosen, key=lambda e: -e.score)
        pool = [set(lexical.terms(c.text, question.lang)) for c in found]
        around = {e.passage_id for e in by_score[: answerable.TOP_EVIDENCE]}
        surroundings = [t for p in passages if p.id in around for t in (p.text, p.title)]
        coverage = answerable.check(question.standalone, question.lang, by_score, pool, answerable_coverage(),
                                    surroundings)
        return chosen, coverage

    @staticmethod
    def _surroundings(chosen: Sequence[evidence.Evidence], document_text: Callable[[str], str]) -> dict[int, str]:
        """Each evidence piece's text in place, `passage_start`..`passage_end` of its document."""
        return {e.number: document_text(e.file)[e.passage_start : e.passage_end] for e in chosen}

    def stream(self, question: Question, passages: list[Passage], relevance: dict[str, float | bool | None],
               llm: ChatLLM, *, mode: str, max_tokens: int, window_tokens: int, timings: dict[str, float],
               models: dict[str, str], notices: list[str], document_text: Callable[[str], str], judge: respond.Judge,
               after: Callable[[AnswerStream], None] | None = None) -> AnswerStream:
        started = time.perf_counter()
        budget = self.budget(llm if mode == "generate" else None, question, window_tokens)
        if relevance["gated"]:  # nothing is close enough to be evidence: the plain refusal, no closest quote
            chosen, coverage = [], answerable.Coverage(False, None, None, reason="no passage is relevant")
        else:
            chosen, coverage = self.choose(question, passages, budget, llm.count_tokens, document_text)
        took = time.perf_counter() - started
        if chosen:
            self._choosing_s += 0.3 * (took - self._choosing_s)
        timings.update(evidence_ms=round(took * 1000, 1), evidence_budget_tokens=budget,
                       evidence_sentences=len(chosen))
        prepared = self._prepared(question, passages, chosen, relevance, coverage, timings, models, notices,
                                  document_text, llm if mode == "generate" else None)

        def run(stream: AnswerStream) -> Iterator[str]:
            if relevance["gated"] or not coverage.answerable or not chosen:
                yield from respond.refused(stream, prepared)
            elif mode == "extractive":
                yield from respond.extractive(stream, prepared)
            else:
                yield from respond.generated(stream, prepared, llm, max_tokens, self.settings.temperature, judge)
            if after is not None:
                after(stream)

        return AnswerStream(run)

    def stream_given(self, question: Question, chosen: list[evidence.Evidence], passages: list[Passage],
                     write: Callable[[list[evidence.Evidence]], str], llm: ChatLLM, *, mode: str, max_tokens: int,
                     window_tokens: int, timings: dict[str, float], models: dict[str, str], notices: list[str],
                     document_text: Callable[[str], str], judge: respond.Judge) -> AnswerStream:
        """An answer from evidence chosen by the question's scope (a whole document, the corpus). `write` makes
        rag's own answer from evidence: shown in extractive mode, with no evidence, and when nothing the model
        wrote is backed; otherwise the model writes from the evidence that fits the budget, checked as always."""
        if mode == "generate" and chosen:
            budget = self.budget(llm, question, window_tokens)
            kept = within_budget(chosen, budget, llm.count_tokens, self.settings.min_evidence_sentences)
            chosen = [replace(e, number=n) for n, e in enumerate(kept, 1)]
            timings["evidence_budget_tokens"] = budget
        timings["evidence_sentences"] = len(chosen)
        coverage = answerable.Coverage(bool(chosen), None, None, reason="" if chosen else "no matching document")
        relevance = {"top_score": max((e.score for e in chosen), default=None), "threshold": None, "gated": False}
        prepared = self._prepared(question, passages, chosen, relevance, coverage, timings, models, notices,
                                  document_text, llm if mode == "generate" else None)
        prepared.fallback = written = write(chosen)

        def run(stream: AnswerStream) -> Iterator[str]:
            if mode == "generate" and chosen:
                yield from respond.generated(stream, prepared, llm, max_tokens, self.settings.temperature, judge)
            else:
                yield from respond.written(stream, prepared, written, "extractive" if chosen else "refused")

        return AnswerStream(run)

    def _prepared(self, question: Question, passages: list[Passage], chosen: list[evidence.Evidence],
                  relevance: dict[str, float | bool | None], coverage: answerable.Coverage,
                  timings: dict[str, float], models: dict[str, str], notices: list[str],
                  document_text: Callable[[str], str], generating: ChatLLM | None) -> respond.Prepared:
        if generating is not None and (rate := getattr(generating, "prompt_tokens_per_s", lambda: None)()):
            timings["prompt_tokens_per_s"] = round(rate, 1)
        return respond.Prepared(
            question=question.text, standalone=question.standalone, lang=question.lang, passages=list(passages),
            evidence=chosen, history=question.history, relevance=relevance, coverage=coverage,
            grounding=self.settings.grounding, timings=timings, models=models, notices=notices,
            started=question.started, passage_text=self._surroundings(chosen, document_text),
        )
