"""Who the kiosk is and who it is talking to: the persona (prompt, names, languages, greetings),
the visitor's history (dropped when they leave, counted in audio time), and the wake gate."""

from __future__ import annotations

from ..config import Config
from ..engines.wake import WakeGate
from ..knowledge import Knowledge
from ..messages import ChatMessage
from ..persona import Persona
from . import prompt
from .history import History

FACTS_PER_QUESTION = 2  # looked up beyond the prefix's standing facts, into the question's own turn


def fallback_reply(persona: Persona, language: str) -> str:
    """The honest fixed answer for a language the LLM cannot speak (Russian on SmolLM2)."""
    if language == "ru":
        return (f"Меня зовут {prompt.russian_name(persona)}. Извините, по-русски я пока отвечать не умею. "
                "Спросите меня, пожалуйста, по-английски!")
    return f"I'm {persona.name}. Sorry, I can only answer in English for now."


class Session:
    def __init__(self, cfg: Config, persona: Persona, knowledge: Knowledge | None = None) -> None:
        self.cfg = cfg
        self.history = History(cfg.llm.history_turns, cfg.session.visitor_gone_s)
        self.llm_languages = set(cfg.llm.languages)
        self.use(persona, knowledge)

    def use(self, persona: Persona, knowledge: Knowledge | None = None) -> None:
        """Be ``persona`` (knowing ``knowledge``) from now on; the conversation so far is forgotten."""
        cfg = self.cfg
        self.persona = persona
        self.knowledge = knowledge
        self.languages = [lang for lang in persona.languages if lang in cfg.session.languages] or \
            list(cfg.session.languages)
        # One persona prefix per language the model answers in (each has its KV state cached), with
        # the fact sheet's passages in that language that fit (all of a museum's usual sheet).
        answered = [lang for lang in self.languages if self.can_answer(lang)]
        self.standing = {lang: knowledge.standing(lang) if knowledge else [] for lang in answered}
        self.prefixes = {lang: prompt.prefix(persona, lang, self.standing[lang]) for lang in answered}
        self.gate = WakeGate(persona.wake_mode or cfg.wake.mode, cfg.wake.followup_s, persona.all_names)
        self.history.clear()

    def messages(self, text: str, language: str) -> list[ChatMessage]:
        """The LLM's input for the visitor's ``text``: persona prefix (with the standing facts),
        history, the question with any other passages of the sheet that bear on it (a sheet too big
        for the prefix: those ride in the question's own turn, after the cached prefix)."""
        if language not in self.prefixes:
            language = next(iter(self.prefixes), language)
        prefix = self.prefixes.get(language, [])
        facts = [] if self.knowledge is None else self.knowledge.lookup(
            text, FACTS_PER_QUESTION, language=language, exclude=self.standing.get(language, ()))
        return [*prefix, *self.history.for_language(language), ChatMessage("user", prompt.with_facts(text, facts))]

    def system_text(self, language: str) -> str:
        """The persona's instructions for ``language`` (the reply must never read them out). Not the
        standing facts that follow them in the prefix: those are there to be said."""
        return prompt.system_prompt(self.persona, language if language in self.prefixes else "en")

    def name_in(self, language: str) -> str:
        """The persona's name as said in ``language``."""
        return prompt.russian_name(self.persona) if language == "ru" else self.persona.name

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
