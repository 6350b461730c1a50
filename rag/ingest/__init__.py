"""Ingest: read files (txt, md, pdf, docx, html), normalise them, find title, date and language, split them into
sentence-aware chunks with exact offsets, record them in the document registry, and hand the chunks to the store."""
