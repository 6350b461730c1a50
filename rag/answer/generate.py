"""passages → prompt → streamed tokens → citations checked against the passages."""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Iterator, Sequence

from rag import prompts
from rag.answer import grounding
from rag.answer.result import Answer, AnswerStream, Citation, Claim
from rag.answer.support import lexically_backed
from rag.conversation import Turn, conversation_prefix
from rag.ingest.text import detect_language
from rag.models.llm import ChatLLM, Message
from rag.search.retrieve import Passage

_SOURCE_MARKER = re.compile(r"\[(\d{1,3})\]")


def prompt_passage_text(text: str) -> str:
    # The source's own reference markers ("[5]") must not read as our citation numbers, nor its tags as our fence.
    return prompts.defuse_fences(_SOURCE_MARKER.sub("", text))


def build_messages(question: str, lang: str, passages: Sequence[Passage], history: Sequence[Turn]) -> list[Message]:
    blocks = "\n".join(
        prompts.template("passage").format(
            number=i + 1, title=prompts.defuse_fences(p.title.replace('"', "'")), text=prompt_passage_text(p.text)
        )
        for i, p in enumerate(passages)
    )
    return [*conversation_prefix(lang, history), {"role": "user", "content": prompts.template("qa_user").format(
        passages=blocks, question=prompts.defuse_fences(question))}]


def guard_repetition(chunks: Iterator[str], min_period: int = 4, max_period: int = 150) -> Iterator[str]:
    """Stop a model that has started repeating itself (the same text three times in a row)."""
    text = ""
    for chunk in chunks:
        yield chunk
        text += chunk
        tail = text[-3 * max_period :]
        if any(tail.endswith(tail[-p:] * 3) for p in range(min_period, min(max_period, len(tail) // 3) + 1)):
            return


def finish_answer(
    raw: str, visible: str, passages: Sequence[Passage], question: str = "",
    backs: Callable[[str, Passage], bool] = lexically_backed,
) -> tuple[str, bool, list[Citation], list[Claim]]:
    """The answer as shown, whether it is a refusal, its citations (attributed ones marked) and the claims that
    no passage backs (`backs`: whether a passage backs a sentence)."""
    refused = prompts.is_refusal(raw)
    text = grounding.clean_markers(visible).strip()
    if refused:
        return grounding.clean_markers(_SOURCE_MARKER.sub("", text)).strip(), True, [], []
    @functools.cache  # each (sentence, passage) is judged once: to attribute, to verify, to check the claim
    def judged(plain: str, number: int) -> bool:
        return backs(plain, passages[number - 1])

    def backed(sentence: str, number: int) -> bool:
        return judged(grounding.without_markers(sentence), number)

    attributions = grounding.attribute_sentences(text, [p.text for p in passages], question, backs=backed)
    text = grounding.insert_markers(text, attributions)
    attributed = {a.passage for a in attributions}
    citing = grounding.sentences_citing(text)

    citations = []
    for number in grounding.cited_numbers(text):
        p = passages[number - 1]
        citations.append(Citation(
            number=number, file=p.file, title=p.title, start=p.start, end=p.end, text=p.text, score=p.score,
            attributed=number in attributed and number not in grounding.cited_numbers(visible),
            verified=all(backed(s, number) for s in citing.get(number, [])),
        ))
    spans = grounding.unsupported_sentences(text, backed, len(passages), question)
    return text, False, citations, [Claim(start, end, text[start:end]) for start, end in spans]


def generate(
    stream: AnswerStream,
    *,
    question: str,
    standalone: str,
    lang: str,
    passages: list[Passage],
    used: list[Passage],
    history: Sequence[Turn],
    relevance: dict[str, float | bool | None],
    llm: ChatLLM,
    max_tokens: int,
    temperature: float,
    timings: dict[str, float],
    models: dict[str, str],
    notices: list[str],
    started: float,
    backs: Callable[[str, Passage], bool] = lexically_backed,
) -> Iterator[str]:
    """Stream the answer and record the finished Answer on `stream`."""
    invalid: list[int] = []
    raw_parts: list[str] = []
    visible_parts: list[str] = []
    first_at = last_at = 0.0
    if used:
        messages = build_messages(standalone, lang, used, history)
        raw = guard_repetition(llm.stream_chat(messages, max_tokens, temperature))

        def recording(chunks: Iterator[str]) -> Iterator[str]:
            nonlocal first_at, last_at
            for chunk in chunks:
                if stream.cancelled.is_set():
                    break
                last_at = time.perf_counter()
                first_at = first_at or last_at
                raw_parts.append(chunk)
                yield chunk

        try:
            for piece in grounding.filter_citation_stream(recording(raw), len(used), invalid):
                visible_parts.append(piece)
                yield piece
        finally:
            raw.close()  # frees the model at once when the reader stops early
    else:
        refusal = prompts.refusal(lang)
        raw_parts.append(refusal)
        visible_parts.append(refusal)
        yield refusal
    raw_text, visible = "".join(raw_parts), "".join(visible_parts)
    text, refused, citations, unsupported = finish_answer(raw_text, visible, used, standalone, backs)
    timings.update(stream_timings(started, first_at, last_at, len(raw_parts) if used else 0))
    stream.finish(Answer(
        question=question, standalone_question=standalone, answer=text, raw_answer=raw_text, refused=refused,
        question_lang=lang, answer_lang=detect_language(text, hint=lang), citations=citations, passages=passages,
        context=list(used), used_passages=len(used), relevance=relevance, invalid_citations=invalid,
        timings=timings, models=models, notices=notices, unsupported=unsupported,
    ))


def stream_timings(started: float, first_at: float, last_at: float, generated: int) -> dict[str, float]:
    """Time to first token and the whole answer from `started`, and the generation rate between first and last."""
    end = time.perf_counter()
    return {
        "ttft_ms": round(((first_at or end) - started) * 1000, 1),
        "total_ms": round((end - started) * 1000, 1),
        "generated_tokens": generated,
        "tokens_per_s": round((generated - 1) / (last_at - first_at), 1)
        if generated > 1 and last_at > first_at else 0.0,
    }


def relevance_gate(passages: Sequence[Passage], threshold: float | None) -> dict[str, float | bool | None]:
    """Whether the best passage is too far from the question (dense cosine) for the documents to answer it."""
    best = max((p.score for p in passages), default=None)
    return {"top_score": best, "threshold": threshold,
            "gated": best is None or (threshold is not None and best < threshold)}
