"""The persona as a system prompt (plus a short primed exchange).

A 135M-parameter model forgets a name buried in a paragraph; it keeps one it has already "said".
So the prompt is short, the name comes first, and a primed first exchange (part of the cached
prefix, so it costs nothing per turn) shows the persona answering in character. The prompt also
sets the public-audience rules; :mod:`.safety` checks the output anyway.
"""

from __future__ import annotations

from ..lang import is_cyrillic
from ..messages import ChatMessage
from ..persona import Persona


def system_prompt(persona: Persona, language: str = "en") -> str:
    """The persona in the visitor's language: a model asked in Russian under an English prompt drifts
    into English."""
    if language == "ru":
        return _system_prompt_ru(persona)
    p = persona
    parts = [f"You are {p.name}."]
    if p.description:
        parts.append(f"{p.name} is {_lower_first(p.description)}")
    if p.interests:
        parts.append(f"You love {p.interests.rstrip('.')}.")
    parts.append(f"Your name is {p.name}. Always speak as {p.name}, in the first person.")
    parts.append("You talk to museum visitors, often children. " + (p.style or "Be warm and brief.").strip())
    parts.append("Answer in one or two short sentences. Never use lists, links or emojis.")
    avoid = p.avoid or "politics, religion, violence, anything not suitable for children"
    parts.append(f"Never talk about {avoid.rstrip('.')}; gently change the subject to space instead.")
    return " ".join(parts)


def _system_prompt_ru(p: Persona) -> str:
    name = russian_name(p)
    parts = [f"Ты — {name}."]
    if p.description:
        parts.append(f"О тебе: {p.description.strip()}")
    if p.interests:
        parts.append(f"Ты любишь: {p.interests.rstrip('.')}.")
    parts.append(f"Тебя зовут {name}. Всегда говори от своего имени, в первом лице.")
    parts.append("Ты разговариваешь с посетителями музея, часто с детьми. " + (p.style or "Будь доброй и краткой.").strip())
    parts.append("Отвечай только по-русски, одним-двумя короткими предложениями. Никаких списков, ссылок и эмодзи.")
    avoid = p.avoid or "политика, религия, насилие и всё, что не подходит детям"
    parts.append(f"Никогда не говори на эти темы: {avoid.rstrip('.')}; мягко переведи разговор на космос.")
    return " ".join(parts)


def russian_name(p: Persona) -> str:
    return next((n for n in p.all_names if is_cyrillic(n)), p.name)


def primer(persona: Persona, language: str = "en") -> list[ChatMessage]:
    """A first exchange that shows the persona answering as itself, in the prompt's language."""
    if language == "ru":
        name = russian_name(persona)
        return [ChatMessage("user", "Здравствуйте! Кто вы?"),
                ChatMessage("assistant", f"Здравствуйте! Я {name}. Спрашивайте о чём угодно!")]
    return [
        ChatMessage("user", "Hello! Who are you?"),
        ChatMessage("assistant", f"Hi! I'm {persona.name}. Ask me anything!"),
    ]


def prefix(persona: Persona, language: str = "en") -> list[ChatMessage]:
    """The part of every prompt in ``language`` that never changes (its KV state is cached by the LLM
    engine, one per language)."""
    return [ChatMessage("system", system_prompt(persona, language)), *primer(persona, language)]


def _lower_first(s: str) -> str:
    s = s.strip()
    return s[:1].lower() + s[1:] if s.startswith(("A ", "An ", "The ")) else s



def with_facts(question: str, passages) -> str:
    """The visitor's question with the fact sheet's passages for it (none: the question as asked)."""
    if not passages:
        return question
    return f"{question}\nAnswer with these facts: " + " ".join(p.text for p in passages)
