"""The typed messages that flow between the stages of a turn (see shared DESIGN.md, "The turn, as data").

All are frozen: a stage never mutates what another stage handed it. Audio is numpy (int16 for the
microphone, float32 in [-1, 1] for synthesized speech); times are *audio* seconds counted from the
microphone's first sample, so state machines and tests never depend on the wall clock.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np

MIC_RATE = 16000  # every microphone frame is 16 kHz mono int16 after resampling


@dataclass(frozen=True)
class AudioChunk:
    """A microphone frame: 16 kHz mono int16, ``t`` = audio time of its first sample."""

    samples: np.ndarray
    t: float

    @property
    def duration(self) -> float:
        return len(self.samples) / MIC_RATE


@dataclass(frozen=True)
class Utterance:
    """One visitor utterance cut by the endpointer (pre-roll included)."""

    turn_id: str
    samples: np.ndarray  # int16, 16 kHz
    t_start: float       # audio time of the first kept sample
    t_speech_end: float  # audio time the visitor stopped speaking (before the end-silence)
    t_detected: float    # audio time the endpointer declared the end

    @property
    def duration(self) -> float:
        return len(self.samples) / MIC_RATE


@dataclass(frozen=True)
class Transcript:
    turn_id: str
    text: str
    language: str
    confidence: float  # average log-probability (whisper's avg_logprob)
    language_probability: float = 0.0


@dataclass(frozen=True)
class ChatMessage:
    role: str  # "system", "user", "assistant"
    content: str


@dataclass(frozen=True)
class ReplySentence:
    """A complete sentence of the reply, ready for TTS the moment the chunker closes it."""

    turn_id: str
    index: int
    text: str
    language: str


@dataclass(frozen=True)
class SpeechChunk:
    """Synthesized speech, float32 mono at ``sample_rate``; ``final`` closes its sentence."""

    turn_id: str
    sentence_index: int
    samples: np.ndarray
    sample_rate: int
    text: str = ""
    final: bool = False


@dataclass(frozen=True)
class MouthPose:
    """Mouth shape for one video frame: opening and width in 0…1 (0 = closed / neutral)."""

    open: float = 0.0
    width: float = 0.0


class KioskState(enum.StrEnum):
    IDLE = "idle"
    LISTENING = "listening"
    THINKING = "thinking"
    SPEAKING = "speaking"
    PROVISIONING = "provisioning"
    ERROR = "error"


@dataclass(frozen=True)
class TurnEvent:
    """Control and progress events; ``kind`` is one of the names below."""

    kind: str  # "speech_start", "utterance", "transcript", "reply_start", "sentence", "audio_start",
    #            "turn_done", "barge_in", "no_reply", "error", "state"
    turn_id: str = ""
    data: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ScreenModel:
    """Everything the renderer needs to draw one frame, apart from the face image."""

    state: KioskState = KioskState.IDLE
    heard: str = ""           # the visitor's words (caption)
    saying: str = ""          # the reply so far (caption)
    level: float = 0.0        # live microphone level 0…1 (listening meter)
    hint: str = ""            # attract-mode hint ("Say hello!")
    progress: float = 0.0     # provisioning progress 0…1
    step: str = ""            # provisioning step name
    message: str = ""         # error/maintenance message
    detail: str = ""          # what to do about it
    notice: str = ""          # a message over the face until its cause goes (a refused USB stick)
