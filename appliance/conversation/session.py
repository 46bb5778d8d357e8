"""Who the kiosk is and who it is talking to: the persona (prompt, names, languages, greetings),
the visitor's history (dropped when they leave, counted in audio time), and the wake gate."""

from __future__ import annotations

from ..config import Config
from ..engines.wake import WakeGate
from ..lang import is_cyrillic
from ..messages import ChatMessage
from ..persona import Persona
from . import prompt
from .history import History


def fallback_reply(persona: Persona, language: str) -> str:
    """The honest fixed answer for a language the LLM cannot speak (Russian on SmolLM2)."""
    if language == "ru":
        ru_name = next((n for n in persona.all_names if is_cyrillic(n)), persona.name)
        return (f"Меня зовут {ru_name}. Извините, по-русски я пока отвечать не умею. "
                "Спросите меня, пожалуйста, по-английски!")
    return f"I'm {persona.name}. Sorry, I can only answer in English for now."


class Session:
    def __init__(self, cfg: Config, persona: Persona) -> None:
        self.cfg = cfg
        self.history = History(cfg.llm.history_turns, cfg.session.visitor_gone_s)
        self.llm_languages = set(cfg.llm.languages)
        self.use(persona)

    def use(self, persona: Persona) -> None:
        """Be ``persona`` from now on; the conversation so far is forgotten."""
        cfg = self.cfg
        self.persona = persona
        self.languages = [lang for lang in persona.languages if lang in cfg.session.languages] or \
            list(cfg.session.languages)
        self.prefix = prompt.prefix(persona)
        self.gate = WakeGate(persona.wake_mode or cfg.wake.mode, cfg.wake.followup_s, persona.all_names)
        self.history.clear()

    def messages(self, text: str) -> list[ChatMessage]:
        """The LLM's input for the visitor's ``text``: persona prefix, history, the question."""
        return [*self.prefix, *self.history.messages, ChatMessage("user", text)]

    def can_answer(self, language: str) -> bool:
        """Whether the LLM speaks ``language``; otherwise the fixed :func:`fallback_reply`."""
        return language in self.llm_languages

    def fixed_reply(self, language: str) -> str:
        return fallback_reply(self.persona, language)

    def greeting(self, language: str | None = None) -> str:
        return self.persona.greeting_for(language or self.languages[0])

    def visitor_left(self, t: float) -> bool:
        """True (once) when nobody has spoken for ``visitor_gone_s``: history dropped, gate asleep."""
        if not self.history.expired(t):
            return False
        self.forget()
        return True

    def forget(self) -> None:
        self.history.clear()
        self.gate.sleep()
