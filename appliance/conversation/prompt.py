"""The persona as a system prompt (plus a short primed exchange).

A 135M-parameter model forgets a name buried in a paragraph; it keeps one it has already "said".
So the prompt is short, the name comes first, and a primed first exchange (part of the cached
prefix, so it costs nothing per turn) shows the persona answering in character. The prompt also
sets the public-audience rules; :mod:`.safety` checks the output anyway.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..knowledge import Passage
from ..lang import is_cyrillic
from ..messages import ChatMessage
from ..persona import Persona

# The system prompt's sentences per language; the same persona fields fill both.
_SYSTEM = {
    "en": {
        "you": "You are {name}.", "description": "{name} is {description}", "interests": "You love {interests}.",
        "name": "Your name is {name}. Always speak as {name}, in the first person.",
        "audience": "You talk to museum visitors, often children. ", "style": "Be warm and brief.",
        "style_male": "Be warm and brief.",
        "answer": "Answer in one or two short sentences. Never use lists, links or emojis.",
        "avoid": "Never talk about {avoid}; gently change the subject to space instead.",
        "avoid_default": "politics, religion, violence, anything not suitable for children",
        "facts": "Facts you know:",
    },
    "ru": {
        "you": "Ты — {name}.", "description": "О тебе: {description}", "interests": "Ты любишь: {interests}.",
        "name": "Тебя зовут {name}. Всегда говори от своего имени, в первом лице.",
        "audience": "Ты разговариваешь с посетителями музея, часто с детьми. ", "style": "Будь доброжелательной и краткой.",
        "style_male": "Будь доброжелательным и кратким.",
        "female": "Ты женщина: о себе говори в женском роде («я рада», «я готова», «я была»).",
        "male": "Ты мужчина: о себе говори в мужском роде («я рад», «я готов», «я был»).",
        "answer": "Отвечай только по-русски, одним-двумя короткими предложениями. Никаких списков, ссылок и эмодзи.",
        "avoid": "Никогда не говори на эти темы: {avoid}; мягко переведи разговор на космос.",
        "avoid_default": "политика, религия, насилие и всё, что не подходит детям",
        "facts": "Факты, которые ты знаешь:",
    },
}


def system_prompt(persona: Persona, language: str = "en") -> str:
    """The persona in the visitor's language: a model asked in Russian under an English prompt drifts
    into English."""
    p, say = persona, _SYSTEM["ru" if language == "ru" else "en"]
    name = russian_name(p) if language == "ru" else p.name
    parts = [say["you"].format(name=name)]
    if p.description:
        description = p.description.strip() if language == "ru" else _lower_first(p.description)
        parts.append(say["description"].format(name=name, description=description))
    if p.interests:
        parts.append(say["interests"].format(interests=p.interests.rstrip(".")))
    parts.append(say["name"].format(name=name))
    if language == "ru" and p.gender:
        parts.append(say[p.gender])
    parts.append(say["audience"] + (p.style or say["style_male" if p.gender == "male" else "style"]).strip())
    parts.append(say["answer"])
    parts.append(say["avoid"].format(avoid=(p.avoid or say["avoid_default"]).rstrip(".")))
    return " ".join(parts)


def russian_name(p: Persona) -> str:
    return next((n for n in p.all_names if is_cyrillic(n)), p.name)


def primer(persona: Persona, language: str = "en") -> list[ChatMessage]:
    """A first exchange that shows the persona answering as itself, in the prompt's language."""
    if language == "ru":
        name = russian_name(persona)
        # The primer says it once in the persona's own grammatical gender: a small model copies
        # what it has "said" more faithfully than what it was told.
        glad = {"female": " Рада вас видеть!", "male": " Рад вас видеть!"}.get(persona.gender, "")
        return [ChatMessage("user", "Здравствуйте! Кто вы?"),
                ChatMessage("assistant", f"Здравствуйте! Я {name}.{glad} Спрашивайте о чём угодно!")]
    return [
        ChatMessage("user", "Hello! Who are you?"),
        ChatMessage("assistant", f"Hi! I'm {persona.name}. Ask me anything!"),
    ]


def prefix(persona: Persona, language: str = "en", facts: Sequence[Passage] = ()) -> list[ChatMessage]:
    """The part of every prompt in ``language`` that never changes (its KV state is cached by the LLM
    engine, one per language), with the fact sheet's standing ``facts``: in the prefix they cost
    nothing per turn, and the model answers from them as well as from facts in the question."""
    system = system_prompt(persona, language)
    if facts:
        system += "\n" + _SYSTEM["ru" if language == "ru" else "en"]["facts"] + "\n" + fact_lines(facts)
    return [ChatMessage("system", system), *primer(persona, language)]


def fact_lines(facts: Sequence[Passage]) -> str:
    """One line per fact, each heading once (above its facts)."""
    lines, heading = [], None
    for p in facts:
        if p.heading != heading:
            heading = p.heading
            if heading:
                lines.append(f"{heading}:")
        lines.append(f"- {p.text}")
    return "\n".join(lines)


def _lower_first(s: str) -> str:
    s = s.strip()
    return s[:1].lower() + s[1:] if s.startswith(("A ", "An ", "The ")) else s



def with_facts(question: str, passages) -> str:
    """The visitor's question with the fact sheet's passages for it (none: the question as asked)."""
    if not passages:
        return question
    return f"{question}\nAnswer with these facts: " + " ".join(p.text for p in passages)
