"""Whole turns on the embedded default with real models: spoken question in, spoken answer out."""

from __future__ import annotations

import dataclasses
import wave

import numpy as np
import pytest
from kiosk_converse import converse
from kiosk_helpers import RU_PROMPTS, real_engines, ru_prompt, silence, speech, stt, wer

from appliance import config as config_mod
from appliance.audio.resample import resample
from appliance.audio.wav import read_mono_16k, to_int16
from appliance.conversation.session import fallback_reply
from appliance.messages import SentenceReady, Transcribed, TurnDone, TurnFailed
from appliance.persona import Persona


@pytest.fixture(scope="module")
def engines(models_dir):
    return real_engines(models_dir)



@pytest.fixture
def settings(settings):
    """These turns run SmolLM2-135M (kiosk_helpers' engines), which speaks only English: a Russian
    turn gets the fixed, honest Russian reply — the path every English-only model takes."""
    cfg = config_mod.replace(settings.config, "llm", model="smollm2-135m", languages=["en"])
    return dataclasses.replace(settings, config=cfg)


def test_english_round_trip_name_and_reply_audio(settings, engines, models_dir):
    q = "Hello! What is your name?"
    out = converse(settings, engines, np.concatenate([speech(models_dir, q), silence(1.0)]))
    assert len(out.transcripts) == 1
    assert wer(q, out.transcripts[0]) <= 0.2, out.transcripts
    reply = out.replies()[0]
    assert "Anna" in reply
    # what the speaker actually played, transcribed back, is the reply text
    played = out.speaker.recording()
    heard_back = stt(models_dir).transcribe(to_int16(resample(played, out.speaker.rate, 16000)), ["en"], None)[0]
    assert wer(reply, heard_back) <= 0.3, (reply, heard_back)
    m = out.of(TurnDone)[0].metrics
    assert m.language == "en" and m.stt_s > 0 and m.tts_first_chunk_s > 0 and m.ttfa_s >= m.eos_s


@pytest.mark.skipif(not RU_PROMPTS.is_dir(), reason="asterisk-core-sounds-ru-wav is not installed")
def test_russian_turn_gets_the_honest_russian_answer(settings, engines, tmp_path):
    # the recorded prompt as an 8 kHz stereo WAV file, the way a phone-quality recording arrives
    src = RU_PROMPTS / "dir-welcome.wav"
    with wave.open(str(src)) as w:
        mono = np.frombuffer(w.readframes(w.getnframes()), np.int16)
        rate = w.getframerate()
    stereo = tmp_path / "ru-stereo.wav"
    with wave.open(str(stereo), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.stack([mono, mono], axis=1).tobytes())
    audio = np.concatenate([read_mono_16k(stereo), silence(1.0)])
    out = converse(settings, engines, audio)
    assert [e.language for e in out.of(Transcribed)] == ["ru"]
    assert wer("Добро пожаловать в директорию", out.transcripts[0]) <= 0.34
    persona = out.conv.persona
    assert out.replies() == [fallback_reply(persona, "ru")]
    played = out.speaker.recording()
    assert len(played) / out.speaker.rate > 2.0 and np.abs(played).max() > 0.2


def test_short_russian_after_russian_stays_russian(settings, engines):
    if not RU_PROMPTS.is_dir():
        pytest.skip("asterisk-core-sounds-ru-wav is not installed")
    audio = np.concatenate([ru_prompt("dir-welcome"), silence(10.0), ru_prompt("auth-thankyou"), silence(1.0)])
    out = converse(settings, engines, audio)
    assert [e.language for e in out.of(Transcribed)] == ["ru", "ru"]


def _noise(seconds, rms, seed=0):
    return np.random.default_rng(seed).normal(0, rms, int(seconds * 16000)).clip(-32768, 32767).astype(np.int16)


BAD_INPUTS = {
    "silence": lambda: silence(5.0),
    "a minute of noise": lambda: _noise(60.0, 2000),
    "clipped": lambda: np.where(_noise(3.0, 20000, 1) > 0, 32767, -32768).astype(np.int16),
    "0.1 s blip": lambda: np.concatenate([silence(1.0), (np.sin(np.arange(1600) / 3) * 20000).astype(np.int16),
                                          silence(2.0)]),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_gives_no_turn_and_no_crash(settings, engines, name):
    out = converse(settings, engines, BAD_INPUTS[name]())
    assert out.transcripts == []
    assert not out.of(SentenceReady) and not out.of(TurnFailed)
    assert np.abs(out.speaker.recording()).max(initial=0) == 0


def test_followup_in_name_mode_with_real_stt(settings, engines, models_dir):
    import dataclasses

    from appliance import config as config_mod

    s = dataclasses.replace(settings, config=config_mod.replace(settings.config, "wake", mode="name"))
    persona = Persona(name="Anna", names=("Анна",), languages=("en", "ru"))
    audio = np.concatenate([speech(models_dir, "How old are you?"), silence(2.0),
                            speech(models_dir, "Anna, how old are you?"), silence(8.0)])
    out = converse(s, engines, audio, persona=persona)
    outcomes = [e.outcome for e in out.of(TurnDone)]
    assert outcomes == ["no_reply", "replied"]
