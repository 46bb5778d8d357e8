"""Who may start a turn: the wake modes, as a pure state machine counting audio time.

* ``open`` — any utterance.
* ``wake`` — a microWakeWord model (pymicro-wakeword) hears the wake word in the microphone
  stream; the utterance that contains or follows it (within ``WAKE_GRACE_S``) is accepted.
* ``name`` — the persona's name (any listed spelling, Russian case endings included) appears in
  the transcript.

After an accepted turn, follow-ups need no wake word for ``followup_s`` of audio time.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path

import numpy as np

WAKE_GRACE_S = 4.0  # a wake word this long before an utterance's end still counts for it


class WakeGate:
    def __init__(self, mode: str, followup_s: float, names: Iterable[str] = ()) -> None:
        self.mode = mode
        self.followup_s = followup_s
        self.set_names(names)
        self._awake_until = -1.0
        self._last_wake_t = -1e9

    def set_names(self, names: Iterable[str]) -> None:
        stems = set()
        for n in names:
            n = _norm(n)
            if not n:
                continue
            stems.add(n)
            # Russian declines names (Анна, Анну, Анной, Анне): match the stem plus a short ending.
            if re.search(r"[а-я]", n) and len(n) > 3 and n[-1] in "аяьйео":
                stems.add(n[:-1])
        self._name_re = re.compile(r"\b(" + "|".join(sorted(map(re.escape, stems), key=len, reverse=True))
                                   + r")[а-я]{0,3}\b") if stems else None

    # -- events ---------------------------------------------------------------------------
    def on_wake_word(self, t: float) -> None:
        self._last_wake_t = t

    def needs_transcript(self) -> bool:
        """In name mode the decision waits for the transcript."""
        return self.mode == "name"

    def accept_audio(self, t_end: float) -> bool:
        """May an utterance ending at audio time ``t_end`` go to STT?"""
        if self.mode == "open" or self.mode == "name" or t_end <= self._awake_until:
            return True
        return t_end - self._last_wake_t <= WAKE_GRACE_S

    def would_accept(self, text: str, t_end: float) -> bool:
        """What :meth:`accept_text` would say, without opening the follow-up window (a reply begun
        early asks this: speech not meant for the kiosk must not cost an LLM run)."""
        return (self.mode != "name" or t_end <= self._awake_until or self.name_in(text)) and self.accept_audio(t_end)

    def accept_text(self, text: str, t_end: float) -> bool:
        """Final decision once the transcript is known; an accepted turn opens the follow-up window."""
        ok = self.would_accept(text, t_end)
        if ok:
            self._awake_until = t_end + self.followup_s
        return ok

    def turn_finished(self, t: float) -> None:
        """The follow-up window counts from the end of the kiosk's reply."""
        if self._awake_until >= 0:
            self._awake_until = max(self._awake_until, t + self.followup_s)

    def sleep(self) -> None:
        self._awake_until = -1.0
        self._last_wake_t = -1e9

    def name_in(self, text: str) -> bool:
        return bool(self._name_re and self._name_re.search(_norm(text)))


def _norm(s: str) -> str:
    s = unicodedata.normalize("NFKC", s).lower().replace("ё", "е")
    return re.sub(r"[^\w\s]", " ", s)


class MicroWakeWordDetector:
    """Streaming microWakeWord on 16 kHz int16 frames (a few ms per 10 ms of audio on a CPU)."""

    def __init__(self, wake_word: str) -> None:
        from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures, Model

        self.model = MicroWakeWord.from_builtin(Model(wake_word))
        self.features = MicroWakeWordFeatures()

    @classmethod
    def from_file(cls, config_json: Path) -> MicroWakeWordDetector:
        from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures

        self = cls.__new__(cls)
        self.model = MicroWakeWord.from_config(config_json)
        self.features = MicroWakeWordFeatures()
        return self

    def process(self, frame: np.ndarray) -> bool:
        hit = False
        for feats in self.features.process_streaming(frame.astype(np.int16).tobytes()):
            if self.model.process_streaming(feats):
                hit = True
        return hit

    def reset(self) -> None:
        self.features.reset()
