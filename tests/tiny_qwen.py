"""A tiny random-weight Qwen2 GGUF with the real Qwen tokenizer and the Qwen2.5 ChatML template, for tests.

The weights are noise, so the model writes gibberish; what it exercises is everything around the weights that
the default model (Qwen2.5-Instruct GGUF) brings: the `qwen2` architecture, the 151k-token byte-level BPE
vocabulary with its `qwen2` pre-tokenizer, the <|im_start|>/<|im_end|> special tokens and the chat template.

The vocabulary comes from llama.cpp's vocab-only test file `models/ggml-vocab-qwen2.gguf`, which ships inside
llama-cpp-python's source distribution (PyPI only, no model hub). Both it and the built model are cached under
ROOT/.cache/test-models (git-ignored); set RAG_TEST_QWEN_VOCAB to use a copy of the vocab file from elsewhere.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import gguf
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CACHE_DIR = ROOT / ".cache" / "test-models"
VOCAB_ENV = "RAG_TEST_QWEN_VOCAB"
# Read at import too: the suite's conftest clears RAG_* variables around every test.
_VOCAB_ENV_AT_IMPORT = os.environ.get(VOCAB_ENV)
VOCAB_FILE = "ggml-vocab-qwen2.gguf"
VOCAB_MEMBER = "vendor/llama.cpp/models/" + VOCAB_FILE
# Bump when the builder changes, so a stale cached model is not reused.
MODEL_FILE = "tiny-qwen2-v2.gguf"

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"

# Qwen2.5-Instruct's chat template, verbatim (llama.cpp keeps a copy as
# models/templates/Qwen-Qwen2.5-7B-Instruct.jinja; the same text sits in tokenizer_config.json on the hub).
QWEN25_CHAT_TEMPLATE = r"""{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
"""  # noqa: E501

# The shape: small enough to build in seconds and run at hundreds of tokens a second on one core.
N_LAYER = 2
N_EMBD = 64
N_HEAD = 4
N_HEAD_KV = 2
N_FF = 128
CONTEXT_LENGTH = 4096
SEED = 20240917
# Weights this large make the two layers, not the (tied) embedding, decide the next token: the model then
# writes varied multilingual gibberish, including tokens that are partial UTF-8 sequences, instead of
# repeating the last prompt token forever.
EMBD_STD = 0.02
LAYER_STD = 0.25


def find_qwen_vocab(cache_dir: Path = CACHE_DIR) -> Path:
    """$RAG_TEST_QWEN_VOCAB, else the cached copy, else extracted from llama-cpp-python's sdist (PyPI)."""
    env = os.environ.get(VOCAB_ENV) or _VOCAB_ENV_AT_IMPORT
    if env and Path(env).is_file():
        return Path(env)
    cached = cache_dir / VOCAB_FILE
    if cached.is_file():
        return cached
    cache_dir.mkdir(parents=True, exist_ok=True)
    version = importlib.metadata.version("llama-cpp-python")
    with tempfile.TemporaryDirectory(prefix="llama-cpp-sdist-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               "--disable-pip-version-check", f"llama-cpp-python=={version}", "-d", tmp]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        sdists = sorted(Path(tmp).glob("*.tar.gz"))
        if done.returncode != 0 or not sdists:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise RuntimeError(
                f"cannot download llama-cpp-python {version}'s source distribution to get {VOCAB_FILE} "
                f"(set {VOCAB_ENV} to a copy of it): {' / '.join(tail)}"
            )
        with tarfile.open(sdists[0], "r:gz") as tar:
            member = next((m for m in tar if m.isfile() and m.name.endswith("/" + VOCAB_MEMBER)), None)
            if member is None:
                raise RuntimeError(f"{sdists[0].name} has no {VOCAB_MEMBER} (set {VOCAB_ENV} to a copy)")
            source = tar.extractfile(member)
            assert source is not None
            _write_atomically(cached, source.read())
    return cached


def add_qwen2_header(writer: gguf.GGUFWriter, name: str, shape: tuple[int, int, int, int, int, int],
                     file_type: gguf.LlamaFileType) -> None:
    """The qwen2 hyper-parameters Qwen2.5 models carry: (layers, context, width, FFN, heads, KV heads), rope
    theta 1e6, RMS epsilon 1e-6. Shared by this tiny model and eval/qwen_shape.py's full-size one."""
    n_layer, context, n_embd, n_ff, n_head, n_head_kv = shape
    writer.add_name(name)
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_block_count(n_layer)
    writer.add_context_length(context)
    writer.add_embedding_length(n_embd)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head_kv)
    writer.add_rope_freq_base(1_000_000.0)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_file_type(file_type)


def build_tiny_qwen_gguf(out_path: Path, vocab_path: Path | None = None) -> Path:
    """Write a random-weight Qwen2 GGUF to `out_path` (kept if it already exists) and return its path."""
    if out_path.is_file():
        return out_path
    vocab = gguf.GGUFReader(vocab_path or find_qwen_vocab(CACHE_DIR))
    arch = "qwen2"
    tmp = out_path.with_name(f".{out_path.name}.{os.getpid()}.tmp")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(tmp, arch)
    add_qwen2_header(writer, "tiny-qwen2-random (test fixture)", (N_LAYER, CONTEXT_LENGTH, N_EMBD, N_FF, N_HEAD,
                     N_HEAD_KV), gguf.LlamaFileType.MOSTLY_Q4_0)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)

    # The tokenizer, copied key by key from llama.cpp's Qwen2 vocab file, then set as in the official
    # Qwen2.5-Instruct GGUFs: a chat turn ends at <|im_end|>, no BOS is prepended, and the chat template.
    tokenizer = _tokenizer_fields(vocab)
    tokens = tokenizer[gguf.Keys.Tokenizer.LIST][0]
    tokenizer[gguf.Keys.Tokenizer.EOS_ID] = (tokens.index(IM_END), gguf.GGUFValueType.UINT32, None)
    tokenizer[gguf.Keys.Tokenizer.ADD_BOS] = (False, gguf.GGUFValueType.BOOL, None)
    tokenizer[gguf.Keys.Tokenizer.CHAT_TEMPLATE] = (QWEN25_CHAT_TEMPLATE, gguf.GGUFValueType.STRING, None)
    for key, (value, kind, item) in tokenizer.items():
        writer.add_key_value(key, value, kind, sub_type=item)

    rng = np.random.default_rng(SEED)

    def weight(*shape: int, std: float = LAYER_STD) -> np.ndarray:
        return (rng.standard_normal(shape) * std).astype(np.float32)

    n_vocab, head_dim = len(tokens), N_EMBD // N_HEAD
    # The embedding is 151936 x 64: quantized to Q4_0 it takes 5.5 MB. No output.weight: llama.cpp ties it
    # to the embedding, as Qwen2.5's small models do.
    embd = gguf.quants.quantize(weight(n_vocab, N_EMBD, std=EMBD_STD), gguf.GGMLQuantizationType.Q4_0)
    writer.add_tensor("token_embd.weight", embd, raw_dtype=gguf.GGMLQuantizationType.Q4_0)
    writer.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    for i in range(N_LAYER):
        blk = f"blk.{i}"
        writer.add_tensor(f"{blk}.attn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        writer.add_tensor(f"{blk}.attn_q.weight", weight(N_HEAD * head_dim, N_EMBD))
        writer.add_tensor(f"{blk}.attn_q.bias", weight(N_HEAD * head_dim))
        writer.add_tensor(f"{blk}.attn_k.weight", weight(N_HEAD_KV * head_dim, N_EMBD))
        writer.add_tensor(f"{blk}.attn_k.bias", weight(N_HEAD_KV * head_dim))
        writer.add_tensor(f"{blk}.attn_v.weight", weight(N_HEAD_KV * head_dim, N_EMBD))
        writer.add_tensor(f"{blk}.attn_v.bias", weight(N_HEAD_KV * head_dim))
        writer.add_tensor(f"{blk}.attn_output.weight", weight(N_EMBD, N_HEAD * head_dim))
        writer.add_tensor(f"{blk}.ffn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        writer.add_tensor(f"{blk}.ffn_gate.weight", weight(N_FF, N_EMBD))
        writer.add_tensor(f"{blk}.ffn_up.weight", weight(N_FF, N_EMBD))
        writer.add_tensor(f"{blk}.ffn_down.weight", weight(N_EMBD, N_FF))

    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)
    return out_path


def tiny_qwen_gguf(cache_dir: Path = CACHE_DIR) -> Path:
    """The cached tiny Qwen model, built on first use."""
    return build_tiny_qwen_gguf(cache_dir / MODEL_FILE, find_qwen_vocab(cache_dir))


Field = tuple[Any, gguf.GGUFValueType, gguf.GGUFValueType | None]


def _tokenizer_fields(vocab: gguf.GGUFReader) -> dict[str, Field]:
    """Every tokenizer.* key of a GGUF file but its chat templates, as (value, type, array item type)."""
    fields: dict[str, Field] = {}
    for key, field in vocab.fields.items():
        if key.startswith("tokenizer.") and not key.startswith(gguf.Keys.Tokenizer.CHAT_TEMPLATE):
            kind = field.types[0]
            item = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
            fields[key] = (field.contents(), kind, item)
    if gguf.Keys.Tokenizer.LIST not in fields:
        raise RuntimeError(f"{VOCAB_FILE} has no {gguf.Keys.Tokenizer.LIST}")
    return fields


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
