"""Presence in the running kiosk: greet whoever walks up, reset when they leave, invite people in
while nobody is there. Only with a camera (``[presence] camera``); without one — or while it is
gone — the kiosk decides by sound as before (45 s of silence ends a visit).

    camera thread ──VisitorArrived──► the kiosk idle? greeting (once per visit, the site's first language)
                  ──VisitorLeft────► reply cut, history dropped, captions cleared, back to attract
                  ──CameraLost/Back─► presence by sound / by camera again
    attract task: nobody there, quiet for attract_interval_s (audio time), not night ─► an invitation

A video file as the camera plays on the kiosk's audio clock (its time 0 = the audio clock's 0), so
a test's visitor appears at a known audio time, in virtual or real time alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import threading
import time
from dataclasses import dataclass, replace

from ..messages import KioskState, VisitorGone
from ..presence.camera import is_file_spec
from ..presence.events import CameraBack, CameraLost, VisitorArrived, VisitorLeft

log = logging.getLogger("avatar-kiosk.app")


@dataclass(frozen=True)
class Visit:
    """One visit as the kiosk saw it, in audio-clock seconds (no image, no identity)."""

    arrived_at: float            # camera time the visitor counted as arrived
    greeted: bool
    left_at: float | None = None  # audio time the kiosk reset for the next visitor


def is_night(hour: int, night: list[int]) -> bool:
    """Whether ``hour`` (local, 0–23) lies in ``night`` = [from, until) — wrapping midnight."""
    start, end = night
    if start == end:
        return False
    return start <= hour < end if start < end else hour >= start or hour < end


class PresenceFlow:
    def __init__(self, app) -> None:
        self.app = app
        self.cfg = app.settings.config.presence
        self.enabled = bool(self.cfg.camera)
        self.camera_ok = False
        self.present = False
        self.visits: list[Visit] = []
        self.invitations: list[tuple[float, str]] = []   # (audio time, language) of each invitation
        self.hour = lambda: datetime.datetime.now().hour  # local time on the box (tests set it)
        self.watcher = None
        self._quiet_since = 0.0
        self._camera_t = -1.0  # camera time of the last frame analysed (virtual-time pacing)
        self._next_phrase = 0
        self._stop = threading.Event()
        self._tasks: set[asyncio.Task] = set()

    # ------------------------------------------------------------------ life
    def start(self) -> None:
        if not self.enabled:
            return
        from ..presence.watcher import PresenceWatcher

        loop = asyncio.get_running_loop()
        conv = self.app.conv
        conv.sound_presence = False  # the camera decides when a visit ends; sound only if it fails
        self.camera_ok = True

        def hand_over(ev) -> None:  # the presence thread
            with contextlib.suppress(RuntimeError):  # the loop closed as the kiosk stopped
                loop.call_soon_threadsafe(self.handle, ev)

        pace = on_frame = None
        if is_file_spec(self.cfg.camera):
            pace = self._pace
            if getattr(self.app.mic, "virtual", False):
                # Virtual time: the recording also waits for the camera's frames to be analysed, so
                # the visitor in the file appears at the same audio time however slow the machine.
                on_frame = self._analysed(loop)
                conv.holds.append(self._camera_behind)
        self.watcher = PresenceWatcher(self.cfg, hand_over, pace=pace, on_frame=on_frame)
        self.watcher.start()
        if self.cfg.attract_interval_s > 0:
            self._spawn(self._attract())

    def stop(self) -> None:
        self._stop.set()
        if self.watcher is not None:
            self.watcher.stop()
        for task in list(self._tasks):
            task.cancel()

    def info(self) -> dict:
        """For ``avatar-kiosk status`` and doctor: counts only."""
        if not self.enabled:
            return {}
        w = self.watcher
        return {"presence": {"camera": self.cfg.camera, "camera_ok": self.camera_ok, "present": self.present,
                             "visitors": len(self.visits), "invitations": len(self.invitations),
                             "detector_ms": round(w.ms_per_frame, 1) if w else 0.0}}

    def _analysed(self, loop):
        def on_frame(t: float) -> None:  # the presence thread
            self._camera_t = t
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self.app.conv.nudge)
        return on_frame

    def _camera_behind(self) -> bool:
        w = self.watcher
        if w is None or w.ended.is_set() or self._stop.is_set():
            return False
        return self.app.conv.audio_now() >= self._camera_t + 1.0 / self.cfg.fps

    def _pace(self, t: float) -> bool:
        """The presence thread waits until the kiosk's audio clock reaches the file's time ``t``."""
        conv = self.app.conv
        while not self._stop.is_set() and conv.audio_now() < t:
            time.sleep(0.01)
        return not self._stop.is_set()

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ events (on the loop)
    def handle(self, ev) -> None:
        app, conv = self.app, self.app.conv
        app.telemetry.event(ev)
        match ev:
            case VisitorArrived(t=t):
                self.present = True
                # Someone who spoke first is already being answered; a stick being set up has the
                # screen. An invitation still playing is cut for the greeting.
                inviting = self._inviting()
                busy = not inviting and self._busy()
                self.visits.append(Visit(t, greeted=not busy))
                log.info("presence: a visitor arrived%s", "" if not busy else " (the kiosk was busy: no greeting)")
                if not busy:
                    self._spawn(self._greet(cut=inviting))
            case VisitorLeft(stayed_s=stayed):
                self.present = False
                log.info("presence: the visitor left after %.0f s", stayed)
                if not app.sticks.busy:
                    self._spawn(self._reset())
            case CameraLost():
                self.camera_ok, self.present = False, False
                conv.sound_presence = True
            case CameraBack():
                self.camera_ok = True
                conv.sound_presence = False

    def _inviting(self) -> bool:
        conv = self.app.conv
        return (not conv.turn_active and conv.screen.state == KioskState.SPEAKING
                and conv.screen.saying in self._phrase_texts())

    def _phrase_texts(self) -> set[str]:
        return {*self.cfg.attract_en, *self.cfg.attract_ru}

    async def _greet(self, cut: bool) -> None:
        app, conv = self.app, self.app.conv
        if cut:
            await app.hush()
            conv.release()
        await conv.greet(app.first_language())

    async def _reset(self) -> None:
        """The visitor left: cut what is being said, forget them, clear the captions."""
        app, conv = self.app, self.app.conv
        await app.hush()
        conv.release()
        conv.emit(VisitorGone())
        self._quiet_since = conv.audio_now()
        if self.visits:
            self.visits[-1] = replace(self.visits[-1], left_at=conv.audio_now())

    # ------------------------------------------------------------------ attract mode
    def _busy(self) -> bool:
        """A stick is being set up, or the kiosk is answering, talking or not at rest."""
        app, conv = self.app, self.app.conv
        return (app.sticks.busy or conv.turn_active or app.speaker.busy
                or conv.screen.state != KioskState.IDLE)

    def _idle(self) -> bool:
        return not (self._busy() or self.app.overlay is not None)

    async def _attract(self) -> None:
        conv, cfg = self.app.conv, self.cfg
        phrases = [(text, lang) for lang in conv.languages for text in getattr(cfg, f"attract_{lang}", [])]
        if not phrases:
            return
        await conv.cache_phrases(phrases)
        while not self._stop.is_set():
            await asyncio.sleep(0.25)
            now = conv.audio_now()
            if self.present or not self.camera_ok or not self._idle():
                self._quiet_since = now
                continue
            if now - self._quiet_since < cfg.attract_interval_s or is_night(self.hour(), cfg.night_hours):
                continue
            text, lang = phrases[self._next_phrase % len(phrases)]
            self._next_phrase += 1
            self.invitations.append((now, lang))
            self._quiet_since = now
            await conv.say(text, lang)
