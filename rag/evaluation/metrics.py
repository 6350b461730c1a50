"""Scoring as pure functions: one question at a time (`score_question`), then a group of records
(`summarise`). No I/O and no models, so every number in a report can be checked by hand in a test.

A score of None means "does not apply" (no expected sources, a retrieval-only run, ...) and is left out of
means rather than counted as 0 or 1, so a question set without evidence quotes does not drag a metric down."""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rag import prompts
from rag.answer import grounding

# Same shape as the product's own marker pattern ([3], [1, 2]): these are what the model was asked to write.
_MARKER = re.compile(r"\[\s*\d{1,3}(?:\s*,\s*\d{1,3})*\s*\]")
_SPACE = re.compile(r"\s+")

# (key in summary, label, format) in display order; shared by the CLI table, report.md and compare.
METRICS: list[tuple[str, str, str]] = [
    ("n", "questions", "int"),
    ("hit@k", "hit@k (source)", "pct"),
    ("mrr", "MRR (source)", "num"),
    ("recall@k", "recall@k (source)", "pct"),
    ("evidence_hit@k", "hit@k (evidence passage)", "pct"),
    ("evidence_mrr", "MRR (evidence passage)", "num"),
    ("evidence_recall@k", "recall@k (evidence quotes)", "pct"),
    ("answer_correct", "answer correct", "pct"),
    ("refusal_correct", "refusal correct", "pct"),
    ("correct_refusals", "refused when unanswerable", "pct"),
    ("false_refusals", "refused when answerable", "pct"),
    ("citation_valid", "raw citations valid", "pct"),
    ("citation_removed", "raw citations removed", "pct"),
    ("citation_support", "citation support", "pct"),
    ("citation_attributed", "shown citations added by attribution", "pct"),
    ("citation_unverified", "shown citations not verified", "pct"),
    ("unsupported_answers", "answers with a claim no passage backs", "pct"),
    ("gated", "refused by the relevance gate", "pct"),
    ("retrieval_ms_p50", "retrieval p50 ms", "ms"),
    ("retrieval_ms_p95", "retrieval p95 ms", "ms"),
    ("ttft_ms_p50", "TTFT p50 ms", "ms"),
    ("ttft_ms_p95", "TTFT p95 ms", "ms"),
    ("total_ms_p50", "total p50 ms", "ms"),
    ("total_ms_p95", "total p95 ms", "ms"),
    ("tokens_per_s", "tokens/s (mean)", "rate"),
]
# Metrics where smaller is better: compare marks their changes the other way round.
LOWER_IS_BETTER = {"false_refusals", "citation_removed", "citation_unverified", "unsupported_answers"} | {
    k for k, _, f in METRICS if f == "ms"}


def normalise(text: str) -> str:
    """NFKC (full-width digits, ligatures), case-folded, one space for any whitespace run."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text)).casefold().strip()


# -- retrieval ---------------------------------------------------------------------------------------------
def first_rank(hits: Sequence[bool]) -> int | None:
    """1-based rank of the first hit, None when nothing hit."""
    return next((i for i, hit in enumerate(hits, 1) if hit), None)


def hit_at_k(hits: Sequence[bool], k: int) -> float:
    return 1.0 if any(hits[:k]) else 0.0


def reciprocal_rank(hits: Sequence[bool]) -> float:
    rank = first_rank(hits)
    return 1.0 / rank if rank else 0.0


def source_hits(retrieved_files: Sequence[str], expected: Iterable[str]) -> list[bool]:
    wanted = set(expected)
    return [file in wanted for file in retrieved_files]


def recall_at_k(retrieved_files: Sequence[str], expected: Sequence[str], k: int) -> float | None:
    """Share of the distinct expected sources among the top k; None when none are expected."""
    wanted = set(expected)
    return len(wanted & set(retrieved_files[:k])) / len(wanted) if wanted else None


def quotes_in(text: str, evidence: Sequence[str]) -> set[int]:
    """Indexes of the evidence quotes that occur in a passage (whitespace and case do not matter: chunking
    and document cleaning may re-flow lines)."""
    body = normalise(text)
    return {i for i, quote in enumerate(evidence) if normalise(quote) in body}


def evidence_hits(passage_texts: Sequence[str], evidence: Sequence[str]) -> list[bool]:
    return [bool(quotes_in(text, evidence)) for text in passage_texts]


def evidence_recall(passage_texts: Sequence[str], evidence: Sequence[str], k: int) -> float | None:
    """Share of the evidence quotes found in the top k passages; None without evidence."""
    if not evidence:
        return None
    found: set[int] = set()
    for text in passage_texts[:k]:
        found |= quotes_in(text, evidence)
    return len(found) / len(evidence)


# -- answers -----------------------------------------------------------------------------------------------
def answer_matches(answer: str, groups: Sequence[Sequence[str]]) -> bool | None:
    """True when every group has one alternative in the answer; None when there is nothing to check.
    Citation markers are removed first so that "[2]" never satisfies a group like ["2"]."""
    if not groups:
        return None
    text = normalise(_MARKER.sub(" ", answer))
    return all(any(normalise(alt) in text for alt in group) for group in groups)


def is_refused(answer: str, flagged: bool = False) -> bool:
    """The product's own flag or its own refusal rule (patterns and canned refusals in every language).
    An empty answer is not a refusal: the model said nothing, it did not say the documents lack the answer."""
    return flagged or prompts.is_refusal(answer)


def refusal_correct(answerable: bool, refused: bool) -> bool:
    """Refusing is right exactly when the documents do not hold the answer."""
    return refused != answerable


def citation_validity(raw_answer: str, used_passages: int) -> tuple[int, int]:
    """(distinct citation numbers in the raw model output, how many of them name a passage 1..used).
    Scored on the raw text because the product silently drops invented numbers before showing it."""
    cited = grounding.cited_numbers(raw_answer)
    return len(cited), sum(1 for n in cited if 1 <= n <= used_passages)


def citation_supported(
    citations: Sequence[Mapping[str, Any]], expected_sources: Sequence[str], evidence: Sequence[str]
) -> bool | None:
    """Whether a cited passage comes from an expected source or contains an evidence quote; None when the
    question names neither (support cannot be judged)."""
    if not expected_sources and not evidence:
        return None
    return any(c["file"] in expected_sources or quotes_in(c.get("text", ""), evidence) for c in citations)


# -- one question ------------------------------------------------------------------------------------------
def score_question(
    question: Mapping[str, Any], retrieved: Sequence[Mapping[str, Any]], k: int,
    answer: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Scores of one question. `question` has the question-set fields; `retrieved` the ranked passages
    (file, text); `answer` (None in retrieval-only runs) has answer, raw_answer, refused, used_passages,
    invalid_citations and citations (file, text)."""
    files = [p["file"] for p in retrieved]
    texts = [p["text"] for p in retrieved]
    expected, evidence = list(question.get("expected_sources") or []), list(question.get("evidence") or [])
    scores: dict[str, Any] = {
        "hit@k": hit_at_k(source_hits(files, expected), k) if expected else None,
        "rr": reciprocal_rank(source_hits(files, expected)[:k]) if expected else None,
        "recall@k": recall_at_k(files, expected, k),
        "evidence_hit@k": hit_at_k(evidence_hits(texts, evidence), k) if evidence else None,
        "evidence_rr": reciprocal_rank(evidence_hits(texts, evidence)[:k]) if evidence else None,
        "evidence_recall@k": evidence_recall(texts, evidence, k),
        "answer_correct": None, "refused": None, "refusal_correct": None, "citation_supported": None,
        "citations_raw": 0, "citations_valid": 0, "citations_removed": 0,
        "citations_shown": 0, "citations_attributed": 0, "citations_unverified": 0, "gated": None,
        "claims_unsupported": None,
    }
    if answer is not None:
        refused = is_refused(answer["answer"], bool(answer["refused"]))
        cited, valid = citation_validity(answer["raw_answer"], int(answer["used_passages"]))
        scores.update(
            refused=refused, refusal_correct=refusal_correct(bool(question.get("answerable", True)), refused),
            answer_correct=answer_matches(answer["answer"], question.get("answer_contains") or []),
            citations_raw=cited, citations_valid=valid,
            citations_removed=len(set(answer.get("invalid_citations") or [])),
            # Citations the product added by word overlap, not ones the model wrote: support that rests on
            # them says the answer shares words with a passage, not that the model used it.
            citations_shown=len(answer["citations"]),
            citations_attributed=sum(1 for c in answer["citations"] if c.get("attributed")),
            citations_unverified=sum(1 for c in answer["citations"] if c.get("verified") is False),
            gated=bool(answer.get("gated")),
            claims_unsupported=None if refused else len(answer.get("unsupported") or []),
            citation_supported=None if refused
            else citation_supported(answer["citations"], expected, evidence),
        )
    return scores


def passed(scores: Mapping[str, Any]) -> dict[str, bool | None]:
    """Pass/fail per check. Retrieval is judged at passage level when the question has evidence quotes
    (the right passage, not just the right file), else at source level."""
    retrieval = scores["evidence_hit@k"] if scores["evidence_hit@k"] is not None else scores["hit@k"]
    return {
        "retrieval": None if retrieval is None else retrieval == 1.0,
        "answer": scores["answer_correct"],
        "refusal": scores["refusal_correct"],
        "citations": (scores["citations_valid"] == scores["citations_raw"]) if scores["citations_raw"]
        else None,
        "support": scores["citation_supported"],
    }


# -- a group of questions ----------------------------------------------------------------------------------
def mean(values: Iterable[float | bool | None]) -> float | None:
    kept = [float(v) for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def percentile(values: Iterable[float | None], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default), q in 0..100."""
    data = sorted(float(v) for v in values if v is not None and not math.isnan(float(v)))
    if not data:
        return None
    pos = (len(data) - 1) * q / 100
    low, high = math.floor(pos), math.ceil(pos)
    return data[low] + (data[high] - data[low]) * (pos - low)


def summarise(records: Sequence[Mapping[str, Any]]) -> dict[str, float | int | None]:
    """The metrics of a group of records (each with `answerable`, `scores` and `timings`)."""
    scores = [r["scores"] for r in records]
    answerable = [r for r in records if r.get("answerable", True)]
    unanswerable = [r for r in records if not r.get("answerable", True)]
    cited = sum(s["citations_raw"] for s in scores)
    timings = [r.get("timings") or {} for r in records]
    summary: dict[str, float | int | None] = {
        "n": len(records), "answerable": len(answerable), "unanswerable": len(unanswerable),
        "hit@k": mean(s["hit@k"] for s in scores), "mrr": mean(s["rr"] for s in scores),
        "recall@k": mean(s["recall@k"] for s in scores),
        "evidence_hit@k": mean(s["evidence_hit@k"] for s in scores),
        "evidence_mrr": mean(s["evidence_rr"] for s in scores),
        "evidence_recall@k": mean(s["evidence_recall@k"] for s in scores),
        "answer_correct": mean(r["scores"]["answer_correct"] for r in answerable),
        "refusal_correct": mean(s["refusal_correct"] for s in scores),
        "correct_refusals": mean(r["scores"]["refused"] for r in unanswerable),
        "false_refusals": mean(r["scores"]["refused"] for r in answerable),
        # Pooled over all citation numbers: one answer with ten invented numbers should weigh ten times.
        "citation_valid": _share(sum(s["citations_valid"] for s in scores), cited),
        "citation_removed": _share(sum(s["citations_removed"] for s in scores), cited),
        "citation_support": mean(s["citation_supported"] for s in scores),
        "citation_attributed": _share(sum(s["citations_attributed"] for s in scores),
                                      sum(s["citations_shown"] for s in scores)),
        "citation_unverified": _share(sum(s["citations_unverified"] for s in scores),
                                      sum(s["citations_shown"] for s in scores)),
        "unsupported_answers": mean(None if s.get("claims_unsupported") is None else s["claims_unsupported"] > 0
                                    for s in scores),
        "gated": mean(s["gated"] for s in scores),
        "tokens_per_s": mean(t.get("tokens_per_s") or None for t in timings),
    }
    for name in ("retrieval_ms", "ttft_ms", "total_ms"):
        summary[f"{name}_p50"] = percentile((t.get(name) for t in timings), 50)
        summary[f"{name}_p95"] = percentile((t.get(name) for t in timings), 95)
    return summary


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def summarise_by_lang(records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float | int | None]]:
    langs = list(dict.fromkeys(r["lang"] for r in records))  # the question set's order: en, de, zh...
    return {lang: summarise([r for r in records if r["lang"] == lang]) for lang in langs}


def format_value(value: float | int | None, fmt: str, signed: bool = False) -> str:
    """A metric in its own unit; `signed` for differences (shares then read as percentage points)."""
    if value is None:
        return "–"
    sign = "+" if signed else ""
    if fmt == "int":
        return f"{int(value):{sign}d}"
    if fmt == "pct":
        return f"{value * 100:{sign}.1f}" + (" pp" if signed else "%")
    if fmt == "ms":
        return f"{value:{sign},.0f}"
    if fmt == "rate":
        return f"{value:{sign}.1f}"
    return f"{value:{sign}.3f}"
