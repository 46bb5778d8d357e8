"""Endpointing: where an utterance starts and ends.

:class:`Endpointer` is a pure state machine. It is fed one frame at a time together with a
speech/no-speech decision and counts *audio* time only, so it is tested without audio and
without sleeps. The decisions come from :class:`FrameClassifier` (webrtcvad plus an energy
floor); :class:`SileroCheck` is the second opinion on a finished utterance, because webrtcvad
alone fires on fans, clatter and music (it is a GMM over spectral bands, not a speech model).
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass

import numpy as np

from ..config import VadConfig
from ..messages import MIC_RATE


class VadEventKind(enum.StrEnum):
    SPEECH_START = "speech_start"
    UTTERANCE = "utterance"
    DROPPED = "dropped"  # an utterance that was too short (a blip)
    PAUSE = "pause"      # early_stt_ms of silence: the utterance so far, as it would be cut if it ended here


@dataclass(frozen=True)
class VadEvent:
    kind: VadEventKind
    t: float                          # audio time of the decision
    samples: np.ndarray | None = None  # UTTERANCE, PAUSE: the utterance, pre-roll included
    t_start: float = 0.0              # UTTERANCE, PAUSE: audio time of its first kept sample
    t_speech_start: float = 0.0       # first voiced frame
    t_speech_end: float = 0.0         # end of the last voiced frame
    reason: str = ""                  # DROPPED: why; UTTERANCE: "silence" or "max_length"


class Endpointer:
    """Counts voiced/unvoiced audio time and cuts utterances.

    Silence state: the last ``preroll_ms`` of frames are kept (so the first syllable, which
    webrtcvad often only recognises late, is never cut). Speech opens once ``start_ms`` of voiced
    audio fall within a start window; it closes after ``end_silence_ms`` of continuous silence,
    or at ``max_utterance_s``. Utterances with less than ``min_utterance_ms`` of speech between
    first and last voiced frame are dropped (coughs, clicks).

    After ``early_stt_ms`` of that silence a PAUSE event hands over the utterance so far — exactly
    what UTTERANCE will carry if no voiced frame follows (the same trailing 200 ms, once
    ``early_stt_ms`` ≥ 200) — so transcription can start while the end is still being confirmed.
    """

    def __init__(self, cfg: VadConfig) -> None:
        self.cfg = cfg
        self.start_window_s = max(2 * cfg.start_ms, 240) / 1000.0
        self.reset()

    def reset(self) -> None:
        self.in_speech = False
        self._pre: deque[tuple[float, np.ndarray, bool]] = deque()
        self._frames: list[np.ndarray] = []
        self._t_start = 0.0
        self._t_speech_start = 0.0
        self._t_last_voiced_end = 0.0
        self._silence_s = 0.0
        self._paused = False

    def _pre_voiced_s(self) -> float:
        return sum(len(f) / MIC_RATE for _, f, v in self._pre if v)

    @property
    def t_last_voiced_end(self) -> float:
        """Audio time the last voiced frame ended: a later one than a pause's means they went on."""
        return self._t_last_voiced_end

    def process(self, frame: np.ndarray, t: float, is_speech: bool) -> VadEvent | None:
        """Feed one frame (int16, audio time ``t`` of its first sample) and its decision."""
        dur = len(frame) / MIC_RATE
        t_end = t + dur
        if not self.in_speech:
            self._pre.append((t, frame, is_speech))
            keep = self.cfg.preroll_ms / 1000.0 + self.start_window_s
            while self._pre and self._pre[0][0] < t_end - keep - 1e-9:
                self._pre.popleft()
            window = [(ft, f, v) for ft, f, v in self._pre if ft >= t_end - self.start_window_s - 1e-9]
            voiced = sum(len(f) / MIC_RATE for _, f, v in window if v)
            if voiced + 1e-9 >= self.cfg.start_ms / 1000.0:
                first_voiced = next(ft for ft, _, v in window if v)
                pre_from = first_voiced - self.cfg.preroll_ms / 1000.0
                kept = [(ft, f) for ft, f, _ in self._pre if ft >= pre_from - 1e-9]
                self.in_speech = True
                self._frames = [f for _, f in kept]
                self._t_start = kept[0][0]
                self._t_speech_start = first_voiced
                self._t_last_voiced_end = t_end
                self._silence_s = 0.0
                self._pre.clear()
                return VadEvent(VadEventKind.SPEECH_START, t_end, t_speech_start=first_voiced)
            return None

        self._frames.append(frame)
        if is_speech:
            self._t_last_voiced_end = t_end
            self._silence_s = 0.0
            self._paused = False
        else:
            self._silence_s += dur
        length = t_end - self._t_start
        if self._silence_s + 1e-9 >= self.cfg.end_silence_ms / 1000.0:
            return self._close(t_end, "silence")
        if length + 1e-9 >= self.cfg.max_utterance_s:
            return self._close(t_end, "max_length")
        early = self.cfg.early_stt_ms / 1000.0
        if early and not self._paused and self._silence_s + 1e-9 >= early and self._long_enough():
            self._paused = True
            return VadEvent(VadEventKind.PAUSE, t_end, samples=self._kept(), t_start=self._t_start,
                            t_speech_start=self._t_speech_start, t_speech_end=self._t_last_voiced_end)
        return None

    def _long_enough(self) -> bool:
        return (self._t_last_voiced_end - self._t_speech_start) * 1000.0 >= self.cfg.min_utterance_ms

    def _kept(self) -> np.ndarray:
        """The utterance to transcribe: pre-roll, speech and a little of the trailing silence (whisper
        likes a soft ending) but not all of it."""
        samples = np.concatenate(self._frames) if self._frames else np.zeros(0, np.int16)
        keep = int(round((self._t_last_voiced_end - self._t_start) * MIC_RATE)) + int(0.2 * MIC_RATE)
        return samples[:keep]

    def current_audio(self) -> np.ndarray:
        """The open utterance so far (pre-roll included): what a barge-in check looks at."""
        return np.concatenate(self._frames) if self.in_speech and self._frames else np.zeros(0, np.int16)

    def _close(self, t_now: float, reason: str) -> VadEvent:
        long_enough, samples = self._long_enough(), self._kept()
        t_start, t_ss, t_se = self._t_start, self._t_speech_start, self._t_last_voiced_end
        self.reset()
        if not long_enough:
            return VadEvent(VadEventKind.DROPPED, t_now, t_speech_start=t_ss, t_speech_end=t_se, reason="short")
        return VadEvent(VadEventKind.UTTERANCE, t_now, samples=samples, t_start=t_start,
                        t_speech_start=t_ss, t_speech_end=t_se, reason=reason)


class FrameClassifier:
    """webrtcvad per frame, plus an energy floor (webrtcvad calls faint hiss speech at gain)."""

    def __init__(self, aggressiveness: int, min_rms: float = 120.0) -> None:
        import webrtcvad

        self._vad = webrtcvad.Vad(aggressiveness)
        self.min_rms = min_rms

    def __call__(self, frame: np.ndarray) -> bool:
        if len(frame) not in (160, 320, 480):
            return False
        if rms(frame) < self.min_rms:
            return False
        return bool(self._vad.is_speech(frame.tobytes(), MIC_RATE))


def rms(frame: np.ndarray) -> float:
    if len(frame) == 0:
        return 0.0
    x = frame.astype(np.float32)
    return float(np.sqrt(np.mean(x * x)))


def level(frame: np.ndarray) -> float:
    """Microphone level 0…1 for the on-screen meter (dBFS from -60 to 0 mapped linearly)."""
    r = rms(frame) / 32768.0
    if r <= 1e-6:
        return 0.0
    return float(np.clip((20 * np.log10(r) + 60.0) / 60.0, 0.0, 1.0))


class SileroCheck:
    """Silero VAD (the ONNX file shipped in faster-whisper) as a second opinion on an utterance.

    Returns the highest speech probability over the utterance; noise that fooled webrtcvad
    stays well under 0.5. Not thread-safe: the conversation calls it from the STT worker."""

    def __init__(self, model_path: str | None = None) -> None:
        import os

        from faster_whisper.vad import SileroVADModel, get_assets_path

        self._model = SileroVADModel(model_path or os.path.join(get_assets_path(), "silero_vad_v6.onnx"))

    def speech_probability(self, samples: np.ndarray) -> float:
        x = samples.astype(np.float32) / 32768.0 if samples.dtype == np.int16 else samples.astype(np.float32)
        n = 512
        if len(x) < n:
            return 0.0
        x = x[: len(x) - len(x) % n]
        probs = self._model(x, num_samples=n)
        probs = np.asarray(probs).reshape(-1)
        if len(probs) == 0:
            return 0.0
        # The 3rd-highest rather than the max: one lucky window on a click must not pass.
        k = min(3, len(probs))
        return float(np.sort(probs)[-k])
