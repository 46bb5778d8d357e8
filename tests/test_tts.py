"""piper (English) and espeak-ng (Russian) speech; the English is checked by transcribing it back."""

from __future__ import annotations

import numpy as np
import pytest
from kiosk_helpers import stt, tts, wer

from appliance.audio.phrases import PhraseCache
from appliance.audio.resample import resample
from appliance.audio.wav import to_int16


@pytest.fixture(scope="module")
def voice(models_dir):
    return tts(models_dir)


def test_piper_english_is_intelligible(voice, models_dir):
    text = "Mars looks red because its dust is full of rust."
    chunks = list(voice.synthesize(text, "en"))
    assert chunks and all(c.dtype == np.float32 for c in chunks)
    audio = np.concatenate(chunks)
    assert 1.5 < len(audio) / voice.sample_rate < 6
    heard = stt(models_dir).transcribe(to_int16(resample(audio, voice.sample_rate, 16000)), ["en"], None)[0]
    assert wer(text, heard) <= 0.3, heard  # piper samples noise: allow a word or two


def test_espeak_russian_speaks_at_the_same_rate(voice):
    audio = np.concatenate(list(voice.synthesize("Привет! Я Анна.", "ru")))
    assert audio.dtype == np.float32
    assert 0.8 < len(audio) / voice.sample_rate < 4
    assert np.abs(audio).max() > 0.2


def test_text_with_shell_characters_is_spoken_not_executed(voice, tmp_path):
    marker = tmp_path / "x"
    audio = np.concatenate(list(voice.synthesize(f"Привет; touch {marker}", "ru")))
    assert len(audio) > 0 and not marker.exists()


def test_greeting_is_cached_on_disk(voice, tmp_path):
    cache = PhraseCache(tmp_path)
    a = cache.get(voice, "Hi! I'm Anna.", "en")
    assert cache.has(voice, "Hi! I'm Anna.", "en") and not cache.has(voice, "Hi! I'm Anna!", "en")
    assert np.array_equal(a, PhraseCache(tmp_path).get(voice, "Hi! I'm Anna.", "en"))
