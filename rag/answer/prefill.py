"""Reading the next turn's prefix (system prompt and history) into the model in the background while the user
reads the answer, so a follow-up evaluates only its own passages and question."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from rag.conversation import Turn, conversation_prefix, trim_history
from rag.models.llm import ChatLLM


class Prefiller:
    """Reads the next turn's prefix into the model in the background (see ChatLLM.prefill). Several may be asked
    for at once (a server): the model takes one at a time and skips the rest while busy."""

    def __init__(self) -> None:
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def start(self, llm: ChatLLM, lang: str, history: Sequence[Turn], budget_tokens: int) -> None:
        """`history`: the conversation including the turn just answered, trimmed here as the next turn will."""
        prefill = getattr(llm, "prefill", None)  # a caller's own LLM object may not have one
        if prefill is None:
            return
        messages = conversation_prefix(lang, trim_history(history, budget_tokens, llm.count_tokens))
        thread = threading.Thread(target=prefill, args=(messages,), name="rag-prefill", daemon=True)
        with self._lock:
            self._threads = [*(t for t in self._threads if t.is_alive()), thread]
        thread.start()

    def settle(self) -> None:
        """Wait for them to finish (before the model is freed, or to measure the next turn)."""
        with self._lock:
            threads, self._threads = self._threads, []
        for thread in threads:
            thread.join()
