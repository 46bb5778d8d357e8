"""Small, certain fixes to the model's Russian, made outside the model.

* **Gender agreement with the persona.** Russian speaks of oneself in the speaker's gender ("я
  рада" / "я рад", "я была" / "я был"). The persona's ``gender`` is in the prompt and the primer,
  and Qwen2.5-1.5B still slips ("Конечно, я рад помочь!" from a woman's face). Only the word right
  after "я" (or "я не") is touched, and only where the form is unambiguous: a past-tense verb
  (a vowel + "л" / "ла", "-лся" / "-лась") or one of a few short adjectives. A wrong ending
  elsewhere in the sentence stays: guessing there would break more than it fixes.
* **Latin look-alikes inside Cyrillic words** ("радa" with a Latin "a": the model's tokenizer
  sometimes picks those). The voice would spell them out and the caption would look wrong.
"""

from __future__ import annotations

import re

_FEMININE = {"рад": "рада", "готов": "готова", "уверен": "уверена", "должен": "должна",
             "согласен": "согласна", "счастлив": "счастлива", "сам": "сама", "занят": "занята"}
_MASCULINE = {v: k for k, v in _FEMININE.items()}
_AFTER_I = re.compile(r"\b([Яя])((?:\s+не)?\s+)(\w+)\b")
_VOWELS = "аеёиоуыэюя"
_LOOKALIKES = str.maketrans("aceopxyAEKMHOPCTXB", "асеорхуАЕКМНОРСТХВ")
_MIXED = re.compile(r"\b\w*[а-яё]\w*\b", re.IGNORECASE)


def fix_russian(text: str, gender: str = "") -> str:
    """``text`` with Latin look-alikes in Cyrillic words replaced and, for a persona of ``gender``
    ("female" / "male"), the word after "я" agreeing with it."""
    text = _MIXED.sub(_cyrillic_only, text)
    if gender in ("female", "male"):
        text = _AFTER_I.sub(lambda m: m.group(1) + m.group(2) + _agree(m.group(3), gender), text)
    return text


def _cyrillic_only(m: re.Match) -> str:
    word = m.group(0)
    fixed = word.translate(_LOOKALIKES)
    return fixed if not re.search(r"[a-zA-Z]", fixed) else word  # a real mixed word (a brand?) stays


def _agree(word: str, gender: str) -> str:
    low = word.lower()
    if gender == "female":
        if low in _FEMININE:
            return _FEMININE[low]
        if low.endswith("лся") and len(low) > 4:
            return word[:-3] + "лась"
        if len(low) > 2 and low.endswith("л") and low[-2] in _VOWELS:
            return word + "а"
        return word
    if low in _MASCULINE:
        return _MASCULINE[low]
    if low.endswith("лась") and len(low) > 5:
        return word[:-4] + "лся"
    if len(low) > 3 and low.endswith("ла") and low[-3] in _VOWELS:
        return word[:-1]
    return word
