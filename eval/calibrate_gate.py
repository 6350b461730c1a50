"""Calibrate the relevance gate of an embedding model on data nobody here wrote (BEIR SciFact, train split).

    .venv/bin/python eval/calibrate_gate.py [--queries 300] [--distractors 1000]

Answerable: SciFact claims against an index holding their relevant abstracts (plus distractors); the top
passage's dense cosine is what a question with an answer looks like. Off-topic: the same claims against the seed
articles. The suggested threshold lets at most 2% of answerable claims through to a refusal; it goes into
rag/calibration.toml for that model. Never calibrate on the question set you report."""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
from pathlib import Path

from scifact import load  # type: ignore[import-not-found]  # run from eval/ or with eval/ on the path

from rag import Pipeline
from rag.config import load_settings
from rag.models.resolve import PACKAGED_EMBEDDING_ID

SEEDS = Path(__file__).resolve().parents[1] / "seeds"


def top_scores(pipeline: Pipeline, questions: list[str]) -> list[float]:
    return [max((p.score for p in pipeline.search(q, top_k=5, lang="en")), default=0.0) for q in questions]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/datasets/scifact")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--distractors", type=int, default=1000)
    parser.add_argument("--model", default=PACKAGED_EMBEDDING_ID)
    args = parser.parse_args()
    corpus, queries, qrels = load(args.data)
    chosen = [q for q in queries if q in qrels][: args.queries]
    wanted = {d for q in chosen for d in qrels[q]}
    others = sorted(set(corpus) - wanted)
    wanted |= set(random.Random(0).sample(others, min(args.distractors, len(others))))
    claims = [queries[q] for q in chosen]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "docs"
        folder.mkdir()
        for doc_id in wanted:
            (folder / f"{doc_id}.txt").write_text(f"{corpus[doc_id]['title']}\n{corpus[doc_id]['text']}\n")
        for name, source in (("answerable", folder), ("off-topic", SEEDS)):
            settings = load_settings(corpus_dir=source, index_dir=Path(tmp) / f"index-{name}",
                                     embedding_model=args.model, retrieval_mode="dense")
            with Pipeline(settings) as pipeline:
                pipeline.ingest()
                scores = sorted(top_scores(pipeline, claims))
            cut = scores[int(0.02 * len(scores))]
            print(f"{name:11} top-1 cosine: p2 {cut:.3f}  median {statistics.median(scores):.3f}  "
                  f"p98 {scores[int(0.98 * len(scores)) - 1]:.3f}")
            if name == "answerable":
                threshold = cut
            else:
                refused = sum(s < threshold for s in scores) / len(scores)
                print(f"suggested threshold for {args.model}: {threshold:.3f} "
                      f"(refuses {refused:.0%} of off-topic claims, 2% of answerable ones)")


if __name__ == "__main__":
    main()
