"""The persona as a system prompt (plus a short primed exchange).

A 135M-parameter model forgets a name buried in a paragraph; it keeps one it has already "said".
So the prompt is short, the name comes first, and a primed first exchange (part of the cached
prefix, so it costs nothing per turn) shows the persona answering in character. The prompt also
sets the public-audience rules; :mod:`.safety` checks the output anyway.
"""

from __future__ import annotations

from ..messages import ChatMessage
from ..persona import Persona


def system_prompt(persona: Persona) -> str:
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


def primer(persona: Persona) -> list[ChatMessage]:
    """A first exchange that shows the persona answering as itself."""
    return [
        ChatMessage("user", "Hello! Who are you?"),
        ChatMessage("assistant", f"Hi! I'm {persona.name}. Ask me anything!"),
    ]


def prefix(persona: Persona) -> list[ChatMessage]:
    """The part of every prompt that never changes (its KV state is cached by the LLM engine)."""
    return [ChatMessage("system", system_prompt(persona)), *primer(persona)]


def _lower_first(s: str) -> str:
    s = s.strip()
    return s[:1].lower() + s[1:] if s.startswith(("A ", "An ", "The ")) else s



def with_facts(question: str, passages) -> str:
    """The visitor's question with the fact sheet's passages for it (none: the question as asked)."""
    if not passages:
        return question
    return f"{question}\nAnswer with these facts: " + " ".join(p.text for p in passages)
