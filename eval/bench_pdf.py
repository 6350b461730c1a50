"""PDF text extraction: llama-index's PDF reader (pypdf) against PDFium (pypdfium2), and rag's reading (PDFium plus
its page cleanup: running headers and footers, soft and hard hyphens at line ends, wrapped lines).

Quality is measured on PDFs with a known text (built here with reportlab: a two-column page, hyphenated lines, a
report with running headers and footers) as the word-sequence similarity to that text; on real PDFs (given as
arguments, by default the Debian manuals found on this machine) as words broken at a line end ("man- agement").
Speed is pages per second of each extractor on the same files, and the ratio of the two.

    .venv/bin/python eval/bench_pdf.py [FILE.pdf ...]
"""

from __future__ import annotations

import difflib
import logging
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rag.ingest.documents import read_document  # noqa: E402
from tests.pdfs import REPORT_PAGES, report_pdf  # noqa: E402

REAL = [Path("/usr/share/doc/libtasn1-doc/libtasn1.pdf"),
        Path("/usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf")]
_BROKEN = re.compile(r"[^\W\d_]{2}-\s+[a-z]{2,}")
_WORDS = re.compile(r"\w+(?:[.,'’-]\w+)*")
LEFT = ("The northern station measures the wind every hour and reports to the central office in the valley. "
        "Its instruments were replaced in the spring after a long and difficult winter season. ") * 3
RIGHT = ("The southern station counts migrating birds along the coast and publishes a yearly census. "
         "Volunteers from three villages help the two permanent ornithologists during autumn. ") * 3
HYPHENATED = [("Environmental monitoring requires consider-", "able patience, careful calibra-"),
              ("tion of every instrument, and long-", "term commitment from the whole organi-"),
              ("zation, which the management under-", "stood from the very beginning.")]

HYPHENATED_TEXT = ("Environmental monitoring requires considerable patience, careful calibration of every instrument, "
                   "and long-term commitment from the whole organization, which the management understood from the "
                   "very beginning.")


def pypdf_pages(path: Path) -> list[str]:
    from llama_index.readers.file import PDFReader

    return [doc.text for doc in PDFReader().load_data(path)]


def pdfium_pages(path: Path) -> list[str]:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(path)
    try:
        return [pdf[i].get_textpage().get_text_range() for i in range(len(pdf))]
    finally:
        pdf.close()


def rag_pages(path: Path) -> list[str]:
    return [read_document(path, path.name).text]


def two_columns(path: Path) -> str:
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import BaseDocTemplate, Frame, PageTemplate, Paragraph

    width, height = A4
    frames = [Frame(40, 60, width / 2 - 50, height - 120, id="left"),
              Frame(width / 2 + 10, 60, width / 2 - 50, height - 120, id="right")]
    doc = BaseDocTemplate(str(path), pagesize=A4, pageTemplates=[PageTemplate(frames=frames)])
    style = getSampleStyleSheet()["BodyText"]
    from reportlab.platypus import FrameBreak

    doc.build([Paragraph(LEFT, style), FrameBreak(), Paragraph(RIGHT, style)])
    return LEFT + RIGHT


def hyphenated(path: Path) -> str:
    from reportlab.pdfgen import canvas

    page = canvas.Canvas(str(path))
    y = 760
    for pair in HYPHENATED:
        for line in pair:
            page.drawString(72, y, line)
            y -= 16
    page.save()
    return HYPHENATED_TEXT


def report(path: Path) -> str:
    report_pdf(path, REPORT_PAGES)
    return " ".join(f"{heading} {' '.join(paragraphs)}" for heading, paragraphs in REPORT_PAGES)


def similarity(expected: str, found: str) -> float:
    return difflib.SequenceMatcher(a=_WORDS.findall(expected.lower()), b=_WORDS.findall(found.lower()),
                                   autojunk=False).ratio()


def timed(read: Callable[[Path], list[str]], path: Path, repeats: int = 3) -> tuple[list[str], float]:
    began = time.perf_counter()
    for _ in range(repeats):
        pages = read(path)
    return pages, (time.perf_counter() - began) / repeats


def main() -> None:
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    readers = {"pypdf (llama-index)": pypdf_pages, "pypdfium2": pdfium_pages, "rag (pdfium + cleanup)": rag_pages}
    with tempfile.TemporaryDirectory() as folder:
        built = {name: (Path(folder) / f"{name}.pdf") for name in ("two-columns", "hyphenated", "report")}
        truth = {"two-columns": two_columns(built["two-columns"]), "hyphenated": hyphenated(built["hyphenated"]),
                 "report": report(built["report"])}
        print("word-sequence similarity to the known text (1.000 = every word, in order, nothing else)")
        print(f"{'file':<14}" + "".join(f"{name:>26}" for name in readers))
        for name, path in built.items():
            row = [similarity(truth[name], "\n".join(read(path))) for read in readers.values()]
            print(f"{name:<14}" + "".join(f"{value:>26.3f}" for value in row))
    files = [Path(a) for a in sys.argv[1:]] or [p for p in REAL if p.is_file()]
    print("\nreal PDFs: words broken at a line end, and pages per second")
    for path in files:
        results = {name: timed(read, path) for name, read in readers.items()}
        pages = len(results["pypdfium2"][0])
        broken = {name: len(_BROKEN.findall("\n".join(found))) for name, (found, _) in results.items()}
        speed = {name: pages / seconds for name, (_, seconds) in results.items()}
        print(f"{path.name} ({pages} pages)")
        for name in readers:
            print(f"  {name:<24} broken words {broken[name]:>4}   {speed[name]:>8.0f} pages/s")
        print(f"  pypdfium2 reads {speed['pypdfium2'] / speed['pypdf (llama-index)']:.1f}x the pages per second "
              "of pypdf")


if __name__ == "__main__":
    main()
