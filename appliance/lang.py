"""The visitor's languages as the kiosk tells them apart in text: Russian (Cyrillic) and English."""

from __future__ import annotations


def is_cyrillic(text: str) -> bool:
    return any("а" <= c <= "я" or c == "ё" for c in text.lower())


def guess_language(text: str, default: str = "en") -> str:
    """"ru" for text with Cyrillic letters, else ``default`` (typed text has no audio to detect from)."""
    return "ru" if is_cyrillic(text) else default
