"""``avatar-kiosk bench --face``: the face animator's milliseconds per frame on one thread.

Public API::

    run(settings: Settings, args: argparse.Namespace) -> int
        # prints ms/frame p50/p99 and FPS; 0 when the mean rate meets face.fps, else 1.
        # args may carry: frames (int, default 300), json (Path: also write the figures there,
        # under the key "face").
    measure(animator, frames: int = 300, fps: int = 25) -> dict
        # {"frames", "p50_ms", "p99_ms", "mean_ms", "max_ms", "fps", "talking_p50_ms", "talking_p99_ms"}

The face is the active profile's photo when there is one (``face_photo`` in its profile.json), else the
public-domain astronaut portrait from scikit-image; the rig comes from the cache like on the box.
Frames alternate between talking (a syllable-rate mouth pattern) and idle, with the animator's own
blinks, gaze and sway, so the figure includes the expensive frames (mouth open and blinking).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from ..messages import MouthPose
from ..profile import Profile


def _photo(settings) -> Path:
    """The active profile's face photo (``face_photo`` in its profile.json, else photo.*),
    else the astronaut portrait written once into the cache."""
    photo = Profile(settings.paths.current_profile).face_photo
    if photo is not None:
        return photo
    path = Path(settings.paths.cache_dir) / "face-bench" / "astronaut.png"
    if not path.exists():
        import cv2
        from skimage import data

        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), data.astronaut()[:, :, ::-1])
    return path


def measure(animator, frames: int = 300, fps: int = 25) -> dict:
    import cv2

    cv2.setNumThreads(1)
    for k in range(10):  # warm-up
        animator.frame(k / fps, MouthPose(0.5, 0.3))
    times, talking_ms = [], []
    for k in range(frames):
        t = k / fps
        talking = (k // (4 * fps)) % 2 == 0
        pose = MouthPose(abs(math.sin(t * 2 * math.pi * 2.2)) * 0.8, 0.4 * abs(math.cos(t * 3.1))) if talking \
            else MouthPose()
        t0 = time.perf_counter()
        animator.frame(t, pose)
        times.append(time.perf_counter() - t0)
        if talking:
            talking_ms.append(times[-1] * 1e3)
    ms = np.array(times) * 1e3
    talk = np.array(talking_ms or [0.0])
    return {"frames": frames, "p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p99_ms": round(float(np.percentile(ms, 99)), 2), "mean_ms": round(float(ms.mean()), 2),
            "max_ms": round(float(ms.max()), 2), "fps": round(float(1000.0 / ms.mean()), 1),
            "talking_p50_ms": round(float(np.percentile(talk, 50)), 2),
            "talking_p99_ms": round(float(np.percentile(talk, 99)), 2)}


def run(settings, args) -> int:
    import cv2

    from ..face.animator import MeshWarpAnimator
    from ..face.rig import load_or_build_rig

    cv2.setNumThreads(1)
    face_cfg = settings.config.face
    photo = _photo(settings)
    t0 = time.perf_counter()
    rig = load_or_build_rig(photo, Path(settings.paths.cache_dir), face_cfg.size)
    rig_s = time.perf_counter() - t0
    animator = MeshWarpAnimator(rig, size=face_cfg.size, seed=0)
    figures = measure(animator, int(getattr(args, "frames", 0) or 300), face_cfg.fps)
    figures.update({"engine": "mesh-warp", "size": face_cfg.size, "target_fps": face_cfg.fps,
                    "rig_s": round(rig_s, 2), "photo": str(photo), "threads": 1})
    ok = figures["fps"] >= face_cfg.fps
    print(f"face bench: mesh-warp {face_cfg.size}x{face_cfg.size}, {figures['frames']} frames, 1 thread "
          f"(rig {rig_s:.2f} s from {photo.name})")
    print(f"  ms/frame  p50 {figures['p50_ms']:.2f}   p99 {figures['p99_ms']:.2f}   mean {figures['mean_ms']:.2f}"
          f"   max {figures['max_ms']:.2f}")
    print(f"  talking frames only: p50 {figures['talking_p50_ms']:.2f}   p99 {figures['talking_p99_ms']:.2f}")
    print(f"  {figures['fps']:.1f} FPS  (target >= {face_cfg.fps}: {'ok' if ok else 'TOO SLOW'})")
    out = getattr(args, "json", None)
    if out:
        Path(out).write_text(json.dumps({"face": figures}, indent=2) + "\n", encoding="utf-8")
    return 0 if ok else 1
