"""Persona checks as the installer meets them (messages name the field and the fix)."""

from __future__ import annotations

import tomllib

import pytest
from support import bundles as T

from appliance import persona


def load(text: str) -> persona.Persona:
    return persona.from_dict(tomllib.loads(text))


def test_the_sample_persona_loads():
    p = load(T.PERSONA)
    assert p.name == "Anna" and p.languages == ("en", "ru") and p.greeting_for("ru").startswith("Привет")


@pytest.mark.parametrize("change,words", [
    (lambda t: t.replace('name = "Anna"\n', ""), "has no 'name'"),
    (lambda t: t.replace('name = "Anna"', 'name = "   "'), "has no 'name'"),
    (lambda t: t.replace('style = "Warm and brief."', f'style = "{"x" * 10_000}"'), "'style' is 10000 characters"),
    (lambda t: t.replace('en = "Hi! I\'m Anna."', f'en = "{"x" * 301}"'), "'greeting' is 301 characters"),
    (lambda t: t.replace('languages = ["en", "ru"]', 'languages = ["de"]'), "'languages'"),
    (lambda t: t.replace("age = 34", "age = 400"), "'age'"),
    (lambda t: t.replace('wake_mode = "open"', 'wake_mode = "clap"'), "'wake_mode'"),
    (lambda t: 'wake_word = "hey_siri"\n' + t, "'wake_word'"),
    (lambda t: t.replace('name = "Anna"', 'name = "An\u202ena\u200b"'), "'name' contains invisible characters (U+200B, U+202E)"),
    (lambda t: t.replace('style = "Warm and brief."', 'style = "Warm\\u0007brief"'), "invisible characters (U+0007)"),
    (lambda t: "colour = 'red'\n" + t, "unknown field 'colour'"),
    (lambda t: 'gender = "woman"\n' + t, "'gender' = 'woman' — use \"female\" or \"male\""),
])
def test_bad_personas(change, words):
    with pytest.raises(persona.PersonaError) as e:
        load(change(T.PERSONA))
    assert words in str(e.value)


def test_wake_word_is_kept():
    assert load('name = "A"\nwake_mode = "wake"\nwake_word = "hey_jarvis"\n').wake_word == "hey_jarvis"


def test_gender_reaches_the_russian_prompt_and_primer():
    from appliance.conversation import prompt

    woman, man, unsaid = (load(f'name = "Anna"\nlanguages = ["ru"]\n{g}') for g in
                          ('gender = "female"\n', 'gender = "male"\n', ""))
    assert woman.gender == "female" and man.gender == "male" and unsaid.gender == ""
    assert "женском роде" in prompt.system_prompt(woman, "ru") and "Рада" in prompt.primer(woman, "ru")[1].content
    assert "мужском роде" in prompt.system_prompt(man, "ru") and "Рад " in prompt.primer(man, "ru")[1].content
    assert "роде" not in prompt.system_prompt(unsaid, "ru")
    assert prompt.system_prompt(woman, "en") == prompt.system_prompt(unsaid, "en")  # English needs none
