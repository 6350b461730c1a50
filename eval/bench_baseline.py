"""What a user would build instead: llama-index's default pipeline (SimpleDirectoryReader, then
VectorStoreIndex.from_documents with its default SentenceSplitter and in-memory store, then
as_query_engine) on the same corpus, with the same embedding model and the same GGUF, end to end; and rag on it.

Fair configuration: llama-index-embeddings-huggingface and llama-index-llms-llama-cpp are not installed, so the
embedding is a thin BaseEmbedding over the same sentence-transformers model (batch 32, normalised, as rag), and
the LLM a CustomLLM over the same llama_cpp.Llama settings calling create_chat_completion, so the GGUF's chat
template is applied to llama-index's QA prompt, with rag's sampling parameters and max_tokens."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench_util import settings_for
from llama_index.core.base.llms.types import CompletionResponse, CompletionResponseGen, LLMMetadata
from llama_index.core.embeddings import BaseEmbedding
from llama_index.core.llms import CustomLLM
from llama_index.core.llms.callbacks import llm_completion_callback
from pydantic import PrivateAttr

from rag import Pipeline
from rag.models.resolve import packaged_embedding_path, packaged_llm_path


class MiniLMEmbedding(BaseEmbedding):
    _model: Any = PrivateAttr()

    def __init__(self) -> None:
        from sentence_transformers import SentenceTransformer

        super().__init__(model_name="sentence-transformers/all-MiniLM-L6-v2", embed_batch_size=32)
        self._model = SentenceTransformer(str(packaged_embedding_path()), device="cpu", local_files_only=True)

    def _encode(self, texts: list[str]) -> list[list[float]]:
        return self._model.encode(texts, batch_size=32, normalize_embeddings=True, show_progress_bar=False).tolist()

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._encode([query])[0]

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._encode([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._encode(texts)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)


class ChatTemplateGGUF(CustomLLM):
    n_ctx: int = 4096
    max_tokens: int = 128
    _llama: Any = PrivateAttr()

    def __init__(self, n_ctx: int, max_tokens: int) -> None:
        import os

        from llama_cpp import Llama

        super().__init__(n_ctx=n_ctx, max_tokens=max_tokens)
        self._llama = Llama(model_path=str(packaged_llm_path()), n_ctx=n_ctx, n_threads=os.cpu_count(), n_batch=512,
                            seed=0, verbose=False)

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(context_window=self.n_ctx, num_output=self.max_tokens, model_name="SmolLM2-135M-Instruct")

    def _stream(self, prompt: str) -> Iterator[str]:
        for chunk in self._llama.create_chat_completion(
            messages=[{"role": "user", "content": prompt}], max_tokens=self.max_tokens, temperature=0.0, top_k=40,
            top_p=0.95, repeat_penalty=1.1, seed=0, stream=True,
        ):
            delta = chunk["choices"][0]["delta"].get("content")
            if delta:
                yield delta

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return CompletionResponse(text="".join(self._stream(prompt)))

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        text = ""
        for delta in self._stream(prompt):
            text += delta
            yield CompletionResponse(text=text, delta=delta)


def _timed_stream(pieces: Iterator[str], started: float) -> dict[str, float]:
    first = 0.0
    for _ in pieces:
        first = first or time.perf_counter()
    end = time.perf_counter()
    return {"ttft_ms": ((first or end) - started) * 1000, "total_ms": (end - started) * 1000}


def llama_index_default(corpus: Path, questions: list[str], max_tokens: int, n_ctx: int) -> dict[str, Any]:
    from llama_index.core import Settings as LISettings
    from llama_index.core import SimpleDirectoryReader, VectorStoreIndex

    embed, llm = MiniLMEmbedding(), ChatTemplateGGUF(n_ctx, max_tokens)
    LISettings.embed_model, LISettings.llm = embed, llm  # never the OpenAI defaults
    started = time.perf_counter()
    documents = SimpleDirectoryReader(str(corpus)).load_data()
    index = VectorStoreIndex.from_documents(documents, embed_model=embed)
    ingest_s = time.perf_counter() - started
    engine = index.as_query_engine(llm=llm, streaming=True)
    runs = []
    for question in questions:
        t = time.perf_counter()
        response = engine.query(question)
        runs.append(_timed_stream(response.response_gen, t))
    return {"ingest_s": ingest_s, "chunks": len(index.docstore.docs), "runs": runs}


def rag_pipeline(corpus: Path, index: Path, questions: list[str], max_tokens: int, n_ctx: int) -> dict[str, Any]:
    settings = settings_for(corpus, index, max_tokens=max_tokens, n_ctx=n_ctx)
    with Pipeline(settings) as pipeline:
        _ = pipeline.embedder, pipeline.llm  # model loading is outside both sides' clocks
        started = time.perf_counter()
        report = pipeline.ingest()
        ingest_s = time.perf_counter() - started
        runs = []
        for question in questions:
            t = time.perf_counter()
            runs.append(_timed_stream(iter(pipeline.ask(question)), t))
        precision = pipeline.embedder.precision
    return {"ingest_s": ingest_s, "chunks": report.chunks, "embedding_precision": precision, "runs": runs}


def run(work: Path, corpus: Path, questions: list[str], max_tokens: int, n_ctx: int = 4096) -> dict[str, Any]:
    def total(side: dict[str, Any]) -> dict[str, Any]:
        runs = side.pop("runs")
        asked = sum(r["total_ms"] for r in runs) / 1000
        return {**{k: round(v, 2) if isinstance(v, float) else v for k, v in side.items()},
                "questions": len(runs), "ask_s": round(asked, 2),
                "mean_ttft_ms": round(sum(r["ttft_ms"] for r in runs) / len(runs), 1),
                "end_to_end_s": round(side["ingest_s"] + asked, 2)}

    mine = total(rag_pipeline(corpus, work / "baseline-index", questions, max_tokens, n_ctx))
    theirs = total(llama_index_default(corpus, questions, max_tokens, n_ctx))
    return {"rag": mine, "llama_index": theirs,
            "ratio_end_to_end": round(theirs["end_to_end_s"] / mine["end_to_end_s"], 3),
            "corpus_files": sum(1 for p in corpus.rglob("*") if p.is_file())}
