"""One turn: STT → (name gate) → persona LLM, streaming → sentences → safety → TTS → speaker.

Each stage runs in its engine's worker thread (:mod:`.workers`); sentences go to the voice the
moment the chunker closes them, and each sentence's audio goes to the speaker chunk by chunk, so
the first words sound while the LLM still writes the rest. Cancelling the turn's task (a barge-in)
drops the queued sentences, and the generation's cancel event stops the LLM in its thread.

Languages: a turn in a language the LLM cannot speak (``llm.languages``; SmolLM2-135M writes only
English) is answered with a fixed, honest sentence in that language from the phrase cache
(:func:`.session.fallback_reply`) — never with English the visitor may not understand.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from .. import logs
from ..audio.phrases import PhraseCache
from ..audio.speaker import Speaker
from ..audio.wav import write_wav
from ..config import Config
from ..engines.factory import Engines
from ..messages import (
    MIC_RATE,
    AudioQueued,
    ChatMessage,
    KioskState,
    NoReply,
    ReplySentence,
    SentenceReady,
    SpeechChunk,
    Transcribed,
    Transcript,
    TurnDone,
    TurnEvent,
    TurnFailed,
    TurnMetrics,
    Utterance,
)
from ..paths import Paths
from . import grammar, guard, safety
from .chunker import SentenceChunker
from .session import Session
from .storage import TurnRecord, TurnStore
from .workers import Workers

log = logging.getLogger("appliance.conversation")
METRICS_KEPT = 2000  # recent turns only: a kiosk runs for weeks (the journal and SQLite keep the record)


class TurnHost(Protocol):
    """What a turn needs from the conversation it runs in."""

    def emit(self, event: TurnEvent) -> None: ...
    def set_screen(self, **changes) -> None: ...
    def saying(self) -> str: ...
    def audio_now(self) -> float: ...
    def nudge(self) -> None: ...
    async def until_played(self) -> None: ...


@dataclass(frozen=True)
class HeadStart:
    """A reply the LLM began on the early transcript (:meth:`Turns.head_start`), before the end of
    speech was confirmed: the turn adopts it if it asks exactly these messages, else it is dropped."""

    messages: tuple[ChatMessage, ...]
    cancel: threading.Event
    pieces: asyncio.Queue
    t0: float  # when the LLM was asked, on the wall clock


class TurnClock:
    """The turn's figures as its stages report them, each taken at its first occurrence."""

    def __init__(self, turn_id: str, eos_s: float = 0.0) -> None:
        self.turn_id = turn_id
        self.t0 = time.monotonic()
        self.eos_s = eos_s
        self.speech_end = self.t0 - eos_s  # on the wall clock: when the visitor stopped speaking
        self.figures: dict[str, float] = {}
        self._llm_t0 = self.t0

    def first(self, name: str, since: float) -> None:
        self.figures.setdefault(name, time.monotonic() - since)

    def stt_done(self) -> None:
        self.first("stt_s", self.t0)

    def llm_started(self, at: float | None = None) -> None:
        self._llm_t0 = time.monotonic() if at is None else at
        if at is not None:  # a head start: the LLM ran while the end of speech was being confirmed
            self.figures["llm_head_start_s"] = max(self.t0 - at, 0.0)

    def token(self) -> None:
        self.first("llm_first_token_s", self._llm_t0)

    def sentence(self) -> None:
        self.first("llm_first_sentence_s", self._llm_t0)

    def no_llm(self) -> None:
        self.figures.setdefault("llm_first_token_s", 0.0)
        self.figures.setdefault("llm_first_sentence_s", 0.0)

    def audio(self, tts_t0: float) -> bool:
        """Reply audio reached the speaker; True the first time (the kiosk starts speaking)."""
        self.first("tts_first_chunk_s", tts_t0)
        first = "ttfa_s" not in self.figures
        self.first("ttfa_s", self.speech_end)
        return first

    def metrics(self, language: str, outcome: str, reply_chars: int) -> TurnMetrics:
        return TurnMetrics(self.turn_id, language, outcome, eos_s=self.eos_s, reply_chars=reply_chars,
                           **self.figures)


class Turns:
    """Runs the kiosk's turns; keeps their metrics; the current generation's cancel event."""

    def __init__(self, cfg: Config, paths: Paths, session: Session, engines: Engines, speaker: Speaker,
                 workers: Workers, host: TurnHost, store: TurnStore | None) -> None:
        self.cfg = cfg
        self.paths = paths
        self.session = session
        self.engines = engines
        self.speaker = speaker
        self.workers = workers
        self.host = host
        self.store = store
        self.phrases = PhraseCache(paths.phrase_cache)
        self.metrics: deque[TurnMetrics] = deque(maxlen=METRICS_KEPT)
        self.cancel: threading.Event | None = None  # set: the LLM stops generating
        # Cleared while the reply's first sentence is being voiced: on 2 cores the LLM writing the
        # next sentence would halve the speed of the voice the visitor is waiting for.
        self.llm_gate = threading.Event()
        self.llm_gate.set()
        self.producing = False                      # the turn may still queue reply audio
        self._head: HeadStart | None = None         # a reply begun on the early transcript

    # ------------------------------------------------------------------ a spoken turn
    async def spoken(self, utt: Utterance, early: asyncio.Future | None = None) -> None:
        """Answer ``utt``; ``early``: its transcription, started during the end-of-speech silence."""
        session, host = self.session, self.host
        clock = TurnClock(utt.turn_id, max(utt.t_detected - utt.t_speech_end, 0.0))
        rec = TurnRecord(utt.turn_id)
        host.set_screen(state=KioskState.THINKING, saying="")
        async with self._turn(rec, clock, "turn failed"):
            if self.cfg.privacy.debug_capture:  # raw visitor audio: only when a technician asked for it
                write_wav(self.paths.cache_dir / "debug-capture" / f"{utt.turn_id}.wav", utt.samples, MIC_RATE)
            heard: Transcript = replace(await (early or self.transcribe(utt.samples)), turn_id=utt.turn_id)
            clock.stt_done()
            rec.language = heard.language
            if not heard.text:
                return self._no_reply(rec, clock, "nothing_heard")
            if heard.confidence < self.cfg.stt.min_confidence:
                return self._no_reply(rec, clock, "low_confidence")
            if not session.gate.accept_text(heard.text, utt.t_detected):
                return self._no_reply(rec, clock, "not_addressed")
            reply = await self._answer(rec, clock, heard.text, heard.language)
            session.gate.turn_finished(host.audio_now())
            self._finish(rec, clock, "replied", reply)
        return None

    async def _answer(self, rec: TurnRecord, clock: TurnClock, text: str, language: str) -> str:
        """The question (heard or typed) answered: in the captions, aloud, and kept in the
        visitor's history; returns once the reply has played."""
        session, host = self.session, self.host
        rec.heard = text
        session.history.use_language(language)
        host.emit(Transcribed(rec.turn_id, text, language))
        host.set_screen(heard=text)
        reply = await self._respond(rec.turn_id, text, language, clock)
        self.producing = False
        host.nudge()
        rec.reply = reply
        session.history.add_turn(text, reply, host.audio_now())
        await host.until_played()  # the turn ends when its audio has played
        return reply

    @contextlib.asynccontextmanager
    async def _turn(self, rec: TurnRecord, clock: TurnClock, failed: str):
        """One turn's run: a barge-in records what was said and goes on up; any other error is
        logged and ends only this turn (one bad turn must not end the kiosk); either way the
        kiosk listens again."""
        self.producing = True
        try:
            yield
        except asyncio.CancelledError:
            self._finish(rec, clock, "barge_in", rec.reply)
            raise
        except Exception as e:  # noqa: BLE001 - one bad turn must not end the kiosk
            log.exception(failed, extra=logs.fields(turn_id=rec.turn_id, code=type(e).__name__))
            self.host.emit(TurnFailed(rec.turn_id, type(e).__name__))
            self._finish(rec, clock, "error", "")
        finally:
            self.drop_head()  # not adopted (nothing heard, not addressed, a barge-in): stop it
            self.cancel = None
            self.producing = False
            self.host.set_screen(state=KioskState.LISTENING)

    # ------------------------------------------------------------------ the head start
    def head_start(self, heard: Transcript) -> None:
        """Begin the reply to ``heard`` (the early transcript) now, while the endpointer still waits
        out the end-of-speech silence (~0.35 s more here: STT takes ~0.25 s of its 0.6 s). Only what
        the turn would ask the model anyway: the turn's own checks (confidence, guard, language)
        come first, and the turn adopts this generation only if its messages are the same. If
        the visitor goes on speaking the conversation drops it (:meth:`drop_head`)."""
        self.drop_head()
        session, lang = self.session, heard.language
        if not self.cfg.llm.head_start or self.engines.llm is None or not heard.text \
                or heard.confidence < self.cfg.stt.min_confidence or not session.can_answer(lang) \
                or guard.check_question(heard.text, lang, session.name_in(lang)).category:
            return
        self.llm_gate.set()
        self._head = self._start_generation(tuple(session.messages(heard.text, lang)))

    def _start_generation(self, messages: tuple[ChatMessage, ...]) -> HeadStart:
        """Ask the LLM (in its worker) for a reply to ``messages``; its pieces come to a queue."""
        cancel = threading.Event()
        # Bounded by construction: generation is capped at max_reply_tokens pieces.
        pieces: asyncio.Queue = asyncio.Queue(maxsize=self.cfg.llm.max_reply_tokens + 8)
        self.workers.llm.stream(self.engines.llm.generate, list(messages), cancel,
                                on_item=pieces.put_nowait, on_done=pieces.put_nowait, gate=self.llm_gate)
        return HeadStart(messages, cancel, pieces, time.monotonic())

    def drop_head(self) -> None:
        head, self._head = self._head, None
        if head is not None:
            head.cancel.set()  # the worker stops at its next token; its queue goes with it

    @property
    def head_running(self) -> bool:
        return self._head is not None

    def transcribe(self, samples: np.ndarray) -> asyncio.Future:
        """What the visitor said in ``samples`` (a Transcript, its turn id still blank), worked out in
        the STT worker: silero's second opinion first, then whisper among the persona's languages."""
        languages, prior = list(self.session.languages), self.session.history.language
        return self.workers.stt.submit(self._transcribe, samples, languages, prior)

    def _transcribe(self, samples: np.ndarray, languages: list[str], prior: str | None) -> Transcript:  # STT thread
        silero = self.engines.silero
        if silero is not None and silero.speech_probability(samples) < self.cfg.vad.silero_threshold:
            return Transcript("", "", "", -10.0)
        text, language, confidence, p = self.engines.stt.transcribe(samples, languages, prior)
        return Transcript("", text, language, confidence, p)

    def _no_reply(self, rec: TurnRecord, clock: TurnClock, reason: str) -> None:
        self.host.emit(NoReply(rec.turn_id, reason))
        self._finish(rec, clock, "no_reply", "")

    def _finish(self, rec: TurnRecord, clock: TurnClock, outcome: str, reply: str) -> None:
        metrics = clock.metrics(rec.language, outcome, len(reply or ""))
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
        self.host.emit(TurnDone(rec.turn_id, outcome, metrics))

    # ------------------------------------------------------------------ the reply
    async def _respond(self, turn_id: str, text: str, language: str, clock: TurnClock) -> str:
        """LLM -> chunker -> safety -> TTS -> speaker, sentence by sentence. Returns the spoken reply."""
        sentences: asyncio.Queue[ReplySentence | None] = asyncio.Queue(maxsize=8)
        spoken: list[str] = []

        async def speak_all() -> None:
            try:
                while (sentence := await sentences.get()) is not None:
                    await self.speak(sentence, clock)
                    spoken.append(sentence.text)
            except Exception:
                # The voice failed: the LLM must neither wait for it (gate) nor fill a queue nobody
                # empties. Stop it, take what it still hands over, and let the turn fail.
                self.llm_gate.set()
                if self.cancel is not None:
                    self.cancel.set()
                while await sentences.get() is not None:
                    pass
                raise

        voice = asyncio.get_running_loop().create_task(speak_all())
        try:
            clock.llm_started()
            verdict = guard.check_question(text, language, self.session.name_in(language))
            if verdict.category:  # decided outside the model: it is not asked at all
                clock.no_llm()
                log.info("question answered by the guard", extra=logs.fields(turn_id=turn_id, stage="guard",
                                                                             code=verdict.category))
                await sentences.put(ReplySentence(turn_id, 0, verdict.answer, language, fixed=True))
            elif not self.session.can_answer(language) or self.engines.llm is None:
                clock.no_llm()
                await sentences.put(ReplySentence(turn_id, 0, self.session.fixed_reply(language), language,
                                                  fixed=True))
            else:
                await self._generate(turn_id, text, language, sentences, clock)
            await sentences.put(None)
            await voice
        finally:
            if not voice.done():
                voice.cancel()
        return " ".join(spoken)

    async def _generate(self, turn_id: str, text: str, language: str,
                        sentences: asyncio.Queue[ReplySentence | None], clock: TurnClock) -> None:
        messages = tuple(self.session.messages(text, language))
        gate = self.llm_gate
        gate.set()
        head, self._head = self._head, None
        if head is not None and head.messages == messages:
            clock.llm_started(at=head.t0)  # the reply begun early is this turn's
        else:
            if head is not None:
                head.cancel.set()
            head = self._start_generation(messages)
        cancel, pieces = head.cancel, head.pieces
        self.cancel = cancel
        chunker = SentenceChunker()
        system = self.session.system_text(language)
        index = 0
        try:
            while True:
                piece = await pieces.get()
                if isinstance(piece, BaseException):
                    raise piece
                if piece is None:  # the LLM is done
                    closed, last = chunker.flush(), True
                else:
                    clock.token()
                    closed, last = chunker.feed(piece), False
                for s in closed:
                    if language == "ru":
                        s = grammar.fix_russian(s, self.session.persona.gender)
                    verdict = safety.check_sentence(s, language)
                    if guard.echoes(s, system):  # the prompt is the kiosk's, never read out
                        verdict = safety.Verdict(safety.REDIRECT.get(language, safety.REDIRECT["en"]), True)
                    if verdict.text:
                        clock.sentence()
                        if index == 0 and not last:
                            gate.clear()  # reopened by the first audio (speak), or below
                        await sentences.put(ReplySentence(turn_id, index, verdict.text, language))
                        index += 1
                    if verdict.stop:
                        return
                if last:
                    return
        finally:
            cancel.set()  # whatever happened, the worker stops generating
            gate.set()

    async def speak(self, sentence: ReplySentence, clock: TurnClock | None = None) -> None:
        """Synthesize one sentence in the TTS worker; queue its chunks on the speaker as they come."""
        host, tts = self.host, self.engines.tts
        host.emit(SentenceReady(sentence.turn_id, sentence.index, sentence.text))
        host.set_screen(saying=(host.saying() + " " + sentence.text).strip())
        t0 = time.monotonic()
        chunks: asyncio.Queue[np.ndarray | BaseException | None] = asyncio.Queue(maxsize=64)
        if sentence.fixed:  # fixed phrases come from the phrase cache (synthesized once)
            self.workers.tts.stream(lambda: [self.phrases.get(tts, sentence.text, sentence.language)],
                                    on_item=chunks.put_nowait, on_done=chunks.put_nowait)
        else:
            self.workers.tts.stream(tts.synthesize, sentence.text, sentence.language,
                                    on_item=chunks.put_nowait, on_done=chunks.put_nowait)
        try:
            await self._queue_chunks(sentence, chunks, clock, t0)
        finally:
            self.llm_gate.set()  # a sentence that said nothing (or failed) must not hold the LLM back

    async def _queue_chunks(self, sentence: ReplySentence, chunks: asyncio.Queue, clock: TurnClock | None,
                            t0: float) -> None:
        host, tts = self.host, self.engines.tts
        while (item := await chunks.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            audio = np.asarray(item, np.float32)
            start_s = self.speaker.write(audio, tts.sample_rate)
            if clock is None or clock.audio(t0):
                host.set_screen(state=KioskState.SPEAKING)
                self.llm_gate.set()  # the visitor hears the reply: the LLM may go on
            host.emit(AudioQueued(SpeechChunk(sentence.turn_id, sentence.index, audio, tts.sample_rate,
                                              text=sentence.text), start_s))
            host.nudge()

    # ------------------------------------------------------------------ besides the microphone
    async def written(self, turn_id: str, text: str, language: str) -> None:
        """A visitor's question typed on the kiosk's keyboard: answered as a spoken one is — the
        question in the captions, the reply aloud and in captions, kept in the visitor's history."""
        clock = TurnClock(turn_id)
        clock.figures["stt_s"] = 0.0  # typed: nothing to transcribe
        rec = TurnRecord(turn_id, language=language)
        self.host.set_screen(state=KioskState.THINKING, heard=text, saying="")
        async with self._turn(rec, clock, "typed turn failed"):
            reply = await self._answer(rec, clock, text, language)
            self._finish(rec, clock, "replied", reply)

    async def typed(self, turn_id: str, text: str, language: str) -> tuple[str, TurnMetrics]:
        """A turn from typed text (``avatar-kiosk ask``): the reply text and its metrics."""
        clock = TurnClock(turn_id)
        clock.figures["stt_s"] = 0.0  # typed: nothing to transcribe
        rec = TurnRecord(turn_id, language=language, heard=text)
        reply = await self._respond(turn_id, text, language, clock)
        rec.reply = reply
        self._finish(rec, clock, "replied", reply)
        return reply, self.metrics[-1]
