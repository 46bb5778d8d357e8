"""The conversation: one asyncio loop owns the flow from microphone to speaker.

::

    mic frames ─► Listener (.listener: echo guard, VAD, wake word, barge-in) ─► utterance
    utterance ─► Turns (.turn: STT ─► LLM ─► sentences ─► safety ─► TTS) ─► speaker
    Session (.session: persona, history, visitor gone, wake gate) — who talks to whom

The speaker's played-samples clock is the master clock. Events (``messages.TurnEvent``: a closed
set of frozen types) and screen updates (``messages.ScreenModel``) go to ``on_event`` on the loop
thread, and to ``subscribe()``'s queues; the kiosk app draws the face and captions from them.

``hold()`` / ``release()`` pause listening (a USB stick is being set up); ``switch_persona()``
changes who the kiosk is without reloading a model.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from .. import logs
from ..audio.echo import EchoGuard
from ..audio.mic import Mic
from ..audio.speaker import Speaker
from ..audio.vad import VadEvent, level
from ..engines.factory import Engines
from ..engines.factory import load as load_engines
from ..knowledge import Knowledge
from ..lang import guess_language
from ..messages import (
    MIC_RATE,
    AudioQueued,
    BargeIn,
    KioskState,
    NoReply,
    ReplySentence,
    ScreenModel,
    TurnEvent,
    TurnMetrics,
    Utterance,
    UtteranceCut,
    VisitorGone,
)
from ..persona import Persona
from .listener import Listener, ListenerHooks
from .pacing import Ticker, VirtualPacing
from .session import Session
from .storage import TurnStore
from .turn import Turns
from .workers import Workers

log = logging.getLogger("appliance.conversation")
EVENTS_KEPT = 2000
_NO_AUDIO = np.zeros(0, np.float32)
EventSink = Callable[[object], None]


@dataclass(frozen=True)
class EarlyTranscript:
    """A transcription started when the visitor paused (see ``Conversation._pause``)."""

    t_speech_end: float      # audio time their speech ended: it is theirs only if the utterance ends there
    future: asyncio.Future   # the Transcript, from the STT worker
    wall_t0: float           # when it started, on the wall clock and in audio time
    audio_t0: float


class Conversation:
    def __init__(self, settings, persona: Persona, engines: Engines, mic: Mic | None, speaker: Speaker, *,
                 on_event: EventSink | None = None, store: TurnStore | None = None,
                 echo_guard: EchoGuard | None = None, knowledge: Knowledge | None = None) -> None:
        self.cfg = settings.config
        self.engines = engines
        self.mic = mic
        self.speaker = speaker
        self.on_event = on_event
        self.session = Session(self.cfg, persona, knowledge)
        self.workers = Workers(wake=engines.wake is not None)
        self.turns = Turns(self.cfg, settings.paths, self.session, engines, speaker, self.workers, self, store)
        self.listener = Listener(self.cfg, speaker, engines, self.workers, ListenerHooks(
            emit=self.emit, replying=lambda: self.turn_active, utterance=self._utterance, pause=self._pause,
            barge_in=self._barge_in,
            wake_word=lambda t: self.session.gate.on_wake_word(t), nudge=self.nudge), echo_guard)
        self.screen = ScreenModel(state=KioskState.IDLE)
        self.events: deque[TurnEvent] = deque(maxlen=EVENTS_KEPT)  # recent only: the kiosk runs for weeks
        self._subscribers: list[asyncio.Queue] = []
        self.ticker = Ticker()
        self.stopped = False
        self._held = False  # a stick is being set up: frames keep the clock, nobody is listened to
        # Silence ends a visit (session.visitor_gone_s) unless a camera sees who is there (app/presence.py).
        self.sound_presence = True
        # Virtual time: other work the recording waits for (a video file as the camera, analysed on
        # its own thread: its visitor must appear at the same audio time on any machine).
        self.holds: list[Callable[[], bool]] = []
        self._turn_task: asyncio.Task | None = None
        self._t_audio = 0.0
        self._level_frames = 0
        self._mic_gen = 0
        self._ids = itertools.count(1)
        self._early: EarlyTranscript | None = None  # transcribing since the visitor paused
        self.use_names()

    # ------------------------------------------------------------------ what others read
    @property
    def persona(self) -> Persona:
        return self.session.persona

    @property
    def languages(self) -> list[str]:
        return self.session.languages

    @property
    def metrics(self) -> deque[TurnMetrics]:
        return self.turns.metrics

    @property
    def turn_active(self) -> bool:
        return self._turn_task is not None and not self._turn_task.done()

    def subscribe(self, maxsize: int = 256) -> asyncio.Queue:
        q: asyncio.Queue = asyncio.Queue(maxsize=maxsize)
        self._subscribers.append(q)
        return q

    # ------------------------------------------------------------------ TurnHost (for .turn)
    def emit(self, item: TurnEvent | ScreenModel) -> None:
        if isinstance(item, AudioQueued):
            # The record keeps that it was said, not the sound: 2000 events of reply audio held ~200 MB.
            self.events.append(replace(item, chunk=replace(item.chunk, samples=_NO_AUDIO)))
        elif not isinstance(item, ScreenModel):
            self.events.append(item)
        if self.on_event is not None:
            try:
                self.on_event(item)
            except Exception:  # noqa: BLE001 - a broken listener must not stop the kiosk
                log.exception("event listener failed")
        for q in self._subscribers:
            if q.full():
                q.get_nowait()
            q.put_nowait(item)

    def set_screen(self, **changes) -> None:
        new = replace(self.screen, **changes)
        if new != self.screen:
            self.screen = new
            self.emit(new)

    def saying(self) -> str:
        return self.screen.saying

    def audio_now(self) -> float:
        return self._t_audio

    def nudge(self) -> None:
        self.ticker.tick()

    async def until_played(self) -> None:
        # Frames tick; the timeout covers a device speaker while the microphone is gone.
        while self.speaker.busy and not self.stopped:
            await self.ticker.next(timeout=0.05)

    def realtime_since(self) -> tuple[float, float] | None:
        """Virtual time (:mod:`.pacing`): while an early transcription, or the reply's head start
        on it, runs, the recording plays in real time from when it started (wall, audio), as a
        device's microphone would: the end of speech is confirmed when it would be on a kiosk."""
        early = self._early
        if early is None or (early.future.done() and not self.turns.head_running):
            return None
        return early.wall_t0, early.audio_t0

    def must_hold(self) -> bool:
        """Virtual time (:mod:`.pacing`): hold the recording while the kiosk decides on a barge-in,
        or computes with less than a frame of reply queued — the next frame would play a gap that a
        faster machine would not have."""
        if self.listener.checks or any(hold() for hold in self.holds):
            return True
        if not self.turn_active or not self.turns.producing:
            return False
        return self.speaker.queued_seconds < self.cfg.audio.frame_ms / 1000 + 1e-6

    # ------------------------------------------------------------------ life
    def use_names(self) -> None:
        """The gate listens for the persona's names, and visitors ask about the sheet's: help STT
        hear both."""
        if hasattr(self.engines.stt, "set_names"):
            knowledge = self.session.knowledge
            key_words = {lang: knowledge.key_words(lang) for lang in self.session.languages} if knowledge else None
            self.engines.stt.set_names(self.persona.all_names, key_words)

    async def cache_phrases(self, phrases: list[tuple[str, str]]) -> None:
        """Synthesize fixed (text, language) phrases into the phrase cache now, in the TTS worker:
        when they are said, they never wait for the TTS."""
        if self.engines.tts is not None:
            for text, lang in phrases:
                await self.workers.tts.call(self.turns.phrases.get, self.engines.tts, text, lang)

    async def prepare(self, *, wait_for_llm: bool = True) -> None:
        """Warm what every turn needs: the cached fixed phrases, STT's first decode and the LLM's
        persona prefixes (with the standing facts: seconds per language). Without ``wait_for_llm``
        the prefixes are handed to the LLM's worker and the kiosk listens meanwhile: a turn's
        generation queues behind them there (a worker runs its calls in order)."""
        engines, workers, session = self.engines, self.workers, self.session
        await self.cache_phrases([(session.greeting(lang), lang) for lang in session.languages])
        await self.cache_phrases([(session.fixed_reply(lang), lang) for lang in session.languages
                                  if not session.can_answer(lang)])
        if engines.stt is not None and hasattr(engines.stt, "warm") and not getattr(engines.stt, "_warmed", False):
            await workers.stt.call(engines.stt.warm)
            engines.stt._warmed = True
        if engines.llm is not None and hasattr(engines.llm, "warm"):
            warming = [workers.llm.submit(engines.llm.warm, prefix) for prefix in session.prefixes.values()]
            if wait_for_llm:
                await asyncio.gather(*warming)
            else:
                for fut in warming:
                    fut.add_done_callback(_log_failure)

    async def run(self, stop_after_audio_s: float | None = None) -> None:
        """Listen and answer until stopped, the recording is done, or ``stop_after_audio_s`` passed."""
        assert self.mic is not None
        virtual = getattr(self.mic, "virtual", False)
        # A recording starts when the kiosk is ready (its visitor cannot wait, and its figures must
        # not depend on warm-up); a kiosk listens while the LLM still evaluates its prefixes.
        await self.prepare(wait_for_llm=getattr(self.mic, "recording", False))
        if virtual:
            self.mic.pace = VirtualPacing(self)
        cut_short = False
        try:
            async for chunk in self.mic.frames():
                if self.stopped:
                    cut_short = True
                    break
                self._frame(chunk.samples, chunk.t)
                if stop_after_audio_s is not None and self._t_audio >= stop_after_audio_s:
                    cut_short = True
                    break
                if getattr(self.mic, "finished", False) and not self.turn_active and not self.speaker.busy \
                        and not self.listener.in_speech:
                    break
            if self.turn_active and cut_short:
                # Stopped (SIGTERM, --exit-after): abandon the turn cleanly. Waiting for it would hang
                # with a recording speaker, whose clock only moves with the microphone frames.
                self.speaker.flush()
                await self._abandon_turn()
            elif self.turn_active:
                await asyncio.wait({self._turn_task})
        finally:
            self.mic.stop()
            self.close()

    def stop(self) -> None:
        self.stopped = True
        if self.mic is not None:
            self.mic.stop()
        self.nudge()

    def close(self) -> None:
        self.workers.close()

    async def _abandon_turn(self) -> None:
        if self.turns.cancel is not None:
            self.turns.cancel.set()
        if self.turn_active:
            self._turn_task.cancel()
            await asyncio.wait({self._turn_task})

    # ------------------------------------------------------------------ a stick, a new persona
    async def hold(self) -> float:
        """Stop listening (a stick is being set up): whatever is being said is cut cleanly (speaker
        flushed, generation cancelled, the turn awaited); microphone frames keep moving the clock
        but start no turn until :meth:`release`. Returns the speaker time the kiosk fell silent."""
        self._held = True
        self.listener.drop_pending()
        stopped_at = self.speaker.flush()
        await self._abandon_turn()
        self.listener.reset()
        self._drop_early()
        return stopped_at

    def release(self) -> None:
        """Listen again, as to a new visitor."""
        self.listener.reset()
        self.session.forget()
        self._held = False
        self.set_screen(state=KioskState.IDLE, heard="", saying="")

    async def switch_persona(self, persona: Persona, knowledge: Knowledge | None = None) -> None:
        """Answer as ``persona`` from now on (a new profile went live): its prompt, facts, names,
        languages and greetings. The engines stay loaded; the caller gives the TTS the new voice."""
        self.session.use(persona, knowledge)
        self.use_names()
        await self.prepare(wait_for_llm=False)  # the new persona greets before its prefixes are warm

    # ------------------------------------------------------------------ frames
    def _frame(self, frame: np.ndarray, t: float) -> None:
        # A recording speaker's clock runs on microphone audio time (device speakers ignore this).
        self.speaker.advance(len(frame) / MIC_RATE)
        if self.mic is not None and self.mic.generation != self._mic_gen:
            self._mic_gen = self.mic.generation  # a reconnected device: audio before it is unrelated
            self.listener.reset()
            self._drop_early()
        self._t_audio = t + len(frame) / MIC_RATE
        echo = self.listener.echo(frame)
        self.nudge()
        if self._held:
            return
        self._level_frames += 1
        if self._level_frames * len(frame) >= MIC_RATE // 10:
            self._level_frames = 0
            self.set_screen(level=round(level(frame), 2))
        if self.sound_presence and not self.turn_active and self.session.visitor_left(self._t_audio):
            self.emit(VisitorGone())
            self.set_screen(state=KioskState.IDLE, heard="", saying="")
        self.listener.hear(frame, t, echo)
        early = self._early
        if early is not None and self.listener.endpointer.t_last_voiced_end > early.t_speech_end:
            self._drop_early()  # they went on speaking: what was heard so far is not the question

    def _pause(self, ev: VadEvent) -> None:
        """The visitor paused: start transcribing what they said so far, and once that is heard,
        start the reply to it (:meth:`.Turns.head_start`). If the silence goes on to end the
        utterance, the turn takes both (~0.35 s + the transcription sooner than starting then);
        if they go on speaking, both are dropped."""
        if self._held:
            return
        self._drop_early()
        future = self.turns.transcribe(ev.samples)
        early = EarlyTranscript(ev.t_speech_end, future, time.monotonic(), self._t_audio)
        future.add_done_callback(lambda f: self._early_heard(early, f))
        self._early = early

    def _early_heard(self, early: EarlyTranscript, fut: asyncio.Future) -> None:
        self.nudge()
        if self._early is not early or fut.cancelled() or fut.exception() is not None \
                or self.turn_active or self._held:
            return
        heard = fut.result()
        if self.session.gate.would_accept(heard.text, self._t_audio):
            self.turns.head_start(heard)

    def _drop_early(self) -> None:
        self._early = None
        self.turns.drop_head()

    def _take_early(self, ev: VadEvent) -> asyncio.Future | None:
        """The early transcript, if it was of exactly this utterance (no voiced frame since); its
        head start stays for the turn to adopt."""
        early, self._early = self._early, None
        if early is not None and early.t_speech_end == ev.t_speech_end:
            return early.future
        self.turns.drop_head()
        return None

    def _utterance(self, ev: VadEvent) -> None:
        early = self._take_early(ev)
        if not self.session.gate.accept_audio(ev.t):
            self.turns.drop_head()
            self.emit(NoReply("", "no_wake_word"))
            return
        turn_id = f"{uuid.uuid4().hex[:8]}-{next(self._ids)}"
        self.emit(UtteranceCut(turn_id, len(ev.samples) / MIC_RATE, ev.reason))
        self.session.history.touch(ev.t)
        self.turns.producing = True  # before the task first runs, or the virtual mic would run ahead
        utt = Utterance(turn_id, ev.samples, ev.t_start, ev.t_speech_end, ev.t)
        self._turn_task = asyncio.get_running_loop().create_task(self.turns.spoken(utt, early))
        self._turn_task.add_done_callback(lambda _t: self.nudge())

    def _barge_in(self, t: float, ducked_at: float | None) -> None:
        """Real visitor speech while the kiosk thinks or speaks: stop everything, listen."""
        stopped_at = self.speaker.flush()
        if ducked_at is not None:
            stopped_at = ducked_at  # the kiosk fell silent when the speaker was ducked
        if self.turns.cancel is not None:
            self.turns.cancel.set()
        if self._turn_task is not None:
            self._turn_task.cancel()
        self.emit(BargeIn(stopped_at, t))
        log.info("barge-in", extra=logs.fields(stage="barge_in"))

    # ------------------------------------------------------------------ besides the microphone
    async def typed_turn(self, text: str, language: str | None = None) -> tuple[str, TurnMetrics]:
        """A turn from typed text (``avatar-kiosk ask``): the reply text and its metrics."""
        language = language or guess_language(text, self.languages[0])
        return await self.turns.typed(f"typed-{uuid.uuid4().hex[:8]}", text, language)

    def written(self, text: str) -> bool:
        """A visitor typed ``text`` on the kiosk's keyboard: start its turn (False while another turn
        runs or a stick is being set up). Typing is addressing the kiosk: no wake word needed."""
        if self.turn_active or self._held or not text.strip():
            return False
        language = guess_language(text, self.languages[0])
        self.session.history.touch(self._t_audio)
        self.turns.producing = True
        turn_id = f"typed-{uuid.uuid4().hex[:8]}-{next(self._ids)}"
        self._turn_task = asyncio.get_running_loop().create_task(self.turns.written(turn_id, text.strip(), language))
        self._turn_task.add_done_callback(lambda _t: self.nudge())
        return True

    async def say(self, text: str, language: str) -> None:
        """Speak a fixed text (the technician's ``avatar-kiosk say``), as a turn of its own."""
        await self._say_fixed(f"say-{uuid.uuid4().hex[:8]}", text, language)

    async def greet(self, language: str | None = None) -> None:
        """Speak the persona's greeting (from the phrase cache)."""
        language = language or self.languages[0]
        await self._say_fixed("greeting", self.session.greeting(language), language)

    async def _say_fixed(self, turn_id: str, text: str, language: str) -> None:
        await self.turns.speak(ReplySentence(turn_id, 0, text, language, fixed=True))
        # Queued, not yet heard: the screen says "speaking" until it has played, then goes back to
        # waiting for a visitor (unless a visitor's turn took over meanwhile).
        asyncio.get_running_loop().create_task(self._idle_after_playback())

    async def _idle_after_playback(self) -> None:
        await self.until_played()
        if not self.turn_active and self.screen.state == KioskState.SPEAKING:
            self.set_screen(state=KioskState.IDLE, saying="")


def _log_failure(fut: asyncio.Future) -> None:
    if not fut.cancelled() and fut.exception() is not None:
        log.error("could not warm the LLM's persona prefix: %s", fut.exception())


async def run_conversation(settings, mic: Mic, speaker: Speaker, persona: Persona, *,
                           on_event: EventSink | None = None, stop_after_audio_s: float | None = None,
                           engines: Engines | None = None, store: TurnStore | None = None,
                           knowledge: Knowledge | None = None) -> list[TurnEvent]:
    """Run the whole loop until the recording is done; returns every TurnEvent emitted.

    ``engines`` defaults to the engine factory's (loads the models: seconds). The SQLite turn
    journal at ``settings.paths.db_path`` is used unless ``store`` is given."""
    engines = engines or await asyncio.get_running_loop().run_in_executor(None, load_engines, settings)
    own_store = store is None
    store = store or TurnStore(settings.paths.db_path, settings.config.privacy)
    speaker.start()
    conv = Conversation(settings, persona, engines, mic, speaker, on_event=on_event, store=store,
                        knowledge=knowledge)
    try:
        await conv.run(stop_after_audio_s=stop_after_audio_s)
    finally:
        speaker.stop()
        if own_store:
            store.close()
    return list(conv.events)

