"""PDFs built for tests and benchmarks with fpdf2: a paged report with running headers and footers, one fact
per page, an outline, and a sentence that runs over a page break."""

from __future__ import annotations

from pathlib import Path

from fpdf import FPDF

REPORT_TITLE = "Lumen Observatory - Annual Report 2025"
# (section heading, the page's paragraphs); page 5's fact starts on page 4 and ends on page 5.
REPORT_PAGES: list[tuple[str, list[str]]] = [
    ("1 Overview", ["The Lumen Observatory studies variable stars from a mountain site in Chile.",
                    "This report covers the year 2025 and the work of every department."]),
    ("2 Telescopes", ["The main telescope has a mirror of 4.1 metres and saw first light in 2019.",
                      "A second telescope for wide surveys was ordered from a Dutch workshop."]),
    ("3 Science", ["Astronomers at Lumen published 38 papers on pulsating stars during 2025.",
                   "The catalogue of Cepheid variables grew to 1,240 stars."]),
    ("4 Funding", ["The observatory's budget for 2025 was 14 million euros, mostly from public grants.",
                   "Private donors gave a further 2 million euros for the new survey camera, and"]),
    ("5 People", ["the camera is expected in the spring of 2026.",
                  "The observatory employs 120 staff, of whom 45 are scientists."]),
    ("6 Outlook", ["In 2026 Lumen will open a visitor centre with a planetarium.",
                   "The board thanks all staff and partners for a remarkable year."]),
]


def _padded(pages: list[tuple[str, list[str]]]) -> list[tuple[str, list[str]]]:
    """Each page with a few more sentences of its own, so that a page is about one chunk of text."""
    padded = []
    for number, (heading, paragraphs) in enumerate(pages, start=1):
        topic = heading.split(" ", 1)[-1].lower()
        extra = [f"The {topic} department kept a detailed log of its activities throughout the year, and its "
                 f"staff reviewed the log every month with the director of page {number}.",
                 f"Readers who want more detail on {topic} will find the full tables in the appendix, which "
                 f"lists every measurement, meeting and decision of the {topic} team."]
        padded.append((heading, [*paragraphs[:-1], *extra, paragraphs[-1]] if number in (4, 5) else
                       [*paragraphs, *extra]))
    return padded


class _Report(FPDF):
    def header(self) -> None:
        self.set_font("Helvetica", size=9)
        self.cell(0, 8, REPORT_TITLE, new_x="LMARGIN", new_y="NEXT")
        self.ln(4)

    def footer(self) -> None:
        self.set_y(-15)
        self.set_font("Helvetica", size=9)
        self.cell(0, 8, f"Page {self.page_no()} of {{nb}}", align="C")


def report_pdf(path: Path, pages: list[tuple[str, list[str]]] | None = None, metadata_title: str = "",
               outline: bool = True) -> Path:
    """The six-page report (or `pages`), each page headed by the running header and footed by "Page N of M"."""
    pages = _padded(REPORT_PAGES) if pages is None else pages
    pdf = _Report()
    pdf.alias_nb_pages()
    if metadata_title:
        pdf.set_title(metadata_title)
    for heading, paragraphs in pages:
        pdf.add_page()
        pdf.set_font("Helvetica", size=11)
        runs_on = paragraphs[0][:1].islower()  # the end of the last page's sentence comes before the heading
        if runs_on:
            pdf.multi_cell(0, 6, paragraphs[0], new_x="LMARGIN", new_y="NEXT")
            pdf.ln(2)
        pdf.set_font("Helvetica", "B", 14)
        if outline:
            pdf.start_section(heading)
        pdf.cell(0, 10, heading, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=11)
        for paragraph in paragraphs[runs_on:]:
            pdf.multi_cell(0, 6, paragraph, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(2)
    pdf.output(str(path))
    return path


def long_report_pdf(path: Path, topics: list[str]) -> Path:
    """A report of one page per topic, each page saying three things about its topic."""
    pages = [(f"{i} {topic.title()}", [f"This chapter is about {topic}.",
                                       f"The team measured {topic} carefully during {2000 + i}.",
                                       f"Everything about {topic} is summarised on page {i}."])
             for i, topic in enumerate(topics, start=1)]
    return report_pdf(path, pages)
