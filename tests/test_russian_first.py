"""Russian first, with the real embedded models (whisper base, Qwen2.5-1.5B, piper, RHVoice): spoken
questions about the demo persona's fact sheet are answered with the sheet's facts, each in the
language it was asked in — through ``avatar-kiosk listen``, the way a visitor meets the kiosk."""

from __future__ import annotations

import re

import numpy as np
import pytest
from kiosk_helpers import RU_PROMPTS, ru_prompt, silence, speech

from appliance import cli
from appliance.audio.resample import resample
from appliance.audio.wav import to_int16, write_wav
from appliance.engines.russian_voice import RussianVoice

GAP_S = 14.0  # longer than any reply (80 tokens at most), so no question talks over the kiosk


@pytest.fixture
def home(settings):
    return settings  # the fixture wrote AVATAR_KIOSK_HOME/config.toml, which the CLI reads


def russian_speech(text: str) -> np.ndarray:
    """A Russian visitor: RHVoice Irina, 16 kHz int16."""
    audio, rate = RussianVoice("irina").synthesize(text)
    return to_int16(resample(audio, rate, 16000))


def turns(printed: str) -> list[tuple[str, str, str]]:
    """(language heard, what the visitor said, what the kiosk said) from ``listen``'s transcript."""
    out: list[tuple[str, str, str]] = []
    for line in printed.splitlines():
        if m := re.match(r"\s+visitor \[(\w+)\]: (.*)", line):
            out.append((m[1], m[2], ""))
        elif (m := re.match(r"\s+Anna: (.*)", line)) and out:
            lang, heard, said = out[-1]
            out[-1] = (lang, heard, f"{said} {m[1]}".strip())
    return out


def latin_words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z]{2,}", text)


@pytest.mark.skipif(not RU_PROMPTS.is_dir(), reason="asterisk-core-sounds-ru-wav is not installed (the set-up installs it)")
def test_questions_about_the_sheet_get_its_facts_in_the_language_asked(home, tmp_path, capsys, models_dir):
    visitors = [
        speech(models_dir, "How much is a ticket?"),
        russian_speech("Где находится кафе?"),
        russian_speech("Сколько стоит билет?"),
        ru_prompt("hello"),                       # recorded human Russian: «Здравствуйте!»
        speech(models_dir, "When is the museum open?"),
    ]
    wav = tmp_path / "visitors.wav"
    write_wav(wav, np.concatenate([x for v in visitors for x in (v, silence(GAP_S))]), 16000)
    assert cli.main(["listen", "--wav", str(wav)]) == 0
    printed = capsys.readouterr().out
    got = turns(printed)
    assert [lang for lang, _, _ in got] == ["en", "ru", "ru", "ru", "en"], got
    ticket_en, cafe_ru, ticket_ru, hello_ru, hours_en = (said for _, _, said in got)
    assert "300" in ticket_en, ticket_en                                  # the sheet's price
    assert re.search(r"втор\w* этаж", cafe_ru, re.IGNORECASE), cafe_ru    # «на втором этаже»
    assert "300" in ticket_ru and "руб" in ticket_ru, ticket_ru
    assert re.search(r"\b10\b|ten", hours_en, re.IGNORECASE), hours_en   # opens at 10
    for said in (cafe_ru, ticket_ru, hello_ru):                           # asked in Russian: answered in Russian
        assert said and not latin_words(said), said
