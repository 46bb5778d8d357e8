"""The typed messages that flow between the stages of a turn (see shared DESIGN.md, "The turn, as data").

All are frozen: a stage never mutates what another stage handed it. Audio is numpy (int16 for the
microphone, float32 in [-1, 1] for synthesized speech); times are *audio* seconds counted from the
microphone's first sample, so state machines and tests never depend on the wall clock.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

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
    fixed: bool = False  # a fixed phrase (greeting, fallback, `say`): from the phrase cache, not the LLM


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
    """Mouth shape for one video frame. ``open`` 0…1 (the jaw; 0 = the photo's rest); ``width``
    -1…1 (-1 rounded and narrow as for у/u, 0 neutral as for а/a, 1 spread as for и/i); ``close``
    0…1 (1 = the lips pressed together, over the teeth of a photo that shows them: м/п/б)."""

    open: float = 0.0
    width: float = 0.0
    close: float = 0.0


class KioskState(enum.StrEnum):
    IDLE = "idle"
    LISTENING = "listening"
    THINKING = "thinking"
    SPEAKING = "speaking"
    PROVISIONING = "provisioning"
    ERROR = "error"


@dataclass(frozen=True)
class TurnMetrics:
    """Seconds. eos: visitor stopped -> endpointer decided (audio time); the rest wall time."""

    turn_id: str
    language: str = ""
    outcome: str = "replied"     # replied, no_reply, barge_in, error
    eos_s: float = 0.0
    stt_s: float = 0.0
    llm_first_token_s: float = 0.0
    llm_first_sentence_s: float = 0.0
    tts_first_chunk_s: float = 0.0
    ttfa_s: float = 0.0          # visitor stopped speaking -> first reply audio handed to the speaker
    reply_chars: int = 0
    llm_head_start_s: float = 0.0  # the LLM started this long before the end of speech was confirmed

    @property
    def critical_path_s(self) -> float:
        # A head start overlaps the LLM with the end-of-speech wait: that part is not on the path.
        return self.eos_s + self.stt_s + self.llm_first_sentence_s + self.tts_first_chunk_s - self.llm_head_start_s


# ---------------------------------------------------------------------------------- turn events
# What the conversation tells the screen, the face, the journal and the tests: a closed set of
# frozen types (``TurnEvent``), consumed with ``isinstance`` / ``match``. Times ``t`` are audio
# seconds; ``*_s`` on the speaker's clock.

@dataclass(frozen=True)
class SpeechStarted:
    """The endpointer heard the visitor start (a barge-in candidate while the kiosk speaks)."""

    t: float


@dataclass(frozen=True)
class WakeWordHeard:
    t: float


@dataclass(frozen=True)
class UtteranceCut:
    """An utterance was cut and a turn starts for it."""

    turn_id: str
    duration: float
    reason: str  # why the endpointer cut it: "silence" or "max_length"


@dataclass(frozen=True)
class Transcribed:
    turn_id: str
    text: str
    language: str


@dataclass(frozen=True)
class NoReply:
    """Heard something, answered nothing. ``reason``: too_short, nothing_heard, low_confidence,
    not_addressed, no_wake_word, not_speech."""

    turn_id: str
    reason: str


@dataclass(frozen=True)
class SentenceReady:
    """A sentence of the reply goes to the voice (and the caption)."""

    turn_id: str
    index: int
    text: str


@dataclass(frozen=True)
class AudioQueued:
    """Reply audio handed to the speaker, starting at ``start_s`` on its clock: what drives the mouth."""

    chunk: SpeechChunk
    start_s: float

    @property
    def turn_id(self) -> str:
        return self.chunk.turn_id


@dataclass(frozen=True)
class BargeIn:
    """The visitor spoke over the kiosk: it fell silent at ``stopped_at_s`` (nothing after it sounds)."""

    stopped_at_s: float
    t: float


@dataclass(frozen=True)
class BargeInRejected:
    """The sound that muted the kiosk was not a voice: the muted reply carries on where it was."""


@dataclass(frozen=True)
class TurnDone:
    turn_id: str
    outcome: str  # replied, no_reply, barge_in, error
    metrics: TurnMetrics


@dataclass(frozen=True)
class TurnFailed:
    turn_id: str
    error: str  # the exception's class name (the journal has the rest)


@dataclass(frozen=True)
class VisitorGone:
    """Nobody spoke for ``session.visitor_gone_s``: history dropped, the next visitor starts fresh."""


TurnEvent = (SpeechStarted | WakeWordHeard | UtteranceCut | Transcribed | NoReply | SentenceReady | AudioQueued
             | BargeIn | BargeInRejected | TurnDone | TurnFailed | VisitorGone)


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
