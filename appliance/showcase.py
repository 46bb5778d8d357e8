"""The kiosk put together: conversation loop + face + screen (+ recording), on one asyncio loop.

Used by ``avatar-kiosk demo`` (a WAV-file visitor, offscreen when there is no display, optional
``--record out.mp4``) and by the daemon's app (``appliance.demo.build_app``). pygame and the loop
share the main thread: the render step runs as a coroutine on the loop, so every pygame call is
made from the main thread, and engines keep to their own worker threads.

Timing: the face frame for "now" comes from the speaker's played-samples clock (AudioClock), never
from wall time. With no sound card the RecordingSpeaker's clock is advanced by microphone audio
time, so the visitor's recording, the kiosk's voice and the video share one timeline — which is
also what makes the recorded demo's lips line up with its audio.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from . import persona as persona_mod
from .messages import KioskState, ScreenModel, TurnEvent
from .paths import Settings

log = logging.getLogger(__name__)

VISITOR_LEAD_S = 5.0  # the visitor lets the kiosk finish its greeting (talking over it is a barge-in)
VISITOR_SCRIPT = (
    ("en", "Hello! What is your name?", 14.0),
    ("en", "What can you tell me about the Moon?", 16.0),
    ("ru", "Здравствуйте!", 10.0),
)
# whisper base cannot follow espeak-ng's Russian, so the Russian visitor is a recorded human prompt
# (Debian's asterisk-core-sounds-ru-wav) when it is installed: "Здравствуйте!"
RU_RECORDED = {"Здравствуйте!": Path("/usr/share/asterisk/sounds/ru_RU_f_IvrvoiceRU/hello.wav")}


@dataclass(frozen=True)
class ProfileFiles:
    """Where the active persona's files are: the provisioned profile, else the demo bundle."""

    folder: Path
    persona: persona_mod.Persona
    photo: Path
    voice_dir: Path


def active_profile(settings: Settings) -> ProfileFiles:
    current = settings.paths.current_profile
    for folder in (current, settings.paths.demo_bundle):
        if (folder / "persona.toml").exists():
            photo = next((p for p in sorted(folder.glob("photo.*")) if p.suffix.lower() in (".png", ".jpg", ".jpeg")),
                         None)
            meta = folder / "profile.json"
            if meta.exists():  # provisioning's enhanced photo (Real-ESRGAN on a small face) when it made one
                import json
                face_photo = folder / json.loads(meta.read_text(encoding="utf-8")).get("face_photo", "")
                photo = face_photo if face_photo.is_file() and face_photo != folder else photo
            if photo is None:
                continue
            return ProfileFiles(folder.resolve(), persona_mod.load(folder / "persona.toml"), photo, folder / "voice")
    raise FileNotFoundError("no profile and no demo bundle: run `avatar-kiosk demo --prepare-only` "
                            "or provision a USB bundle")


def make_visitor(settings: Settings, out: Path) -> Path:
    """A visitor who asks a few questions, as a 16 kHz WAV: piper (English) and espeak-ng (Russian)
    speech with pauses long enough for the kiosk to answer."""
    from .audio.resample import resample
    from .audio.wav import read_mono_16k, write_wav
    from .engines.tts_piper import PiperEspeakTTS

    tts = PiperEspeakTTS.from_settings(settings)
    parts = [np.zeros(int(VISITOR_LEAD_S * 16000), np.float32)]
    for lang, text, pause in VISITOR_SCRIPT:
        recorded = RU_RECORDED.get(text)
        if recorded is not None and recorded.is_file():
            speech16k = read_mono_16k(recorded).astype(np.float32) / 32768.0
        else:
            speech16k = resample(np.concatenate(list(tts.synthesize(text, lang))).astype(np.float32),
                                 tts.sample_rate, 16000) * 0.8
        parts += [speech16k, np.zeros(int(pause * 16000), np.float32)]
    write_wav(out, np.concatenate(parts), 16000)
    return out


def neural_face(settings: Settings, resolved, rig, base):
    """The neural lip-sync around the mesh-warp animator (which keeps blinks, sway and breathing),
    warmed with one frame so the first word does not pay for the session's set-up."""
    from .engines.lipsync_onnx import NeuralLipsync, NeuralLipsyncAnimator, face_box

    lipsync = NeuralLipsync.from_settings(Settings(resolved, settings.paths))
    animator = NeuralLipsyncAnimator(base, lipsync, face_box(rig))
    from .messages import MouthPose

    lipsync.set_speech(np.full(1600, 0.01, np.float32), 0.0)
    animator.frame(0.05, MouthPose())
    lipsync.clear()
    log.info("face: neural lip-sync (%s, %s), face box %s", resolved.face.lipsync_model,
             "+".join(lipsync.model.providers), animator.face_box)
    return animator


def _has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) or \
        os.environ.get("SDL_VIDEODRIVER") not in (None, "", "dummy", "offscreen")


class Showcase:
    """Owns the renderer, the face and the conversation for one run."""

    def __init__(self, settings: Settings, *, mic, speaker, headless: bool, record: Path | None = None) -> None:
        self.settings = settings
        self.mic = mic
        self.speaker = speaker
        self.headless = headless
        self.record = record
        self.model = ScreenModel(state=KioskState.IDLE, hint="Say hello! · Скажите «привет»!")
        self.conv = None
        self.lipsync = None  # the neural lip-sync animator, when face.engine = "neural-lipsync" runs
        # Bounded: the daemon runs for months. Audio events are not kept (their samples went to the
        # mouth tracker, which forgets old audio by itself).
        self.events: deque[TurnEvent] = deque(maxlen=2000)
        self.frames = 0
        self.frame_ms: deque[float] = deque(maxlen=20_000)  # ~13 min at 25 fps: the demo's whole run
        self._done = asyncio.Event()

    # -- events from the conversation (on the loop thread)
    def on_event(self, item: object) -> None:
        if isinstance(item, ScreenModel):
            hint = self.model.hint
            self.model = replace(item, hint=item.hint or hint)
            return
        if not isinstance(item, TurnEvent):
            return
        if item.kind != "audio":
            self.events.append(item)
        if item.kind == "audio":
            chunk, start_s, rate = item.data["chunk"], item.data["start_s"], item.data["rate"]
            samples = chunk.samples
            if rate != self.speaker.rate:
                from .audio.resample import resample
                samples = resample(samples, rate, self.speaker.rate)
            self.tracker.add(samples.astype(np.float32), int(round(start_s * self.speaker.rate)))
            if self.lipsync is not None:
                from .audio.resample import resample
                self.lipsync.add_audio(resample(chunk.samples.astype(np.float32), rate, 16000), start_s)
        elif item.kind == "barge_in":
            self.tracker.clear(int(round(item.data.get("stopped_at_s", 0.0) * self.speaker.rate)))
            if self.lipsync is not None:
                self.lipsync.clear(item.data.get("stopped_at_s", 0.0))

    async def start(self) -> None:
        from .conversation.orchestrator import Conversation, load_engines
        from .conversation.storage import TurnStore
        from .face.animator import MeshWarpAnimator
        from .face.mouth import MouthTracker
        from .face.rig import FaceManager
        from .screen.renderer import Renderer

        cfg = self.settings.config
        self.profile = active_profile(self.settings)
        self.renderer = Renderer(cfg.display, headless=self.headless, fps=cfg.face.fps)
        self.model = replace(self.model, state=KioskState.THINKING, hint="")
        self.renderer.draw(replace(self.model, state=KioskState.PROVISIONING, step="Waking up…", progress=0.2), None)
        self.renderer.present()
        loop = asyncio.get_running_loop()
        faces = FaceManager(self.settings.paths.cache_dir, size=cfg.face.size)
        rig = await loop.run_in_executor(None, faces.load, self.profile.photo)
        self.animator = MeshWarpAnimator(rig, size=cfg.face.size)
        self.tracker = MouthTracker(self.speaker.rate, fps=cfg.face.fps)
        engines = await loop.run_in_executor(None, load_engines, self.settings)
        if engines.config is not None and engines.config.face.engine == "neural-lipsync":
            self.animator = self.lipsync = await loop.run_in_executor(None, neural_face, self.settings,
                                                                      engines.config, rig, self.animator)
        self.store = TurnStore(self.settings.paths.db_path, cfg.privacy)
        self.conv = Conversation(self.settings, self.profile.persona, engines, self.mic, self.speaker,
                                 on_event=self.on_event, store=self.store)
        self.model = ScreenModel(state=KioskState.IDLE, hint="Say hello! · Скажите «привет»!")

    async def render_loop(self) -> None:
        from .screen.clock import AudioClock

        fps = self.settings.config.face.fps
        clock = AudioClock(lambda: self.speaker.played_samples, self.speaker.rate, fps)
        recorder = None
        if self.record is not None:
            from .screen.record import Recorder
            recorder = Recorder(self.record, self.renderer.size, fps)
        self.recorder = recorder
        while not self._done.is_set():
            if not self.renderer.pump():
                self.stop()
                break
            k = clock.due()
            if k is None:
                await asyncio.sleep(0.004)
                continue
            t0 = time.perf_counter()
            t = k / fps
            face = self.animator.frame(t, self.tracker.pose_at_frame(k))
            self.renderer.draw(self.model, face, t=t)
            self.renderer.present()
            if recorder is not None:
                recorder.add_frame(self.renderer.rgb(), index=k)
            self.frames += 1
            self.frame_ms.append((time.perf_counter() - t0) * 1000)
            await asyncio.sleep(0)  # let the conversation's callbacks run between frames

    async def run(self, stop_after_audio_s: float | None = None, greet: bool = True) -> None:
        render = asyncio.create_task(self.render_loop())
        try:
            self.speaker.start()
            if greet:
                await self.conv.greet(self.profile.persona.languages[0])
            await self.conv.run(stop_after_audio_s=stop_after_audio_s)
        finally:
            self._done.set()
            await render
            self.speaker.stop()

    def stop(self) -> None:
        self._done.set()
        if self.conv is not None:
            self.conv.stop()

    def close(self) -> None:
        if self.conv is not None:
            self.conv.close()
        if getattr(self, "store", None) is not None:
            self.store.close()
        self.renderer.close()


def _mix_for_video(visitor16k: np.ndarray, lead_s: float, kiosk: np.ndarray, rate: int) -> np.ndarray:
    """What a person in front of the kiosk heard: the visitor and the kiosk on one timeline."""
    from .audio.resample import resample

    v = resample(visitor16k.astype(np.float32) / 32768.0, 16000, rate)
    v = np.concatenate([np.zeros(int(lead_s * rate), np.float32), v])
    n = max(len(v), len(kiosk))
    out = np.zeros(n, np.float32)
    out[:len(v)] += v * 0.8
    out[:len(kiosk)] += kiosk
    return np.clip(out, -1, 1)


def run_demo(settings: Settings, args) -> int:
    from .audio.mic import WavFileMic
    from .audio.speaker import RecordingSpeaker
    from .audio.wav import read_mono_16k, write_wav

    headless = not _has_display()
    if headless:
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    visitor = args.visitor or make_visitor(settings, settings.paths.cache_dir / "demo-visitor.wav")
    mic = WavFileMic(visitor, realtime=True, frame_ms=settings.config.audio.frame_ms)
    speaker = RecordingSpeaker(settings.config.audio.output_rate, settings.config.audio.volume)
    show = Showcase(settings, mic=mic, speaker=speaker, headless=headless, record=args.record)

    async def main() -> None:
        await show.start()
        print(f"demo: {show.profile.persona.name} ({show.profile.folder}); visitor: {visitor}"
              f"{' (offscreen)' if headless else ''}")
        try:
            await show.run()
        finally:
            show.close()

    asyncio.run(main())
    for ev in show.events:
        if ev.kind == "transcript":
            print(f"  visitor ({ev.data.get('language')}): {ev.data.get('text')}")
        elif ev.kind == "sentence":
            print(f"  {show.profile.persona.name}: {ev.data.get('text')}")
        elif ev.kind == "no_reply":
            print(f"  (no reply: {ev.data.get('reason')})")
        elif ev.kind == "barge_in":
            print("  (the visitor spoke over the kiosk: playback stopped)")
        elif ev.kind == "turn_done" and "metrics" in ev.data:
            m = ev.data["metrics"]
            tta = getattr(m, "ttfa_s", None)
            if tta and getattr(m, "outcome", "replied") != "no_reply":
                print(f"    time to first audio after the visitor stopped: {tta:.2f} s")
    out_wav = settings.paths.cache_dir / "demo-kiosk-audio.wav"
    write_wav(out_wav, speaker.recording(), speaker.rate)
    ms = sorted(show.frame_ms) or [0.0]
    print(f"demo: {show.frames} frames, {ms[len(ms) // 2]:.1f} ms/frame p50 "
          f"({ms[min(len(ms) - 1, int(len(ms) * 0.99))]:.1f} p99); the kiosk's voice: {out_wav}")
    if args.record and show.recorder is not None:
        mixed = _mix_for_video(read_mono_16k(visitor), 0.3, speaker.recording(), speaker.rate)
        mixed_wav = settings.paths.cache_dir / "demo-mixed.wav"
        write_wav(mixed_wav, mixed, speaker.rate)
        path = show.recorder.finish(mixed_wav)
        print(f"demo: recorded {path}")
    return 0


class KioskApp:
    """The real kiosk for the daemon (``avatar-kiosk run``), in the daemon's KioskApp protocol
    (appliance/daemon/apps.py): microphone and speaker through PortAudio, or ``--visitor FILE``
    as the microphone; the face fullscreen (or offscreen with ``--headless``)."""

    def __init__(self, settings: Settings, args) -> None:
        self.settings = settings
        self.args = args
        self.show: Showcase | None = None
        self.task: asyncio.Task | None = None
        self.exit_code: int | None = None
        self._state = "loading"
        self._frames_at_health = 0
        self._health_t = time.monotonic()

    @property
    def state(self) -> str:
        if self.show is None:
            return self._state
        s = self.show.model.state
        return {KioskState.SPEAKING: "speaking", KioskState.PROVISIONING: "provisioning",
                KioskState.ERROR: "error"}.get(s, "listening")

    @property
    def status_text(self) -> str:
        if self.show is None:
            return "loading models"
        return f"{self.state} ({self.show.profile.persona.name})"

    def _devices(self):
        from .audio.mic import PyAudioMic, WavFileMic
        from .audio.speaker import PyAudioSpeaker, RecordingSpeaker

        a = self.settings.config.audio
        visitor = getattr(self.args, "visitor", None)
        if visitor:
            return (WavFileMic(visitor, realtime=True, frame_ms=a.frame_ms), RecordingSpeaker(a.output_rate, a.volume))
        return (PyAudioMic(a.input_device, frame_ms=a.frame_ms, reconnect_s=a.reconnect_s),
                PyAudioSpeaker(a.output_rate, a.output_device, a.volume))

    async def start(self) -> None:
        mic, speaker = self._devices()
        headless = bool(getattr(self.args, "headless", False)) or not _has_display()
        self.show = Showcase(self.settings, mic=mic, speaker=speaker, headless=headless,
                             record=getattr(self.args, "record", None))
        await self.show.start()
        exit_after = float(getattr(self.args, "exit_after", 0.0) or 0.0)
        self.task = asyncio.create_task(self.show.run(stop_after_audio_s=exit_after or None))
        self.task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task) -> None:
        if task.cancelled():
            return
        if task.exception() is not None:
            log.error("the kiosk loop stopped: %s", task.exception())
            self.exit_code = 1
        elif self.exit_code is None and (getattr(self.args, "visitor", None) or getattr(self.args, "exit_after", 0)):
            self.exit_code = 0

    async def stop(self) -> None:
        if self.show is not None:
            self.show.stop()
        if self.task is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(self.task), 2.0)
        if self.show is not None:
            rec = getattr(self.show, "recorder", None)
            if rec is not None:
                with contextlib.suppress(Exception):
                    rec.finish()
            self.show.close()

    async def health(self) -> tuple[bool, str]:
        """Healthy while the loop runs and the screen keeps getting frames."""
        if self.task is None or self.show is None:
            return False, "not started"
        if self.task.done():
            return self.exit_code == 0, "the conversation loop has ended"
        now = time.monotonic()
        if self.show.frames != self._frames_at_health:
            self._frames_at_health, self._health_t = self.show.frames, now
        elif now - self._health_t > 10.0:
            return False, "no video frame for 10 s (the audio clock or the renderer is stuck)"
        return True, "ok"

    def info(self) -> dict:
        if self.show is None:
            return {}
        stage: dict[str, list[float]] = {}
        for ev in self.show.events:
            if ev.kind == "turn_done" and "metrics" in ev.data:
                m = ev.data["metrics"]
                for name in ("eos_s", "stt_s", "llm_first_token_s", "llm_first_sentence_s", "tts_first_chunk_s",
                             "ttfa_s"):
                    stage.setdefault(name.removesuffix("_s"), []).append(getattr(m, name) * 1000)
        recent = list(self.show.frame_ms)[-250:]
        return {"profile": self.show.profile.folder.name, "turns": sum(1 for e in self.show.events
                                                                        if e.kind == "turn_done"),
                "render_ms_p50": sorted(recent)[len(recent) // 2] if recent else None, "stage_ms": stage}

    async def command(self, request: dict) -> dict:
        if self.show is None or self.show.conv is None:
            return {"ok": False, "error": "the kiosk is still loading"}
        if request.get("cmd") == "say":
            text = str(request.get("text", "")).strip()
            if not text:
                return {"ok": False, "error": "nothing to say"}
            lang = request.get("language") or ("ru" if any("а" <= c.lower() <= "я" for c in text) else "en")
            await self.show.conv.say(text, lang)
            return {"ok": True}
        if request.get("cmd") == "ask":
            reply, _m = await self.show.conv.typed_turn(str(request.get("text", "")), request.get("language"))
            return {"ok": True, "reply": reply}
        return {"ok": False, "error": f"unknown command {request.get('cmd')!r}"}
