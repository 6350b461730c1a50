"""The Pipeline: built once from Settings, it wires documents, embeddings, the vector store, retrieval and the
LLM, loading each part only when first needed. Every front end holds one."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from rag.answer.compose import Composer, Question, answer_mode
from rag.answer.context import question_budget
from rag.answer.generate import relevance_gate
from rag.answer.prefill import Prefiller
from rag.answer.result import AnswerStream
from rag.answer.scoped import scoped_answer
from rag.answer.support import support_judge
from rag.catalog import Catalog
from rag.config import Settings
from rag.conversation import Turn, trim_history
from rag.conversations import FILE_NAME, ConversationStore
from rag.errors import DocumentError, IndexMismatchError, NotFoundError, RagError
from rag.ingest.ingester import INDEX_FORMAT, Ingester, IngestReport, NoProgress, Progress
from rag.ingest.registry import Registry
from rag.ingest.text import detect_language
from rag.ingest.uploads import UPLOADS_DIR, save_upload
from rag.models.calibration import relevance_threshold
from rag.models.embeddings import Embedder
from rag.models.llm import ChatLLM, load_llm
from rag.models.resolve import resolve_embedding, resolve_reranker
from rag.search.follow_ups import follow_up_query
from rag.search.rerank import Reranker
from rag.search.retrieve import Passage, QueryForm, Retriever
from rag.search.scope import scope_of
from rag.search.translate import QueryTranslator, model_languages
from rag.status import ModelSource, Status, model_sources
from rag.store import VectorStore, open_vector_store, verify_store
from rag.store.lock import IndexLock
from rag.store.scale import outgrown_notice


class Pipeline:
    def __init__(self, settings: Settings, llm: ChatLLM | None = None) -> None:
        """`llm` replaces the configured model (a server's shared model, or a test double)."""
        self.settings = settings
        self._lock = IndexLock(settings.index_dir)
        self._registry: Registry | None = None
        self._conversations: ConversationStore | None = None
        self._store: VectorStore | None = None
        self._embedder: Embedder | None = None
        self._llm: ChatLLM | None = llm
        self._reranker: Reranker | None = None
        self._reranker_notice = ""
        self._translator = QueryTranslator(lambda: self.llm)
        self._build = threading.Lock()
        # Index reads and writes from several threads (a server) take turns; generation does not hold this.
        self._index = threading.RLock()
        self._prefiller = Prefiller()
        self._composer: Composer | None = None

    # -- parts, each built on first use ------------------------------------------------------------------
    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = Registry(self.settings.index_dir / "registry.sqlite")
        return self._registry

    @property
    def conversations(self) -> ConversationStore:  # a file of its own: a rebuilt index keeps the conversations
        with self._build:
            if self._conversations is None:
                settings = self.settings
                self._conversations = ConversationStore(settings.index_dir / FILE_NAME, settings.max_conversations)
            return self._conversations

    @property
    def store(self) -> VectorStore:
        with self._build:
            if self._store is None:
                self._lock.acquire()
                store = open_vector_store(self.settings)
                try:
                    verify_store(store, self.registry.complete_chunks(),
                                 self.settings.qdrant_url or str(self.settings.index_dir / "qdrant"))
                except RagError:
                    store.close()
                    raise
                self._store = store
            return self._store

    @property
    def embedder(self) -> Embedder:
        with self._build:
            if self._embedder is None:
                recorded = self.registry.meta("embedding_model")
                ref = resolve_embedding(self.settings, recorded)
                if recorded and ref.name != recorded:
                    raise IndexMismatchError(
                        f"the index was built with {recorded}, but the embedding model is now {ref.name}",
                        "rebuild it with `rag ingest --rebuild`, or unset RAG_EMBEDDING_MODEL",
                    )
                self._embedder = Embedder(ref, self.settings.embedding_batch_size, self.settings.embedding_precision)
            return self._embedder

    @property
    def llm(self) -> ChatLLM:
        with self._build:
            if self._llm is None:
                self._llm = load_llm(self.settings)
            return self._llm

    def hold_index(self, owner: str) -> None:
        """Take the index for the life of this process (a server), naming the holder for anyone refused."""
        self._lock.acquire(owner)
        _ = self.store

    def warm_up(self) -> dict[str, str]:
        """Load both models now, and measure how fast the LLM reads a prompt (a server does this at start, so the
        first question is not slow)."""
        llm = self.llm
        if answer_mode(self.settings.answer_mode, llm.name) == "generate" and hasattr(llm, "prompt_tokens_per_s"):
            llm.prompt_tokens_per_s()
        return {"llm": llm.name, "embedding": self.embedder.name}

    @property
    def reranker(self) -> Reranker | None:
        with self._build:
            if self._reranker is None and self.settings.reranker_model and not self._reranker_notice:
                ref = resolve_reranker(self.settings)
                if ref is not None and ref.name:
                    self._reranker = Reranker(ref.name, str(ref.path))
                else:
                    self._reranker_notice = ref.notice if ref else ""
            return self._reranker

    def notices(self) -> list[str]:
        parts = [self._embedder.ref.notice if self._embedder else "", self._llm.notice if self._llm else "",
                 self._reranker_notice]
        return [n for n in parts if n]

    # -- documents -----------------------------------------------------------------------------------------
    def ingest(
        self, paths: Sequence[Path] | None = None, *, prune: bool = False, rebuild: bool = False,
        progress: Progress | None = None,
    ) -> IngestReport:
        paths = list(paths or [self.settings.corpus_dir])
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise RagError(f"no such file or folder: {', '.join(missing)}", "check the path")
        with self._index:
            # A rebuild never reads the old index: it may be the corrupt thing being replaced.
            outdated = not rebuild and bool(self.registry.documents()) and \
                self.registry.meta("index_format") != INDEX_FORMAT
            if rebuild or outdated:
                self._rebuild()
            ingester = Ingester(
                registry=self.registry, store=self.store, embedder=lambda: self.embedder,
                chunk_size=self.settings.chunk_size, chunk_overlap=self.settings.chunk_overlap,
                corpus_dir=self.settings.corpus_dir, progress=progress or NoProgress(),
                max_document_mb=self.settings.max_document_mb,
            )
            report = ingester.run(paths, prune=prune)
            notice = outgrown_notice(self.registry.complete_chunks(), self.settings.embedded_store)
            if notice:
                report.notes.append(notice)
            if outdated and not rebuild:
                report.notes.append("the index was built by an older rag without hybrid search: rebuilt it")
            return report

    def upload(self, name: str, chunks: Iterable[bytes], progress: Progress | None = None) -> IngestReport:
        """Save a file that arrived over the network into the corpus (uploads/) and ingest it at once."""
        path = save_upload(self.settings.corpus_dir, name, chunks, int(self.settings.max_upload_mb * 1e6))
        report = self.ingest([path], progress=progress)
        if report.skipped:  # nothing of it is searchable: do not keep it in the corpus to fail again
            path.unlink(missing_ok=True)
            raise DocumentError(f"{path.name}: {report.skipped[0][1]}")
        return report

    def _rebuild(self) -> None:
        """Start from an empty index: also the way out of a corrupt or mismatched one."""
        self.close()
        self._lock.acquire()
        # The registry goes first: a crash after it leaves vectors no document claims (the next ingest rewrites
        # them), never documents listed complete whose vectors are gone. Its journal too, or SQLite would replay
        # a stale one into the new file.
        for name in ("registry.sqlite", "registry.sqlite-journal", "registry.sqlite-wal"):
            (self.settings.index_dir / name).unlink(missing_ok=True)
        if self.settings.embedded_store:
            shutil.rmtree(self.settings.index_dir / "qdrant", ignore_errors=True)
        else:
            self.store.clear()  # type: ignore[attr-defined]

    def remove(self, file: str) -> None:
        """Take a document out of the index; a file that came in as an upload is deleted too, the rest of
        the corpus is never touched."""
        with self._index:
            record = self.registry.get(file)
            if record is None:
                raise NotFoundError(f"{file} is not in the index", "see `rag status` for the indexed files")
            self.registry.set_pending(file)  # a crash before the last line must not leave it listed complete
            self.store.delete(file)
            self.store.flush()
            self.registry.remove(file)
        source = Path(record.source)
        if source.parent == (self.settings.corpus_dir / UPLOADS_DIR).resolve():
            source.unlink(missing_ok=True)

    def status(self) -> Status:
        return self.catalog.status(self.settings)

    @property
    def catalog(self) -> Catalog:
        """The documents' text, layout, key sentences and original files."""
        return Catalog(lambda: self.registry, lambda: self.store, self._index)

    def model_sources(self) -> list[ModelSource]:
        """Where the embedding model and the LLM come from (`rag status`), without loading or downloading one."""
        return model_sources(self.settings, self.registry.meta("embedding_model"),
                             self._embedder.ref if self._embedder else None, getattr(self._llm, "ref", None))

    def document_text(self, file: str) -> str:
        return self.catalog.text(file)

    # -- questions -----------------------------------------------------------------------------------------
    def _require_index(self) -> None:
        if not self.registry.complete_count():  # on every question: one COUNT, not a list of documents
            raise RagError("the index is empty", "add documents with `rag ingest PATH`")

    def search(
        self, query: str, top_k: int | None = None, files: Sequence[str] | None = None, lang: str | None = None,
        context: str = "",
    ) -> list[Passage]:
        """`context`: the query together with what it points back to (a follow-up), searched as one more form."""
        self._require_index()
        lang = lang or detect_language(query)
        forms = self.query_forms(query, lang)  # a translation asks the LLM: not while holding the index
        if context:
            forms.append(QueryForm(context, lang, forms[0].mode))
        with self._index:
            if self.registry.meta("index_format") != INDEX_FORMAT:
                raise IndexMismatchError(
                    "the index was built by an older rag, before hybrid (dense + lexical) search",
                    "rebuild it with `rag ingest --rebuild`",
                )
            retriever = Retriever(self.embedder, self.store, self.settings.retrieval_mode, self.settings.fusion)
            top_k = top_k or self.settings.top_k
            reranker = self.reranker
            wider = max(top_k, self.settings.rerank_candidates) if reranker else top_k
            found = retriever.search_variants(forms, wider, files)
            dense_forms = [form for form in forms if form.mode != "lexical"]
            # A dense ranking compares across languages already; a lexical one was asked for as it is.
            if self.settings.cross_lingual and self.settings.retrieval_mode == "hybrid" and dense_forms:
                found = retriever.with_other_languages(
                    found, dense_forms[0], files, readable=model_languages(self.embedder.ref.path))
        return reranker.rerank(query, found, top_k) if reranker else found

    def query_forms(self, query: str, lang: str, timings: dict[str, float] | None = None) -> list[QueryForm]:
        """The forms of a question to search: as asked, plus a translation where the embedder cannot read it."""
        started = time.perf_counter()
        forms = self._translator.forms(
            query, lang, mode=self.settings.query_translation, readable=model_languages(self.embedder.ref.path),
            hybrid=self.settings.retrieval_mode == "hybrid")
        if timings is not None and len(forms) > 1:
            timings["translate_ms"] = round((time.perf_counter() - started) * 1000, 1)
        return forms

    def passage(self, passage_id: str) -> Passage:
        return self.catalog.passage(passage_id)

    def ask(
        self, question: str, history: Sequence[Turn] = (), top_k: int | None = None,
        files: Sequence[str] | None = None, *, conversation: bool = False,
    ) -> AnswerStream:
        """`conversation`: a chat that will likely go on. After the answer, the model reads the conversation so
        far while the user types, so the next turn evaluates only its own evidence and question."""
        question = question.strip()
        if not question:
            raise RagError("the question is empty", "type a question")
        self._require_index()
        llm, embedder = self.llm, self.embedder  # loaded once; not part of this question's latency
        mode = answer_mode(self.settings.answer_mode, llm.name)
        if mode == "generate" and hasattr(llm, "prompt_tokens_per_s"):
            llm.prompt_tokens_per_s()  # measured once, with the model's load
        started = time.perf_counter()
        lang = detect_language(question)
        timings: dict[str, float] = {}
        budget = question_budget(llm, self.settings.max_tokens, self.settings.context_tokens, lang, question)
        turns = trim_history(history, budget.history_tokens, llm.count_tokens)
        models = {"llm": llm.name, "embedding": embedder.name,
                  **({"reranker": self._reranker.name} if self._reranker else {})}
        answering: dict[str, Any] = dict(
            llm=llm, mode=mode, max_tokens=budget.max_tokens, window_tokens=budget.passage_tokens, timings=timings,
            models=models, notices=self.notices(), document_text=self.document_text, judge=support_judge(embedder))
        scope = scope_of(question, self.catalog.titles, files)
        if scope.kind != "passages":  # a whole document or the corpus: evidence chosen by the scope, at once
            found = scoped_answer(scope, Question(question, question, lang, turns, started), self.catalog,
                                  self.composer, lambda text, k: self.search(text, k, files, lang),
                                  relevance_threshold(self.settings.relevance_threshold, embedder.name, lang),
                                  partial(self.composer.stream_given, **answering))
            if found is not None:
                return found
            files = [scope.file] if scope.file else files
        standalone, context = follow_up_query(llm, question, lang, turns, self.settings.follow_ups, timings)
        forms = self.query_forms(standalone, lang, timings)  # remembered: the search below asks no second time
        asked = Question(question, standalone, lang, turns, started)
        t = time.perf_counter()
        pool = max(top_k or self.settings.top_k, self.settings.evidence_pool)
        passages = self.search(standalone, pool, files, lang, context)
        timings["retrieval_ms"] = round((time.perf_counter() - t) * 1000, 1)
        # Only the question's own cosines are trusted to refuse: a poor translation scores low whether or not the
        # documents answer it (a weak translator made the gate refuse half of the answerable German questions).
        threshold = relevance_threshold(self.settings.relevance_threshold, embedder.name, lang) \
            if forms[0].mode != "lexical" else None

        def after(stream: AnswerStream) -> None:
            if conversation and mode == "generate":
                self._prefiller.start(llm, lang, [*turns, Turn(question, stream.result.answer)], budget.history_tokens)

        return self.composer.stream(asked, passages, relevance_gate(passages, threshold), **answering, after=after)

    @property
    def composer(self) -> Composer:
        embedder = self.embedder  # takes the build lock itself
        with self._build:
            if self._composer is None:
                self._composer = Composer(self.settings, embedder.embed_passages, embedder.embed_query)
            return self._composer

    def settle(self) -> None:
        """Wait for background work on the model (the next turn's prefix) to finish."""
        self._prefiller.settle()

    def close(self) -> None:
        self.settle()  # the model must not be freed under a running prefill
        for part in (self._store, self._registry, self._conversations):
            if part is not None:
                part.close()
        self._store = self._registry = self._conversations = None
        self._lock.release()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
