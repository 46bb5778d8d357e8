"""Shared, process-wide helpers for the conversation tests: the real engines are loaded once per
test session (functools.cache) whichever test module asks first, and speech is synthesized once."""

from __future__ import annotations

import asyncio
import functools
import re
from pathlib import Path

import numpy as np

from appliance import models as models_mod
from appliance import persona as persona_mod
from appliance.audio.resample import resample
from appliance.audio.wav import read_mono_16k, to_int16

REPO = Path(__file__).resolve().parent.parent
MANIFEST = REPO / "models" / "manifest.toml"
RU_PROMPTS = Path("/usr/share/asterisk/sounds/ru_RU_f_IvrvoiceRU")


def demo_persona():
    return persona_mod.load(REPO / "assets" / "demo" / "persona.toml")


@functools.cache
def stt(models_dir: Path):
    from appliance.config import SttConfig
    from appliance.engines.stt_whisper import WhisperSTT

    m = models_mod.load_manifest(MANIFEST).get("whisper-base")
    w = WhisperSTT(m.path(models_dir), window_margin_s=SttConfig().window_margin_s)  # the kiosk's window
    w.warm()
    w._warmed = True
    return w


@functools.cache
def llm(models_dir: Path):
    from appliance.engines.llm_llama import LlamaPersonaLLM

    m = models_mod.load_manifest(MANIFEST).get("smollm2-135m")
    return LlamaPersonaLLM(m.path(models_dir, m.files[0].name), max_tokens=60)


@functools.cache
def tts(models_dir: Path):
    from appliance.engines.tts_piper import PiperEspeakTTS

    m = models_mod.load_manifest(MANIFEST).get("piper-joe")
    return PiperEspeakTTS(m.path(models_dir, "en_US-joe-medium.onnx"))


@functools.cache
def silero():
    from appliance.audio.vad import SileroCheck

    return SileroCheck()


def real_engines(models_dir: Path):
    from appliance.engines.factory import Engines

    return Engines(stt=stt(models_dir), llm=llm(models_dir), tts=tts(models_dir), silero=silero())


@functools.cache
def _speech(models_dir: Path, text: str) -> bytes:
    t = tts(models_dir)
    audio = np.concatenate(list(t.synthesize(text, "en")))
    return to_int16(resample(audio, t.sample_rate, 16000)).tobytes()


def speech(models_dir: Path, text: str) -> np.ndarray:
    """English speech by piper, 16 kHz int16 (cached per text)."""
    return np.frombuffer(_speech(models_dir, text), np.int16).copy()


def ru_prompt(name: str) -> np.ndarray:
    return read_mono_16k(RU_PROMPTS / f"{name}.wav")


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * 16000), np.int16)


def words(text: str) -> list[str]:
    return re.findall(r"[\w']+", text.lower().replace("ё", "е"))


def wer(ref: str, hyp: str) -> float:
    r, h = words(ref), words(hyp)
    d = list(range(len(h) + 1))
    for i in range(1, len(r) + 1):
        prev, d[0] = d[0], i
        for j in range(1, len(h) + 1):
            cur = min(d[j] + 1, d[j - 1] + 1, prev + (r[i - 1] != h[j - 1]))
            prev, d[j] = d[j], cur
    return d[len(h)] / max(len(r), 1)


def run(coro):
    return asyncio.run(coro)
