"""The turn loop: one asyncio loop owns the flow from microphone to speaker.

::

    mic frames ─► FrameClassifier + EchoGuard ─► Endpointer ─► [WakeGate] ─► utterance
    utterance ─► (STT worker: silero check, whisper) ─► transcript ─► [WakeGate: name]
    transcript ─► (LLM worker: streaming tokens) ─► SentenceChunker ─► safety ─► sentence queue
    sentence ─► (TTS worker: audio chunks) ─► speaker (its played-samples clock is the master clock)

Each engine has its own single-thread executor; generators are consumed there and each item is
handed back with ``loop.call_soon_threadsafe``. Barge-in is a control action that overtakes the
queued data: visitor speech (voiced per webrtcvad and *not* explained by the echo of our own
output, see :mod:`appliance.audio.echo`) while the kiosk is thinking or speaking mutes the speaker
at once (``duck``: within one frame of the endpointer's speech start, ~140 ms after the onset);
when silero confirms a voice (re-checked every 100 ms of speech) the speaker is flushed, the turn
task cancelled (dropping queued sentences) and the LLM's cancel event set. Sound that silero never
calls a voice un-ducks the speaker and the reply carries on. Without silero (threshold 0) the
barge-in is immediate.

Languages: whisper chooses between the persona's languages only. A turn in a language the LLM
cannot speak (``llm.languages``; SmolLM2-135M writes only English) is answered with a fixed,
honest sentence in that language from the phrase cache (:func:`fallback_reply`: "Меня зовут Анна.
Извините, по-русски я пока отвечать не умею. Спросите меня, пожалуйста, по-английски!") — never
with English the visitor may not understand, never with a model's broken Russian. A
Russian-capable model (the production Qwen, or the 0.5B Qwen GGUF in MODELS.md) is switched on by
adding "ru" to ``llm.languages``.

Virtual time: with a :class:`~appliance.audio.mic.WavFileMic` read as fast as possible, the
microphone waits (``_pace``) whenever the kiosk computes with less than a frame of reply queued,
so audio-time results (where a reply starts, where a barge-in cut it) do not depend on CPU speed.

Public API for the demo / renderer
----------------------------------
``run_conversation(settings, mic, speaker, persona, *, on_event=None, stop_after_audio_s=None,
engines=None) -> list[TurnEvent]`` runs the loop until the recording is done (WavFileMic) or
``stop_after_audio_s`` of microphone audio have passed, and returns every TurnEvent.

For finer control: ``conv = Conversation(settings, persona, engines, mic, speaker, on_event=cb)``,
``await conv.run(stop_after_audio_s=None)``, ``conv.stop()``, ``await conv.greet("en")``,
``await conv.typed_turn(text, language)``. ``load_engines(settings)`` builds the engines once.

``on_event`` is called on the loop thread with either

* a :class:`ScreenModel` — whenever the state (idle = nobody engaged; listening = a visitor is
  speaking or engaged; thinking; speaking), the heard
  caption, the reply caption so far or the microphone level (0…1, every ~100 ms) changes; or
* a :class:`TurnEvent` — ``speech_start`` (t), ``wake_word`` (t), ``utterance`` (duration),
  ``transcript`` (text, language), ``no_reply`` (reason: too_short, nothing_heard, low_confidence,
  not_addressed, no_wake_word, not_speech), ``sentence`` (text, index), ``audio`` (the
  mouth-driving audio: ``chunk`` = the :class:`SpeechChunk` as written to the speaker,
  ``start_s`` = where it starts on the speaker clock, ``rate`` = the chunk's sample rate),
  ``barge_in`` (``stopped_at_s`` = speaker clock when the kiosk fell silent: audio after it never
  sounds), ``barge_in_rejected`` (a muted reply resumes; its positions are unchanged),
  ``turn_done`` (``outcome`` replied/no_reply/barge_in/error, ``metrics`` = :class:`TurnMetrics`),
  ``visitor_gone`` (history dropped), ``error``.

The clock: ``speaker.played_seconds`` (and ``speaker.played_samples`` / ``speaker.rate``). The
renderer picks the face frame for "now" from it. ``conv.subscribe()`` gives the same events as an
``asyncio.Queue`` (bounded; on overflow the oldest level-only screen update goes first).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from .. import engines as engine_registry
from .. import logs
from ..audio.echo import EchoGuard
from ..audio.mic import Mic
from ..audio.phrases import PhraseCache
from ..audio.speaker import Speaker
from ..audio.vad import Endpointer, FrameClassifier, SileroCheck, VadEventKind, level
from ..audio.wav import write_wav
from ..engines.wake import WakeGate
from ..lang import guess_language, is_cyrillic
from ..messages import MIC_RATE, ChatMessage, KioskState, ScreenModel, SpeechChunk, TurnEvent
from ..persona import Persona
from . import prompt, safety
from .chunker import SentenceChunker
from .history import History
from .storage import TurnRecord, TurnStore

log = logging.getLogger(__name__)
EVENTS_KEPT = 2000
EventSink = Callable[[object], None]


@dataclass
class Engines:
    stt: object
    llm: object
    tts: object
    silero: SileroCheck | None = None
    wake: object | None = None  # MicroWakeWordDetector in 'wake' mode
    config: object | None = None  # the config after fallbacks (engines.select.resolve): what really runs


def make_engine(role: str, name: str, settings):
    """One engine of ``role`` by its config name, built from the (resolved) settings."""
    cls = engine_registry.engine_class(role, name)
    return cls.from_settings(settings) if hasattr(cls, "from_settings") else cls()


def load_engines(settings, *, stt: bool = True, llm: bool = True, tts: bool = True) -> Engines:
    """Load every engine the config names (each model once; seconds on a CPU).

    Production engines whose weights (or GPU) are missing are replaced by the embedded default for
    their role first (engines.select.resolve: an ENGINE_FALLBACK journal line each), so a box
    missing a model keeps talking instead of crash-looping."""
    from ..engines.select import check_vram, resolve
    from ..models import load_manifest
    from ..paths import Settings

    manifest = load_manifest(settings.paths.manifest)
    resolved, _fallbacks = resolve(settings.config, manifest, settings.paths.models_dir)
    plan = check_vram(resolved, manifest)  # VramError -> the daemon's maintenance screen, before any load
    if plan.items:
        log.info("%s", plan.describe())
    settings = Settings(resolved, settings.paths)
    cfg = settings.config
    silero = SileroCheck() if stt and cfg.vad.silero_threshold > 0 else None
    wake = None
    if cfg.wake.mode == "wake":
        from ..engines.wake import MicroWakeWordDetector

        wake = MicroWakeWordDetector(cfg.wake.wake_word)
    return Engines(
        stt=make_engine("stt", cfg.stt.engine, settings) if stt else None,
        llm=make_engine("llm", cfg.llm.engine, settings) if llm else None,
        tts=make_engine("tts", cfg.tts.engine, settings) if tts else None,
        silero=silero, wake=wake, config=cfg,
    )


@dataclass(frozen=True)
class TurnMetrics:
    """Seconds. eos: visitor stopped -> endpointer decided (audio time); the rest wall time."""

    turn_id: str
    language: str = ""
    outcome: str = "replied"
    eos_s: float = 0.0
    stt_s: float = 0.0
    llm_first_token_s: float = 0.0
    llm_first_sentence_s: float = 0.0
    tts_first_chunk_s: float = 0.0
    ttfa_s: float = 0.0          # visitor stopped speaking -> first reply audio handed to the speaker
    reply_chars: int = 0

    @property
    def critical_path_s(self) -> float:
        return self.eos_s + self.stt_s + self.llm_first_sentence_s + self.tts_first_chunk_s


def fallback_reply(persona: Persona, language: str) -> str:
    """The honest fixed answer for a language the LLM cannot speak (Russian on SmolLM2)."""
    if language == "ru":
        ru_name = next((n for n in persona.all_names if is_cyrillic(n)), persona.name)
        return (f"Меня зовут {ru_name}. Извините, по-русски я пока отвечать не умею. "
                "Спросите меня, пожалуйста, по-английски!")
    return f"I'm {persona.name}. Sorry, I can only answer in English for now."


class _Worker:
    """One engine, one thread: runs a blocking call or fully consumes a generator off the loop."""

    def __init__(self, name: str) -> None:
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    async def call(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    def stream(self, gen_fn, *args, on_item, on_done) -> None:
        """Run ``gen_fn(*args)`` in the worker; hand items and the end (or error) to the loop."""
        loop = asyncio.get_running_loop()

        def run() -> None:
            try:
                for item in gen_fn(*args):
                    loop.call_soon_threadsafe(on_item, item)
            except Exception as e:  # noqa: BLE001 - reported to the loop, which decides
                loop.call_soon_threadsafe(on_done, e)
                return
            loop.call_soon_threadsafe(on_done, None)

        self.pool.submit(run)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


class Conversation:
    def __init__(self, settings, persona: Persona, engines: Engines, mic: Mic | None, speaker: Speaker, *,
                 on_event: EventSink | None = None, store: TurnStore | None = None,
                 echo_guard: EchoGuard | None = None) -> None:
        cfg = settings.config
        self.cfg = cfg
        self.paths = settings.paths
        self.persona = persona
        self.engines = engines
        self.mic = mic
        self.speaker = speaker
        self.on_event = on_event
        self.languages = [lang for lang in persona.languages if lang in cfg.session.languages] or \
            list(cfg.session.languages)
        self.llm_languages = set(cfg.llm.languages)
        self.prefix = prompt.prefix(persona)
        self.history = History(cfg.llm.history_turns, cfg.session.visitor_gone_s)
        self.gate = WakeGate(persona.wake_mode or cfg.wake.mode, cfg.wake.followup_s, persona.all_names)
        self.use_names()
        self.endpointer = Endpointer(cfg.vad)
        self.classifier = FrameClassifier(cfg.vad.aggressiveness)
        self.guard = echo_guard or EchoGuard()
        self.phrases = PhraseCache(settings.paths.phrase_cache)
        self.store = store
        self.screen = ScreenModel(state=KioskState.IDLE)
        # Recent history only: a kiosk runs for weeks (the journal and SQLite keep the record).
        self.events: deque[TurnEvent] = deque(maxlen=EVENTS_KEPT)
        self.metrics: deque[TurnMetrics] = deque(maxlen=EVENTS_KEPT)
        self._subscribers: list[asyncio.Queue] = []
        self._stt = _Worker("stt")
        self._llm = _Worker("llm")
        self._tts = _Worker("tts")
        self._wake = _Worker("wake") if engines.wake is not None else None
        self._vad = _Worker("vad")
        self._checks = 0  # barge-in checks in flight
        self._producing = False  # the turn may still queue reply audio
        self._pending_barge: tuple | None = None  # (turn task, audio time) awaiting silero
        self._next_check_samples = 0
        self._duck_at = 0.0
        self._turn_task: asyncio.Task | None = None
        self._cancel: threading.Event | None = None
        self._progress = asyncio.Event()
        self._stopped = False
        self._held = False  # provisioning from a stick: frames keep the clock, nobody is listened to
        self._t_audio = 0.0
        self._level_frames = 0
        self._mic_gen = 0
        self._ids = itertools.count(1)

    # -- events ---------------------------------------------------------------------------
    def subscribe(self, maxsize: int = 256) -> asyncio.Queue:
        q: asyncio.Queue = asyncio.Queue(maxsize=maxsize)
        self._subscribers.append(q)
        return q

    def _emit(self, item: object) -> None:
        if isinstance(item, TurnEvent):
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

    def _event(self, kind: str, turn_id: str = "", **data) -> None:
        self._emit(TurnEvent(kind, turn_id, data))

    def _set_screen(self, **changes) -> None:
        new = replace(self.screen, **changes)
        if new != self.screen:
            self.screen = new
            self._emit(new)

    # -- lifecycle ------------------------------------------------------------------------
    async def prepare(self) -> None:
        """Warm what every turn needs: the LLM's persona prefix and the cached fixed phrases."""
        if self.engines.llm is not None and hasattr(self.engines.llm, "warm"):
            await self._llm.call(self.engines.llm.warm, self.prefix)
        if self.engines.stt is not None and hasattr(self.engines.stt, "warm") and not getattr(
                self.engines.stt, "_warmed", False):
            await self._stt.call(self.engines.stt.warm)
            self.engines.stt._warmed = True
        if self.engines.tts is not None:
            for lang in self.languages:
                await self._tts.call(self.phrases.get, self.engines.tts, self.persona.greeting_for(lang), lang)
                if lang not in self.llm_languages:
                    await self._tts.call(self.phrases.get, self.engines.tts, fallback_reply(self.persona, lang), lang)

    async def hold(self) -> float:
        """Stop listening (a stick is being provisioned): whatever is being said is cut cleanly
        (speaker flushed, generation cancelled, the turn awaited); microphone frames keep moving the
        clock but start no turn until :meth:`release`. Returns the speaker time the kiosk fell silent."""
        self._held = True
        self._end_pending_barge()
        stopped_at = self.speaker.flush()
        if self.turn_active:
            if self._cancel is not None:
                self._cancel.set()
            self._turn_task.cancel()
            await asyncio.wait({self._turn_task})
        self.endpointer.reset()
        return stopped_at

    def release(self) -> None:
        """Listen again, as to a new visitor."""
        self.endpointer.reset()
        self.history.clear()
        self.gate.sleep()
        self._held = False
        self._set_screen(state=KioskState.IDLE, heard="", saying="")

    async def switch_persona(self, persona: Persona) -> None:
        """Answer as ``persona`` from now on (a new profile went live): its prompt, names, languages
        and greetings; history starts empty. The engines stay loaded; the caller gives the TTS the
        new voice."""
        self.persona = persona
        self.languages = [lang for lang in persona.languages if lang in self.cfg.session.languages] or \
            list(self.cfg.session.languages)
        self.prefix = prompt.prefix(persona)
        self.history.clear()
        self.gate = WakeGate(persona.wake_mode or self.cfg.wake.mode, self.cfg.wake.followup_s, persona.all_names)
        self.use_names()
        await self.prepare()

    def use_names(self) -> None:
        """The gate listens for the persona's names: help STT hear them."""
        if hasattr(self.engines.stt, "set_names"):
            self.engines.stt.set_names(self.persona.all_names)

    def stop(self) -> None:
        self._stopped = True
        if self.mic is not None:
            self.mic.stop()
        self._progress.set()

    def close(self) -> None:
        for w in (self._stt, self._llm, self._tts, self._wake, self._vad):
            if w is not None:
                w.close()

    @property
    def turn_active(self) -> bool:
        return self._turn_task is not None and not self._turn_task.done()

    async def _pace(self) -> None:
        """Virtual time: hold the microphone still while the kiosk computes with nothing to play
        (or decides on a barge-in)."""
        while self._must_hold() and not self._stopped:
            self._progress.clear()
            await self._progress.wait()

    def _must_hold(self) -> bool:
        if self._checks:
            return True
        if not self.turn_active:
            return False
        if self._producing:
            # Keep at least a frame of reply queued, or the next frame would play a gap that a
            # faster machine would not have: virtual time must not depend on compute speed.
            return self.speaker.queued_seconds < self.cfg.audio.frame_ms / 1000 + 1e-6
        return False  # everything is queued: let the audio play out

    async def run(self, stop_after_audio_s: float | None = None) -> None:
        """Listen and answer until stopped, the recording is done, or ``stop_after_audio_s`` passed."""
        assert self.mic is not None
        await self.prepare()
        self.mic.pace = self._pace
        cut_short = False
        try:
            async for chunk in self.mic.frames():
                if self._stopped:
                    cut_short = True
                    break
                self._on_frame(chunk.samples, chunk.t)
                if stop_after_audio_s is not None and self._t_audio >= stop_after_audio_s:
                    cut_short = True
                    break
                if getattr(self.mic, "finished", False) and not self.turn_active and not self.speaker.busy \
                        and not self.endpointer.in_speech:
                    break
            if self.turn_active and cut_short:
                # Stopped (SIGTERM, --exit-after): abandon the turn cleanly. Waiting for it would hang
                # with a recording speaker, whose clock only moves with the microphone frames.
                self.speaker.flush()
                if self._cancel is not None:
                    self._cancel.set()
                self._turn_task.cancel()
                await asyncio.wait({self._turn_task})
            elif self.turn_active:
                await asyncio.wait({self._turn_task})
        finally:
            self.mic.stop()
            self.close()

    # -- listening ------------------------------------------------------------------------
    def _on_frame(self, frame: np.ndarray, t: float) -> None:
        # A recording speaker's clock runs on microphone audio time (device speakers ignore this).
        self.speaker.advance(len(frame) / MIC_RATE)
        if self.mic is not None and self.mic.generation != self._mic_gen:
            self._mic_gen = self.mic.generation  # a reconnected device: audio before it is unrelated
            self.endpointer.reset()
        self._t_audio = t + len(frame) / MIC_RATE
        for end16, ref in self.speaker.take_reference():
            self.guard.add_reference(ref, end16)
        self._progress.set()

        # The guard must see every frame (it fits the echo over a window of recent audio).
        echo = self.guard.explained(frame, self.speaker.played_pos16k)
        if self._held:
            return
        voiced = self.classifier(frame) and not echo  # our own voice coming back is not a visitor
        if self._wake is not None:
            self._checks += 1  # virtual time waits for the verdict, as a device would not need to
            self._wake.pool.submit(self._wake_check, frame.copy(), t, asyncio.get_running_loop())

        self._level_frames += 1
        if self._level_frames * len(frame) >= MIC_RATE // 10:
            self._level_frames = 0
            self._set_screen(level=round(level(frame), 2))

        if self.history.expired(self._t_audio) and not self.turn_active:
            self.history.clear()
            self.gate.sleep()
            self._event("visitor_gone")
            self._set_screen(state=KioskState.IDLE, heard="", saying="")

        ev = self.endpointer.process(frame, t, voiced)
        if self._pending_barge is not None and not self._checks:
            if not self.endpointer.in_speech or not self.turn_active:
                self._end_pending_barge()
            elif len(self.endpointer.current_audio()) >= self._next_check_samples:
                self._submit_barge_check()
        if ev is None:
            return
        if ev.kind is VadEventKind.SPEECH_START:
            self._event("speech_start", t=ev.t)
            if self.turn_active:
                self._maybe_barge_in(ev.t)
            else:
                self._set_screen(state=KioskState.LISTENING)
        elif ev.kind is VadEventKind.DROPPED:
            self._event("no_reply", reason="too_short")
        elif ev.kind is VadEventKind.UTTERANCE:
            if self.turn_active:
                # Sound that did not win a barge-in (silero said it was no voice) while we talk.
                self._event("no_reply", reason="not_speech")
                return
            if not self.gate.accept_audio(ev.t):
                self._event("no_reply", reason="no_wake_word")
                return
            turn_id = f"{uuid.uuid4().hex[:8]}-{next(self._ids)}"
            self._event("utterance", turn_id, duration=len(ev.samples) / MIC_RATE, reason=ev.reason)
            self.history.touch(ev.t)
            self._producing = True  # before the task first runs, or the virtual mic would run ahead
            self._turn_task = asyncio.get_running_loop().create_task(
                self._turn(turn_id, ev.samples, ev.t_speech_end, ev.t))
            self._turn_task.add_done_callback(lambda _t: self._progress.set())

    def _wake_check(self, frame: np.ndarray, t: float, loop) -> None:  # wake worker thread
        try:
            hit = self.engines.wake.process(frame)
        except Exception:  # noqa: BLE001 - a broken detector must not kill the worker
            log.exception("wake word detector failed")
            hit = False
        loop.call_soon_threadsafe(self._wake_done, hit, t)

    def _wake_done(self, hit: bool, t: float) -> None:
        self._checks -= 1
        self._progress.set()
        if hit:
            self.gate.on_wake_word(t)
            self._event("wake_word", t=t)

    def _maybe_barge_in(self, t: float) -> None:
        """webrtcvad also fires on clatter and fans, so silero must confirm a voice before the
        reply is thrown away. Silero needs ~300 ms of speech to be sure, more than the 200 ms a
        barge-in may take, so the speaker is *ducked* (muted, clock running) at once and the reply
        cancelled only when silero agrees; if the sound ends unconfirmed, playback un-ducks.

        Checks (a few ms) run in the VAD worker; in virtual time the microphone waits for them
        (``_pace``), so decisions land at the same audio time as they would on a device."""
        if self.engines.silero is None:
            return self._barge_in(t)
        self._duck_at = self.speaker.played_seconds
        self.speaker.duck(True)
        self._pending_barge = (self._turn_task, t)
        self._submit_barge_check()
        return None

    def _submit_barge_check(self) -> None:
        audio = self.endpointer.current_audio()
        self._next_check_samples = len(audio) + MIC_RATE // 10  # re-check every 100 ms of speech
        self._checks += 1
        fut = asyncio.get_running_loop().run_in_executor(self._vad.pool, self.engines.silero.speech_probability,
                                                         audio)
        fut.add_done_callback(self._barge_check_done)

    def _barge_check_done(self, fut) -> None:
        self._checks -= 1
        self._progress.set()
        try:
            ok = fut.result() >= self.cfg.vad.silero_threshold
        except Exception:  # noqa: BLE001 - a failed check must not stop the loop
            log.exception("barge-in check failed")
            ok = False
        pending = self._pending_barge
        if pending is None:
            return
        task, t = pending
        if task is not self._turn_task or not self.turn_active:
            self._end_pending_barge()
        elif ok:
            self._pending_barge = None
            self._barge_in(t)

    def _end_pending_barge(self) -> None:
        """The sound ended (or the turn did) without silero calling it a voice: carry on speaking."""
        if self._pending_barge is not None:
            self._pending_barge = None
            self.speaker.duck(False)
            self._event("barge_in_rejected")

    def _barge_in(self, t: float) -> None:
        """Real visitor speech while the kiosk thinks or speaks: stop everything, listen."""
        ducked_at = self._duck_at if self.speaker.ducked else None
        stopped_at = self.speaker.flush()
        if ducked_at is not None:
            stopped_at = ducked_at  # the kiosk fell silent when the speaker was ducked
        if self._cancel is not None:
            self._cancel.set()
        if self._turn_task is not None:
            self._turn_task.cancel()
        self._event("barge_in", stopped_at_s=stopped_at, t=t)
        log.info("barge-in", extra=logs.fields(stage="barge_in"))

    # -- a turn ---------------------------------------------------------------------------
    async def _turn(self, turn_id: str, samples: np.ndarray, t_speech_end: float, t_detected: float) -> None:
        wall0 = time.monotonic()
        rec = TurnRecord(turn_id)
        m = {"eos_s": max(t_detected - t_speech_end, 0.0)}
        self._set_screen(state=KioskState.THINKING, saying="")
        self._producing = True
        try:
            text, language, confidence, _p = await self._stt.call(self._transcribe, turn_id, samples)
            m["stt_s"] = time.monotonic() - wall0
            rec.language = language
            if not text:
                return self._no_reply(rec, m, "nothing_heard")
            if confidence < self.cfg.stt.min_confidence:
                return self._no_reply(rec, m, "low_confidence")
            if not self.gate.accept_text(text, t_detected):
                return self._no_reply(rec, m, "not_addressed")
            rec.heard = text
            self.history.language = language
            self._event("transcript", turn_id, text=text, language=language)
            self._set_screen(heard=text)
            reply = await self._respond(turn_id, text, language, wall0 - m["eos_s"], m)
            self._producing = False
            self._progress.set()
            rec.reply = reply
            self.history.add_turn(text, reply, self._t_audio)
            while self.speaker.busy and not self._stopped:  # the turn ends when its audio has played
                self._progress.clear()
                # Frames set _progress; the timeout covers a device speaker while the mic is gone.
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._progress.wait(), timeout=0.05)
            self.gate.turn_finished(self._t_audio)
            self._finish(rec, m, "replied", reply)
        except asyncio.CancelledError:
            self._finish(rec, m, "barge_in", rec.reply)
            raise
        except Exception as e:  # noqa: BLE001 - one bad turn must not end the kiosk
            log.exception("turn failed", extra=logs.fields(turn_id=turn_id, code=type(e).__name__))
            self._event("error", turn_id, error=type(e).__name__)
            self._finish(rec, m, "error", "")
        finally:
            self._cancel = None
            self._producing = False
            self._set_screen(state=KioskState.LISTENING)
        return None

    def _transcribe(self, turn_id: str, samples: np.ndarray):  # STT worker thread
        if self.cfg.privacy.debug_capture:  # raw visitor audio: only when a technician asked for it
            write_wav(self.paths.cache_dir / "debug-capture" / f"{turn_id}.wav", samples, MIC_RATE)
        silero = self.engines.silero
        if silero is not None and silero.speech_probability(samples) < self.cfg.vad.silero_threshold:
            return "", "", -10.0, 0.0
        return self.engines.stt.transcribe(samples, self.languages, self.history.language)

    def _no_reply(self, rec: TurnRecord, m: dict, reason: str) -> None:
        self._event("no_reply", rec.turn_id, reason=reason)
        self._finish(rec, m, "no_reply", "")

    def _finish(self, rec: TurnRecord, m: dict, outcome: str, reply: str) -> None:
        metrics = TurnMetrics(rec.turn_id, rec.language, outcome, reply_chars=len(reply or ""),
                              **{k: v for k, v in m.items() if k in TurnMetrics.__dataclass_fields__})
        self.metrics.append(metrics)
        rec.outcome = outcome
        rec.reply_chars = metrics.reply_chars
        rec.eos_ms, rec.stt_ms = metrics.eos_s * 1000, metrics.stt_s * 1000
        rec.llm_first_token_ms = metrics.llm_first_token_s * 1000
        rec.llm_first_sentence_ms = metrics.llm_first_sentence_s * 1000
        rec.tts_first_chunk_ms = metrics.tts_first_chunk_s * 1000
        rec.ttfa_ms = metrics.ttfa_s * 1000
        if self.store is not None:
            try:
                self.store.add(rec)
            except Exception:  # noqa: BLE001 - a full disk must not stop the conversation
                log.exception("could not store the turn")
        log.info("turn %s", outcome, extra=logs.fields(logs.TURN_DONE, turn_id=rec.turn_id, stage="turn",
                                                        latency_ms=round(metrics.ttfa_s * 1000)))
        self._event("turn_done", rec.turn_id, metrics=metrics, outcome=outcome)

    async def _respond(self, turn_id: str, text: str, language: str, wall_speech_end: float, m: dict) -> str:
        """LLM -> chunker -> safety -> TTS -> speaker, sentence by sentence. Returns the spoken reply."""
        loop = asyncio.get_running_loop()
        sentences: asyncio.Queue = asyncio.Queue(maxsize=8)
        spoken: list[str] = []
        t_llm = time.monotonic()

        async def speak_all() -> None:
            index = 0
            while True:
                sentence = await sentences.get()
                if sentence is None:
                    return
                await self._speak(turn_id, index, sentence, language, wall_speech_end, m)
                spoken.append(sentence)
                index += 1

        speaker_task = loop.create_task(speak_all())
        try:
            if language not in self.llm_languages or self.engines.llm is None:
                m["llm_first_token_s"] = m["llm_first_sentence_s"] = 0.0
                await sentences.put(("fixed", fallback_reply(self.persona, language)))
            else:
                await self._generate(text, language, sentences, t_llm, m)
            await sentences.put(None)
            await speaker_task
        finally:
            if not speaker_task.done():
                speaker_task.cancel()
        return " ".join(s[1] if isinstance(s, tuple) else s for s in spoken)

    async def _generate(self, text: str, language: str, sentences: asyncio.Queue, t_llm: float, m: dict) -> None:
        cancel = threading.Event()
        self._cancel = cancel
        # Bounded by construction: generation is capped at max_reply_tokens pieces.
        tokens: asyncio.Queue = asyncio.Queue(maxsize=self.cfg.llm.max_reply_tokens + 8)
        done = object()
        messages = [*self.prefix, *self.history.messages, ChatMessage("user", text)]
        self._llm.stream(self.engines.llm.generate, messages, cancel,
                         on_item=tokens.put_nowait, on_done=lambda err: tokens.put_nowait((done, err)))
        chunker = SentenceChunker()
        reply = ""
        try:
            while True:
                piece = await tokens.get()
                if isinstance(piece, tuple) and piece and piece[0] is done:
                    if piece[1] is not None:
                        raise piece[1]
                    out = chunker.flush()
                    stop = False
                else:
                    if "llm_first_token_s" not in m:
                        m["llm_first_token_s"] = time.monotonic() - t_llm
                    reply += piece
                    out = chunker.feed(piece)
                    stop = None
                for s in out:
                    verdict = safety.check_sentence(s, language)
                    if verdict.text:
                        if "llm_first_sentence_s" not in m:
                            m["llm_first_sentence_s"] = time.monotonic() - t_llm
                        await sentences.put(verdict.text)
                    if verdict.stop:
                        cancel.set()
                        return
                if stop is False:
                    return
        finally:
            cancel.set()  # whatever happened, the worker stops generating

    async def _speak(self, turn_id: str, index: int, sentence, language: str, wall_speech_end: float,
                     m: dict) -> None:
        """Synthesize one sentence in the TTS worker and queue its chunks on the speaker as they come."""
        fixed = isinstance(sentence, tuple)
        text = sentence[1] if fixed else sentence
        self._event("sentence", turn_id, text=text, index=index)
        self._set_screen(saying=(self.screen.saying + " " + text).strip())
        tts = self.engines.tts
        t0 = time.monotonic()
        chunks: asyncio.Queue = asyncio.Queue(maxsize=64)
        end = object()
        if fixed:
            self._tts.stream(lambda: [self.phrases.get(tts, text, language)], on_item=chunks.put_nowait,
                             on_done=lambda err: chunks.put_nowait((end, err)))
        else:
            self._tts.stream(tts.synthesize, text, language, on_item=chunks.put_nowait,
                             on_done=lambda err: chunks.put_nowait((end, err)))
        while True:
            item = await chunks.get()
            if isinstance(item, tuple) and item[0] is end:
                if item[1] is not None:
                    raise item[1]
                return
            if "tts_first_chunk_s" not in m:
                m["tts_first_chunk_s"] = time.monotonic() - t0
            audio = np.asarray(item, np.float32)
            chunk = SpeechChunk(turn_id, index, audio, tts.sample_rate, text=text)
            start_s = self.speaker.write(audio, tts.sample_rate)
            if "ttfa_s" not in m:
                m["ttfa_s"] = time.monotonic() - wall_speech_end
                self._set_screen(state=KioskState.SPEAKING)
            self._event("audio", turn_id, chunk=chunk, start_s=start_s, rate=tts.sample_rate)
            self._progress.set()

    # -- entry points besides the microphone ---------------------------------------------
    async def typed_turn(self, text: str, language: str | None = None) -> tuple[str, TurnMetrics]:
        """A turn from typed text (``avatar-kiosk ask``): the reply text and its metrics."""
        language = language or guess_language(text, self.languages[0])
        turn_id = f"typed-{uuid.uuid4().hex[:8]}"
        m: dict = {"eos_s": 0.0, "stt_s": 0.0}
        rec = TurnRecord(turn_id, language=language, heard=text)
        reply = await self._respond(turn_id, text, language, time.monotonic(), m)
        rec.reply = reply
        self._finish(rec, m, "replied", reply)
        return reply, self.metrics[-1]

    async def say(self, text: str, language: str) -> None:
        """Speak a fixed text (the technician's ``avatar-kiosk say``), as a turn of its own."""
        await self._say_fixed(f"say-{uuid.uuid4().hex[:8]}", text, language)

    async def greet(self, language: str | None = None) -> None:
        """Speak the persona's greeting (from the phrase cache)."""
        language = language or self.languages[0]
        await self._say_fixed("greeting", self.persona.greeting_for(language), language)

    async def _say_fixed(self, turn_id: str, text: str, language: str) -> None:
        await self._speak(turn_id, 0, ("fixed", text), language, time.monotonic(), {})
        # Queued, not yet heard: the screen says "speaking" until it has played, then goes back to
        # waiting for a visitor (unless a visitor's turn took over meanwhile).
        asyncio.get_running_loop().create_task(self._idle_after_playback())

    async def _idle_after_playback(self) -> None:
        while self.speaker.busy and not self._stopped:
            self._progress.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._progress.wait(), timeout=0.05)
        if not self.turn_active and self.screen.state == KioskState.SPEAKING:
            self._set_screen(state=KioskState.IDLE, saying="")


async def run_conversation(settings, mic: Mic, speaker: Speaker, persona: Persona, *,
                           on_event: EventSink | None = None, stop_after_audio_s: float | None = None,
                           engines: Engines | None = None, store: TurnStore | None = None) -> list[TurnEvent]:
    """Run the whole loop (see the module docstring); returns every TurnEvent emitted.

    ``engines`` defaults to :func:`load_engines` (loads the models: seconds). The SQLite turn
    journal at ``settings.paths.db_path`` is used unless ``store`` is given."""
    engines = engines or await asyncio.get_running_loop().run_in_executor(None, load_engines, settings)
    own_store = store is None
    store = store or TurnStore(settings.paths.db_path, settings.config.privacy)
    speaker.start()
    conv = Conversation(settings, persona, engines, mic, speaker, on_event=on_event, store=store)
    try:
        await conv.run(stop_after_audio_s=stop_after_audio_s)
    finally:
        speaker.stop()
        if own_store:
            store.close()
    return list(conv.events)
