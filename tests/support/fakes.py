"""Small deterministic fakes for orchestration tests ONLY (never shipped as an engine choice on a
box: they exist so the turn loop can be tested for ordering, cancellation and barge-in without
waiting on real models)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence

import numpy as np

from appliance.messages import ChatMessage, MouthPose


class FakeSTT:
    """Returns ``text`` (or one of ``texts`` in turn) for any audio; language = the first given."""

    def __init__(self, text: str = "hello there", texts: Sequence[str] | None = None, language: str = "en") -> None:
        self.texts = list(texts) if texts else [text]
        self.language = language
        self.calls = 0

    def transcribe(self, samples, languages, prior):
        text = self.texts[min(self.calls, len(self.texts) - 1)]
        self.calls += 1
        return text, self.language, -0.2, 0.99


class FakeLLM:
    """Streams a fixed reply word by word, ``delay_s`` between pieces, and honours ``cancel``."""

    def __init__(self, reply: str = "Hello! I am a fake. Nice to meet you.", delay_s: float = 0.0) -> None:
        self.reply = reply
        self.delay_s = delay_s
        self.cancelled = False
        self.prompts: list[list[ChatMessage]] = []

    def warm(self, prefix) -> None:
        pass

    def generate(self, messages: Sequence[ChatMessage], cancel: threading.Event) -> Iterator[str]:
        self.prompts.append(list(messages))
        for i, word in enumerate(self.reply.split(" ")):
            if cancel.is_set():
                self.cancelled = True
                return
            if self.delay_s:
                time.sleep(self.delay_s)
            yield (" " if i else "") + word


class FakeTTS:
    """A 220 Hz tone, ``seconds_per_char`` long per character, at 16 kHz."""

    sample_rate = 16000
    voice_id = "fake"

    def __init__(self, seconds_per_char: float = 0.02) -> None:
        self.seconds_per_char = seconds_per_char

    def synthesize(self, text: str, language: str) -> Iterator[np.ndarray]:
        n = int(len(text) * self.seconds_per_char * self.sample_rate)
        t = np.arange(n) / self.sample_rate
        yield (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


class FakeAnimator:
    """A gray 64×64 face (stub for the face role's registry entry)."""

    def __init__(self, *args, **kwargs) -> None:
        pass

    def frame(self, t: float, mouth: MouthPose) -> np.ndarray:
        return np.full((64, 64, 3), 128, np.uint8)
