"""embedding_precision: bfloat16 autocast gives the packaged MiniLM's float32 vectors back to cosine > 0.999,
auto picks it only on CPUs with native bf16, and the setting comes through the environment to the Embedder."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from rag import Pipeline
from rag.config import Settings, load_settings
from rag.errors import ConfigError
from rag.models import embeddings as embeddings_module
from rag.models.embeddings import Embedder, native_bf16, resolve_precision
from rag.models.resolve import PACKAGED_EMBEDDING_ID, ModelRef, packaged_embedding_path

PASSAGES = [
    "Alibaba released Qwen-7B, its first open-source large language model, in August 2023.",
    "Vitamin D supplementation did not change bone mineral density in older adults over two years.",
    "The World Government Summit takes place every February in Dubai.",
    "Statins lower LDL cholesterol by inhibiting HMG-CoA reductase in the liver.",
    "Short.",
    "Malaria parasites invade red blood cells and remodel their membranes " * 8,
]


def embedder(precision: str) -> Embedder:
    return Embedder(ModelRef(name=PACKAGED_EMBEDDING_ID, path=packaged_embedding_path()), precision=precision)


@pytest.fixture
def linear_dtypes() -> Iterator[list[torch.dtype]]:
    """Output dtype of every Linear layer call in the (shared, cached) MiniLM while the test runs."""
    seen: list[torch.dtype] = []
    model = embedder("float32").model
    handles = [m.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
               for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert handles, "no Linear layer found in MiniLM"
    yield seen
    for handle in handles:
        handle.remove()


def test_bfloat16_vectors_match_float32_and_really_ran_in_bfloat16(linear_dtypes: list[torch.dtype]) -> None:
    full = embedder("float32")
    assert full.precision == "float32"
    reference = full.embed_passages(PASSAGES)
    query_reference = np.asarray(full.embed_query("Which model did Alibaba open-source first?"))
    assert linear_dtypes and set(linear_dtypes) == {torch.float32}

    linear_dtypes.clear()
    half = embedder("bfloat16")
    assert half.precision == "bfloat16"
    vectors = half.embed_passages(PASSAGES)
    query = np.asarray(half.embed_query("Which model did Alibaba open-source first?"))
    assert linear_dtypes and set(linear_dtypes) == {torch.bfloat16}  # every matmul ran under autocast
    assert not torch.is_autocast_enabled("cpu")  # and autocast did not leak out of the encode call

    assert vectors.dtype == np.float32 and vectors.shape == reference.shape
    assert not np.array_equal(vectors, reference)  # different arithmetic, so not bit-identical
    cosines = np.sum(vectors * reference, axis=1) / (
        np.linalg.norm(vectors, axis=1) * np.linalg.norm(reference, axis=1))
    assert cosines.min() > 0.999, cosines
    assert float(query @ query_reference) > 0.999
    # Close is not enough if everything collapsed: the passages must still be told apart.
    assert (vectors @ vectors.T)[~np.eye(len(PASSAGES), dtype=bool)].max() < 0.9


def test_auto_follows_the_cpu_capability(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embeddings_module, "native_bf16", lambda: True)
    assert resolve_precision("auto") == "bfloat16"
    assert embedder("auto").precision == "bfloat16"
    assert resolve_precision("float32") == "float32"  # an explicit choice is never overridden
    monkeypatch.setattr(embeddings_module, "native_bf16", lambda: False)
    assert resolve_precision("auto") == "float32"
    assert embedder("auto").precision == "float32"
    assert resolve_precision("bfloat16") == "bfloat16"
    with pytest.raises(ValueError, match="float16"):
        resolve_precision("float16")


@pytest.mark.parametrize(
    ("avx512_bf16", "amx", "expected"),
    [(True, False, True), (False, True, True), (False, False, False), (None, None, False)],
)
def test_native_bf16_reads_torchs_private_checks_defensively(
    monkeypatch: pytest.MonkeyPatch, avx512_bf16: bool | None, amx: bool | None, expected: bool
) -> None:
    for name, value in (("_is_avx512_bf16_supported", avx512_bf16), ("_is_amx_tile_supported", amx)):
        if value is None:  # a torch without the private function
            monkeypatch.delattr(torch.cpu, name, raising=False)
        else:
            monkeypatch.setattr(torch.cpu, name, lambda value=value: value)
    assert native_bf16() is expected


def test_setting_comes_from_the_environment_and_reaches_the_embedder(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load_settings().embedding_precision == "auto"
    monkeypatch.setenv("RAG_EMBEDDING_PRECISION", "bfloat16")
    assert load_settings().embedding_precision == "bfloat16"
    monkeypatch.setenv("RAG_EMBEDDING_PRECISION", "fp16")
    with pytest.raises(ConfigError, match="embedding_precision"):
        load_settings()
    for precision in ("float32", "bfloat16"):
        with Pipeline(settings.model_copy(update={"embedding_precision": precision})) as pipeline:
            assert pipeline.embedder.precision == precision


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_batches_cut_by_length_keep_the_input_order(precision: str) -> None:
    """Each row must be its own one-by-one vector and no other passage's. Under bf16 a vector moves slightly with
    its batch's padding (~4e-4 per component), so there the check compares cosines, not components."""
    chosen = embedder(precision)
    chosen.batch_size = 2  # several batches, cut across the input order
    together = chosen.embed_passages(PASSAGES)
    one_by_one = np.vstack([chosen.embed_passages([t]) for t in PASSAGES])
    cosines = together @ one_by_one.T
    assert (cosines.argmax(axis=1) == np.arange(len(PASSAGES))).all()
    if precision == "float32":
        assert np.allclose(together, one_by_one, atol=1e-5)
    else:
        assert np.diag(cosines).min() > 0.9999
