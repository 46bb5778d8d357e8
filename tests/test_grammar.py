"""The Russian fixes made outside the model: the persona's gender after "я", Latin look-alikes."""

from __future__ import annotations

import pytest

from appliance.conversation.grammar import fix_russian


@pytest.mark.parametrize("said,gender,fixed", [
    ("Конечно, я рад помочь!", "female", "Конечно, я рада помочь!"),      # the bench's real slip
    ("Я не был в космосе.", "female", "Я не была в космосе."),
    ("Я родился рядом с Байконуром.", "female", "Я родилась рядом с Байконуром."),
    ("Я стал пилотом.", "female", "Я стала пилотом."),
    ("Я была там, я готова.", "male", "Я был там, я готов."),
    ("Я родилась в Самаре.", "male", "Я родился в Самаре."),
    # already right, or not a form we can be sure of: unchanged
    ("Я рада вас видеть!", "female", "Я рада вас видеть!"),
    ("Я люблю ракеты.", "female", "Я люблю ракеты."),
    ("Я Анна.", "female", "Я Анна."),
    ("Я пришла.", "male", "Я пришла."),
    ("Я рад помочь!", "", "Я рад помочь!"),                              # gender not given: not guessed
    ("Мой друг был там.", "female", "Мой друг был там."),                 # not about "я"
])
def test_the_word_after_i_agrees_with_the_persona(said, gender, fixed):
    assert fix_russian(said, gender) == fixed


def test_latin_look_alikes_in_russian_words_become_cyrillic():
    said = "Да, я рад\u0061 вас видеть! Это iPhone."  # "радa": the model's Latin "a"
    assert fix_russian(said) == "Да, я рада вас видеть! Это iPhone."
    assert all(ord(c) < 128 or "\u0400" <= c <= "\u04ff" for c in fix_russian(said))
