"""Fixed phrases (the greeting, fallbacks) synthesized once and kept on disk, keyed by text + voice.

A greeting must start the instant a visitor is noticed; synthesizing it each time would add a
TTS call to the most visible moment. Files are ``<sha256>.npy`` (float32 at the TTS rate), written
atomically so a crash never leaves a truncated phrase behind.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np


class PhraseCache:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, text: str, voice_id: str, language: str, rate: int) -> Path:
        key = hashlib.sha256(f"{voice_id}\0{language}\0{rate}\0{text}".encode()).hexdigest()
        return self.folder / f"{key}.npy"

    def get(self, tts, text: str, language: str) -> np.ndarray:
        """The phrase's audio, synthesized with ``tts`` on a miss (blocking: call from the TTS worker)."""
        voice_id = getattr(tts, "voice_id", type(tts).__name__)
        path = self._path(text, voice_id, language, tts.sample_rate)
        if path.is_file():
            try:
                return np.load(path)
            except (OSError, ValueError):
                path.unlink(missing_ok=True)  # a damaged entry is re-made, never trusted
        parts = list(tts.synthesize(text, language))
        audio = np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            np.save(fh, audio)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        return audio

    def has(self, tts, text: str, language: str) -> bool:
        return self._path(text, getattr(tts, "voice_id", type(tts).__name__), language, tts.sample_rate).is_file()
