"""Whole-document and corpus questions on documents built here (and real PDFs given as arguments).

- "Summarize FILE" on reports of 6 to 48 pages, one topic per page: how many pages its citations name, and
  whether they reach the first, middle and last third of the document.
- "Which documents talk about T?" over a corpus of one-topic reports: whether the document about T is listed
  first, and how many documents the answer lists.

Uses the offline models (packaged multilingual-e5-small, SmolLM2: answers are extractive).

    .venv/bin/python eval/bench_overview.py [FILE.pdf ...]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rag.config import Settings  # noqa: E402
from rag.models.packaged_e5 import PACKAGED_MULTILINGUAL_ID  # noqa: E402
from rag.models.resolve import PACKAGED_LLM_ID  # noqa: E402
from rag.pipeline import Pipeline  # noqa: E402
from tests.pdfs import long_report_pdf  # noqa: E402

TOPICS = ["glaciers", "volcanoes", "coral reefs", "deserts", "rainforests", "tundra", "rivers", "caves", "dunes",
          "wetlands", "savannas", "fjords", "estuaries", "mangroves", "geysers", "canyons"]
SIZES = (6, 12, 24, 48)


def pipeline_for(corpus: Path, index: Path) -> Pipeline:
    settings = Settings(corpus_dir=corpus, index_dir=index, embedding_model=PACKAGED_MULTILINGUAL_ID,
                        llm_model=PACKAGED_LLM_ID, offline=True, answer_mode="extractive")
    return Pipeline(settings)


def summaries(folder: Path, real: list[Path]) -> None:
    corpus = folder / "long"
    corpus.mkdir()
    names = []
    for size in SIZES:
        topics = [TOPICS[i % len(TOPICS)] + ("" if i < len(TOPICS) else f" {i // len(TOPICS) + 1}")
                  for i in range(size)]
        long_report_pdf(corpus / f"report-{size}.pdf", topics)
        names.append((f"report-{size}.pdf", size))
    for path in real:
        (corpus / path.name).write_bytes(path.read_bytes())
        names.append((path.name, 0))
    with pipeline_for(corpus, folder / "index-long") as pipeline:
        pipeline.ingest()
        print(f"{'document':<32}{'pages':>6}{'cited pages':>13}{'thirds reached':>16}{'ms':>7}")
        for file, _ in names:
            count = pipeline.catalog.layout(file).page_count
            began = time.perf_counter()
            answer = pipeline.ask(f"Summarize {file}").result
            took = (time.perf_counter() - began) * 1000
            pages = sorted({c.page for c in answer.citations if c.page})
            thirds = {min(2, (p - 1) * 3 // count) for p in pages} if count else set()
            print(f"{file:<32}{count:>6}{len(pages):>13}{len(thirds):>14}/3{took:>7.0f}")


def corpus_questions(folder: Path) -> None:
    corpus = folder / "topics"
    corpus.mkdir()
    for topic in TOPICS[:8]:
        long_report_pdf(corpus / f"{topic.replace(' ', '-')}.pdf", [topic, f"{topic} research", f"{topic} maps"])
    first = listed = 0
    with pipeline_for(corpus, folder / "index-topics") as pipeline:
        pipeline.ingest()
        for topic in TOPICS[:8]:
            answer = pipeline.ask(f"Which documents talk about {topic}?").result
            files = [c.file for c in answer.citations]
            first += bool(files) and files[0] == f"{topic.replace(' ', '-')}.pdf"
            listed += len(files)
    print(f"\ncorpus questions over 8 one-topic reports: the right document first in {first}/8, "
          f"{listed / 8:.1f} documents listed per answer")


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        summaries(Path(folder), [Path(a) for a in sys.argv[1:]])
        corpus_questions(Path(folder))


if __name__ == "__main__":
    main()
