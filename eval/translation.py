"""Cross-lingual retrieval with and without query translation, on the bundled question set.

    .venv/bin/python eval/translation.py [--questions eval/questions.jsonl] [--out FILE]

Runs `rag eval --retrieval-only` three ways with the configured embedding model (offline: the English-only
MiniLM), and prints evidence hit@k and MRR per language:
  none       the question as asked (query_translation = off)
  llm        the question plus the configured LLM's translation, fused (query_translation = always)
  reference  the question plus a human translation from eval/reference_translations.jsonl, fused: what a capable
             translator (such as the default Qwen2.5-1.5B) would give; an upper bound for the `llm` row.
The reference translations are plain, literal translations of each question, written without looking at the
documents; nothing in rag reads them."""

from __future__ import annotations

import argparse
import json
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rag import Pipeline
from rag.config import load_settings
from rag.evaluation.questions import load_questions
from rag.evaluation.runner import run_eval
from rag.models.calibration import relevance_threshold
from rag.prompts import language_name

HERE = Path(__file__).resolve().parent
METRICS = [("evidence_hit@k", "evidence hit@k"), ("evidence_mrr", "evidence MRR"), ("hit@k", "source hit@k"),
           ("gated_unanswerable", "gate refuses unanswerable"), ("gated_answerable", "gate refuses answerable")]


class ReferenceTranslator:
    """A ChatLLM that answers rag's translation prompt from a file of human translations."""

    name = "reference translations"
    notice = ""
    n_ctx = 4096

    def __init__(self, path: Path) -> None:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        self.translations = {row["question"]: row["translations"] for row in rows}
        self.targets = {language_name(code): code for code in ("en", "de", "zh")}

    def count_tokens(self, text: str) -> int:
        return len(text.split()) + 1

    def stream_chat(self, messages: list[dict[str, str]], max_tokens: int, temperature: float) -> Iterator[str]:
        prompt = messages[-1]["content"]
        question = re.search(r"^Question: (.*)$", prompt, flags=re.M)
        target = re.search(r" into (.+?)\. ", prompt)
        if question and target:
            yield self.translations.get(question.group(1).strip(), {}).get(self.targets.get(target.group(1), ""), "")


def gate_rates(pipeline: Pipeline, records: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """What the relevance gate would refuse if it trusted the translation's cosine (rag's own gate does not: it
    refuses only on the question's own cosines, in a language it was calibrated in)."""
    refused: dict[str, dict[bool, list[bool]]] = {}
    for record in records:
        forms = pipeline.query_forms(record["question"], record["lang"])  # remembered from the run: no LLM call
        threshold = relevance_threshold(None, pipeline.embedder.name, forms[-1].lang)
        best = max((p["score"] for p in record["retrieved"]), default=None)
        gated = best is None or (threshold is not None and best < threshold)
        refused.setdefault(record["lang"], {True: [], False: []})[bool(record["answerable"])].append(gated)
    return {lang: {"gated_answerable": sum(by[True]) / len(by[True]) if by[True] else None,
                   "gated_unanswerable": sum(by[False]) / len(by[False]) if by[False] else None}
            for lang, by in refused.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=Path, default=HERE / "questions.jsonl")
    parser.add_argument("--translations", type=Path, default=HERE / "reference_translations.jsonl")
    parser.add_argument("--corpus", type=Path, default=HERE.parent / "seeds")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()
    questions = load_questions(args.questions)
    results: dict[str, dict[str, dict[str, float | int | None]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        index = Path(tmp) / "index"
        for way, mode in [("none", "off"), ("llm", "always"), ("reference", "always")]:
            settings = load_settings(corpus_dir=args.corpus, index_dir=index, query_translation=mode)
            llm = ReferenceTranslator(args.translations) if way == "reference" else None
            with Pipeline(settings, llm=llm) as pipeline:
                if way == "none":
                    pipeline.ingest()
                run = run_eval(pipeline, questions, retrieval_only=True)
                results[way] = run.summary["by_lang"]
                for lang, gated in gate_rates(pipeline, run.records).items():
                    results[way][lang].update(gated)
                models = run.summary["run"]["models"]
                translator = pipeline.llm.name if way != "none" else ""
            print(f"{way:9}  embedding {models.get('embedding')}", f"translator {translator}" if translator else "")
    langs = list(next(iter(results.values())))
    print(f"\n{'metric':26} {'way':9} " + " ".join(f"{lang:>7}" for lang in langs))
    for key, label in METRICS:
        for way, by_lang in results.items():
            cells = [by_lang[lang].get(key) for lang in langs]
            print(f"{label:26} {way:9} " + " ".join(f"{c:7.3f}" if c is not None else f"{'–':>7}" for c in cells))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
