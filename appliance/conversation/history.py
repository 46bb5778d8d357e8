"""The visitor's conversation history: kept while they talk, dropped when they leave.

"Left" is counted in audio time: no accepted utterance for ``visitor_gone_s``. A pure state
machine like the endpointer, so tests need no sleeps.
"""

from __future__ import annotations

from ..messages import ChatMessage


class History:
    def __init__(self, max_turns: int, visitor_gone_s: float) -> None:
        self.max_turns = max_turns
        self.visitor_gone_s = visitor_gone_s
        self.messages: list[ChatMessage] = []
        self.last_activity_t: float | None = None
        self.language: str | None = None  # the last turn's language: the prior for short clips

    def add_turn(self, user: str, assistant: str, t: float) -> None:
        if self.max_turns <= 0:
            return
        self.messages += [ChatMessage("user", user), ChatMessage("assistant", assistant)]
        self.messages = self.messages[-2 * self.max_turns:]
        self.last_activity_t = t

    def use_language(self, language: str) -> None:
        """The visitor speaks ``language`` now. A switch starts the conversation afresh: under turns
        in the other language a small model answers in *their* language (Qwen2.5-1.5B answered a
        Russian question in English after one English exchange), and the prompt's cached prefix
        is per language, so the old turns would be evaluated again (seconds) for little use."""
        if self.language not in (None, language):
            self.messages = []
        self.language = language

    def for_language(self, language: str) -> list[ChatMessage]:
        """The turns a question in ``language`` is asked under (:meth:`use_language` not yet applied)."""
        return self.messages if self.language in (None, language) else []

    def touch(self, t: float) -> None:
        self.last_activity_t = t

    def expired(self, t: float) -> bool:
        return self.last_activity_t is not None and t - self.last_activity_t >= self.visitor_gone_s

    def clear(self) -> None:
        self.messages = []
        self.last_activity_t = None
        self.language = None
