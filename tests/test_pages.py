"""Real documents: PDF pages (running headers and footers dropped, titles, a sentence over a page break, scanned and
encrypted pages), sections from Markdown, DOCX, HTML and PDF outlines, the original file at its page over HTTP,
and questions about a whole document or the whole corpus. PDFs are built by fpdf2; the index and models are real
(the packaged embedder, Qdrant Edge), answers extractive, as the offline model's are."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import docx
import httpx
import pytest
from fpdf import FPDF

from rag.answer.generate import build_messages
from rag.config import Settings
from rag.ingest.documents import read_document
from rag.models.resolve import PACKAGED_EMBEDDING_ID, PACKAGED_LLM_ID
from rag.pipeline import Pipeline
from rag.server.app import create_app
from tests.conftest import ScriptedLLM
from tests.pdfs import REPORT_TITLE, long_report_pdf, report_pdf
from tests.servers import SEEDS, serve
from ui import render

STAFF = "How many staff does the observatory employ?"
TOPICS = ["glaciers", "volcanoes", "coral reefs", "deserts", "rainforests", "tundra", "rivers", "caves", "dunes",
          "wetlands", "savannas", "fjords"]
ADMIN = "admin-key-pages"
ASK = "ask-key-pages"


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    """An index of a six-page report, a twelve-page one, a seed article (.txt) and a Markdown note."""
    root = tmp_path_factory.mktemp("pages")
    corpus = root / "corpus"
    corpus.mkdir()
    report_pdf(corpus / "report.pdf", metadata_title="Lumen Observatory Annual Report 2025")
    long_report_pdf(corpus / "atlas.pdf", TOPICS)
    seed = sorted(SEEDS.glob("*.txt"))[0]
    (corpus / seed.name).write_bytes(seed.read_bytes())
    (corpus / "design.md").write_text("# Design\n\nThe system has two parts.\n\n## Storage\n\nData is kept in "
                                      "Qdrant on the local disk.\n\n## Search\n\nQuestions are matched by meaning.\n")
    settings = Settings(corpus_dir=corpus, index_dir=root / "index", embedding_model=PACKAGED_EMBEDDING_ID,
                        llm_model=PACKAGED_LLM_ID, offline=True, n_ctx=2048, max_tokens=64,
                        answer_mode="extractive", admin_key=ADMIN, ask_key=ASK)
    pipeline = Pipeline(settings)
    report = pipeline.ingest()
    assert not report.skipped, report.skipped
    yield pipeline
    pipeline.close()


# -- reading PDFs ---------------------------------------------------------------------------------------------

def test_running_headers_and_footers_are_dropped_and_never_the_title(tmp_path: Path) -> None:
    document = read_document(report_pdf(tmp_path / "r.pdf"), "r.pdf")
    assert REPORT_TITLE not in document.text and "Page 5 of 6" not in document.text and "of 6" not in document.text
    assert document.title == "1 Overview"  # no metadata title: the first heading-like line of page 1
    titled = read_document(report_pdf(tmp_path / "t.pdf", metadata_title="Annual Report of Lumen"), "t.pdf")
    assert titled.title == "Annual Report of Lumen"
    assert [number for _, number in document.layout.pages] == [1, 2, 3, 4, 5, 6]
    assert document.layout.page_count == 6


def test_a_sentence_over_a_page_break_is_one_sentence_on_two_pages(tmp_path: Path) -> None:
    document = read_document(report_pdf(tmp_path / "r.pdf"), "r.pdf")
    sentence = "Private donors gave a further 2 million euros for the new survey camera, and the camera is expected"
    start = document.text.index(sentence)
    assert "\n" not in document.text[start : start + len(sentence)]
    assert document.layout.page_span(start, start + len(sentence) + 30) == (4, 5)


def test_pdf_outline_gives_sections(tmp_path: Path) -> None:
    document = read_document(report_pdf(tmp_path / "r.pdf"), "r.pdf")
    assert document.layout.section_at(document.text.index("employs 120 staff")) == "5 People"
    assert document.layout.section_at(document.text.index("mirror of 4.1")) == "2 Telescopes"


def test_a_page_without_text_is_skipped_with_a_note_and_the_rest_is_read(tmp_path: Path) -> None:
    pdf = FPDF()
    for number in range(1, 4):
        pdf.add_page()
        if number == 2:  # a scan: only an image, here a drawn rectangle, and no text
            pdf.rect(20, 20, 100, 100, style="F")
            continue
        pdf.set_font("Helvetica", size=12)
        pdf.cell(0, 10, ["", "The harbour of Lumen was built in 1850 by fishermen.", "",
                         "Its lighthouse still guides the ships at night."][number])
    pdf.output(str(tmp_path / "scan.pdf"))
    document = read_document(tmp_path / "scan.pdf", "scan.pdf")
    assert [number for _, number in document.layout.pages] == [1, 3]
    assert "page 2 without text skipped" in document.notes[0]
    assert "tesseract" in document.notes[0]


def test_a_page_without_text_is_read_by_tesseract_when_it_is_installed(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The OCR plumbing, with a stand-in for the tesseract program (a real one is not installed here): it gets
    the rendered page as a PNG on stdin and its text becomes the page's."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    seen = tmp_path / "seen.png"
    fake = bin_dir / "tesseract"
    fake.write_text(f"#!/bin/sh\ncat > {seen}\necho 'The old harbour was rebuilt after the storm of 1910.'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{Path('/usr/bin')}:{Path('/bin')}")
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.cell(0, 10, "The harbour of Lumen was built in 1850 by fishermen.")
    pdf.add_page()
    pdf.rect(20, 20, 100, 100, style="F")
    pdf.output(str(tmp_path / "scan.pdf"))
    document = read_document(tmp_path / "scan.pdf", "scan.pdf")
    assert seen.read_bytes().startswith(b"\x89PNG")
    start = document.text.index("rebuilt after the storm")
    assert document.layout.page_at(start) == 2
    assert document.notes == ("read page 2 by OCR (tesseract)",)


def test_an_encrypted_pdf_is_skipped_in_one_line(tmp_path: Path) -> None:
    pdf = FPDF()
    pdf.set_encryption(owner_password="owner", user_password="secret")
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.cell(0, 10, "A secret report.")
    pdf.output(str(tmp_path / "secret.pdf"))
    from rag.errors import DocumentError

    with pytest.raises(DocumentError, match="the PDF is encrypted"):
        read_document(tmp_path / "secret.pdf", "secret.pdf")


# -- sections from Markdown, DOCX and HTML ----------------------------------------------------------------------

def test_sections_from_markdown_docx_and_html(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# Guide\n\nIntro text here.\n\n## Install\n\nRun the installer now.\n\n"
                                   "### Linux\n\nUse the package manager.\n\n## Use\n\nAsk a question.\n")
    md = read_document(tmp_path / "a.md", "a.md")
    assert md.layout.section_at(md.text.index("package manager")) == "Guide › Install › Linux"
    assert md.layout.section_at(md.text.index("Ask a question")) == "Guide › Use"

    word = docx.Document()
    word.add_heading("Handbook", level=1)
    word.add_paragraph("Welcome to the handbook of the team.")
    word.add_heading("Holidays", level=2)
    word.add_paragraph("Everyone has thirty days of holiday a year.")
    word.save(str(tmp_path / "b.docx"))
    doc = read_document(tmp_path / "b.docx", "b.docx")
    assert doc.layout.section_at(doc.text.index("thirty days")) == "Handbook › Holidays"
    assert doc.layout.pages == ()

    (tmp_path / "c.html").write_text("<html><body><nav><h2>Menu</h2></nav><article><h1>News</h1><p>Lead text of "
                                     "the story.</p><h2>Details</h2><p>The model has seven billion weights.</p>"
                                     "</article></body></html>")
    page = read_document(tmp_path / "c.html", "c.html")
    assert page.layout.section_at(page.text.index("seven billion")) == "News › Details"


def test_status_counts_the_pages_of_paged_documents(library: Pipeline) -> None:
    files = {row["file"]: row for row in library.status().to_dict()["files"]}  # type: ignore[union-attr]
    assert files["report.pdf"]["pages"] == 6 and files["atlas.pdf"]["pages"] == len(TOPICS)
    assert files["design.md"]["pages"] is None


def test_plain_text_has_no_pages_or_sections_and_its_prompt_is_unchanged(library: Pipeline) -> None:
    seed = sorted(SEEDS.glob("*.txt"))[0].name
    passages = [p for p in library.search("Alibaba open source models", 8) if p.file == seed]
    assert passages and all(p.page is None and p.page_end is None and p.section == "" for p in passages)
    answer = library.ask("What did Joe Tsai say about open-source models?").result
    assert answer.citations and all(c.page is None for c in answer.citations if c.file == seed)
    messages = build_messages("q", "en", [e for e in answer.evidence if e.file == seed], [])
    assert "§" not in messages[-1]["content"]


# -- page-precise citations -------------------------------------------------------------------------------------

def test_passages_and_citations_carry_their_pages(library: Pipeline) -> None:
    passages = [p for p in library.search(STAFF, 5) if p.file == "report.pdf"]
    assert passages and all(p.page is not None and p.page_end >= p.page for p in passages)
    assert any(p.page_end > p.page for p in passages)  # chunks run over page breaks
    answer = library.ask(STAFF).result
    cited = answer.citations[0]
    assert "120 staff" in cited.text
    assert (cited.file, cited.page, cited.page_end, cited.section) == ("report.pdf", 5, 5, "5 People")
    data = json.loads(json.dumps(answer.to_dict()))
    assert data["citations"][0]["page"] == 5 and data["passages"][0]["page_end"] is not None


def test_the_ui_shows_the_cited_page_with_a_link_to_the_original_at_that_page(library: Pipeline) -> None:
    cited = library.ask(STAFF).result.citations[0]
    text = library.document_text("report.pdf")
    from rag.ingest.layout import page_window

    shown = page_window(library.catalog.layout("report.pdf"), cited.page, cited.page_end, len(text))
    html = render.passage_in_document(cited.__dict__, text, shown)
    assert 'href="/api/files/report.pdf#page=5"' in html and "p. 5" in html
    assert '<mark class="rag-mark">The observatory employs 120 staff' in html
    assert "mirror of 4.1" not in html  # page 2 is not shown, only the cited page


def test_the_original_file_is_served_under_the_api_keys_and_only_for_indexed_files(library: Pipeline) -> None:
    (library.settings.corpus_dir / "not-indexed.pdf").write_bytes(b"%PDF-1.4 private")
    with serve(create_app(library, mount_ui=False)) as url:
        for key in (ADMIN, ASK):
            response = httpx.get(f"{url}/api/files/report.pdf", headers={"Authorization": f"Bearer {key}"})
            assert response.status_code == 200, response.text
            assert response.content == (library.settings.corpus_dir / "report.pdf").read_bytes()
            assert response.headers["content-type"] == "application/pdf"
            assert response.headers["content-disposition"].startswith("inline")
        assert httpx.get(f"{url}/api/files/report.pdf").status_code == 401
        auth = {"Authorization": f"Bearer {ADMIN}"}
        for name in ("not-indexed.pdf", "..%2F..%2Fetc%2Fpasswd", "../index/registry.sqlite", "%2Fetc%2Fpasswd"):
            response = httpx.get(f"{url}/api/files/{name}", headers=auth)
            assert response.status_code == 404, (name, response.status_code)
            assert b"private" not in response.content and b"SQLite" not in response.content
        assert "not in the index" in httpx.get(f"{url}/api/files/not-indexed.pdf", headers=auth).json()["error"]


# -- whole-document and corpus questions --------------------------------------------------------------------

def test_summarize_a_report_cites_pages_across_it(library: Pipeline) -> None:
    answer = library.ask("Summarize report.pdf").result
    pages = {c.page for c in answer.citations}
    assert len(pages) >= 3 and {c.file for c in answer.citations} == {"report.pdf"}
    assert answer.answer_mode == "extractive" and "5 People" in answer.answer  # the outline is named


@pytest.mark.parametrize("grounding", ["strict", "flag"])
def test_a_model_writes_the_summary_from_the_key_sentences_or_rag_quotes_them(
        tmp_path: Path, grounding: str) -> None:
    """Generated: the model reads the key sentences (numbered, with their sections) and its backed sentences
    stand. When nothing it writes is backed, the answer is the quoted key points, not a refusal."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    report_pdf(corpus / "report.pdf")
    backed = "The main telescope has a mirror of 4.1 metres [2]. The observatory employs 120 staff [5]."
    llm = ScriptedLLM([backed, "Lumen is famous for its cheese and its football team."])
    settings = Settings(corpus_dir=corpus, index_dir=tmp_path / "index", embedding_model=PACKAGED_EMBEDDING_ID,
                        llm_model=PACKAGED_LLM_ID, offline=True, answer_mode="generate", grounding=grounding)
    with Pipeline(settings, llm=llm) as pipeline:
        pipeline.ingest()
        written = pipeline.ask("Summarize report.pdf").result
        prompt = llm.calls[0][-1]["content"]
        assert "§ 2 Telescopes" in prompt and "mirror of 4.1 metres" in prompt and "120 staff" in prompt
        assert written.answer_mode == "generated" and "4.1 metres" in written.answer
        assert {c.page for c in written.citations} == {2, 5}
        invented = pipeline.ask("Summarize report.pdf").result
        if grounding == "strict":
            assert invented.answer_mode == "extractive" and "cheese" not in invented.answer
            assert len({c.page for c in invented.citations}) >= 3
        else:  # flagged: the claim stays in the answer, marked as backed by nothing
            assert [claim.text for claim in invented.unsupported] == [invented.answer.strip()]


def test_a_long_documents_summary_covers_its_beginning_middle_and_end(library: Pipeline) -> None:
    answer = library.ask("What is atlas.pdf about?").result
    pages = sorted(c.page for c in answer.citations if c.page is not None)
    assert pages and pages[0] <= 2 and any(5 <= p <= 8 for p in pages) and pages[-1] >= 11
    assert all(c.file == "atlas.pdf" for c in answer.citations)


def test_this_document_with_one_selected_is_that_document(library: Pipeline) -> None:
    answer = library.ask("What is this document about?", files=["report.pdf"]).result
    assert len({c.page for c in answer.citations}) >= 3
    ordinary = library.ask("What is this document about?").result  # four documents, none selected or named
    assert "key points" not in ordinary.answer


def test_which_documents_talk_about_a_topic(library: Pipeline) -> None:
    answer = library.ask("Which documents talk about telescopes and astronomers?").result
    files = [c.file for c in answer.citations]
    assert files and files[0] == "report.pdf" and len(files) == len(set(files))  # one line per document
    assert "Lumen Observatory Annual Report 2025" in answer.answer


def test_what_documents_do_you_have_lists_every_document(library: Pipeline) -> None:
    answer = library.ask("What documents do you have?").result
    assert {c.file for c in answer.citations} == {"report.pdf", "atlas.pdf", "design.md",
                                                  sorted(SEEDS.glob("*.txt"))[0].name}
    assert answer.answer.startswith("The index holds 4 documents:")


def test_an_ordinary_question_is_not_routed(library: Pipeline) -> None:
    answer = library.ask(STAFF).result
    assert "key points" not in answer.answer and "120 staff" in answer.answer
