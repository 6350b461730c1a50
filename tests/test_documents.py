"""Reading files: normalisation, boilerplate rules, titles, dates, languages, encodings and bad files."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from rag.errors import DocumentError
from rag.ingest.documents import decode_text, read_document
from rag.ingest.text import detect_language, drop_boilerplate, find_date, find_title, normalise

from .conftest import SEEDS


def seed(prefix: str) -> Path:
    return next(SEEDS.glob(f"{prefix}_*.txt"))


def test_normalise_is_nfc_and_collapses_blanks() -> None:
    raw = "Cafe\u0301  au\tlait \r\n\r\n\r\n\nnext\u00a0line  \ufeff"
    assert normalise(raw) == "Café au lait\n\nnext line"


def test_seed_boilerplate_is_dropped_by_generic_rules() -> None:
    english = read_document(seed("000"), "000.txt")
    assert "Taobao's 11.11" not in english.text and "Milano Cortina" not in english.text
    assert english.text.endswith("most widely adopted open-source models.")
    german = read_document(seed("001"), "001.txt")
    assert "Alle Rechte vorbehalten" not in german.text
    assert "Lesezeit" not in german.text
    assert "Shop-Betreiber" not in german.text  # the ad after "Noch mehr Beiträge zu ..."
    assert "Qwen-7B" in german.text


def test_titles_dates_and_languages_of_the_seeds() -> None:
    markdown = read_document(seed("002"), "002.txt")
    assert markdown.title.startswith("Alibaba Opens AI Model to Third-Party Developers")
    assert "__" not in markdown.title and "](" not in markdown.title
    assert markdown.date == "2023-08-19"
    chinese_titled = read_document(seed("003"), "003.txt")
    assert chinese_titled.title.startswith("蔡崇信复盘阿里AI")
    assert chinese_titled.date == "2026-02-07"
    assert read_document(seed("001"), "001.txt").lang == "de"
    assert read_document(seed("004"), "004.txt").lang == "en"


def test_source_reference_markers_are_kept_in_the_text() -> None:
    assert "[1][5][24]" in read_document(seed("003"), "003.txt").text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Published on September 19, 2024 by staff", "2024-09-19"),
        ("Veröffentlicht am 3. März 2025", "2025-03-03"),
        ("发布于2024年9月19日", "2024-09-19"),
        ("As of February 2025, many models", None),
        ("Version 20231399 is not a date", None),
    ],
)
def test_find_date(text: str, expected: str | None) -> None:
    assert find_date(text) == expected


def test_find_title_prefers_heading_without_markup() -> None:
    assert find_title("intro line\n# __The [Real](http://x) Title__\nbody") == "The Real Title"


@pytest.mark.parametrize(
    ("text", "lang"),
    [("Welches Modell hat Alibaba zuerst veröffentlicht?", "de"), ("阿里巴巴的第一个开源模型是什么？", "zh"),
     ("Which model did Alibaba release first?", "en"), ("...!!!", "und")],
)
def test_detect_language(text: str, lang: str) -> None:
    assert detect_language(text) == lang


def test_trailing_headline_block_is_dropped_but_a_short_document_is_kept() -> None:
    body = "A real sentence about Qwen models.\nAnother sentence that ends properly."
    teasers = "\nAlibaba Cloud Wins Award\nNew Data Center Opens in Bangkok\nShopping Festival Results Announced"
    assert drop_boilerplate(body + teasers) == body
    only_headlines = "Title One Here\nTitle Two Here\nTitle Three Here"
    assert drop_boilerplate(only_headlines) == only_headlines


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("grüße 中文".encode("utf-16"), "grüße 中文"),
        ("grüße".encode("utf-8-sig"), "grüße"),
        ("Grüße aus München, schöne Straße".encode("latin-1"), "Grüße aus München, schöne Straße"),
    ],
)
def test_decode_text_handles_common_encodings(data: bytes, expected: str) -> None:
    assert decode_text(data) == expected


def _docx(path: Path, text: str) -> Path:
    body = f'<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>' \
           f"<w:p><w:r><w:t>{text}</w:t></w:r></w:p></w:body></w:document>"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
        archive.writestr("word/document.xml", body)
    return path


def _pdf(path: Path, text: str) -> Path:
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = b"%PDF-1.4\n", []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    path.write_bytes(out)
    return path


def test_pdf_docx_html_and_markdown_are_read(tmp_path: Path) -> None:
    pdf = read_document(_pdf(tmp_path / "a.pdf", "Qwen-7B was released in August 2023."), "a.pdf")
    assert "Qwen-7B was released in August 2023." in pdf.text
    docx = read_document(_docx(tmp_path / "b.docx", "Tongyi Qianwen is Alibaba's model."), "b.docx")
    assert docx.text == "Tongyi Qianwen is Alibaba's model."
    html = tmp_path / "c.html"
    html.write_text("<html><head><title>Qwen News</title><script>alert(1)</script></head><body><nav>Home | About"
                    "</nav><article><h1>Qwen News</h1><p>Qwen2.5 launched.</p><p>It is open.</p></article>"
                    "<footer>Imprint</footer></body></html>")
    doc = read_document(html, "c.html")
    assert doc.title == "Qwen News"
    assert "alert" not in doc.text and "Home | About" not in doc.text and "Imprint" not in doc.text
    assert "Qwen2.5 launched.\n" in doc.text


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.txt", b"", "empty file"),
        ("binary.txt", b"\x00\x01\x02\x03" * 100, "binary"),
        ("image.png", b"\x89PNG\r\n", "unsupported file type"),
        ("punct.md", b"... !!! ---\n\n  ", "no text"),
        ("broken.pdf", b"%PDF-1.4\n1 0 obj garbage", "cannot parse"),
        ("junk.docx", b"PK\x03\x04 not really a zip", "cannot parse"),
    ],
)
def test_bad_files_raise_one_line_reasons(tmp_path: Path, name: str, content: bytes, reason: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DocumentError) as error:
        read_document(path, name)
    assert reason in str(error.value)
    assert "\n" not in str(error.value)
