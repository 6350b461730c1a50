"""Load and validate a question set (JSONL, or YAML when PyYAML is importable).

The whole file is checked before anything runs: a typo on line 40 should cost seconds, not a half-finished
run, so every bad line is reported at once with its line number and reason."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from rag.errors import ConfigError, NotFoundError
from rag.ingest.text import detect_language

FIELDS = {"id", "question", "lang", "answerable", "expected_sources", "answer_contains", "evidence",
          "reference_answer", "note", "rated"}


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    lang: str
    answerable: bool = True
    expected_sources: tuple[str, ...] = ()
    # Groups of alternatives: correct when every group has at least one alternative in the answer.
    answer_contains: tuple[tuple[str, ...], ...] = ()
    evidence: tuple[str, ...] = ()
    reference_answer: str | None = None
    note: str | None = None  # for people reading the set: why the question is there (feedback's comment)
    # The answer as someone rated it (`rag feedback export`): rating, answer, refused, sources; a run says whether
    # today's answer differs.
    rated: Mapping[str, Any] | None = None
    line: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "question": self.question, "lang": self.lang, "answerable": self.answerable,
            "expected_sources": list(self.expected_sources),
            "answer_contains": [list(group) for group in self.answer_contains],
            "evidence": list(self.evidence), "reference_answer": self.reference_answer, "note": self.note,
            "rated": dict(self.rated) if self.rated is not None else None,
        }


class QuestionFileError(ConfigError):
    """The question set has invalid entries; `problems` holds (line, reason) for each."""

    def __init__(self, path: Path, problems: list[tuple[int, str]]) -> None:
        self.problems = problems
        listed = "\n".join(f"  line {line}: {reason}" for line, reason in problems)
        super().__init__(
            f"{path} has {len(problems)} invalid entr{'y' if len(problems) == 1 else 'ies'}; "
            f"fix them and run again (nothing was run):\n{listed}"
        )


def load_questions(path: Path) -> list[Question]:
    """Every question of the file, or QuestionFileError listing every bad entry."""
    if not path.is_file():
        raise NotFoundError(f"question file {path} not found", "check the path")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read question file {path} ({exc})", "save it as UTF-8 text") from exc
    problems: list[tuple[int, str]] = []
    is_yaml = path.suffix.lower() in (".yaml", ".yml")
    entries = _yaml_entries(text, problems) if is_yaml else _jsonl_entries(text, problems)
    questions: list[Question] = []
    first_line: dict[str, int] = {}
    for line, data in entries:
        question, reasons = _validate(data)
        qid = data.get("id") if isinstance(data, dict) else None
        if isinstance(qid, str) and qid.strip():
            if qid.strip() in first_line:
                reasons.append(f"duplicate id {qid.strip()!r} (first on line {first_line[qid.strip()]})")
            else:
                first_line[qid.strip()] = line
        if reasons:
            problems.append((line, "; ".join(reasons)))
        elif question is not None:
            questions.append(_with_line(question, line))
    if not problems and not questions:
        problems.append((1, "the file holds no questions"))
    if problems:
        raise QuestionFileError(path, sorted(problems))
    return questions


def _with_line(question: Question, line: int) -> Question:
    return Question(**{**question.__dict__, "line": line})


def _jsonl_entries(text: str, problems: list[tuple[int, str]]) -> Iterator[tuple[int, Any]]:
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue  # blank lines separate groups of questions; they are not entries
        try:
            yield number, json.loads(raw)
        except json.JSONDecodeError as exc:
            problems.append((number, f"not valid JSON ({exc.msg} at column {exc.colno})"))


def _yaml_entries(text: str, problems: list[tuple[int, str]]) -> Iterator[tuple[int, Any]]:
    try:
        import yaml
    except ImportError as exc:
        raise ConfigError("YAML question files need PyYAML", "pip install pyyaml, or use JSONL") from exc
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problems.append(((mark.line + 1) if mark else 1, f"not valid YAML ({getattr(exc, 'problem', exc)})"))
        return
    # Accept a bare list or {questions: [...]}; the node tree keeps each entry's line for the report.
    if isinstance(root, yaml.MappingNode):
        root = next((v for k, v in root.value if k.value == "questions"), root)
    if not isinstance(root, yaml.SequenceNode):
        problems.append((1, "expected a list of questions (or a mapping with a `questions` list)"))
        return
    for node in root.value:
        loader = yaml.SafeLoader("")
        try:
            yield node.start_mark.line + 1, loader.construct_document(node)
        except yaml.YAMLError as exc:
            problems.append((node.start_mark.line + 1, f"not valid YAML ({exc})"))
        finally:
            loader.dispose()


def _strings(value: Any, name: str, reasons: list[str]) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        reasons.append(f"{name} must be a list of non-empty strings")
        return ()
    return tuple(value)


def _groups(value: Any, reasons: list[str]) -> tuple[tuple[str, ...], ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        reasons.append("answer_contains must be a list of groups, each a list of alternative strings")
        return ()
    groups = []
    for i, group in enumerate(value, 1):
        # A bare string is rejected, not wrapped: ["a", "b"] could mean "a and b" or "a or b".
        if not (isinstance(group, list) and group and all(isinstance(g, str) and g.strip() for g in group)):
            reasons.append(f"answer_contains group {i} must be a non-empty list of strings "
                           '(alternatives go in one group: [["Qwen-7B", "Qwen 7B"]])')
            continue
        groups.append(tuple(group))
    return tuple(groups)


def _validate(data: Any) -> tuple[Question | None, list[str]]:
    if not isinstance(data, dict):
        return None, ["expected an object with at least `id` and `question`"]
    reasons: list[str] = []
    unknown = sorted(set(map(str, data)) - FIELDS)
    if unknown:
        reasons.append(f"unknown field(s) {', '.join(unknown)} (valid: {', '.join(sorted(FIELDS))})")
    qid, text, lang = data.get("id"), data.get("question"), data.get("lang")
    if not isinstance(qid, str) or not qid.strip():
        reasons.append("id must be a non-empty string")
    if not isinstance(text, str) or not text.strip():
        reasons.append("question must be a non-empty string")
    if lang is not None and (not isinstance(lang, str) or not lang.strip()):
        reasons.append("lang must be a language code such as en, de, zh")
    answerable = data.get("answerable", True)
    if not isinstance(answerable, bool):
        reasons.append("answerable must be true or false")
    sources = _strings(data.get("expected_sources"), "expected_sources", reasons)
    for source in sources:
        if PurePosixPath(source).is_absolute() or ".." in PurePosixPath(source).parts:
            reasons.append(f"expected source {source!r} must be relative to the corpus root")
    groups = _groups(data.get("answer_contains"), reasons)
    if answerable is False and groups:
        reasons.append("an unanswerable question cannot have answer_contains (the right answer is a refusal)")
    evidence = _strings(data.get("evidence"), "evidence", reasons)
    reference = data.get("reference_answer")
    if reference is not None and not isinstance(reference, str):
        reasons.append("reference_answer must be a string")
    note, rated = data.get("note"), data.get("rated")
    if note is not None and not isinstance(note, str):
        reasons.append("note must be a string")
    if rated is not None and not (isinstance(rated, dict) and rated.get("rating") in ("up", "down")
                                  and isinstance(rated.get("answer"), str)):
        reasons.append("rated must be an object with rating (up or down) and answer (the rated answer's text)")
    if reasons:
        return None, reasons
    assert isinstance(qid, str) and isinstance(text, str)
    return Question(
        id=qid.strip(), question=text.strip(),
        lang=lang.strip().lower() if isinstance(lang, str) else detect_language(text),
        answerable=bool(answerable), expected_sources=sources, answer_contains=groups, evidence=evidence,
        reference_answer=reference, note=note, rated=rated,
    ), reasons
