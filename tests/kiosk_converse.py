"""Run the real turn loop on a recording (virtual time) and collect what happened."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import numpy as np
from kiosk_helpers import demo_persona

from appliance.audio.mic import LoopbackMic, WavFileMic
from appliance.audio.speaker import RecordingSpeaker
from appliance.conversation.conversation import Conversation
from appliance.conversation.storage import TurnStore
from appliance.messages import ScreenModel, SentenceReady, Transcribed


@dataclass
class Outcome:
    conv: Conversation
    speaker: RecordingSpeaker
    events: list = field(default_factory=list)
    screens: list = field(default_factory=list)

    def of(self, kind: type) -> list:
        """The events of one type, in order."""
        return [e for e in self.events if isinstance(e, kind)]

    @property
    def transcripts(self) -> list[str]:
        return [e.text for e in self.of(Transcribed)]

    def replies(self) -> list[str]:
        by_turn: dict[str, list[str]] = {}
        for e in self.of(SentenceReady):
            by_turn.setdefault(e.turn_id, []).append(e.text)
        return [" ".join(v) for v in by_turn.values()]


def converse(settings, engines, audio: np.ndarray, *, echo_gain: float = 0.0, echo_delay_s: float = 0.04,
             noise_rms: float = 0.0, guard=None, persona=None, stop_after_audio_s=None,
             speaker_rate: int = 16000, room=None, on_event=None, knowledge=None) -> Outcome:
    speaker = RecordingSpeaker(speaker_rate)
    mic = WavFileMic(samples=audio, frame_ms=settings.config.audio.frame_ms)
    if echo_gain or noise_rms:
        mic = LoopbackMic(mic, speaker, gain=echo_gain, delay_s=echo_delay_s, noise_rms=noise_rms,
                          impulse_response=room)
    out = Outcome(None, speaker)  # type: ignore[arg-type]

    def sink(item):
        (out.screens if isinstance(item, ScreenModel) else out.events).append(item)
        if on_event is not None:
            on_event(item)

    store = TurnStore(settings.paths.db_path, settings.config.privacy)
    conv = Conversation(settings, persona or demo_persona(), engines, mic, speaker, on_event=sink,
                        store=store, echo_guard=guard, knowledge=knowledge)
    out.conv = conv
    try:
        asyncio.run(conv.run(stop_after_audio_s=stop_after_audio_s))
    finally:
        store.close()
    return out
