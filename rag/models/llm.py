"""Chat LLM backends: llama.cpp in-process (default) or any OpenAI-compatible server, chosen from settings."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Protocol

from rag.config import Settings
from rag.errors import BackendUnavailableError, ModelError
from rag.models.resolve import ModelRef, resolve_llm

if TYPE_CHECKING:
    from llama_cpp import Llama

Message = dict[str, str]


class ChatLLM(Protocol):
    name: str
    n_ctx: int
    notice: str

    def count_tokens(self, text: str) -> int: ...

    def stream_chat(self, messages: list[Message], max_tokens: int, temperature: float) -> Iterator[str]: ...

    def prefill(self, messages: list[Message]) -> int: ...

    def prompt_tokens_per_s(self) -> float | None:
        """How fast the model reads a prompt, measured (None while unknown): sizes the evidence."""
        ...


# Tokens between two looks at a waiting generation: smaller steps cost little (SmolLM2 prefilled 702 tokens in
# 1.53 s in steps of 128, 1.54 s of 64, 1.63 s of 32) and bound how long a question waits.
_PREFILL_STEP = 64
# A prompt reading this many new tokens or more updates the measured prompt speed (shorter ones time mostly
# the sampling of the first token).
_RATE_MIN_TOKENS = 32
_RATE_PROBE = "The quick brown fox jumps over the lazy dog while the committee reviews its annual report. " * 4


class PromptRate:
    """Prompt-reading speed in tokens/s: a first probe, then a moving average over real prompts."""

    def __init__(self) -> None:
        self.value: float | None = None
        self.last_prompt_tokens = 0

    def observe(self, tokens: int, seconds: float) -> None:
        if tokens >= _RATE_MIN_TOKENS and seconds > 0:
            rate = tokens / seconds
            self.value = rate if self.value is None else 0.7 * self.value + 0.3 * rate


class LlamaCppLLM:
    """llama-cpp-python's own chat completion, which applies the GGUF's chat template (Qwen's ChatML)."""

    def __init__(self, model: ModelRef, n_ctx: int, n_threads: int = 0) -> None:
        from llama_cpp import Llama

        self.ref = model
        self.name = model.name
        self.notice = model.notice
        try:
            self._llama = Llama(
                model_path=str(model.path), n_ctx=n_ctx, n_threads=n_threads or os.cpu_count(),
                n_batch=512, seed=0, verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"cannot load the GGUF model {model.path} ({exc})".splitlines()[0],
                             "check that the file is a complete GGUF model") from exc
        # Never ask for more context than the model was trained for: it degrades into nonsense.
        trained = next((int(v) for k, v in self._llama.metadata.items() if k.endswith(".context_length")), 0)
        self.n_ctx = min(self._llama.n_ctx(), trained) if trained > 0 else self._llama.n_ctx()
        # llama.cpp reuses the KV cache of the longest token prefix shared with its last prompt only. No
        # LlamaRAMCache of saved states: saving and restoring them cost more than evaluating the prefix again (rag
        # bench: answer TTFT after a translation call 1.9 s with it, 1.6 s without, SmolLM2). `prefill` instead
        # puts the next turn's prefix in place while the user reads.
        # One Llama object runs one generation at a time; callers queue here.
        self.lock = threading.Lock()
        self._waiting = 0
        self._counting = threading.Lock()
        self._render = _conversation_renderer(self._llama)
        self.rate = PromptRate()

    def prompt_tokens_per_s(self) -> float | None:
        """Measured once by reading a short probe into an empty cache (at load, or on the first question), then
        updated by every answer's own prompt."""
        if self.rate.value is None and self.lock.acquire(blocking=False):
            try:
                tokens = self._llama.tokenize(_RATE_PROBE.encode("utf-8"), add_bos=True)
                # The first evaluation after loading pages the weights in: not part of the speed.
                self._llama.n_tokens = 0
                self._llama.eval(tokens[:4])
                self._llama.n_tokens = 0
                started = time.perf_counter()
                self._llama.eval(tokens)
                self.rate.observe(len(tokens), time.perf_counter() - started)
                self._llama.n_tokens = 0  # nothing of the probe may be taken for a cached prefix
            finally:
                self.lock.release()
        return self.rate.value

    def _new_tokens(self, messages: list[Message]) -> tuple[int, int]:
        """(prompt tokens, of which not in the KV cache): what this prompt makes llama.cpp read."""
        if self._render is None:
            total = sum(self.count_tokens(m["content"]) + 4 for m in messages)
            return total, total
        tokens = self._render(messages)
        cached = self._llama.input_ids[: self._llama.n_tokens]
        shared = next((i for i, (a, b) in enumerate(zip(cached, tokens, strict=False)) if a != b),
                      min(len(cached), len(tokens)))
        return len(tokens), len(tokens) - shared

    def count_tokens(self, text: str) -> int:
        return len(self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def stream_chat(self, messages: list[Message], max_tokens: int, temperature: float) -> Iterator[str]:
        with self._counting:
            self._waiting += 1
        with self.lock:
            with self._counting:
                self._waiting -= 1
            total, new = self._new_tokens(messages)
            self.rate.last_prompt_tokens = total
            started = time.perf_counter()
            stream = self._llama.create_chat_completion(
                messages=messages, max_tokens=max_tokens, temperature=temperature, top_k=40, top_p=0.95,
                repeat_penalty=1.1, seed=0, stream=True,
            )
            first = True
            for chunk in stream:
                if first:
                    self.rate.observe(new, time.perf_counter() - started)
                    first = False
                delta = chunk["choices"][0]["delta"].get("content")
                if delta:
                    yield delta

    def prefill(self, messages: list[Message]) -> int:
        """Evaluate a conversation so far (system prompt and turns, no question yet) into the KV cache, so that the
        next prompt starting with it, the conversation's next turn, evaluates only what follows. Only while the
        model is idle, and giving way as soon as a generation waits. Returns the tokens evaluated."""
        if self._render is None or not self.lock.acquire(blocking=False):
            return 0
        try:
            llama = self._llama
            tokens = self._render(messages)
            if len(tokens) >= self.n_ctx:
                return 0
            cached = llama.input_ids[: llama.n_tokens]
            shared = next((i for i, (a, b) in enumerate(zip(cached, tokens, strict=False)) if a != b),
                          min(len(cached), len(tokens)))
            if shared == len(tokens) or self._waiting:
                return 0
            llama.n_tokens = shared  # eval() first drops the cache beyond this point
            for begin in range(shared, len(tokens), _PREFILL_STEP):
                if self._waiting:
                    break
                llama.eval(tokens[begin : begin + _PREFILL_STEP])
            return llama.n_tokens - shared
        finally:
            self.lock.release()


def _conversation_renderer(llama: Llama) -> Callable[[list[Message]], list[int]] | None:
    """Messages → the tokens create_chat_completion gives the model for them, minus the answer's opening: the
    GGUF's own chat template, rendered and tokenized as llama-cpp-python's template handler does."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = llama.metadata.get("tokenizer.chat_template")
    if not template:
        return None

    def text_of(token: int) -> str:
        return llama.detokenize([token], special=True).decode("utf-8", "replace") if token >= 0 else ""

    formatter = Jinja2ChatFormatter(template=template, eos_token=text_of(llama.token_eos()),
                                    bos_token=text_of(llama.token_bos()), add_generation_prompt=False)

    def render(messages: list[Message]) -> list[int]:
        rendered = formatter(messages=messages)
        return llama.tokenize(rendered.prompt.encode("utf-8"), add_bos=not rendered.added_special, special=True)

    return render


class OpenAICompatibleLLM:
    """Any server speaking the OpenAI chat API: vLLM, llama-server, Ollama, llama-cpp-python's server."""

    def __init__(self, settings: Settings) -> None:
        import openai

        self._openai = openai
        self.notice = ""
        self.n_ctx = settings.n_ctx
        self._client = openai.OpenAI(
            base_url=settings.llm_base_url, api_key=settings.llm_api_key.get_secret_value() or "none",
            timeout=settings.request_timeout, max_retries=1,
        )
        self.name = settings.llm_name or self._first_model(settings.llm_base_url)
        self.rate = PromptRate()

    def prompt_tokens_per_s(self) -> float | None:
        """Measured from the answers' time to first token (none before the first): a server's speed is its own."""
        return self.rate.value

    def _first_model(self, url: str) -> str:
        try:
            models = self._client.models.list().data
        except self._openai.OpenAIError as exc:
            raise BackendUnavailableError(
                f"cannot reach the LLM server at {url} ({type(exc).__name__})",
                "start it, or check RAG_LLM_BASE_URL",
            ) from exc
        if not models:
            raise ModelError(f"the LLM server at {url} serves no model", "load a model there or set RAG_LLM_NAME")
        return models[0].id

    def prefill(self, messages: list[Message]) -> int:
        # The server keeps its own prompt cache (llama-server's cache_prompt, vLLM's prefix caching); our stable
        # prefix of system prompt and history is what lets it hit.
        return 0

    def count_tokens(self, text: str) -> int:
        # No tokenizer on this side of the wire: 3 characters a token over-counts for every script we serve.
        return len(text) // 3 + 1

    def stream_chat(self, messages: list[Message], max_tokens: int, temperature: float) -> Iterator[str]:
        produced = False
        total = sum(self.count_tokens(m["content"]) + 4 for m in messages)
        self.rate.last_prompt_tokens = total
        started = time.perf_counter()
        try:
            stream = self._client.chat.completions.create(
                model=self.name, messages=messages, max_tokens=max_tokens, temperature=temperature, seed=0,
                stream=True,
            )
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    if not produced:  # a server caching the prefix reads faster than counted: the average adapts
                        self.rate.observe(total, time.perf_counter() - started)
                    produced = True
                    yield chunk.choices[0].delta.content
        except self._openai.APIConnectionError as exc:
            raise BackendUnavailableError(
                f"lost the LLM server at {self._client.base_url}", "check that it is running"
            ) from exc
        except self._openai.APIStatusError as exc:
            raise BackendUnavailableError(
                f"the LLM server at {self._client.base_url} answered {exc.status_code} for model {self.name}",
                "check RAG_LLM_NAME and the server's log (is its context window at least RAG_N_CTX?)",
            ) from exc
        if not produced:
            raise BackendUnavailableError(
                f"the LLM server at {self._client.base_url} returned no text",
                "its context window may be smaller than RAG_N_CTX: start it with a larger one or lower RAG_N_CTX",
            )


def load_llm(settings: Settings) -> ChatLLM:
    if settings.llm_base_url:
        return OpenAICompatibleLLM(settings)
    return LlamaCppLLM(resolve_llm(settings), n_ctx=settings.n_ctx, n_threads=settings.n_threads)
