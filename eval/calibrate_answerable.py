"""Calibrate the answerability check (rag/answer/answerable.py) on data nobody here wrote: BEIR SciFact (train).

    .venv/bin/python eval/calibrate_answerable.py [--queries 200] [--distractors 800] [--index-dir DIR]

Answerable: a claim whose relevant abstract is in the index and gave the evidence (a chosen sentence comes from
it). Unanswerable: the same claim with its relevant abstracts left out of the search, so the evidence comes from
the abstracts nearest to it that do not hold it: the hard case, a question about a topic the documents cover.
For each, the evidence is chosen as rag chooses it, and the checks are read: the weighted share of the claim's
terms the evidence holds (coverage), and the names-and-numbers check. The suggested coverage threshold refuses at
most 3% of answerable claims; it goes into rag/models/calibration.toml. Never calibrate on a set you report."""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from scifact import load  # type: ignore[import-not-found]  # run from eval/ or with eval/ on the path

from rag import Pipeline
from rag.answer import answerable
from rag.answer.compose import Question
from rag.config import load_settings
from rag.store import lexical


def checks(pipeline: Pipeline, claim: str, files: list[str] | None) -> tuple[answerable.Coverage, set[str]]:
    """The coverage of the evidence rag would choose, and the files it came from."""
    passages = pipeline.search(claim, pipeline.settings.evidence_pool, files, "en")
    question = Question(claim, claim, "en", [], time.perf_counter())
    chosen, _ = pipeline.composer.choose(question, passages, pipeline.settings.context_tokens,
                                         lambda text: len(text.split()) + 1, pipeline.document_text)
    found = sorted(chosen, key=lambda e: -e.score)
    pool = [set(lexical.terms(e.text, "en")) for e in found]
    coverage = answerable.check(claim, "en", found, pool, None, [p.text for p in passages[:3]])
    return coverage, {e.file for e in found[: answerable.TOP_EVIDENCE]}


def percentile(values: list[float], q: float) -> float:
    data = sorted(values)
    return data[min(len(data) - 1, int(q / 100 * len(data)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/datasets/scifact")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--distractors", type=int, default=800)
    parser.add_argument("--index-dir", type=Path, default=None, help="Keep the index here (built once).")
    args = parser.parse_args()
    corpus, queries, qrels = load(args.data)
    chosen = [q for q in queries if q in qrels][: args.queries]
    wanted = {d for q in chosen for d in qrels[q]}
    others = sorted(set(corpus) - wanted)
    docs = wanted | set(random.Random(0).sample(others, min(args.distractors, len(others))))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "docs"
        folder.mkdir()
        for doc_id in docs:
            (folder / f"{doc_id}.txt").write_text(f"{corpus[doc_id]['title']}\n{corpus[doc_id]['text']}\n")
        settings = load_settings(corpus_dir=folder, index_dir=args.index_dir or Path(tmp) / "index")
        with Pipeline(settings) as pipeline:
            pipeline.ingest()
            all_files = [f"{d}.txt" for d in docs]
            rows: dict[str, list[answerable.Coverage]] = {"answerable": [], "unanswerable": []}
            for qid in chosen:
                relevant = {f"{d}.txt" for d in qrels[qid]}
                found, files = checks(pipeline, queries[qid], None)
                if files & relevant:  # retrieval found it: a fair answerable case
                    rows["answerable"].append(found)
                rest = [f for f in all_files if f not in relevant]
                rows["unanswerable"].append(checks(pipeline, queries[qid], rest)[0])
    report(rows)


def report(rows: dict[str, list[answerable.Coverage]]) -> None:
    for name, found in rows.items():
        values = [c.coverage for c in found if c.coverage is not None]
        named = sum(not c.missing for c in found) / len(found)
        print(f"{name:12} n={len(found)}  coverage p3 {percentile(values, 3):.3f}  p10 {percentile(values, 10):.3f}"
              f"  median {statistics.median(values):.3f}  names and numbers all held: {named:.0%}")
    answerable_values = [c.coverage for c in rows["answerable"] if c.coverage is not None]
    threshold = percentile(answerable_values, 3)
    caught = [c for c in rows["unanswerable"] if c.coverage is not None and c.coverage < threshold]
    print(f"suggested coverage threshold: {threshold:.3f} (refuses 3% of answerable claims and "
          f"{len(caught) / len(rows['unanswerable']):.0%} of unanswerable ones by coverage alone)")


if __name__ == "__main__":
    main()
