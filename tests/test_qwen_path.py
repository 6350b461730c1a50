"""The default model's path through rag, with a tiny random-weight Qwen2 GGUF standing in for
Qwen2.5-Instruct: the qwen2 architecture, Qwen's tokenizer and its ChatML template, run by rag's real
LlamaCppLLM.

The model's output is noise, so only structure is checked: tokens stream, timings are filled, citations and
passages point at the right text, the tokenizer is Qwen's and the prompt llama.cpp evaluated is ChatML."""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any

import llama_cpp
import pytest

from rag import Pipeline
from rag.answer.result import Answer
from rag.config import Settings
from rag.conversation import Turn, conversation_prefix
from rag.models.llm import LlamaCppLLM
from rag.models.packaged_e5 import PACKAGED_MULTILINGUAL_ID
from rag.models.resolve import ModelRef
from tests.tiny_qwen import IM_END, IM_START, QWEN25_CHAT_TEMPLATE, tiny_qwen_gguf

CHINESE_QUESTION = "阿里巴巴的蔡崇信对通义千问和人工智能说了什么？"
ENGLISH_QUESTION = "What did Joe Tsai say about open-source AI models?"


@pytest.fixture(scope="session")
def qwen_gguf() -> Path:
    return tiny_qwen_gguf()


@pytest.fixture
def qwen_settings(settings: Settings, qwen_gguf: Path, e5_folder: Path) -> Settings:
    # grounding "flag": the tokens as the backend streams them (strict releases whole checked sentences); the
    # multilingual embedder, as by default, so the Chinese question finds Chinese evidence and reaches the model.
    return settings.model_copy(update={"llm_model": str(qwen_gguf), "max_tokens": 24, "grounding": "flag",
                                       "embedding_model": PACKAGED_MULTILINGUAL_ID})


def _llama(pipeline: Pipeline) -> llama_cpp.Llama:
    llm = pipeline.llm
    assert isinstance(llm, LlamaCppLLM)
    return llm._llama


def _ask(pipeline: Pipeline, question: str) -> tuple[list[str], Answer]:
    stream = pipeline.ask(question)
    pieces = list(stream)
    return pieces, stream.result


def _check_answer(pipeline: Pipeline, pieces: list[str], answer: Answer, gguf: Path) -> None:
    assert len(pieces) > 1, f"the answer arrived in {len(pieces)} piece(s), not streamed"
    assert all(isinstance(p, str) and p for p in pieces)
    assert answer.models["llm"] == gguf.name
    assert answer.used_passages > 0 and answer.passages
    assert answer.timings["generated_tokens"] > 0
    assert answer.timings["total_ms"] >= answer.timings["ttft_ms"] > 0
    assert "retrieval_ms" in answer.timings and "tokens_per_s" in answer.timings
    for passage in answer.passages:
        assert pipeline.document_text(passage.file)[passage.start : passage.end] == passage.text
    for citation in answer.citations:
        assert pipeline.document_text(citation.file)[citation.start : citation.end] == citation.text


def test_tiny_qwen_is_a_qwen2_model_llama_cpp_loads(qwen_gguf: Path) -> None:
    assert qwen_gguf.stat().st_size < 16_000_000
    llama = llama_cpp.Llama(model_path=str(qwen_gguf), n_ctx=512, verbose=False)
    meta = llama.metadata
    assert meta["general.architecture"] == "qwen2"
    assert meta["tokenizer.ggml.model"] == "gpt2" and meta["tokenizer.ggml.pre"] == "qwen2"
    assert meta["tokenizer.chat_template"] == QWEN25_CHAT_TEMPLATE
    assert llama.n_vocab() == 151936
    # Qwen's special tokens are single tokens, and a turn ends at <|im_end|>.
    im_start = llama.tokenize(IM_START.encode(), add_bos=False, special=True)
    im_end = llama.tokenize(IM_END.encode(), add_bos=False, special=True)
    assert im_start == [151644] and im_end == [151645]
    assert llama.token_eos() == 151645
    # Qwen's BPE keeps common Chinese words whole and round-trips the text.
    text = "通义千问是阿里巴巴的大模型"
    tokens = llama.tokenize(text.encode(), add_bos=False, special=False)
    assert 3 <= len(tokens) < len(text)
    assert llama.detokenize(tokens).decode("utf-8") == text


def test_llama_cpp_renders_the_gguf_template_as_chatml(qwen_gguf: Path) -> None:
    """llama.cpp's own template code (not ours, nor llama-cpp-python's Jinja) renders the GGUF's template as
    ChatML."""
    llama = llama_cpp.Llama(model_path=str(qwen_gguf), n_ctx=512, verbose=False)
    template = llama_cpp.llama_model_chat_template(llama.model, None)
    assert template is not None and template.decode() == QWEN25_CHAT_TEMPLATE
    chat = [("system", "Answer from the passages."), ("user", "通义千问是什么？")]
    messages = (llama_cpp.llama_chat_message * len(chat))(
        *(llama_cpp.llama_chat_message(role.encode(), content.encode()) for role, content in chat)
    )
    buf = ctypes.create_string_buffer(4096)
    n = llama_cpp.llama_chat_apply_template(template, messages, len(chat), True, buf, len(buf))
    assert 0 < n <= len(buf)
    assert buf.raw[:n].decode() == (
        "<|im_start|>system\nAnswer from the passages.<|im_end|>\n"
        "<|im_start|>user\n通义千问是什么？<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_rag_streams_answers_from_a_qwen_model(qwen_settings: Settings, qwen_gguf: Path) -> None:
    with Pipeline(qwen_settings) as pipeline:
        assert len(pipeline.ingest().new) == 5
        llm = pipeline.llm
        assert isinstance(llm, LlamaCppLLM)
        assert 3 <= llm.count_tokens("通义千问是阿里巴巴的大模型") <= 20
        assert llm.n_ctx == 2048  # min(settings.n_ctx, the GGUF's context_length 4096)
        llama = _llama(pipeline)
        # llama-cpp-python uses the template from the GGUF, not a built-in or fallback format.
        assert llama.chat_format == "chat_template.default"

        im_start = llama.tokenize(IM_START.encode(), add_bos=False, special=True)
        system_turn = im_start + llama.tokenize(b"system\n", add_bos=False, special=True)
        for question, lang in ((CHINESE_QUESTION, "zh"), (ENGLISH_QUESTION, "en")):
            pieces, answer = _ask(pipeline, question)
            _check_answer(pipeline, pieces, answer, qwen_gguf)
            assert answer.question_lang == lang
            # What llama.cpp evaluated (the prompt, then the generated tokens) is a ChatML conversation, its
            # <|im_start|> markers parsed as the special token rather than spelt out in text tokens.
            evaluated = llama._input_ids.tolist()
            assert evaluated[: len(system_turn)] == system_turn
            assert evaluated.count(im_start[0]) >= 3  # system, user, assistant
            rendered = llama.detokenize(evaluated, special=True).decode("utf-8", errors="replace")
            assert rendered.startswith("<|im_start|>system\n")
            assert "<|im_end|>\n<|im_start|>user\n" in rendered
            assert "<|im_end|>\n<|im_start|>assistant\n" in rendered
            assert question in rendered


def test_the_qwen_template_prefix_is_prefilled_and_reused(qwen_gguf: Path, count_evals: Any) -> None:
    """The next turn's prefix, rendered by us from the GGUF's Qwen2.5 template, is the token prefix llama-cpp-python
    gives the model for the whole conversation: after a prefill only the new turn is evaluated."""
    llm = LlamaCppLLM(ModelRef(name="tiny-qwen", path=qwen_gguf), n_ctx=1024)
    prefix = conversation_prefix("de", [Turn("Wer hat Qwen gebaut?", "Alibaba Cloud [1].")])
    question = {"role": "user", "content": "Passages:\n[1] Qwen-7B erschien im August 2023.\n\nFrage: Wann?"}
    evaluated = count_evals(llm)
    assert llm.prefill(prefix) == len(llm._render(prefix)) == sum(evaluated)
    evaluated.clear()
    list(llm.stream_chat([*prefix, question], 2, 0.0))
    assert 0 < evaluated[0] <= len(llm._render([*prefix, question])) - len(llm._render(prefix)) + 8
