"""`rag eval`: run a question set through the same Pipeline as the chat and score retrieval, answers,
refusals, citations and latency. Loading lives in `questions`, scoring in `metrics` (pure functions),
running and reports in `runner`, run-to-run diffs in `compare`."""

from __future__ import annotations

from rag.evaluation.compare import Comparison, compare_runs
from rag.evaluation.questions import Question, load_questions
from rag.evaluation.runner import EvalRun, run_eval

__all__ = ["Comparison", "EvalRun", "Question", "compare_runs", "load_questions", "run_eval"]
