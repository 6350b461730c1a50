"""Bad files: a corpus of more than twenty kinds of broken, odd or hostile input, built here, ingested by the real
`rag ingest` in a child process. Each file is ingested correctly or skipped with one line naming it and the
reason; everything else is ingested; memory stays bounded."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pypdf

from rag.ingest.registry import Registry
from rag.models.resolve import PACKAGED_EMBEDDING_ID

from .conftest import SEEDS
from .crashpoints import snapshot
from .test_documents import _docx, _pdf

ENV = {"RAG_EMBEDDING_MODEL": PACKAGED_EMBEDDING_ID, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
GOOD = "Qwen is a family of language models from Alibaba Cloud. Qwen-7B was released in August 2023.\n"
# Runs `rag ingest` with one file deleted between listing the corpus and reading it, then records peak memory.
# This process's own peak: ru_maxrss survives exec and would report the high-water mark of the pytest process.
PEAK_RSS = """
def peak_rss_kb():
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
"""
CHILD = PEAK_RSS + """
import sys
from pathlib import Path
import rag.ingest.ingester
from rag.cli.main import main

vanishing, index, corpus = sys.argv[1:4]
listed = rag.ingest.ingester.iter_files
def iter_files(paths):
    files = list(listed(paths))
    Path(vanishing).unlink()  # gone after it was listed, before it is read
    return files
rag.ingest.ingester.iter_files = iter_files
sys.argv = ["rag", "--index-dir", index, "ingest", corpus]
try:
    main()
finally:
    Path("peak-rss-kb").write_text(str(peak_rss_kb()))
"""


def _words(count: int) -> str:
    words = " ".join(p.read_text(encoding="utf-8") for p in SEEDS.glob("*.txt")).split()
    rng = random.Random(0)
    return " ".join(rng.choice(words) for _ in range(count))


def _encrypted_pdf(path: Path) -> Path:
    writer = pypdf.PdfWriter(clone_from=_pdf(path, "A secret report about Qwen."))
    writer.encrypt(user_password="secret", owner_password="owner", algorithm="RC4-128")
    writer.write(path)
    return path


def _pdf_without_text(path: Path) -> Path:
    """One page with a filled rectangle and no text: what a scan without OCR looks like to a text extractor."""
    _pdf(path, "x")
    path.write_bytes(path.read_bytes().replace(b"BT /F1 12 Tf 72 720 Td (x) Tj ET", b"0 0 1 rg 72 72 200 200 re f    "))
    return path


def build_corpus(corpus: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Writes the corpus; returns (file -> text that must be in it once ingested, file -> reason it is skipped)."""
    corpus.mkdir()
    ingested: dict[str, str] = {}
    skipped: dict[str, str] = {}

    def write(name: str, data: bytes) -> Path:
        path = corpus / name
        path.write_bytes(data)
        return path

    write("good.md", ("# Good\n\n" + GOOD).encode())
    ingested["good.md"] = "Qwen-7B was released in August 2023."
    write("empty.txt", b"")
    skipped["empty.txt"] = "empty file"
    write("binary.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 8)
    skipped["binary.txt"] = "binary data, not text"
    write("invalid-utf8.txt", "Grüße aus München. Qwen läuft lokal.\n".encode() * 5 + b"broken \xff\xfe\xc3( bytes\n")
    ingested["invalid-utf8.txt"] = "Grüße aus München. Qwen läuft lokal."
    write("utf16.txt", "Grüße, 通义千问 is Qwen's Chinese name.\n".encode("utf-16"))
    ingested["utf16.txt"] = "Grüße, 通义千问 is Qwen's Chinese name."
    write("latin1.txt", "Schöne Grüße aus Köln: Qwen läuft auf dem Laptop.\n".encode("latin-1"))
    ingested["latin1.txt"] = "Schöne Grüße aus Köln: Qwen läuft auf dem Laptop."
    block = _words(20000).encode()  # real words, one line, 50 MB: bigger than the default limit of 20 MB
    write("huge-single-line.txt", block * (50_000_000 // len(block)) + block[: 50_000_000 % len(block)])
    skipped["huge-single-line.txt"] = "50.0 MB of text, more than max_document_mb (20 MB): split it, or raise " \
                                      "max_document_mb"
    write("nested.html", b"<html><body>" + b"<div>" * 100_000 + b"Deep text about Qwen." + b"</div>" * 100_000
          + b"</body></html>")
    ingested["nested.html"] = "Deep text about Qwen."
    _encrypted_pdf(corpus / "encrypted.pdf")
    skipped["encrypted.pdf"] = "the PDF is encrypted: decrypt it first (e.g. qpdf --decrypt)"
    whole = _pdf(corpus / "truncated.pdf", "Qwen-7B was released in August 2023.").read_bytes()
    write("truncated.pdf", whole[: len(whole) // 2])
    skipped["truncated.pdf"] = "cannot parse it (data format error): check the file opens in a PDF viewer"
    _pdf_without_text(corpus / "scanned.pdf")
    skipped["scanned.pdf"] = "no text in it (a scanned PDF needs OCR first)"
    with zipfile.ZipFile(corpus / "junk.docx", "w") as archive:
        archive.writestr("junk.bin", os.urandom(512))
    skipped["junk.docx"] = "cannot parse it (\"There is no item named 'word/document.xml' in the archive\"): check " \
                           "the file opens in its usual program"
    _docx(corpus / "real.docx", "Tongyi Qianwen is Alibaba's model.")
    ingested["real.docx"] = "Tongyi Qianwen is Alibaba's model."
    (corpus / "loop-a.txt").symlink_to("loop-b.txt")
    (corpus / "loop-b.txt").symlink_to("loop-a.txt")
    skipped["loop-a.txt"] = skipped["loop-b.txt"] = "cannot read it (Too many levels of symbolic links)"
    (corpus / "itself").symlink_to(".")  # a folder link back up: not followed, nothing read twice
    write("unreadable.txt", GOOD.replace("Qwen-7B", "Qwen-14B").encode()).chmod(0)
    if os.geteuid() == 0:  # root reads it anyway: then it must simply be ingested
        ingested["unreadable.txt"] = "Qwen-14B was released"
    else:
        skipped["unreadable.txt"] = "cannot read it (Permission denied)"
    write("line\nbreak.md", b"# Name with a line break\n\nQwen2 came out in June 2024.\n")
    ingested["line\nbreak.md"] = "Qwen2 came out in June 2024."
    write("empty\nwith break.txt", b"")
    skipped["empty\nwith break.txt"] = "empty file"
    write("Grüße 通义千问 ünïcödé.md", "Qwen2.5 wurde im September 2024 veröffentlicht.\n".encode())
    ingested["Grüße 通义千问 ünïcödé.md"] = "Qwen2.5 wurde im September 2024 veröffentlicht."
    write("vanishing.txt", b"This file is deleted while the ingest runs.\n")
    skipped["vanishing.txt"] = "cannot read it (No such file or directory)"
    write("duplicate-a.txt", b"The very same text, saved twice under two names, about Qwen-72B.\n")
    write("duplicate-b.txt", b"The very same text, saved twice under two names, about Qwen-72B.\n")
    ingested["duplicate-a.txt"] = "about Qwen-72B."
    skipped["duplicate-b.txt"] = "same content as duplicate-a.txt, which is indexed"
    write("whitespace.txt", b" \n\t\n   \r\n\xc2\xa0\n" * 50)
    skipped["whitespace.txt"] = "no text in it"
    write("punctuation.md", b"... !!! ??? --- *** ;;; ((( ))) \xe2\x80\xa6 \xe3\x80\x82\n" * 20)
    skipped["punctuation.md"] = "no text in it"
    long_words = ("Donaudampfschifffahrtsgesellschaftskapitänswitwe " * 3 + "x" * 20_000 + " "
                  + "https://example.org/" + "a1b2c3/" * 700 + " The end of the long words.\n")
    write("long-words.txt", long_words.encode())
    ingested["long-words.txt"] = "The end of the long words."
    mixed = "Qwen 通义千问 Квен قوين クウェン 큐웬 क्वेन Κουέν 🚀 ok\u200b \u202eRTL\u202c mixed scripts.\n"
    write("mixed-scripts.txt", (mixed * 3).encode())
    ingested["mixed-scripts.txt"] = "Квен قوين クウェン"
    os.mkfifo(corpus / "pipe.txt")  # reading it would wait forever for a writer
    skipped["pipe.txt"] = "not a regular file"
    write("photo.jpg", b"\xff\xd8\xff\xe0 JFIF")
    skipped["photo.jpg"] = "unsupported file type '.jpg'"
    return ingested, skipped


def test_each_bad_file_is_ingested_or_skipped_in_one_line(tmp_path: Path) -> None:
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    ingested, skipped = build_corpus(corpus)
    assert len(ingested) + len(skipped) >= 25
    done = subprocess.run([sys.executable, "-c", CHILD, str(corpus / "vanishing.txt"), str(index), str(corpus)],
                          capture_output=True, text=True, timeout=600, env={**os.environ, **ENV}, cwd=tmp_path)
    assert done.returncode == 3, done.stderr  # 3: some files were skipped, the rest ingested
    assert "Traceback" not in done.stderr
    reported = {}
    for line in done.stderr.splitlines():
        if line.strip():
            match = re.fullmatch(r"skipped (.+?): (.+)", line)
            assert match, f"not a skip line: {line!r}"
            reported[match.group(1)] = match.group(2)
    printable = {name.replace("\n", "\\n"): reason for name, reason in skipped.items()}
    assert reported == printable
    assert f"{len(ingested)} new, 0 changed, 0 unchanged, 0 removed, {len(skipped)} skipped" in done.stdout

    registry = Registry(index / "registry.sqlite")
    try:
        records = {r.file: r for r in registry.documents()}
        assert set(records) == set(ingested) and all(r.complete for r in records.values())
        texts = {file: registry.text(file) or "" for file in records}
    finally:
        registry.close()
    for file, phrase in ingested.items():
        assert phrase in texts[file], file
    assert "\ufffd" in texts["invalid-utf8.txt"]  # the damaged bytes are marked, the rest is intact
    points = snapshot(index)
    assert {p["file"] for p in points.values()} == set(ingested)
    for point in points.values():  # every chunk is exactly the text at its offsets
        assert texts[point["file"]][point["start"] : point["end"]] == point["text"]
    assert all(os.path.lexists(corpus / name) for name in [*ingested, *skipped] if name != "vanishing.txt")
    peak_mb = int((tmp_path / "peak-rss-kb").read_text()) / 1e3
    assert peak_mb < 3000, f"ingest peaked at {peak_mb:.0f} MB"


def test_a_huge_single_line_is_chunked_in_bounded_memory(tmp_path: Path) -> None:
    """10 MB on one line, chunked with the real tokenizer: the tokenizer sees a window at a time. Measured on
    this machine: 0.44 GB peak windowed; 2.1 GB when the whole text was tokenized at once (9 GB at 50 MB)."""
    text = _words(200_000)
    (tmp_path / "big.txt").write_text(((text + " ") * (10_000_000 // len(text) + 1))[:10_000_000], encoding="utf-8")
    code = PEAK_RSS + f"""
import json
from pathlib import Path
from transformers import AutoTokenizer
from rag.ingest.chunking import chunk_text
from rag.config import Settings
from rag.models.resolve import resolve_embedding
ref = resolve_embedding(Settings(embedding_model={PACKAGED_EMBEDDING_ID!r}, offline=True), None)
tokenizer = AutoTokenizer.from_pretrained(str(ref.path))
def offsets(text):
    spans = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)["offset_mapping"]
    return [(s, e) for s, e in spans if e > s]
text = Path("big.txt").read_text(encoding="utf-8")
chunks = chunk_text(text, offsets, 200, 32)
sample = chunks[:: max(1, len(chunks) // 50)]
print(json.dumps({{"peak_kb": peak_rss_kb(), "chunks": len(chunks),
                  "exact": all(text[c.start:c.end] == c.text for c in chunks),
                  "covered": chunks[0].start == 0 and chunks[-1].end == len(text.rstrip()),
                  "tokens": max(len(offsets(c.text)) for c in sample)}}))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **ENV}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["chunks"] > 10_000 and result["exact"] and result["covered"]
    assert result["tokens"] <= 200
    assert result["peak_kb"] < 1_000_000, f"peak {result['peak_kb'] / 1e3:.0f} MB"
