"""Settings: one object built at an entry point from rag.toml, then RAG_* environment variables, then flags.

Later sources win. Nothing below the front ends reads the environment; they receive a `Settings`.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from pydantic_settings.exceptions import SettingsError

from rag.errors import ConfigError

ENV_PREFIX = "RAG_"
DEFAULT_CONFIG_FILE = Path("rag.toml")
DEFAULT_EMBEDDING_MODEL = "intfloat/multilingual-e5-small"
DEFAULT_LLM_REPO = "Qwen/Qwen2.5-1.5B-Instruct-GGUF"
DEFAULT_LLM_FILE = "qwen2.5-1.5b-instruct-q4_k_m.gguf"

_toml_file: ContextVar[Path | None] = ContextVar("rag_toml_file", default=None)
# A list setting reaches the validator as written (NoDecode): a JSON list or "a,b" both parse there, and a bad
# value fails as a validation error naming the setting instead of pydantic-settings' JSON traceback.
StringList = Annotated[list[str], NoDecode]
_ORIGIN = re.compile(r"[a-z][a-z0-9+.-]*://[^/?#\s]+", re.IGNORECASE)


class Settings(BaseSettings):
    """Every knob of the pipeline. `rag config` prints them with their sources."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", validate_default=True)

    corpus_dir: Path = Field(Path("seeds"), description="Folder of documents `rag ingest` reads by default.")
    index_dir: Path = Field(Path("index"), description="Where the embedded index and document registry live.")
    collection: str = Field("rag", description="Qdrant collection name.")
    qdrant_url: str = Field("", description="Qdrant server URL; empty = embedded Qdrant Edge under index_dir.")
    qdrant_api_key: SecretStr = Field(SecretStr(""), description="API key for the Qdrant server.")

    embedding_model: str = Field(
        "",
        description="sentence-transformers model (hub id, modelscope:OWNER/NAME, or local folder); empty = the "
        f"model that built the index, else {DEFAULT_EMBEDDING_MODEL}.",
    )
    embedding_batch_size: int = Field(32, ge=1, le=1024, description="Chunks embedded per batch.")
    embedding_precision: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="Arithmetic of the embedding model. auto = bfloat16 on CPUs with native bf16 (AVX512-BF16 "
        "or AMX), where embedding runs ~2.4x faster and vectors stay at cosine > 0.9999 to float32's; float32 "
        "elsewhere, since bf16 is emulated there and slower. The index is usable with either.",
    )
    chunk_size: int = Field(200, ge=16, le=8192, description="Chunk size in embedding-model tokens.")
    chunk_overlap: int = Field(32, ge=0, description="Tokens of sentences repeated between neighbouring chunks.")

    top_k: int = Field(5, ge=1, le=100, description="Passages given to the model.")
    retrieval_mode: Literal["hybrid", "dense", "lexical"] = Field(
        "hybrid", description="hybrid = dense vectors and BM25 terms fused by Qdrant; or one side alone."
    )
    fusion: Literal["dbsf", "rrf"] = Field(
        "dbsf", description="How Qdrant fuses the two sides: score distributions (dbsf) or reciprocal ranks (rrf)."
    )
    query_translation: Literal["auto", "always", "off"] = Field(
        "auto", description="Also search a translation of the question (made by the LLM) when the embedding model's "
        "card does not list the question's language (auto), for every non-English question (always), or never.",
    )
    follow_ups: Literal["context", "rewrite"] = Field(
        "context", description="How a follow-up such as \"and when was it released?\" is searched: together with "
        "the conversation's recent questions, in no time (context), or as a standalone question the LLM writes "
        "first, which costs a generation before the answer starts (rewrite). The answer always sees the history.",
    )
    cross_lingual: bool = Field(
        True, description="Hybrid search in an index of several languages: the passage of another language closest "
        "in meaning to the question takes the last place shown when its dense cosine beats a shown passage's (the "
        "lexical side only matches the question's own language). Off = rank by the fused score alone.",
    )
    context_tokens: int = Field(
        1500, ge=64, description="Most LLM tokens of evidence in one prompt (the budget sized by ttft_target_s "
        "is usually smaller).")
    evidence_pool: int = Field(
        8, ge=1, le=100, description="Retrieved passages whose sentences compete to be the evidence (at least "
        "top_k).")
    ttft_target_s: float = Field(
        3.0, gt=0, description="Time to first token to aim for: the evidence given to the model is sized by the "
        "model's measured prompt speed to stay near it (at least min_evidence_sentences sentences).")
    min_evidence_sentences: int = Field(3, ge=1, le=20, description="Evidence sentences given however slow the model.")
    answer_mode: Literal["auto", "generate", "extractive"] = Field(
        "auto", description="generate = the LLM writes the answer from the evidence; extractive = the best evidence "
        "sentences, quoted and cited, without the LLM (instant, always grounded); auto = extractive with models "
        "measured too weak to answer (the offline SmolLM2-135M), generate with the others.")
    grounding: Literal["strict", "flag"] = Field(
        "strict", description="strict = a generated sentence no evidence backs is not part of the answer: it is shown "
        "apart, marked, and with nothing backed left the answer is a refusal with the closest evidence; flag = keep "
        "such sentences in the answer and mark them.")
    reranker_model: str = Field(
        "", description="sentence-transformers CrossEncoder (hub id or folder) that re-ranks candidates; empty = off."
    )
    rerank_candidates: int = Field(20, ge=1, le=200, description="Candidates the reranker reads per question.")
    relevance_threshold: float | None = Field(
        None, ge=0.0, le=1.0,
        description="Refuse without asking the LLM when no passage's dense cosine reaches this; empty = the value "
        "calibrated for the embedding model (rag/calibration.toml), 0 = never.",
    )

    llm_model: str = Field(
        "",
        description=f"GGUF file path or hub repo id (modelscope:OWNER/NAME for ModelScope); empty = "
        f"{DEFAULT_LLM_REPO}.",
    )
    llm_file: str = Field("", description=f"GGUF file name (or glob) inside a hub repo; default {DEFAULT_LLM_FILE}.")
    llm_base_url: str = Field("", description="OpenAI-compatible server URL (vLLM, llama-server, Ollama).")
    llm_api_key: SecretStr = Field(SecretStr(""), description="API key for the OpenAI-compatible server.")
    llm_name: str = Field("", description="Model name sent to the OpenAI-compatible server.")
    n_ctx: int = Field(4096, ge=512, description="LLM context window in tokens.")
    n_threads: int = Field(0, ge=0, description="CPU threads for llama.cpp; 0 = all cores.")
    max_tokens: int = Field(400, ge=16, description="Most tokens generated for one answer.")
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="Sampling temperature; 0 = deterministic.")
    request_timeout: float = Field(120.0, gt=0, description="Seconds to wait for a server (LLM or Qdrant).")

    offline: bool = Field(False, description="Never contact a model hub (HF_HUB_OFFLINE=1 also does this).")
    model_hub: Literal["auto", "huggingface", "modelscope"] = Field(
        "auto", description="Where models are downloaded from: auto = Hugging Face, else ModelScope when Hugging Face "
        "cannot be reached, else the packaged models; or one hub only. A name written modelscope:OWNER/NAME (or "
        "huggingface:OWNER/NAME) always comes from that hub. Mirrors: HF_ENDPOINT, MODELSCOPE_ENDPOINT.",
    )

    host: str = Field("127.0.0.1", description="Address `rag serve` listens on.")
    port: int = Field(7860, ge=1, le=65535, description="Port `rag serve` listens on.")
    admin_key: SecretStr = Field(SecretStr(""), description="API key for everything, uploads and deletes included.")
    ask_key: SecretStr = Field(
        SecretStr(""), description="API key that can only ask (safe in a public page's widget tag)."
    )
    allowed_origins: StringList = Field(
        default_factory=list, description="Origins (scheme://host:port) whose pages may call the API (CORS): a list, "
        "or one string of comma-separated origins.",
    )
    ask_rate_per_minute: int = Field(30, ge=1, description="Questions per minute per ask-key client.")
    queue_size: int = Field(16, ge=1, description="Questions waiting for the model before the server answers 429.")
    max_upload_mb: float = Field(50.0, gt=0, description="Largest upload accepted, in MB.")
    max_document_mb: float = Field(
        20.0, gt=0, description="Largest document text ingested, in MB; larger files are skipped (split them).",
    )
    max_question_chars: int = Field(2000, ge=10, description="Longest question accepted.")
    max_conversations: int = Field(
        1000, ge=0, description="Conversations kept (with their feedback) in index_dir/conversations.sqlite; the "
        "least recently continued go first. 0 = keep all.",
    )

    @field_validator("*", mode="before")
    @classmethod
    def _split_lists(cls, value: Any, info: Any) -> Any:
        """Every list setting: a JSON list or a comma-separated string, from the environment or rag.toml alike."""
        field = cls.model_fields.get(info.field_name)
        if field is None or NoDecode not in field.metadata or not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not a JSON list ({exc.msg} at column {exc.colno}); or write a,b,c") from None
            return value
        return [part.strip() for part in text.split(",") if part.strip()]

    @field_validator("allowed_origins")
    @classmethod
    def _check_origins(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            if not _ORIGIN.fullmatch(origin):
                raise ValueError(f"{origin!r} is not an origin: write scheme://host[:port], with no path or slash")
        return origins

    @model_validator(mode="after")
    def _check_sizes(self) -> Settings:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError("chunk_overlap must be smaller than chunk_size")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_path = _toml_file.get()
        if toml_path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_path))
        return tuple(sources)

    @property
    def embedded_store(self) -> bool:
        return not self.qdrant_url


def find_config_file(explicit: Path | None, environ: Mapping[str, str]) -> Path | None:
    """--config wins, then RAG_CONFIG, then ./rag.toml when present."""
    if explicit is not None:
        path = explicit
    elif environ.get(f"{ENV_PREFIX}CONFIG"):
        path = Path(environ[f"{ENV_PREFIX}CONFIG"])
    elif DEFAULT_CONFIG_FILE.is_file():
        return DEFAULT_CONFIG_FILE
    else:
        return None
    if not path.is_file():
        raise ConfigError(f"config file {path} not found", "check the path given to --config or RAG_CONFIG")
    return path


def load_settings(config_file: Path | None = None, **flags: Any) -> Settings:
    """Build Settings; `flags` are CLI values (None means the flag was not given)."""
    given = {k: v for k, v in flags.items() if v is not None}
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        given.setdefault("offline", True)  # the hub library's own switch means offline for us too
    path = find_config_file(config_file, os.environ)
    if path is not None:
        _check_toml(path)
    token = _toml_file.set(path)
    try:
        return Settings(**given)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"]) or "settings"
        raise ConfigError(
            f"invalid setting {field}: {_one_line(error['msg']).removeprefix('Value error, ')}",
            "fix it in rag.toml, the RAG_* environment or the flag (see `rag config`)",
        ) from exc
    except SettingsError as exc:  # a value pydantic-settings could not even read (its message names the field)
        raise ConfigError(f"invalid setting: {_one_line(str(exc))}", "fix it in rag.toml or the RAG_* environment")\
            from exc
    finally:
        _toml_file.reset(token)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _check_toml(path: Path) -> None:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}", "fix the TOML syntax") from exc
    unknown = sorted(set(data) - set(Settings.model_fields))
    if unknown:
        raise ConfigError(
            f"unknown setting(s) in {path}: {', '.join(unknown)}", "run `rag config` to list the valid names"
        )


def describe_settings(
    settings: Settings, config_file: Path | None = None, **flags: Any
) -> Iterator[tuple[str, str, str]]:
    """(name, value, source) for each setting; secrets are masked."""
    given = {k for k, v in flags.items() if v is not None}
    path = find_config_file(config_file, os.environ)
    in_file = set(tomllib.loads(path.read_text(encoding="utf-8"))) if path else set()
    for name in Settings.model_fields:
        env_name = f"{ENV_PREFIX}{name.upper()}"
        if name in given:
            source = "flag"
        elif env_name in os.environ:
            source = f"env {env_name}"
        elif name in in_file:
            source = str(path)
        else:
            source = "default"
        value = getattr(settings, name)
        secret = isinstance(value, SecretStr)
        shown = ("****" if value.get_secret_value() else "") if secret else str(value)
        yield name, shown, source
