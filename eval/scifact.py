"""Retrieval on a corpus nobody here wrote: BEIR SciFact (train split), through rag's real ingest and search.

    .venv/bin/python eval/scifact.py [--data ../shared/datasets/scifact] [--limit N] [--out FILE] [--index-dir DIR]

Prints nDCG@10 and recall@10 for dense only, lexical only and hybrid (both fusions; DBSF also without the
cross-lingual places) with the configured (default: offline MiniLM) embedding model. Documents are abstracts:
title line + text, one file each; a document's rank is the rank of its best passage."""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

from rag import Pipeline
from rag.config import load_settings
from rag.models.resolve import PACKAGED_EMBEDDING_ID

# (retrieval mode, fusion, cross-lingual places on): the last row shows what the cross-lingual places cost on a
# corpus of one language, where a misdetected language is the only way they can act.
MODES = [("dense", "dbsf", True), ("lexical", "dbsf", True), ("hybrid", "rrf", True), ("hybrid", "dbsf", False),
         ("hybrid", "dbsf", True)]


def load(data: Path) -> tuple[dict[str, dict[str, str]], dict[str, str], dict[str, set[str]]]:
    corpus = {d["_id"]: d for d in map(json.loads, (data / "corpus.jsonl").read_text().splitlines())}
    queries = {q["_id"]: q["text"] for q in map(json.loads, (data / "queries_train.jsonl").read_text().splitlines())}
    qrels: dict[str, set[str]] = {}
    for line in (data / "qrels" / "train.tsv").read_text().splitlines()[1:]:
        qid, did, score = line.split("\t")
        if int(score) > 0:
            qrels.setdefault(qid, set()).add(did)
    return corpus, queries, qrels


def ndcg_at_10(ranked: list[str], relevant: set[str]) -> float:
    dcg = sum(1 / math.log2(i + 2) for i, d in enumerate(ranked[:10]) if d in relevant)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(10, len(relevant))))
    return dcg / ideal if ideal else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/datasets/scifact")
    parser.add_argument("--limit", type=int, default=0, help="only the first N queries (0 = all)")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    parser.add_argument("--model", default=PACKAGED_EMBEDDING_ID, help="embedding model (hub id, folder or packaged)")
    parser.add_argument("--index-dir", type=Path, help="keep the index here, and reuse it when it is already built")
    args = parser.parse_args()
    corpus, queries, qrels = load(args.data)
    wanted = [q for q in queries if q in qrels][: args.limit or None]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "scifact"
        folder.mkdir()
        for doc_id, doc in corpus.items():
            (folder / f"{doc_id}.txt").write_text(f"{doc['title']}\n{doc['text']}\n", encoding="utf-8")
        index_dir = args.index_dir or Path(tmp) / "index"
        base = load_settings(corpus_dir=folder, index_dir=index_dir, embedding_model=args.model)
        started = time.perf_counter()
        with Pipeline(base) as pipeline:
            report = pipeline.ingest()
        seconds = time.perf_counter() - started
        print(f"ingested {len(report.new)} new abstracts ({len(report.unchanged)} unchanged) into {report.chunks} "
              f"chunks in {seconds:.0f} s")
        results = {}
        for mode, fusion, cross_lingual in MODES:
            settings = base.model_copy(update={"retrieval_mode": mode, "fusion": fusion,
                                               "cross_lingual": cross_lingual})
            ndcg = recall = 0.0
            started = time.perf_counter()
            with Pipeline(settings) as pipeline:
                for qid in wanted:
                    ranked: list[str] = []
                    for passage in pipeline.search(queries[qid], top_k=30, lang="en"):
                        doc_id = passage.file.removesuffix(".txt")
                        if doc_id not in ranked:
                            ranked.append(doc_id)
                    ndcg += ndcg_at_10(ranked, qrels[qid])
                    recall += len(set(ranked[:10]) & qrels[qid]) / len(qrels[qid])
            name = mode if mode != "hybrid" else f"hybrid ({fusion})" + ("" if cross_lingual else ", one language")
            results[name] = {"ndcg@10": round(ndcg / len(wanted), 4), "recall@10": round(recall / len(wanted), 4),
                             "ms_per_query": round((time.perf_counter() - started) * 1000 / len(wanted), 1)}
            print(f"{name:30} nDCG@10 {results[name]['ndcg@10']:.3f}  recall@10 {results[name]['recall@10']:.3f}"
                  f"  {results[name]['ms_per_query']} ms/query")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"queries": len(wanted), "model": args.model, "results": results},
                                       indent=2))


if __name__ == "__main__":
    main()
