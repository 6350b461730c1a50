"""A random-weight GGUF of the exact shape of Qwen2.5-1.5B-Instruct at Q4_K_M, to measure the default model's speed
on a machine that cannot reach the model hub.

Same architecture (`qwen2`, 28 layers, hidden 1536, 12 heads / 2 KV heads, FFN 8960, q/k/v biases, tied
embeddings), same 151,936-token vocabulary and Qwen2.5 chat template, same quantization recipe (F16 → Q4_K_M by
llama.cpp, which makes the tied embedding Q6_K as in the official file): compute per token is the real model's,
only the weights are noise. Built once (about 3 minutes) and cached under ROOT/.cache/test-models (git-ignored).

    python eval/qwen_shape.py    # builds if missing, prints the path
"""

from __future__ import annotations

import ctypes
import os
import sys
import time
from pathlib import Path
from typing import Any

import gguf
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for tests.tiny_qwen
from tests.tiny_qwen import (  # noqa: E402
    CACHE_DIR,
    IM_END,
    QWEN25_CHAT_TEMPLATE,
    _tokenizer_fields,
    add_qwen2_header,
    find_qwen_vocab,
)

# Bump when the builder changes, so a stale cached model is not reused.
MODEL_FILE = "qwen2.5-1.5b-instruct-shape-random-q4_k_m-v1.gguf"

# Qwen/Qwen2.5-1.5B-Instruct's config.json.
N_LAYER = 28
N_EMBD = 1536
N_HEAD = 12
N_HEAD_KV = 2
N_FF = 8960
CONTEXT_LENGTH = 32768
STD = 0.02
SEED = 20250101

# Qwen2.5's added tokens after <|endoftext|>, <|im_start|>, <|im_end|> (151643-151645; llama.cpp's Qwen2 vocab file
# has those three and pads the rest). Types as convert_hf_to_gguf.py gives them: <|...|> CONTROL, others USER_DEFINED.
QWEN25_ADDED_TOKENS = [
    "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>", "<|box_end|>", "<|quad_start|>",
    "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
    "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
    "<|repo_name|>", "<|file_sep|>",
]
FIRST_ADDED = 151646


def qwen25_1_5b_shape(cache_dir: Path = CACHE_DIR) -> Path:
    """The cached Qwen2.5-1.5B-shaped Q4_K_M GGUF, built on first use (printing progress)."""
    out = cache_dir / MODEL_FILE
    if out.is_file():
        return out
    started = time.perf_counter()
    f16 = out.with_name(f".{out.stem}.f16.{os.getpid()}.tmp")
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        build_f16(f16, find_qwen_vocab(cache_dir))
        print(f"[qwen-shape] F16 written: {f16.stat().st_size / 1e9:.2f} GB in {time.perf_counter() - started:.0f} s; "
              "quantizing to Q4_K_M", flush=True)
        quantize_q4_k_m(f16, tmp)
        os.replace(tmp, out)
    finally:
        f16.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)
    print(f"[qwen-shape] {out} ({out.stat().st_size / 1e9:.2f} GB) built in {time.perf_counter() - started:.0f} s",
          flush=True)
    return out


def qwen25_tokenizer_fields(vocab: gguf.GGUFReader) -> dict[str, Any]:
    """tests.tiny_qwen's tokenizer fields, with Qwen2.5's added tokens and the official Instruct GGUF's settings."""
    fields = _tokenizer_fields(vocab)
    tokens, kind, item = fields[gguf.Keys.Tokenizer.LIST]
    types, tkind, titem = fields[gguf.Keys.Tokenizer.TOKEN_TYPE]
    tokens, types = list(tokens), list(types)
    for i, text in enumerate(QWEN25_ADDED_TOKENS, start=FIRST_ADDED):
        tokens[i] = text
        special = text.startswith("<|") and text.endswith("|>")
        types[i] = int(gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED)
    fields[gguf.Keys.Tokenizer.LIST] = (tokens, kind, item)
    fields[gguf.Keys.Tokenizer.TOKEN_TYPE] = (types, tkind, titem)
    fields[gguf.Keys.Tokenizer.EOS_ID] = (tokens.index(IM_END), gguf.GGUFValueType.UINT32, None)
    fields[gguf.Keys.Tokenizer.ADD_BOS] = (False, gguf.GGUFValueType.BOOL, None)
    fields[gguf.Keys.Tokenizer.CHAT_TEMPLATE] = (QWEN25_CHAT_TEMPLATE, gguf.GGUFValueType.STRING, None)
    return fields


def build_f16(path: Path, vocab_path: Path) -> None:
    """Write the F16 GGUF (2-D weights F16, norms and biases F32, as convert_hf_to_gguf.py --outtype f16 does)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tokenizer = qwen25_tokenizer_fields(gguf.GGUFReader(vocab_path))
    n_vocab, head_dim = len(tokenizer[gguf.Keys.Tokenizer.LIST][0]), N_EMBD // N_HEAD
    writer = gguf.GGUFWriter(path, "qwen2")
    add_qwen2_header(writer, "Qwen2.5-1.5B-Instruct shape, random weights (benchmark fixture)",
                     (N_LAYER, CONTEXT_LENGTH, N_EMBD, N_FF, N_HEAD, N_HEAD_KV), gguf.LlamaFileType.MOSTLY_F16)
    for key, (value, kind, item) in tokenizer.items():
        writer.add_key_value(key, value, kind, sub_type=item)

    rng = np.random.default_rng(SEED)

    def weight(*shape: int) -> np.ndarray:  # numpy shape is (out, in): GGUF's ne reversed
        return (rng.standard_normal(shape, dtype=np.float32) * STD).astype(np.float16)

    def bias(n: int) -> np.ndarray:
        return rng.standard_normal(n, dtype=np.float32) * STD

    ones = np.ones(N_EMBD, dtype=np.float32)
    # No output.weight: llama.cpp ties the output to token_embd, as Qwen2.5-1.5B does (tie_word_embeddings).
    writer.add_tensor("token_embd.weight", weight(n_vocab, N_EMBD))
    writer.add_tensor("output_norm.weight", ones)
    for i in range(N_LAYER):
        blk = f"blk.{i}"
        writer.add_tensor(f"{blk}.attn_norm.weight", ones)
        writer.add_tensor(f"{blk}.attn_q.weight", weight(N_HEAD * head_dim, N_EMBD))
        writer.add_tensor(f"{blk}.attn_q.bias", bias(N_HEAD * head_dim))
        writer.add_tensor(f"{blk}.attn_k.weight", weight(N_HEAD_KV * head_dim, N_EMBD))
        writer.add_tensor(f"{blk}.attn_k.bias", bias(N_HEAD_KV * head_dim))
        writer.add_tensor(f"{blk}.attn_v.weight", weight(N_HEAD_KV * head_dim, N_EMBD))
        writer.add_tensor(f"{blk}.attn_v.bias", bias(N_HEAD_KV * head_dim))
        writer.add_tensor(f"{blk}.attn_output.weight", weight(N_EMBD, N_HEAD * head_dim))
        writer.add_tensor(f"{blk}.ffn_norm.weight", ones)
        writer.add_tensor(f"{blk}.ffn_gate.weight", weight(N_FF, N_EMBD))
        writer.add_tensor(f"{blk}.ffn_up.weight", weight(N_FF, N_EMBD))
        writer.add_tensor(f"{blk}.ffn_down.weight", weight(N_EMBD, N_FF))
        print(f"[qwen-shape] layer {i + 1}/{N_LAYER} generated", end="\r", flush=True)
    print(f"[qwen-shape] writing {path.name}" + " " * 20, flush=True)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def quantize_q4_k_m(src: Path, dst: Path) -> None:
    """llama.cpp's own quantizer, as `llama-quantize src dst Q4_K_M`."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M
    params.nthread = os.cpu_count() or 1
    code = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    if code != 0 or not dst.is_file():
        raise RuntimeError(f"llama_model_quantize failed ({code}) on {src}")


if __name__ == "__main__":
    print(qwen25_1_5b_shape())
