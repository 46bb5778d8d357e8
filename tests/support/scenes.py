"""Video files that stand in for the presence camera: a packaged photo (skimage's astronaut, the
only packaged photo of a person at hand: LFW needs a download) composited on an empty, slightly
noisy hall, scene by scene — nobody, someone far off, someone close and looking, gone."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

W, H = 640, 480


@functools.cache
def hall() -> np.ndarray:
    """An empty scene: a wall, a floor, a door; a little sensor noise per frame is added later."""
    img = np.zeros((H, W, 3), np.uint8)
    img[:] = np.linspace(150, 110, H, dtype=np.uint8)[:, None, None]
    img[int(H * 0.7):] = (92, 84, 76)
    img[120:int(H * 0.7), 470:560] = (70, 60, 52)
    return img


@functools.cache
def visitor(mirror: bool = False) -> np.ndarray:
    """Head and shoulders of the astronaut (mirrored: another visitor)."""
    from skimage.data import astronaut

    img = astronaut()[0:330, 50:350]
    return img[:, ::-1].copy() if mirror else img


def frame(kind: str, rng: np.random.Generator, mirror: bool = False) -> np.ndarray:
    """``empty``; ``far`` (a small face across the hall: not close enough); ``close`` (in front of
    the screen, looking at it)."""

    img = _still(kind, mirror).astype(np.int16)
    img += rng.integers(-4, 5, img.shape, dtype=np.int16)
    return np.clip(img, 0, 255).astype(np.uint8)


@functools.cache
def _still(kind: str, mirror: bool) -> np.ndarray:
    """The scene without its noise (read-only: callers copy it), composed once per kind."""
    import cv2

    img = hall().copy()
    if kind != "empty":
        person = visitor(mirror)
        width = {"far": 110, "close": 330}[kind]
        height = int(person.shape[0] * width / person.shape[1])
        small = cv2.resize(person, (width, height), interpolation=cv2.INTER_AREA)
        x, y = (W - width) // 2, H - height if kind == "close" else 150
        img[y:y + height, x:x + width] = small
    img.flags.writeable = False
    return img


def write_scene(path: Path, scenes: list[tuple[str, float]], fps: float = 10.0, mirror_after: int = -1) -> Path:
    """Write ``scenes`` ([(kind, seconds)]) as an MJPEG AVI at ``fps``; scenes from index
    ``mirror_after`` on show the other visitor."""
    import cv2

    rng = np.random.default_rng(16)
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (W, H))
    if not out.isOpened():
        raise RuntimeError("OpenCV cannot write an MJPEG AVI here")
    for i, (kind, seconds) in enumerate(scenes):
        for _ in range(int(round(seconds * fps))):
            out.write(cv2.cvtColor(frame(kind, rng, mirror=0 <= mirror_after <= i), cv2.COLOR_RGB2BGR))
    out.release()
    return path


def starts(scenes: list[tuple[str, float]], kind: str) -> list[float]:
    """Video times at which scenes of ``kind`` begin."""
    t, out = 0.0, []
    for k, seconds in scenes:
        if k == kind:
            out.append(t)
        t += seconds
    return out
