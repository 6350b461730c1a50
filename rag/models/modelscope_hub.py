"""ModelScope, through the `modelscope` package's hub functions (imported only when used): look up its cache, list
a repo's files, download one file or a snapshot into its cache (MODELSCOPE_CACHE, default ~/.cache/modelscope)
with its progress bars.

One of the two hub adapters (the other is hf_hub); rag.models.hubs picks between them."""

from __future__ import annotations

import importlib.util
import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LABEL = "ModelScope"
DEFAULT_ENDPOINT = "https://modelscope.cn"
INSTALL_HINT = "pip install 'modelscope>=1.40,<2'"
# ModelScope's default branch. Named, because without a revision model_file_download first asks the hub for the
# newest release tag, even for a cache lookup.
_REVISION = "master"
_WEIGHTS = ("*.safetensors", "*.bin")


def endpoint() -> str:
    """MODELSCOPE_ENDPOINT, else the older MODELSCOPE_DOMAIN (a bare host means https), else modelscope.cn: what
    the modelscope package reads, but read here on every call and handed to it, so that the reachability probe and
    the download see the same site (the package reads its variables once per process and would otherwise also
    try modelscope.ai)."""
    value = os.environ.get("MODELSCOPE_ENDPOINT", "").strip() or os.environ.get("MODELSCOPE_DOMAIN", "").strip()
    if not value:
        return DEFAULT_ENDPOINT
    return (value if "://" in value else f"https://{value}").rstrip("/")


def installed() -> bool:
    return importlib.util.find_spec("modelscope") is not None


def _cache_dir() -> Path:
    """The package's own default, read on every call for the reason `endpoint` gives."""
    return Path(os.environ.get("MODELSCOPE_CACHE") or Path.home() / ".cache" / "modelscope").expanduser()


@contextmanager
def _quiet() -> Iterator[None]:
    """The package logs each snapshot at INFO and warns that MODELSCOPE_DOMAIN is deprecated; rag says in its own
    line what it downloads. MODELSCOPE_LOG_LEVEL still wins."""
    if not os.environ.get("MODELSCOPE_LOG_LEVEL"):
        logging.getLogger("modelscope_hub").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def cached_snapshot(repo: str, patterns: list[str]) -> Path | None:
    if not _cache_dir().is_dir():  # nothing cached: spare the import (a second, as modelscope imports torch)
        return None
    from modelscope.hub.snapshot_download import snapshot_download
    from modelscope_hub.errors import HubError

    try:
        with _quiet():
            folder = Path(snapshot_download(repo, revision=_REVISION, cache_dir=_cache_dir(), endpoint=endpoint(),
                                            allow_patterns=patterns, local_files_only=True))
    except (HubError, ValueError, OSError):  # CacheNotFound and kin
        return None
    # An interrupted snapshot leaves the files it finished: without a config and weights it is not a model yet.
    complete = (folder / "config.json").is_file() and any(any(folder.glob(p)) for p in _WEIGHTS)
    return folder if complete else None


def download_snapshot(repo: str, patterns: list[str]) -> Path:
    from modelscope.hub.snapshot_download import snapshot_download

    with _quiet():
        return Path(snapshot_download(repo, revision=_REVISION, cache_dir=_cache_dir(), endpoint=endpoint(),
                                      allow_patterns=patterns))


def cached_file(repo: str, filename: str) -> Path | None:
    if not _cache_dir().is_dir():
        return None
    from modelscope.hub.file_download import model_file_download
    from modelscope_hub.errors import HubError

    try:
        with _quiet():
            return Path(model_file_download(repo, filename, revision=_REVISION, cache_dir=str(_cache_dir()),
                                            endpoint=endpoint(), local_files_only=True))
    except (HubError, ValueError, OSError):
        return None


def list_files(repo: str) -> list[str]:
    from modelscope.hub.api import HubApi

    with _quiet():
        files = HubApi(endpoint=endpoint()).get_model_files(repo, revision=_REVISION)
    return [str(f["Path"]) for f in files]


def download_file(repo: str, filename: str) -> Path:
    from modelscope.hub.file_download import model_file_download

    with _quiet():
        return Path(model_file_download(repo, filename, revision=_REVISION, cache_dir=str(_cache_dir()),
                                        endpoint=endpoint()))
