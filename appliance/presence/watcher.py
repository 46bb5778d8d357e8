"""The presence thread: camera → face detector → tracker, events handed to the kiosk's loop.

One thread at the device edge (the detector blocks ~7 ms a frame at 640×480 on a CPU core). Frames
never leave it, are never written anywhere, and nothing of them is logged: only the events of
:mod:`.events`. A camera that cannot be opened or stops giving frames: one journal line, a
``CameraLost`` (the kiosk goes back to deciding presence by sound), a retry every ``retry_s``, and
a line and a ``CameraBack`` when it works again.

``pace(t)``: called before each frame of camera time ``t``; returns once the kiosk's clock has
reached it (a video file played on the kiosk's audio clock), or False to stop. Without it a file
is read as fast as the detector goes — virtual time. ``on_frame(t)``: after each analysed frame.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from .camera import CameraError, describe, is_file_spec, open_camera
from .events import CameraBack, CameraLost
from .tracker import PresenceTracker

log = logging.getLogger("avatar-kiosk.presence")


class PresenceWatcher:
    def __init__(self, cfg, on_event: Callable[[object], None], *, pace: Callable[[float], bool] | None = None,
                 on_frame: Callable[[float], None] | None = None, detector=None) -> None:
        self.cfg = cfg
        self.on_event = on_event
        self.pace = pace
        self.on_frame = on_frame  # after each analysed frame, with its camera time (virtual-time pacing)
        self.detector = detector
        self.tracker = PresenceTracker(cfg.gone_after_s, confirm=cfg.confirm_frames)
        self.frames = 0
        self.detect_s = 0.0      # detector time, summed (for doctor and the tests' figure)
        self.ended = threading.Event()  # a file that was read to its end
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ life
    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="presence", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def ms_per_frame(self) -> float:
        return 1000 * self.detect_s / self.frames if self.frames else 0.0

    # ------------------------------------------------------------------ the thread
    def run(self) -> None:
        try:
            self._run()
        except Exception as e:  # noqa: BLE001 - the kiosk goes on by sound; the journal says why
            log.error("presence stopped: %s: %s; deciding presence by sound", type(e).__name__, e)
            self.on_event(CameraLost(f"presence stopped: {type(e).__name__}"))
        finally:
            self.ended.set()

    def _run(self) -> None:
        cfg = self.cfg
        from .detector import FaceDetector, counts

        if self.detector is None:
            self.detector = FaceDetector(cfg.min_confidence)
        max_turn = cfg.max_turn if cfg.looking else None
        lost: str | None = None
        while not self._stop.is_set():
            try:
                cam = open_camera(cfg.camera, fps=cfg.fps, loop=cfg.loop_file)
            except CameraError as e:
                lost = self._lost(lost, str(e))
                if is_file_spec(cfg.camera):
                    break  # a missing file does not appear by waiting
                self._stop.wait(cfg.retry_s)
                continue
            if lost is not None:
                log.info("presence: %s works again", describe(cfg.camera))
                self.on_event(CameraBack(cam.name))
                lost = None
            try:
                while not self._stop.is_set():
                    got = cam.read()
                    if got is None:
                        break
                    t, rgb = got
                    if self.pace is not None and not self.pace(t):
                        self._stop.set()
                        break
                    t0 = time.perf_counter()
                    try:
                        n = counts(self.detector.faces(rgb), cfg.min_face, max_turn)
                    except Exception as e:  # noqa: BLE001 - a frame the detector chokes on is skipped
                        log.debug("presence: a frame was not analysed: %s", type(e).__name__)
                        n = 0
                    del rgb  # the frame ends here
                    self.detect_s += time.perf_counter() - t0
                    self.frames += 1
                    for ev in self.tracker.update(t, n):
                        self.on_event(ev)
                    if self.on_frame is not None:
                        self.on_frame(t)
            finally:
                cam.close()
            if self._stop.is_set():
                break
            if is_file_spec(cfg.camera):
                break  # the file is over: the scene stays as it was last seen
            lost = self._lost(lost, f"{describe(cfg.camera)} stopped giving frames (unplugged?)")
            self.tracker.reset()
            self._stop.wait(cfg.retry_s)

    def _lost(self, lost: str | None, reason: str) -> str:
        if lost is None:  # one journal line per outage, not one per retry
            log.warning("presence: %s; deciding presence by sound, retrying every %g s", reason, self.cfg.retry_s)
            self.on_event(CameraLost(reason))
        return reason
