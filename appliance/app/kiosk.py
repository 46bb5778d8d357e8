"""The kiosk: conversation loop + face + screen (+ recording) on one asyncio loop, and USB sticks
taken while it runs.

pygame and the loop share the main thread: the render step runs as a coroutine on the loop, so
every pygame call is made from the main thread, and engines keep to their own worker threads.

Timing: the face frame for "now" comes from the speaker's played-samples clock (AudioClock), never
from wall time. With no sound card the RecordingSpeaker's clock is advanced by microphone audio
time, so the visitor's recording, the kiosk's voice and the video share one timeline — which is
also what makes a recorded run's lips line up with its audio.

The daemon drives it through its app protocol (:class:`appliance.daemon.apps.KioskApp`): ``start``,
``stop``, ``health``, ``info``, ``command`` (say / ask), ``provision`` (a stick appeared) and
``stick_removed``. The demo drives the very same object with a WAV-file visitor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import deque
from dataclasses import replace
from pathlib import Path

import numpy as np

from .. import logs
from ..audio.mic import Mic
from ..audio.resample import resample
from ..audio.speaker import Speaker
from ..engines import factory
from ..knowledge import Knowledge
from ..lang import guess_language
from ..messages import AudioQueued, BargeIn, KioskState, ScreenModel, TurnEvent
from ..paths import Settings
from ..screen.frametimes import FrameTimes
from .presence import PresenceFlow
from .profile import ProfileFiles, active_profile
from .sticks import StickProvisioner
from .telemetry import Telemetry

log = logging.getLogger("avatar-kiosk.app")

HINT = "Say hello! · Скажите «привет»!"


class KioskApp:
    """The real kiosk. ``mic``/``speaker`` are the caller's: PortAudio devices on the box, a WAV
    visitor and a recording speaker in the demo and the tests.

    ``finish_with_mic``: a WAV visitor's end ends the run (``exit_code`` 0); ``exit_after_s``: stop
    after that much microphone audio; ``speaker_out``: at stop, write what the speaker played
    (a RecordingSpeaker) to this WAV."""

    def __init__(self, settings: Settings, *, mic: Mic, speaker: Speaker, headless: bool,
                 record: Path | None = None, exit_after_s: float | None = None, finish_with_mic: bool = False,
                 speaker_out: Path | None = None, greet: bool = True) -> None:
        self.settings = settings
        self.mic = mic
        self.speaker = speaker
        self.headless = headless
        self.record = record
        self.exit_after_s = exit_after_s or None
        self.finish_with_mic = finish_with_mic
        self.speaker_out = speaker_out
        self.greet_at_start = greet
        self.exit_code: int | None = None
        self.profile: ProfileFiles | None = None
        self.conv = None
        self.engines = None
        self.animator = None
        self.lipsync = None
        self.recorder = None
        self.recorded: Path | None = None
        self.record_audio = None  # () -> a WAV to put under the recorded video (the demo mixes the visitor in)
        # What the conversation shows, and what the app lays over it (a stick being set up; a
        # notice such as a refused stick's reason, kept until the stick is pulled).
        self.screen = ScreenModel(state=KioskState.IDLE, hint=HINT)
        self.overlay: ScreenModel | None = None
        self.notice = ""
        # Bounded: the daemon runs for months. Audio events are not kept (their samples went to the
        # mouth tracker, which forgets old audio by itself).
        self.events: deque[TurnEvent] = deque(maxlen=2000)
        self.frame_times = FrameTimes()
        self.telemetry = Telemetry(settings)  # Prometheus metrics (node_exporter's textfile directory)
        self.sticks = StickProvisioner(self)
        self.presence = PresenceFlow(self)  # a camera's visitors (nothing at all without one)
        self._task: asyncio.Task | None = None
        self._render: asyncio.Task | None = None
        self._done = asyncio.Event()
        self._frames_at_health = 0
        self._health_t = time.monotonic()
        self._closed = False

    # ------------------------------------------------------------------ the daemon's view
    @property
    def state(self) -> str:
        if self.conv is None:
            return "loading"
        if self.sticks.busy:
            return "provisioning"
        return {KioskState.SPEAKING: "speaking", KioskState.ERROR: "error"}.get(self.screen.state, "listening")

    @property
    def status_text(self) -> str:
        if self.conv is None:
            return "loading models"
        return f"{self.state} ({self.profile.persona.name})"

    async def start(self) -> None:
        """Load the face and the engines, open the screen, greet, listen."""
        from ..conversation.conversation import Conversation
        from ..conversation.storage import TurnStore
        from ..face.mouth import MouthTracker
        from ..screen.renderer import Renderer

        cfg = self.settings.config
        loop = asyncio.get_running_loop()
        self.profile = active_profile(self.settings)
        self.renderer = Renderer(cfg.display, headless=self.headless, fps=cfg.face.fps,
                                 keyboard_layout=self.first_language())
        self.renderer.draw(ScreenModel(state=KioskState.PROVISIONING, step="Waking up…", progress=0.2), None)
        self.renderer.present()
        self.tracker = MouthTracker(self.speaker.rate, fps=cfg.face.fps)
        self.telemetry.attach()
        self.engines = await loop.run_in_executor(None, factory.load, self.settings)
        self.telemetry.engines_loaded(self.engines)
        self._use_face(await loop.run_in_executor(None, self._face, self.profile.photo))
        self.store = TurnStore(self.settings.paths.db_path, cfg.privacy)
        self.conv = Conversation(self.settings, self.profile.persona, self.engines, self.mic, self.speaker,
                                 on_event=self.on_event, store=self.store,
                                 knowledge=Knowledge.load(self.profile.files.knowledge))
        self.screen = ScreenModel(state=KioskState.IDLE, hint=HINT)
        self._render = loop.create_task(self._render_loop())
        self._task = loop.create_task(self._run())
        self._task.add_done_callback(self._finished)

    async def _run(self) -> None:
        self.speaker.start()
        try:
            if self.greet_at_start and not self.presence.enabled:  # with a camera: greet whoever comes
                await self.conv.greet(self.profile.persona.languages[0])
            self.presence.start()
            await self.conv.run(stop_after_audio_s=self.exit_after_s)
        finally:
            self._done.set()

    def _finished(self, task: asyncio.Task) -> None:
        if task.cancelled():
            return
        if task.exception() is not None:
            log.error("the kiosk loop stopped: %s", task.exception())
            self.exit_code = 1
        elif self.exit_code is None and (self.finish_with_mic or self.exit_after_s):
            self.exit_code = 0

    async def wait(self) -> None:
        """Until the conversation has ended (a WAV visitor is done, or stop())."""
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait({self._task})

    @property
    def frames(self) -> int:
        return self.frame_times.drawn

    async def stop(self) -> None:
        """Abandon the current turn, close devices and the screen (bounded: the daemon gives 2.5 s)."""
        self._done.set()
        if self.conv is not None:
            self.conv.stop()
        if self._task is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(self._task), 2.0)
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.presence.stop()
        if self.frame_times.drawn:
            log.info("face: %s", self.frame_times.line(), extra=logs.fields(stage="render"))
        self.telemetry.close()
        if self._render is not None:
            self._render.cancel()
        if self.speaker_out is not None and hasattr(self.speaker, "recording"):
            from ..audio.wav import write_wav

            with contextlib.suppress(Exception):
                write_wav(self.speaker_out, self.speaker.recording(), self.speaker.rate)
        if self.recorder is not None:
            try:
                self.recorded = self.recorder.finish(self.record_audio() if self.record_audio else None)
            except Exception as e:
                log.warning("the recording could not be finished: %s", e)
        with contextlib.suppress(Exception):
            self.speaker.stop()
        if self.conv is not None:
            self.conv.close()
        llm = getattr(self.engines, "llm", None)
        if hasattr(llm, "close"):  # the LLM server's retry probe stops waiting
            llm.close()
        if getattr(self, "store", None) is not None:
            self.store.close()
        if getattr(self, "renderer", None) is not None:
            self.renderer.close()

    async def health(self) -> tuple[bool, str]:
        """Healthy while the loop runs and the screen keeps getting frames."""
        if self._task is None or self.conv is None:
            return False, "not started"
        if self._task.done():
            return self.exit_code == 0, "the conversation loop has ended"
        now = time.monotonic()
        if self.frames != self._frames_at_health:
            self._frames_at_health, self._health_t = self.frames, now
        elif now - self._health_t > 10.0:
            return False, "no video frame for 10 s (the audio clock or the renderer is stuck)"
        return True, "ok"

    def info(self) -> dict:
        if self.conv is None:
            return {}
        stage: dict[str, list[float]] = {}
        for m in self.conv.metrics:
            for name in ("eos_s", "stt_s", "llm_first_token_s", "llm_first_sentence_s", "tts_first_chunk_s",
                         "ttfa_s"):
                stage.setdefault(name.removesuffix("_s"), []).append(getattr(m, name) * 1000)
        recent = list(self.frame_times.draw_ms)[-250:]
        llm = self.engines.llm if self.engines is not None else None
        server = {"llm_server": {"url": llm.endpoint.base_url, "up": llm.server_up,
                                 "fallbacks": sum(llm.fallbacks.values())}} if hasattr(llm, "server_up") else {}
        return {**server, "profile": self.profile.id, "persona": self.profile.persona.name, "turns": len(self.conv.metrics),
                "outcomes": [m.outcome for m in list(self.conv.metrics)[-20:]],
                "render_ms_p50": sorted(recent)[len(recent) // 2] if recent else None, "stage_ms": stage,
                "notice": self.notice, "provisioning": self.sticks.info(), **self.presence.info()}

    async def command(self, request: dict) -> dict:
        """``say`` and ``ask`` from the control socket: the kiosk speaks (face and captions too)."""
        if self.conv is None:
            return {"ok": False, "error": "the kiosk is still loading"}
        cmd = request.get("cmd")
        if cmd == "profile_changed":
            return await self.sticks.profile_changed()
        if cmd not in ("say", "ask"):
            return {"ok": False, "error": f"unknown command {cmd!r}"}
        if self.sticks.busy:
            return {"ok": False, "error": "the kiosk is setting up a new persona from a USB stick; try again in a "
                                          "minute"}
        text = str(request.get("text", "")).strip()
        if not text:
            return {"ok": False, "error": "nothing to say" if cmd == "say" else "nothing to ask"}
        problem = unspeakable(text, request.get("language"))
        if problem:
            return {"ok": False, "error": problem}
        language = request.get("language") or guess_language(text, self.conv.languages[0])
        if cmd == "say":
            await self.conv.say(text, language)
            return {"ok": True, "said": text, "language": language, "persona": self.profile.persona.name}
        reply, metrics = await self.conv.typed_turn(text, request.get("language"))
        return {"ok": True, "reply": reply, "language": metrics.language, "persona": self.profile.persona.name}

    def written(self, text: str) -> None:
        """A visitor sent ``text`` from the screen's keyboard: answered aloud and in captions, as a
        spoken question is. What the kiosk cannot say is dropped with a journal line (never the text)."""
        if self.conv is None or self.sticks.busy:
            return
        problem = unspeakable(text, None)
        if problem:
            log.info("a typed question was not taken: %s", problem)
            return
        if not self.conv.written(text):
            log.info("a typed question came while the kiosk was busy; not taken")

    async def provision(self, path: Path) -> None:
        """A USB stick appeared (mounted read-only at ``path``): see :mod:`.sticks`."""
        await self.sticks.provision(Path(path))

    async def stick_removed(self, path: Path) -> None:
        self.sticks.removed(Path(path))

    # ------------------------------------------------------------------ profile switch
    async def use_profile(self, profile: ProfileFiles) -> None:
        """Run as ``profile`` from now on: its face, voice, persona prompt and greetings. Loads no
        model again; the face rig comes from the cache provisioning filled."""
        loop = asyncio.get_running_loop()
        animator = await loop.run_in_executor(None, self._face, profile.photo)
        tts = self.engines.tts
        if hasattr(tts, "use_profile"):
            await loop.run_in_executor(None, tts.use_profile, profile.folder)
        await self.conv.switch_persona(profile.persona, Knowledge.load(profile.files.knowledge))
        self.tracker.clear(self.speaker.played_samples)
        self._use_face(animator)
        self.profile = profile

    async def hush(self) -> None:
        """Stop talking and listening at once (a stick came in); the face's mouth closes where the
        voice stopped."""
        self._silent_from(await self.conv.hold())

    def first_language(self) -> str:
        """The language the site sets first, if the persona speaks it (the keyboard opens in it,
        a visitor the camera sees is greeted in it)."""
        langs = self.profile.persona.languages
        first = self.settings.config.session.languages[0]
        return first if first in langs else langs[0]

    def _face(self, photo: Path):
        """The face engine for ``photo``, as configured after fallbacks (blocking: a worker thread)."""
        return factory.face(Settings(self.engines.config, self.settings.paths), photo)

    def _use_face(self, animator) -> None:
        # A face engine that paints the mouth from the speech itself (neural lip-sync) is fed the
        # reply audio as it is queued; the mesh warp gets the mouth track's pose every frame.
        self.animator = animator
        self.lipsync = animator if hasattr(animator, "add_audio") else None

    async def restore_voice(self) -> None:
        """After a refused stick: provisioning borrowed the engines; give them this profile back."""
        tts = self.engines.tts
        if hasattr(tts, "use_profile"):
            await asyncio.get_running_loop().run_in_executor(None, tts.use_profile, self.profile.folder)
        self.conv.use_names()

    # ------------------------------------------------------------------ events and frames
    def on_event(self, item: TurnEvent | ScreenModel) -> None:
        """Events from the conversation (on the loop thread)."""
        self.telemetry.event(item)
        match item:
            case ScreenModel():
                self.screen = replace(item, hint=item.hint or self.screen.hint)
            case AudioQueued(chunk=chunk, start_s=start_s):
                rate = chunk.sample_rate
                samples = chunk.samples if rate == self.speaker.rate else resample(chunk.samples, rate,
                                                                                   self.speaker.rate)
                self.tracker.add(samples.astype(np.float32), int(round(start_s * self.speaker.rate)), chunk.text)
                if self.lipsync is not None:
                    self.lipsync.add_audio(resample(chunk.samples.astype(np.float32), rate, 16000), start_s)
            case BargeIn(stopped_at_s=stopped_at):
                self.events.append(item)
                self._silent_from(stopped_at)
            case _:
                self.events.append(item)

    def _silent_from(self, stopped_at: float) -> None:
        """The voice stopped at ``stopped_at`` (speaker clock): the mouth closes there."""
        self.tracker.clear(int(round(stopped_at * self.speaker.rate)))
        if self.lipsync is not None:
            self.lipsync.clear(stopped_at)

    def shown(self) -> ScreenModel:
        """What the screen shows now: the overlay (a stick being set up), else the conversation's
        state with the notice on top."""
        if self.overlay is not None:
            return self.overlay
        return replace(self.screen, notice=self.notice) if self.notice else self.screen

    async def _render_loop(self) -> None:
        from ..screen.clock import AudioClock

        fps = self.settings.config.face.fps
        clock = AudioClock(lambda: self.speaker.played_samples, self.speaker.rate, fps,
                           moved_at=lambda: self.speaker.played_at)
        if self.record is not None:
            from ..screen.record import Recorder
            self.recorder = Recorder(self.record, self.renderer.size, fps)
        while not self._done.is_set():
            if not self.renderer.pump():
                self._done.set()
                if self.conv is not None:
                    self.conv.stop()
                break
            for text in self.renderer.take_typed():
                self.written(text)
            k = clock.due()
            if k is None:
                await asyncio.sleep(0.004)
                continue
            t0 = time.perf_counter()
            t = k / fps
            face = self.animator.frame(t, self.tracker.pose_at_frame(k))
            self.renderer.draw(self.shown(), face, t=t)
            self.renderer.present()
            if self.recorder is not None:
                self.recorder.add_frame(self.renderer.rgb(), index=k)
            interval = self.frame_times.shown(k, t0, time.perf_counter(), clock.late_s)
            self.telemetry.frame(interval, self.frame_times.skipped)
            await asyncio.sleep(0)  # let the conversation's callbacks run between frames


MAX_COMMAND_CHARS = 1000  # a minute of speech: more is a mistake (or an attack), not an announcement


def unspeakable(text: str, language: object) -> str | None:
    """Why the kiosk will not say ``text`` (a technician's ``say`` / ``ask``), or None."""
    if language not in (None, "", "en", "ru"):
        return f"language {language!r} is not one the kiosk speaks: en or ru"
    if len(text) > MAX_COMMAND_CHARS:
        return f"the text is {len(text)} characters long: at most {MAX_COMMAND_CHARS}"
    if re.search(r"\d{21,}", text):
        return "the text has a number too long to say (more than 20 digits)"
    letters = [c for c in text if c.isalpha()]
    ours = sum(1 for c in letters if c.isascii() or "\u0400" <= c <= "\u04ff")
    if letters and ours < 0.8 * len(letters):
        return "the kiosk speaks only English and Russian: this text is mostly in another script"
    other = _latin_language(text)
    if other:
        return f"this text looks {other}: the kiosk speaks only English and Russian (its English voice would mangle it)"
    return None


# The commonest short words of the Latin-script languages a technician might paste by mistake,
# none of them an English word: two of them, more than English ones, and the text is not English.
_OTHER_WORDS = {
    "French": {"le", "la", "les", "des", "est", "et", "je", "vous", "nous", "une", "du", "pour", "pas", "avec",
               "bienvenue", "bonjour", "au", "aux", "ce", "cette", "sont", "dans", "musée", "merci"},
    "German": {"der", "die", "das", "und", "ist", "nicht", "ich", "sie", "wir", "ein", "eine", "mit", "willkommen",
               "im", "zum", "auf", "danke"},
    "Spanish": {"el", "los", "las", "es", "y", "que", "por", "con", "para", "una", "bienvenidos", "museo", "gracias",
                "del", "al", "hola"},
}
_ENGLISH_WORDS = {"the", "a", "an", "is", "are", "and", "to", "of", "in", "you", "it", "i", "for", "on", "with",
                  "this", "that", "what", "my", "your", "we", "our", "welcome", "please", "museum", "hello"}


def _latin_language(text: str) -> str | None:
    """"French", "German" or "Spanish" when ``text`` reads as one of them rather than English."""
    words = re.findall(r"[^\W\d_]+", text.lower())
    english = sum(w in _ENGLISH_WORDS for w in words)
    for name, vocab in _OTHER_WORDS.items():
        hits = sum(w in vocab for w in words)
        if hits >= 2 and hits > english:
            return name
    return None
