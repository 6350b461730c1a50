"""The three ways an answer is made from the evidence, each streamed and finished as an Answer: the model writes
it (every sentence checked against the evidence), rag quotes the best evidence (extractive), or rag refuses and
shows the closest evidence."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field

from rag import prompts
from rag.answer import grounding
from rag.answer.answerable import Coverage
from rag.answer.evidence import Evidence
from rag.answer.extractive import extractive_answer, refusal_with_closest
from rag.answer.gate import Gate
from rag.answer.generate import build_messages, guard_repetition, read_ahead, stream_timings
from rag.answer.result import Answer, AnswerMode, AnswerStream, Citation, Claim
from rag.conversation import Turn
from rag.ingest.text import detect_language
from rag.models.llm import ChatLLM
from rag.search.retrieve import Passage

Judge = Callable[[str, Evidence], bool]  # whether an evidence sentence backs a sentence of the answer


@dataclass
class Prepared:
    """Everything the answer stage decided before any text is written."""

    question: str
    standalone: str
    lang: str
    passages: list[Passage]
    evidence: list[Evidence]
    history: Sequence[Turn]
    relevance: dict[str, float | bool | None]
    coverage: Coverage
    grounding: str
    timings: dict[str, float]
    models: dict[str, str]
    notices: list[str]
    started: float
    passage_text: dict[int, str] = field(default_factory=dict)  # evidence number → the passage text around it
    # rag's own answer from this evidence (a document's key points), shown instead of a refusal when nothing the
    # model wrote is backed: the evidence was chosen to answer, so quoting it beats saying the documents don't
    fallback: str = ""


def cite(prepared: Prepared, numbers: Sequence[int], attributed: Collection[int] = (),
         unverified: Collection[int] = ()) -> list[Citation]:
    by_number = {e.number: e for e in prepared.evidence}
    return [Citation.of(by_number[n], prepared.passage_text.get(n, ""), n in attributed, n not in unverified)
            for n in numbers if n in by_number]


def finish(stream: AnswerStream, prepared: Prepared, *, text: str, raw: str, mode: AnswerMode,
           citations: list[Citation], unsupported: Sequence[Claim] = (), invalid: Sequence[int] = (),
           answer_lang: str | None = None) -> None:
    stream.finish(Answer(
        question=prepared.question, standalone_question=prepared.standalone, answer=text, raw_answer=raw,
        refused=mode == "refused", question_lang=prepared.lang,
        answer_lang=answer_lang or detect_language(text, hint=prepared.lang), citations=citations,
        passages=prepared.passages, context=prepared.evidence, used_passages=len(prepared.evidence),
        relevance=prepared.relevance, invalid_citations=list(invalid), timings=prepared.timings,
        models=prepared.models, notices=prepared.notices, unsupported=list(unsupported), answer_mode=mode,
        grounding=prepared.grounding, coverage=prepared.coverage.to_dict(),
    ))


def refused(stream: AnswerStream, prepared: Prepared) -> Iterator[str]:
    """The refusal in the question's language, then the closest evidence, quoted and cited."""
    yield from written(stream, prepared, refusal_with_closest(prepared.lang, prepared.evidence), "refused")


def extractive(stream: AnswerStream, prepared: Prepared) -> Iterator[str]:
    """The best evidence sentences, quoted and cited: no model, so always grounded."""
    yield from written(stream, prepared, extractive_answer(prepared.lang, prepared.evidence), "extractive")


def written(stream: AnswerStream, prepared: Prepared, text: str, mode: AnswerMode) -> Iterator[str]:
    """An answer no model wrote: one piece, nothing raw, its citations the evidence it quotes."""
    yield text
    prepared.timings.update(stream_timings(prepared.started, 0.0, 0.0, 0), prompt_tokens=0)
    finish(stream, prepared, text=text, raw="", mode=mode, answer_lang=prepared.lang,
           citations=cite(prepared, grounding.cited_numbers(text)))


def generated(stream: AnswerStream, prepared: Prepared, llm: ChatLLM, max_tokens: int, temperature: float,
              judge: Judge) -> Iterator[str]:
    """The model's answer, streamed a sentence at a time (strict) or as it comes (flag), every [n] checked."""
    evidence = prepared.evidence

    @functools.cache  # each (sentence, evidence) is judged once: to release, attribute, verify and flag
    def backs(plain: str, number: int) -> bool:
        return judge(plain, evidence[number - 1])

    gate = Gate(evidence, backs, prepared.standalone, strict=prepared.grounding == "strict")
    invalid: list[int] = []
    raw_parts: list[str] = []
    times = [0.0, 0.0]
    messages = build_messages(prepared.standalone, prepared.lang, evidence, prepared.history)
    raw = guard_repetition(llm.stream_chat(messages, max_tokens, temperature))

    def recording(chunks: Iterator[str]) -> Iterator[str]:
        for chunk in chunks:
            if stream.cancelled.is_set():
                break
            times[1] = time.perf_counter()
            times[0] = times[0] or times[1]
            raw_parts.append(chunk)
            yield chunk

    tokens = read_ahead(recording(raw))  # the model's side runs on its own thread, timed there
    try:
        yield from gate.run(grounding.filter_citation_stream(tokens, len(evidence), invalid))
    finally:
        tokens.close()  # stops generation when the reader stops early,
        raw.close()  # and frees the model at once
    raw_text = "".join(raw_parts)
    prepared.timings.update(stream_timings(prepared.started, times[0], times[1], len(raw_parts)),
                            prompt_tokens=getattr(getattr(llm, "rate", None), "last_prompt_tokens", 0))
    if gate.strict:
        yield from _finish_strict(stream, prepared, gate, raw_text, invalid, backs)
    else:
        _finish_flagged(stream, prepared, "".join(gate.released), raw_text, invalid, backs)


def _finish_strict(stream: AnswerStream, prepared: Prepared, gate: Gate, raw: str, invalid: list[int],
                   backs: Callable[[str, int], bool]) -> Iterator[str]:
    held = [_claim_in(raw, text) for text in gate.held]
    if gate.backed_claims == 0:  # nothing the evidence backs is left (or the model refused): rag refuses
        text = prepared.fallback or refusal_with_closest(prepared.lang, prepared.evidence)
        yield ("\n\n" if "".join(gate.released).strip() else "") + text
        finish(stream, prepared, text=text, raw=raw, mode="extractive" if prepared.fallback else "refused",
               answer_lang=prepared.lang,
               citations=cite(prepared, grounding.cited_numbers(text)), unsupported=held, invalid=invalid)
        return
    text = grounding.clean_markers("".join(gate.released)).strip()
    finish(stream, prepared, text=text, raw=raw, mode="generated", invalid=invalid, unsupported=held,
           citations=_checked_citations(prepared, text, raw, gate.attributed, backs))


def _finish_flagged(stream: AnswerStream, prepared: Prepared, visible: str, raw: str, invalid: list[int],
                    backs: Callable[[str, int], bool]) -> None:
    """grounding = "flag": the answer as written, uncited sentences attributed, unbacked claims marked in it."""
    text = grounding.clean_markers(visible).strip()
    if prompts.is_refusal(raw):
        text = prepared.fallback or refusal_with_closest(prepared.lang, prepared.evidence)
        finish(stream, prepared, text=text, raw=raw, mode="extractive" if prepared.fallback else "refused",
               answer_lang=prepared.lang,
               citations=cite(prepared, grounding.cited_numbers(text)), invalid=invalid)
        return

    def backed(sentence: str, number: int) -> bool:
        return backs(grounding.without_markers(sentence), number)

    found = grounding.attribute_sentences(text, [e.text for e in prepared.evidence], prepared.standalone,
                                          backs=backed)
    text = grounding.insert_markers(text, found)
    spans = grounding.unsupported_sentences(text, backed, len(prepared.evidence), prepared.standalone)
    finish(stream, prepared, text=text, raw=raw, mode="generated", invalid=invalid,
           unsupported=[Claim(start, end, text[start:end]) for start, end in spans],
           citations=_checked_citations(prepared, text, raw, {a.passage for a in found}, backs))


def _checked_citations(prepared: Prepared, text: str, raw: str, attributed: set[int],
                       backs: Callable[[str, int], bool]) -> list[Citation]:
    written = set(grounding.cited_numbers(raw))
    citing = grounding.sentences_citing(text)
    unverified = {n for n, sentences in citing.items()
                  if not all(backs(grounding.without_markers(s), n) for s in sentences)}
    return cite(prepared, grounding.cited_numbers(text), attributed - written, unverified)


def _claim_in(raw: str, text: str) -> Claim:
    """A held sentence, at its offsets in the raw answer when it stands there as written."""
    start = raw.find(text)
    return Claim(start, start + len(text), text) if start >= 0 else Claim(0, 0, text)
