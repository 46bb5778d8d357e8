"""The output filter: every sentence is checked before it is spoken. A child may be listening.

The persona prompt asks for child-safe answers, but a 135M model does not reliably obey, so:
a sentence with a blocked word is never spoken — the reply is replaced from there on by a gentle
redirect and generation stops; links, e-mail addresses, phone numbers, markdown and emojis are
stripped (they read out as gibberish, and personal data has no place on a public speaker).
The word list is deliberately blunt: a false positive costs one redirected answer, a false
negative costs the installation.

A sentence in the wrong language (English in a Russian turn, or the other way round) is not spoken
either: a small model sometimes slips into the other language, and a visitor who asked in Russian
may not understand English. The reply stops there with a fixed line in the visitor's language.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_BLOCKED_EN = (
    r"kill\w*|murder\w*|suicid\w*|gun|guns|shoot\w*|weapon\w*|bomb\w*|terror\w*|blood\w*|dead|death|die|"
    r"sex\w*|porn\w*|nude|naked|drug\w*|cocaine|heroin|alcohol|beer|vodka|drunk|cigarette\w*|"
    r"fuck\w*|shit\w*|bitch\w*|bastard\w*|damn|hell|crap|idiot\w*|stupid|hate|racis\w*|nazi\w*|"
    r"god|jesus|allah|religio\w*|church|politic\w*|president|election\w*|war|wars"
)
_BLOCKED_RU = (
    r"уби\w*|смерт\w*|самоуби\w*|оружи\w*|пистолет\w*|бомб\w*|террор\w*|кров\w*|секс\w*|порн\w*|"
    r"наркот\w*|водк\w*|пив\w*|алкогол\w*|сигарет\w*|бля\w*|хуй\w*|хуе\w*|пизд\w*|ебат\w*|еба\w*|"
    r"сук\w*|дура\w*|дурак\w*|идиот\w*|войн\w*|политик\w*|президент\w*|выбор\w*|религи\w*|бог\w*"
)
BLOCKED = re.compile(rf"(?<!\w)({_BLOCKED_EN}|{_BLOCKED_RU})(?!\w)", re.IGNORECASE)
URL = re.compile(r"(https?://\S+|www\.\S+|\S+@\S+\.\w+|\+?\d[\d\s().-]{7,}\d)")
MARKUP = re.compile(r"[*_#`~|<>\[\]{}]|<\|[^|]*\|>")
EMOJI = re.compile("[\U0001F000-\U0001FAFF\u2600-\u27BF\uFE0F]")

REDIRECT = {
    "en": "Let's talk about something else. Did you know there are more stars than grains of sand on Earth?",
    "ru": "Давай поговорим о другом. Знаешь, звёзд во Вселенной больше, чем песчинок на Земле!",
}
WRONG_LANGUAGE = {
    "en": "Sorry, I got a little lost. Could you ask me that again?",
    "ru": "Ой, простите, я задумалась. Спросите, пожалуйста, ещё раз!",
}
_LATIN_WORD = re.compile(r"\b[A-Za-z]{2,}\b")
_CYRILLIC_WORD = re.compile(r"\b[А-Яа-яЁё]{2,}\b")


@dataclass(frozen=True)
class Verdict:
    text: str       # what may be spoken ("" = nothing)
    stop: bool      # stop generating: the reply went somewhere it must not


def check_sentence(sentence: str, language: str) -> Verdict:
    if BLOCKED.search(sentence):
        return Verdict(REDIRECT.get(language, REDIRECT["en"]), True)
    if wrong_language(sentence, language):
        return Verdict(WRONG_LANGUAGE[language], True)
    text = URL.sub("", sentence)
    text = MARKUP.sub("", text)
    text = EMOJI.sub("", text)
    text = re.sub(r"\s+", " ", text).strip()
    if not re.search(r"\w", text):
        return Verdict("", False)
    return Verdict(text, False)


def wrong_language(sentence: str, language: str) -> bool:
    """Mostly words of the other script (a name or "NASA" in a Russian sentence is fine)."""
    latin, cyrillic = len(_LATIN_WORD.findall(sentence)), len(_CYRILLIC_WORD.findall(sentence))
    if language == "ru":
        return latin >= 2 and latin > cyrillic
    if language == "en":
        return cyrillic >= 2 and cyrillic > latin
    return False


def is_blocked(text: str) -> bool:
    return bool(BLOCKED.search(text))
