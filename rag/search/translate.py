"""Query translation for a monolingual embedding model: a question in a language the model was not trained on
is also searched in the model's language (translated by the LLM), and both searches are fused, so the
original still finds documents in its own language and the translation finds the rest."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from functools import cache
from pathlib import Path

from rag import prompts
from rag.models.llm import ChatLLM
from rag.models.resolve import PACKAGED_LLM_ID
from rag.search.follow_ups import clean_rewrite
from rag.search.retrieve import QueryForm

_CACHE_ENTRIES = 512
# LLMs whose translations were measured to do more harm than good, so `auto` does not use them: with
# SmolLM2-135M (the offline fallback) fusing its translations lowered evidence hit@5 on the bundled set from 84.6% to
# 76.9% (German) and 50.0% to 41.7% (Chinese); most of its "translations" were unrelated sentences or the question
# repeated (eval/README.md, "Query translation").
_CANNOT_TRANSLATE = frozenset({PACKAGED_LLM_ID})
# A translation is a short line: anything longer is the small model rambling, not translating.
_MAX_TOKENS = 96


@cache
@cache  # asked on every search; a model folder's card does not change while rag runs
def model_languages(model_path: Path) -> frozenset[str] | None:
    """The languages a model's card declares (`language:` in its README front matter); None when it says nothing
    (then rag assumes the model handles any language rather than guess)."""
    from huggingface_hub.repocard import metadata_load

    card = model_path / "README.md"
    try:
        meta = metadata_load(card) if card.is_file() else None
    except Exception:  # a malformed card is no reason to fail a search
        return None
    declared = (meta or {}).get("language")
    if isinstance(declared, str):
        declared = [declared]
    if not declared or "multilingual" in declared:
        return None
    return frozenset(str(code).lower().split("-")[0] for code in declared)


def translation_target(mode: str, languages: frozenset[str] | None, lang: str) -> str | None:
    """The language to translate a question into, or None when the embedding model reads it as it is."""
    if mode == "off":
        return None
    if mode == "always":
        target = "en" if not languages or "en" in languages else sorted(languages)[0]
        return None if lang == target else target
    if languages is None or lang in languages:
        return None
    return "en" if "en" in languages else sorted(languages)[0]


def can_translate(llm_name: str) -> bool:
    return llm_name not in _CANNOT_TRANSLATE


def translation_prompt(question: str, source: str, target: str) -> list[dict[str, str]]:
    text = prompts.template("translate").format(
        question=question, source=prompts.language_name(source), target=prompts.language_name(target))
    return [{"role": "user", "content": text}]


class QueryTranslator:
    """Translates with the answering LLM at temperature 0 and remembers the result: the same question asked
    again (a retry, an evaluation re-run, the UI's search then ask) costs no second call."""

    def __init__(self, llm: Callable[[], ChatLLM]) -> None:
        self._llm = llm
        self._cache: OrderedDict[tuple[str, str, str], str | None] = OrderedDict()
        self._lock = threading.Lock()

    def forms(
        self, question: str, lang: str, *, mode: str, readable: frozenset[str] | None, hybrid: bool
    ) -> list[QueryForm]:
        """The question as asked, plus its translation into the embedding model's language when the model cannot
        read the question's (`readable`: the model's languages, None = any). The translation is searched densely
        and by its terms; the original then by its terms only, as its dense vector would be noise, so a German
        question still finds German documents."""
        target = translation_target(mode, readable, lang)
        if target and mode == "auto" and not can_translate(self._llm().name):
            target = None
        translated = self.translate(question, lang, target) if target else None
        if not translated or not target:
            return [QueryForm(question, lang)]
        unreadable = readable is not None and lang not in readable and hybrid
        return [QueryForm(question, lang, "lexical" if unreadable else None), QueryForm(translated, target)]

    def translate(self, question: str, source: str, target: str) -> str | None:
        """The translation, or None when the model gave back nothing usable (empty, the question itself, or a
        ramble far longer than the question)."""
        key = (question, source, target)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        reply = "".join(self._llm().stream_chat(translation_prompt(question, source, target), _MAX_TOKENS, 0.0))
        line = clean_rewrite(reply.removeprefix(prompts.language_name(target) + ":"), question)
        translated = None if line.casefold() == question.casefold() or len(line) > 3 * len(question) + 40 else line
        with self._lock:
            self._cache[key] = translated
            if len(self._cache) > _CACHE_ENTRIES:
                self._cache.popitem(last=False)
        return translated
