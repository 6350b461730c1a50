"""sentence-transformers embeddings: passages and queries, with the prefixes the model's own config asks for."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from functools import cache
from typing import Any, Literal

import numpy as np

from rag.models.resolve import ModelRef

# e5-style models need prefixes but older checkpoints do not declare them in their config.
_KNOWN_PREFIXES = {"e5": ("query: ", "passage: ")}

Precision = Literal["float32", "bfloat16"]
PRECISIONS: tuple[str, ...] = ("auto", "float32", "bfloat16")


def native_bf16() -> bool:
    """Does this CPU do bfloat16 arithmetic in hardware (AVX512-BF16 or AMX)? Without it torch emulates bf16 and
    autocast is slower than float32. The checks are private torch API, so a torch without them means no."""
    import torch

    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(check is not None and bool(check()) for check in checks)


def resolve_precision(requested: str) -> Precision:
    """The `embedding_precision` setting made concrete: auto picks bfloat16 only where it is fast."""
    if requested not in PRECISIONS:
        raise ValueError(f"embedding precision must be one of {', '.join(PRECISIONS)}, not {requested!r}")
    if requested == "auto":
        return "bfloat16" if native_bf16() else "float32"
    return "bfloat16" if requested == "bfloat16" else "float32"


def autocast(precision: Precision) -> AbstractContextManager[Any]:
    """Linear layers and attention in bfloat16, while layer norms, pooling and normalisation stay float32 (the
    residual adds promote); a no-op for float32. Autocast state is thread-local, so it wraps each encode call."""
    import torch

    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bfloat16")


class Embedder:
    def __init__(self, model: ModelRef, batch_size: int = 32, precision: str = "auto") -> None:
        self.ref = model
        self.name = model.name
        self.batch_size = batch_size
        self.precision = resolve_precision(precision)
        self.model = _load(str(model.path))
        self.dimension = int(self.model.get_embedding_dimension())
        self.max_tokens = int(self.model.max_seq_length)
        self.tokenizer = self.model.tokenizer
        self.query_prefix, self.passage_prefix = _prefixes(self.model.prompts, model.name)
        overhead = self.tokenizer.num_special_tokens_to_add(pair=False)
        prefix_tokens = len(self.tokenizer(self.passage_prefix, add_special_tokens=False)["input_ids"])
        self.passage_token_limit = self.max_tokens - overhead - prefix_tokens

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        encoded = self.tokenizer(
            text, add_special_tokens=False, return_offsets_mapping=True, truncation=False, verbose=False
        )
        return [(s, e) for s, e in encoded["offset_mapping"] if e > s]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        encoded = self.tokenizer(list(texts), add_special_tokens=False, truncation=False, verbose=False)
        return [len(ids) for ids in encoded["input_ids"]]

    def embed_passages(
        self, texts: Sequence[str], on_batch: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """Vectors in the order of `texts`. Batches are cut from the texts sorted by length, as
        SentenceTransformer.encode does over a whole list: a batch padded to its longest text wastes less
        (measured: 10-25% of embedding time on abstracts), and we keep a progress tick per batch."""
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for begin in range(0, len(order), self.batch_size):
            picked = order[begin : begin + self.batch_size]
            vectors[picked] = self._encode([self.passage_prefix + texts[i] for i in picked])
            if on_batch:
                on_batch(len(picked))
        return vectors

    def embed_query(self, text: str) -> list[float]:
        return self._encode([self.query_prefix + text])[0].tolist()

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors of short texts to compare with one another (e5-style models want the query prefix on both
        sides of a symmetric comparison)."""
        return self._encode([self.query_prefix + text for text in texts])

    def _encode(self, texts: list[str]) -> np.ndarray:
        with autocast(self.precision):
            return self.model.encode(
                texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True,
                show_progress_bar=False,
            )


@cache
def _load(path: str) -> Any:
    """One copy of each model per process, however many pipelines use it."""
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # a bar per model load is noise in a CLI
    return SentenceTransformer(path, device="cpu", local_files_only=True)


def _prefixes(prompts: dict[str, str], name: str) -> tuple[str, str]:
    query = prompts.get("query", "")
    passage = prompts.get("passage", prompts.get("document", prompts.get("text", "")))
    if not query and not passage:
        for marker, (q, p) in _KNOWN_PREFIXES.items():
            if marker in name.lower().replace("/", "-").split("-"):
                return q, p
    return query, passage
