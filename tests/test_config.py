"""Settings precedence: rag.toml < RAG_* environment < flags, and clear errors for bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.config import describe_settings, load_settings
from rag.errors import ConfigError


def test_defaults_without_any_source() -> None:
    settings = load_settings()
    assert settings.index_dir == Path("index")
    assert settings.top_k == 5
    assert settings.qdrant_url == ""


def test_file_then_env_then_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Path("rag.toml").write_text('top_k = 3\nindex_dir = "from-file"\ncollection = "file-coll"\n')
    monkeypatch.setenv("RAG_TOP_K", "7")
    monkeypatch.setenv("RAG_INDEX_DIR", "from-env")
    settings = load_settings(index_dir=Path("from-flag"))
    assert settings.collection == "file-coll"
    assert settings.top_k == 7
    assert settings.index_dir == Path("from-flag")
    sources = {name: source for name, _, source in describe_settings(settings, index_dir=Path("from-flag"))}
    assert sources["collection"] == "rag.toml"
    assert sources["top_k"] == "env RAG_TOP_K"
    assert sources["index_dir"] == "flag"
    assert sources["chunk_size"] == "default"


def test_explicit_config_file_and_rag_config_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    custom = tmp_path / "custom.toml"
    custom.write_text("chunk_size = 120\n")
    assert load_settings(custom).chunk_size == 120
    monkeypatch.setenv("RAG_CONFIG", str(custom))
    assert load_settings().chunk_size == 120


def test_secrets_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_QDRANT_API_KEY", "s3cret")
    settings = load_settings()
    assert settings.qdrant_api_key.get_secret_value() == "s3cret"
    shown = {name: value for name, value, _ in describe_settings(settings)}
    assert shown["qdrant_api_key"] == "****"


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("top_k = 0\n", "top_k"),
        ("bogus = 1\n", "unknown setting"),
        ("chunk_size = 50\nchunk_overlap = 60\n", "chunk_overlap"),
        ("top_k = [\n", "cannot read config file"),
    ],
)
def test_bad_config_is_one_clear_line(toml: str, message: str) -> None:
    Path("rag.toml").write_text(toml)
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_missing_explicit_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml")


def test_hf_hub_offline_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert load_settings().offline is True
