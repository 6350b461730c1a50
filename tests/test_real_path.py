"""The real path end to end: packaged MiniLM, embedded Qdrant Edge, llama.cpp on the packaged SmolLM2 GGUF."""

from __future__ import annotations

from rag import Pipeline
from rag.config import Settings
from rag.ingest.documents import read_document


def test_seeds_ingest_ask_stream_cite_and_reingest(settings: Settings) -> None:
    with Pipeline(settings) as pipeline:
        first = pipeline.ingest()
        assert len(first.new) == 5 and first.chunks > 0
        # The default with SmolLM2: the evidence quoted, no model call, cited at exact offsets.
        quoted = pipeline.ask("Which model was Alibaba's first open-source model?").result
        assert quoted.answer_mode == "extractive" and quoted.timings["generated_tokens"] == 0
        assert any("Qwen-7B" in c.text and c.text in quoted.answer for c in quoted.citations)
    with Pipeline(settings.model_copy(update={"answer_mode": "generate", "grounding": "flag"})) as pipeline:
        stream = pipeline.ask("Which model was Alibaba's first open-source model?")
        pieces = list(stream)
        result = stream.result
        assert len(pieces) > 3  # token by token, not one block
        assert result.answer and result.timings["generated_tokens"] > 0 and result.timings["ttft_ms"] > 0
        assert result.models["llm"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
        assert result.citations, result.answer
        assert any("Qwen-7B" in c.text for c in result.citations)
        for citation in [*quoted.citations, *result.citations]:
            source = read_document(settings.corpus_dir / citation.file, citation.file)
            assert source.text[citation.start : citation.end] == citation.text
        again = pipeline.ingest()
        assert (len(again.unchanged), again.chunks) == (5, 0)
