"""The embedded TTS: piper (``en_US-joe-medium``) for English, espeak-ng for Russian (no neural
Russian voice exists among our packages). Both come out float32 mono at piper's rate; the speaker
resamples to the playback rate. Blocking: run in the TTS worker thread, one sentence per call.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..audio.resample import resample
from ..audio.wav import read_wav
from ..profile import Profile


class PiperEspeakTTS:
    def __init__(self, voice_path: Path, *, russian_voice: str = "ru", espeak: str = "espeak-ng",
                 voice_profile: Path | None = None) -> None:
        from piper import PiperVoice

        self.voice = PiperVoice.load(str(voice_path))
        self.sample_rate = int(self.voice.config.sample_rate)
        self.russian_voice = russian_voice
        self.espeak = shutil.which(espeak) or espeak
        self.voice_id = f"piper:{voice_path.stem}|espeak:{russian_voice}"
        self._base_id = self.voice_id
        self.matcher = None
        self.match_profiles = voice_profile is not None  # use_profile() applies a profile's voice match
        if voice_profile is not None:
            self.use_voice_profile(voice_profile)

    def use_voice_profile(self, path: Path | None) -> None:
        """The profile's voice match (fitted at provisioning) moves the stock voice toward the
        samples; None or a missing file means the stock voice."""
        self.matcher, self.voice_id = None, self._base_id
        if path is None or not path.is_file():
            return
        from ..voice.match import VoiceMatcher, VoiceProfile

        vp = VoiceProfile.load(path)
        self.matcher = VoiceMatcher(vp)
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
            yield self._match(self._espeak(text))
            return
        for chunk in self.voice.synthesize(text):  # one chunk per sentence piper finds
            yield self._match(chunk.audio_float_array.astype(np.float32))

    def _match(self, audio: np.ndarray) -> np.ndarray:
        return self.matcher.apply(audio, self.sample_rate) if self.matcher is not None else audio

    def _espeak(self, text: str) -> np.ndarray:
        # Text goes on stdin, never on the command line: it is visitor-influenced.
        proc = subprocess.run([self.espeak, "-v", self.russian_voice, "-s", "165", "--stdout"],
                              input=text.encode("utf-8"), capture_output=True, timeout=30, check=True)
        data, rate = read_wav(io.BytesIO(proc.stdout))
        return resample(data[:, 0].astype(np.float32), rate, self.sample_rate)
