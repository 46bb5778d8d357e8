"""Frame sources for presence: a V4L2 USB camera through OpenCV, or a video file standing in for
one (tests, demos). Each ``read()`` gives ``(t, rgb)``: the camera's time in seconds and the frame,
or None when there is no frame (a device gone, a file at its end).

A file's time is its own (frame index / the file's fps, continuing across loops), so the kiosk can
play it on its audio clock: ten minutes of a looped file analyse in seconds when nothing waits.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np


class CameraError(RuntimeError):
    """The camera (or file) cannot be opened or read; the message says which and why."""


def describe(spec: str) -> str:
    return f"video file {spec}" if is_file_spec(spec) else f"camera {spec}"


def is_file_spec(spec: str) -> bool:
    return not (re.fullmatch(r"\d+", spec) or spec.startswith("/dev/"))


def open_camera(spec: str, *, fps: float, width: int = 640, height: int = 480, loop: bool = False):
    """The source ``spec`` names: a device index ("0"), a device path ("/dev/video0"), or a file."""
    if is_file_spec(spec):
        return VideoFileCamera(Path(spec), fps=fps, loop=loop)
    return DeviceCamera(spec, fps=fps, width=width, height=height)


class VideoFileCamera:
    """A video file as the camera, analysed at ``fps`` of its own time (frames between are skipped)."""

    def __init__(self, path: Path, *, fps: float, loop: bool = False) -> None:
        import cv2

        self.cv2 = cv2
        if not path.is_file():
            raise CameraError(f"presence.camera: no such video file {path}")
        self.path, self.loop, self.step = path, loop, 1.0 / fps
        self.cap = cv2.VideoCapture(str(path))
        if not self.cap.isOpened():
            raise CameraError(f"presence.camera: OpenCV cannot read the video file {path}")
        self.file_fps = self.cap.get(cv2.CAP_PROP_FPS) or 25.0
        self.name = path.name
        self._index = 0          # frames decoded so far, over all loops
        self._next_t = 0.0

    def read(self) -> tuple[float, np.ndarray] | None:
        while True:
            ok = self.cap.grab()
            if not ok:
                if not self.loop or self._index == 0:
                    return None
                self.cap.set(self.cv2.CAP_PROP_POS_FRAMES, 0)  # the file again, its time going on
                continue
            t = self._index / self.file_fps
            self._index += 1
            if t + 1e-9 < self._next_t:
                continue  # between analysed frames: grabbed, never decoded
            ok, bgr = self.cap.retrieve()
            if not ok:
                return None
            self._next_t = t + self.step
            return t, self.cv2.cvtColor(bgr, self.cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        self.cap.release()


class DeviceCamera:
    """A USB camera (V4L2) read with OpenCV; time is the monotonic clock."""

    def __init__(self, spec: str, *, fps: float, width: int, height: int) -> None:
        import cv2

        self.cv2 = cv2
        index: int | str = int(spec) if spec.isdigit() else spec
        if isinstance(index, str) and not Path(index).exists():
            raise CameraError(f"presence.camera: {index} does not exist (is the camera plugged in?)")
        self.cap = cv2.VideoCapture(index, cv2.CAP_V4L2)
        if not self.cap.isOpened():
            raise CameraError(f"presence.camera: cannot open {spec} (in use by another program, or no access: "
                              "the service needs the video group)")
        self.cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        self.cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        self.cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the newest frame, not one queued seconds ago
        self.name = spec
        self.step = 1.0 / fps
        self._next = 0.0

    def read(self) -> tuple[float, np.ndarray] | None:
        wait = self._next - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        ok, bgr = self.cap.read()
        t = time.monotonic()
        self._next = t + self.step
        if not ok or bgr is None:
            return None
        return t, self.cv2.cvtColor(bgr, self.cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        self.cap.release()
