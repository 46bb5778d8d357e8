"""Microphone frames → what the visitor does: starts speaking, says something to answer, or talks
over the kiosk (barge-in).

::

    frame ─► EchoGuard (our own voice coming back is not a visitor) ─► FrameClassifier (webrtcvad)
          ─► [wake word detector, wake mode] ─► Endpointer ─► speech start / pause / utterance / dropped

Barge-in: visitor speech (voiced and *not* explained by the echo of our own output, see
:mod:`appliance.audio.echo`) while the kiosk thinks or speaks mutes the speaker at once (``duck``:
within one frame of the endpointer's speech start, ~140 ms after the onset); webrtcvad also fires
on clatter and fans, so silero must confirm a voice (re-checked every 100 ms of speech, a few ms in
the VAD worker) before the reply is thrown away. Sound that silero never calls a voice un-ducks the
speaker and the reply carries on. Without silero (threshold 0) the barge-in is immediate.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..audio.echo import EchoGuard
from ..audio.speaker import Speaker
from ..audio.vad import Endpointer, FrameClassifier, VadEvent, VadEventKind
from ..config import Config
from ..engines.factory import Engines
from ..messages import MIC_RATE, BargeInRejected, NoReply, SpeechStarted, TurnEvent, WakeWordHeard
from .workers import Workers

log = logging.getLogger("appliance.conversation")


@dataclass(frozen=True)
class ListenerHooks:
    """What the listener tells the conversation (on the loop thread)."""

    emit: Callable[[TurnEvent], None]
    replying: Callable[[], bool]               # a turn is in progress: speech now is a barge-in candidate
    utterance: Callable[[VadEvent], None]      # the visitor finished saying something
    pause: Callable[[VadEvent], None]          # the visitor paused: maybe finished (transcribe early)
    barge_in: Callable[[float, float | None], None]  # (audio time, speaker time it went silent or None)
    wake_word: Callable[[float], None]
    nudge: Callable[[], None]                  # a check finished: virtual time may move on


class Listener:
    def __init__(self, cfg: Config, speaker: Speaker, engines: Engines, workers: Workers, hooks: ListenerHooks,
                 guard: EchoGuard | None = None) -> None:
        self.cfg = cfg
        self.speaker = speaker
        self.engines = engines
        self.workers = workers
        self.hooks = hooks
        self.guard = guard or EchoGuard()
        self.endpointer = Endpointer(cfg.vad)
        self.classifier = FrameClassifier(cfg.vad.aggressiveness)
        self.checks = 0                              # silero / wake checks in flight
        self._pending: float | None = None           # audio time of a ducked barge-in awaiting silero
        self._next_check_samples = 0
        self._ducked_at = 0.0

    @property
    def in_speech(self) -> bool:
        return self.endpointer.in_speech

    def reset(self) -> None:
        """Forget the utterance in progress (a reconnected microphone, a paused kiosk)."""
        self.endpointer.reset()

    def echo(self, frame: np.ndarray) -> bool:
        """Whether our own voice explains ``frame``. The guard must see every frame (it fits the echo
        over a window of recent audio), also those nobody listens to."""
        for end16, ref in self.speaker.take_reference():
            self.guard.add_reference(ref, end16)
        return self.guard.explained(frame, self.speaker.played_pos16k)

    def hear(self, frame: np.ndarray, t: float, echo: bool) -> None:
        voiced = self.classifier(frame) and not echo  # our own voice coming back is not a visitor
        if self.workers.wake is not None:
            self.checks += 1  # virtual time waits for the verdict, as a device would not need to
            self.workers.wake.submit(self._wake_check, frame.copy()).add_done_callback(
                lambda fut: self._wake_done(fut, t))
        ev = self.endpointer.process(frame, t, voiced)
        if self._pending is not None and not self.checks:
            if not self.endpointer.in_speech or not self.hooks.replying():
                self.drop_pending()
            elif len(self.endpointer.current_audio()) >= self._next_check_samples:
                self._submit_check()
        if ev is None:
            return
        if ev.kind is VadEventKind.SPEECH_START:
            self.hooks.emit(SpeechStarted(ev.t))
            if self.hooks.replying():
                self._maybe_barge_in(ev.t)
        elif ev.kind is VadEventKind.PAUSE:
            if not self.hooks.replying():
                self.hooks.pause(ev)
        elif ev.kind is VadEventKind.DROPPED:
            self.hooks.emit(NoReply("", "too_short"))
        elif ev.kind is VadEventKind.UTTERANCE:
            if self.hooks.replying():
                # Sound that did not win a barge-in (silero said it was no voice) while we talk.
                self.hooks.emit(NoReply("", "not_speech"))
                return
            self.hooks.utterance(ev)

    # ------------------------------------------------------------------ wake word
    def _wake_check(self, frame: np.ndarray) -> bool:  # wake worker thread
        try:
            return bool(self.engines.wake.process(frame))
        except Exception:  # noqa: BLE001 - a broken detector must not kill the worker
            log.exception("wake word detector failed")
            return False

    def _wake_done(self, fut: asyncio.Future, t: float) -> None:
        self.checks -= 1
        self.hooks.nudge()
        if not fut.cancelled() and fut.exception() is None and fut.result():
            self.hooks.wake_word(t)
            self.hooks.emit(WakeWordHeard(t))

    # ------------------------------------------------------------------ barge-in
    def _maybe_barge_in(self, t: float) -> None:
        """Silero needs ~300 ms of speech to be sure, more than the 200 ms a barge-in may take, so
        the speaker is *ducked* (muted, clock running) at once and the reply cancelled only when
        silero agrees; in virtual time the microphone waits for the checks (pacing), so decisions
        land at the same audio time as they would on a device."""
        if self.engines.silero is None:
            self.hooks.barge_in(t, None)
            return
        self._ducked_at = self.speaker.played_seconds
        self.speaker.duck(True)
        self._pending = t
        self._submit_check()

    def _submit_check(self) -> None:
        audio = self.endpointer.current_audio()
        self._next_check_samples = len(audio) + MIC_RATE // 10  # re-check every 100 ms of speech
        self.checks += 1
        self.workers.vad.submit(self.engines.silero.speech_probability, audio).add_done_callback(self._check_done)

    def _check_done(self, fut: asyncio.Future) -> None:
        self.checks -= 1
        self.hooks.nudge()
        try:
            voice = fut.result() >= self.cfg.vad.silero_threshold
        except Exception:  # noqa: BLE001 - a failed check must not stop the loop
            log.exception("barge-in check failed")
            voice = False
        if self._pending is None:
            return
        if not self.hooks.replying():
            self.drop_pending()
        elif voice:
            t, self._pending = self._pending, None
            self.hooks.barge_in(t, self._ducked_at if self.speaker.ducked else None)

    def drop_pending(self) -> None:
        """The sound ended (or the turn did) without silero calling it a voice: carry on speaking."""
        if self._pending is not None:
            self._pending = None
            self.speaker.duck(False)
            self.hooks.emit(BargeInRejected())
