"""One-method interfaces per engine role. Engines are plain blocking code: the conversation runs
each in its own worker thread and fully consumes any generator there (a lazy generator iterated
on the event loop would block the loop)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Protocol

import numpy as np

from ..messages import ChatMessage, MouthPose


class SpeechToText(Protocol):
    def transcribe(self, samples: np.ndarray, languages: Sequence[str], prior: str | None) -> tuple[str, str, float, float]:
        """16 kHz int16/float32 audio -> (text, language, avg_logprob, language_probability).

        ``languages`` are the persona's languages (detection chooses only among them);
        ``prior`` is the last turn's language, used for very short utterances."""


class PersonaLLM(Protocol):
    def generate(self, messages: Sequence[ChatMessage], cancel: threading.Event) -> Iterator[str]:
        """Stream reply text pieces; stop promptly once ``cancel`` is set."""


class TextToSpeech(Protocol):
    sample_rate: int

    def synthesize(self, text: str, language: str) -> Iterator[np.ndarray]:
        """Stream float32 mono audio at ``sample_rate`` for one sentence."""


class FaceAnimator(Protocol):
    def frame(self, t: float, mouth: MouthPose) -> np.ndarray:
        """The face image (H×W×3 uint8, RGB) at audio-clock time ``t`` with this mouth pose."""


class WakeDetector(Protocol):
    def process(self, frame: np.ndarray) -> bool:
        """One 16 kHz int16 microphone frame; True when the wake word just ended."""
