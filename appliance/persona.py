"""The persona: who the kiosk is. Read from ``persona.toml`` in a bundle or a profile.

Validation errors are phrased for an installer (they appear on the kiosk's screen and in
``provision-report.txt``), and name the field and the limit.
"""

from __future__ import annotations

import tomllib
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

LIMITS = {"name": 40, "style": 600, "interests": 400, "greeting": 300, "avoid": 400, "description": 600}
WAKE_MODES = ("open", "wake", "name")
WAKE_WORDS = ("okay_nabu", "hey_jarvis", "alexa", "hey_mycroft")  # the microWakeWord models that ship


GENDERS = ("", "female", "male")


class PersonaError(ValueError):
    pass


@dataclass(frozen=True)
class Persona:
    name: str
    age: int | None = None
    languages: tuple[str, ...] = ("en",)
    description: str = ""
    interests: str = ""
    style: str = ""
    greeting: dict[str, str] = field(default_factory=dict)  # language -> text
    avoid: str = ""
    wake_mode: str = ""        # empty = the kiosk's configured mode
    names: tuple[str, ...] = ()  # spellings spotted in 'name' mode (e.g. "Anna", "Анна")
    wake_word: str = ""        # 'wake' mode: which wake word; empty = the kiosk's configured one
    # Russian grammar needs it: past tense and short adjectives agree with the speaker ("я рада" /
    # "я рад"). Empty: the prompt does not say, and the model usually picks the masculine.
    gender: str = ""           # "female", "male" or ""

    def greeting_for(self, language: str) -> str:
        return self.greeting.get(language) or next(iter(self.greeting.values()), f"Hello! I am {self.name}.")

    @property
    def all_names(self) -> tuple[str, ...]:
        return (self.name, *[n for n in self.names if n != self.name])


def _text(data: dict, key: str, *, required: bool = False) -> str:
    value = data.get(key, "")
    if isinstance(value, list):
        value = ", ".join(str(v) for v in value)
    if not isinstance(value, str):
        raise PersonaError(f"persona.toml: '{key}' must be text")
    value = value.strip()
    # Control characters, and format characters (Unicode "Cf": right-to-left overrides, zero-width
    # spaces): invisible in the editor, they reorder or hide what the screen and the profile list show.
    hidden = sorted({f"U+{ord(c):04X}" for c in value
                     if (ord(c) < 32 and c not in "\n\t") or unicodedata.category(c) == "Cf"})
    if hidden:
        raise PersonaError(f"persona.toml: '{key}' contains invisible characters ({', '.join(hidden[:3])}) — "
                           "retype it in a plain text editor")
    if required and not value:
        raise PersonaError(f"persona.toml has no '{key}' — every persona needs a {key}")
    limit = LIMITS.get(key)
    if limit and len(value) > limit:
        raise PersonaError(f"persona.toml: '{key}' is {len(value)} characters long — keep it under {limit}")
    return value


def from_dict(data: dict) -> Persona:
    name = _text(data, "name", required=True)
    age = data.get("age")
    if age is not None and (not isinstance(age, int) or isinstance(age, bool) or not 0 < age < 150):
        raise PersonaError(f"persona.toml: 'age' = {age!r} — use a whole number of years")
    langs = data.get("languages", ["en"])
    if isinstance(langs, str):
        langs = [langs]
    if not langs or not set(langs) <= {"en", "ru"}:
        raise PersonaError(f"persona.toml: 'languages' = {langs!r} — use \"en\", \"ru\" or both")
    greeting = data.get("greeting", {})
    if isinstance(greeting, str):
        greeting = {langs[0]: greeting}
    if not isinstance(greeting, dict):
        raise PersonaError("persona.toml: 'greeting' must be text or a table of language = text")
    for lang, text in greeting.items():
        _text({"greeting": text}, "greeting")
        if lang not in ("en", "ru"):
            raise PersonaError(f"persona.toml: greeting.{lang} — greetings are for \"en\" or \"ru\"")
    wake = data.get("wake_mode", "")
    if wake and wake not in WAKE_MODES:
        raise PersonaError(f"persona.toml: 'wake_mode' = {wake!r} — use one of {', '.join(WAKE_MODES)}")
    wake_word = data.get("wake_word", "")
    if wake_word and wake_word not in WAKE_WORDS:
        raise PersonaError(f"persona.toml: 'wake_word' = {wake_word!r} — use one of {', '.join(WAKE_WORDS)}")
    gender = data.get("gender", "")
    if gender not in GENDERS:
        raise PersonaError(f"persona.toml: 'gender' = {gender!r} — use \"female\" or \"male\" (for Russian grammar), "
                           "or leave it out")
    names = data.get("names", [])
    if not isinstance(names, list) or not all(isinstance(n, str) and 0 < len(n) <= LIMITS["name"] for n in names):
        raise PersonaError("persona.toml: 'names' must be a list of short texts")
    for n in names:
        _text({"names": n}, "names")
    known = {"name", "age", "languages", "description", "interests", "style", "greeting", "avoid",
             "wake_mode", "wake_word", "names", "gender"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise PersonaError(f"persona.toml: unknown field '{unknown[0]}' — known fields: {', '.join(sorted(known))}")
    return Persona(
        name=name, age=age, languages=tuple(langs), description=_text(data, "description"),
        interests=_text(data, "interests"), style=_text(data, "style"),
        greeting={k: v.strip() for k, v in greeting.items()}, avoid=_text(data, "avoid"),
        wake_mode=wake, names=tuple(names), wake_word=wake_word, gender=gender,
    )


def load(path: Path) -> Persona:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PersonaError("the bundle has no persona.toml") from None
    except UnicodeDecodeError:
        raise PersonaError("persona.toml is not UTF-8 text — save it as UTF-8") from None
    except tomllib.TOMLDecodeError as e:
        raise PersonaError(f"persona.toml cannot be read: {e}") from None
    return from_dict(data)
