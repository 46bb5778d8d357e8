"""The embedded TTS: piper (``en_US-joe-medium``) for English, RHVoice for Russian (espeak-ng only as
the last fallback; see :mod:`.russian_voice`). Both come out float32 mono at piper's rate; the
speaker resamples to the playback rate. Blocking: run in the TTS worker thread, one sentence per call.

The profile's voice match (fitted on piper at provisioning) moves both toward the recordings. For
Russian only its pitch target is used: the match's timbre warp was fitted for piper's man's voice and
would distort RHVoice's, so the Russian voice's own median pitch is measured once and moved toward
the samples' within ±25 % (beyond that intelligibility suffers more than likeness gains).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..audio.resample import resample
from ..profile import Profile
from .russian_voice import RussianVoice

RU_PITCH_RANGE = (0.8, 1.25)  # how far the Russian voice's pitch may be moved toward the samples'


class PiperEspeakTTS:
    def __init__(self, voice_path: Path, *, russian_voice: str = "irina", voice_profile: Path | None = None) -> None:
        from piper import PiperVoice

        self.voice = PiperVoice.load(str(voice_path))
        self.sample_rate = int(self.voice.config.sample_rate)
        self.russian = RussianVoice(russian_voice)
        self.voice_id = f"piper:{voice_path.stem}|{self.russian.id}"
        self._base_id = self.voice_id
        self.matcher = None
        self.ru_matcher = None
        self._ru_f0: float | None = None
        self.match_profiles = voice_profile is not None  # use_profile() applies a profile's voice match
        if voice_profile is not None:
            self.use_voice_profile(voice_profile)

    def use_voice_profile(self, path: Path | None) -> None:
        """The profile's voice match (fitted at provisioning) moves the stock voice toward the
        samples; None or a missing file means the stock voice."""
        self.matcher, self.ru_matcher, self.voice_id = None, None, self._base_id
        if path is None or not path.is_file():
            return
        from ..voice.match import VoiceMatcher, VoiceProfile

        vp = VoiceProfile.load(path)
        self.matcher = VoiceMatcher(vp)
        self.ru_matcher = self._russian_matcher(vp)
        # part of the phrase-cache key: a new voice profile must not replay old audio
        self.voice_id = f"{self._base_id}|match:{vp.target_f0:.0f}/{vp.source_f0:.0f}/{vp.alpha}"

    def use_profile(self, folder: Path) -> None:
        """Speak in the voice of the profile at ``folder`` (a stick was provisioned while running)."""
        if self.match_profiles:
            self.use_voice_profile(Profile(folder).voice_match)

    @classmethod
    def from_settings(cls, settings) -> PiperEspeakTTS:
        from ..models import load_manifest

        cfg = settings.config.tts
        model = load_manifest(settings.paths.manifest).get(cfg.english_voice)
        onnx = next(f.name for f in model.files if f.name.endswith(".onnx"))
        profile = Profile(settings.paths.current_profile).voice_match if cfg.voice_match else None
        engine = cls(model.path(settings.paths.models_dir, onnx), russian_voice=cfg.russian_voice, voice_profile=profile)
        engine.match_profiles = cfg.voice_match
        return engine

    def synthesize(self, text: str, language: str) -> Iterator[np.ndarray]:
        text = text.strip()
        if not text:
            return
        if language == "ru":
            audio, rate = self.russian.synthesize(text)
            yield from self._pieces(resample(audio, rate, self.sample_rate), self.ru_matcher)
            return
        for chunk in self.voice.synthesize(text):  # one chunk per sentence piper finds
            yield from self._pieces(chunk.audio_float_array.astype(np.float32), self.matcher)

    def _pieces(self, audio: np.ndarray, matcher) -> Iterator[np.ndarray]:
        # Matched in pieces: the first words play while the rest is still being converted.
        if matcher is None:
            yield audio
        else:
            yield from matcher.pieces(audio, self.sample_rate)

    def _russian_matcher(self, vp):
        """The profile's pitch target for the Russian voice (its own median pitch, measured once)."""
        from ..voice.match import CALIBRATION, VoiceMatcher, median_f0

        if self._ru_f0 is None:
            audio = [self.russian.synthesize(t) for t in CALIBRATION["ru"]]
            self._ru_f0 = median_f0(np.concatenate([a for a, _ in audio]), audio[0][1]) if audio else 0.0
        if not self._ru_f0 or not vp.target_f0:
            return None
        lo, hi = RU_PITCH_RANGE
        target = min(max(vp.target_f0, self._ru_f0 * lo), self._ru_f0 * hi)
        return VoiceMatcher(replace(vp, source_f0=self._ru_f0, target_f0=target, alpha=1.0))
