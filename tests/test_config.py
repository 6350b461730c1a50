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


# -- list settings: a JSON list or comma-separated, from the environment and rag.toml --------------------------

ORIGINS = ["https://a.example", "https://b.example:8443"]


@pytest.mark.parametrize("value", ["https://a.example,https://b.example:8443", " https://a.example , https://b.example:8443,",
                                   '["https://a.example", "https://b.example:8443"]'])
def test_list_settings_from_the_environment_in_both_forms(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_ALLOWED_ORIGINS", value)
    assert load_settings().allowed_origins == ORIGINS


@pytest.mark.parametrize("toml", ['allowed_origins = "https://a.example, https://b.example:8443"\n',
                                  'allowed_origins = ["https://a.example", "https://b.example:8443"]\n'])
def test_list_settings_from_rag_toml_in_both_forms(toml: str) -> None:
    Path("rag.toml").write_text(toml)
    assert load_settings().allowed_origins == ORIGINS


@pytest.mark.parametrize(("value", "says"), [
    ('["https://a.example",', "not a JSON list"),
    ("https://a.example/", "is not an origin"),
    ("a.example", "is not an origin"),
    ('{"a": 1}', "is not an origin"),
    ("[1, 2]", "valid string"),
])
def test_a_bad_list_setting_is_one_line_naming_it(value: str, says: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_ALLOWED_ORIGINS", value)
    with pytest.raises(ConfigError) as error:
        load_settings()
    message = str(error.value)
    assert message.startswith("invalid setting allowed_origins") and says in message and "\n" not in message


def test_rag_config_reads_comma_separated_origins_and_refuses_bad_ones_in_one_line() -> None:
    import os
    import subprocess
    import sys

    def config(value: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "rag", "config"], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "RAG_ALLOWED_ORIGINS": value})

    good = config("https://a.example,https://b.example")
    assert good.returncode == 0, good.stderr
    assert "['https://a.example', 'https://b.example']" in good.stdout and "env RAG_ALLOWED_ORIGINS" in good.stdout
    bad = config('["https://a.example"')
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and "allowed_origins" in bad.stderr


def test_max_conversations_is_a_setting() -> None:
    assert load_settings().max_conversations == 1000
    Path("rag.toml").write_text("max_conversations = -1\n")
    with pytest.raises(ConfigError, match="max_conversations"):
        load_settings()
