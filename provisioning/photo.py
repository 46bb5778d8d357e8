"""Photo checks: the file decodes, its size is sane, and it shows exactly one face big enough.

Faces are counted with mediapipe's full-range face detector. Its input is 192×192, so a face under
~7 % of the photo's width goes unseen; when the whole photo shows no face, the photo is searched
again in overlapping 512-px tiles, so a small face is reported as *too small* (which the installer
can fix by cropping) rather than as *no face*.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ProvisionError

MIN_SIDE = 256            # shortest side of the photo, px
MAX_PIXELS = 40_000_000   # refuse decompression bombs before decoding
MIN_FACE_PX = 64          # face box width below this: refused (too little detail even after enhancing)
ENHANCE_BELOW_PX = 160    # face box width below this: Real-ESRGAN enhances the face at derive time
DETECT_MAX_SIDE = 2048    # photos are scaled down to this for detection
TILE = 512


@dataclass(frozen=True)
class Face:
    x: int
    y: int
    w: int
    h: int
    score: float


@dataclass(frozen=True)
class PhotoCheck:
    width: int
    height: int
    face: Face

    @property
    def needs_enhance(self) -> bool:
        return self.face.w < ENHANCE_BELOW_PX


def _bad(code: str, msg: str) -> ProvisionError:
    return ProvisionError(code, msg, step="validate")


def load_rgb(path: Path) -> np.ndarray:
    """Decode a JPEG/PNG into H×W×3 uint8 RGB (EXIF rotation applied), refusing huge or broken files."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if im.format not in ("JPEG", "PNG", "MPO"):
                raise _bad("photo-format", f"{path.name} is a {im.format} image — use a JPEG or PNG photo")
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise _bad("photo-too-large", f"The photo is {w}×{h} pixels — use one under "
                           f"{MAX_PIXELS // 1_000_000} megapixels")
            im = ImageOps.exif_transpose(im)
            rgb = np.asarray(im.convert("RGB"))
    except ProvisionError:
        raise
    except Image.DecompressionBombError as e:  # refused by Pillow before it told us the size: read it off
        m = re.search(r"\((\d+) pixels\)", str(e))
        size = f"{int(m[1]) // 1_000_000} megapixels" if m else "hundreds of megapixels"
        raise _bad("photo-too-large", f"The photo is {size} — use one under {MAX_PIXELS // 1_000_000} "
                   "megapixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise _bad("photo-unreadable", f"The photo ({path.name}) cannot be opened — it is damaged or not a "
                   f"JPEG/PNG; export it again ({e.__class__.__name__})") from None
    if min(rgb.shape[:2]) < MIN_SIDE:
        raise _bad("photo-too-small", f"The photo is only {rgb.shape[1]}×{rgb.shape[0]} pixels — use one at least "
                   f"{MIN_SIDE} pixels on its shorter side")
    return np.ascontiguousarray(rgb)


def _iou(a: Face, b: Face) -> float:
    x1, y1 = max(a.x, b.x), max(a.y, b.y)
    x2, y2 = min(a.x + a.w, b.x + b.w), min(a.y + a.h, b.y + b.h)
    inter = max(0, x2 - x1) * max(0, y2 - y1)
    union = a.w * a.h + b.w * b.h - inter
    return inter / union if union else 0.0


def _run(detector, img: np.ndarray, ox: int = 0, oy: int = 0, scale: float = 1.0) -> list[Face]:
    res = detector.process(img)
    out = []
    h, w = img.shape[:2]
    for det in res.detections or []:
        bb = det.location_data.relative_bounding_box
        out.append(Face(int((ox + bb.xmin * w) / scale), int((oy + bb.ymin * h) / scale),
                        int(bb.width * w / scale), int(bb.height * h / scale), float(det.score[0])))
    return out


def detect_faces(rgb: np.ndarray) -> list[Face]:
    """Every face in the photo, in the photo's own pixel coordinates."""
    import cv2
    import mediapipe as mp

    h, w = rgb.shape[:2]
    scale = min(1.0, DETECT_MAX_SIDE / max(h, w))
    img = rgb if scale == 1.0 else cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    with mp.solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.5) as det:
        faces = _run(det, img, scale=scale)
        sh, sw = img.shape[:2]
        if not faces and max(sh, sw) > TILE * 1.5:
            faces = _tiled(det, img, scale)
        if not faces and max(h, w) * 2 <= DETECT_MAX_SIDE * 1.5:
            # Still nothing: perhaps a face too small for the detector (~40 px). Look again at twice the
            # size, so the installer hears "the face is only N pixels wide", not "no face was found".
            big = cv2.resize(rgb, (w * 2, h * 2), interpolation=cv2.INTER_CUBIC)
            faces = _tiled(det, big, 2.0) if max(h, w) * 2 > TILE * 1.5 else _run(det, big, scale=2.0)
    return faces


def _tiled(det, img: np.ndarray, scale: float) -> list[Face]:
    """Detection over overlapping tiles of ``img`` (``scale`` = img pixels per photo pixel)."""
    sh, sw = img.shape[:2]
    found: list[Face] = []
    step = TILE // 2
    for ty in range(0, max(1, sh - TILE + step), step):
        for tx in range(0, max(1, sw - TILE + step), step):
            tile = np.ascontiguousarray(img[ty:ty + TILE, tx:tx + TILE])
            if tile.shape[0] < 64 or tile.shape[1] < 64:
                continue
            found += _run(det, tile, tx, ty, scale=1.0)
    found = [Face(int(f.x / scale), int(f.y / scale), int(f.w / scale), int(f.h / scale), f.score) for f in found]
    faces: list[Face] = []
    for f in sorted(found, key=lambda f: -f.score):  # non-maximum suppression across tiles
        if all(_iou(f, g) < 0.3 for g in faces):
            faces.append(f)
    return faces


def check_photo(path: Path) -> tuple[np.ndarray, PhotoCheck]:
    rgb = load_rgb(path)
    faces = detect_faces(rgb)
    if not faces:
        raise _bad("no-face", "No face was found in the photo — use a clear, well-lit photo of one person "
                   "looking at the camera")
    if len(faces) > 1:
        n = {2: "two", 3: "three", 4: "four"}.get(len(faces), str(len(faces)))
        raise _bad("many-faces", f"The photo shows {n} faces — use a photo with one person")
    face = faces[0]
    if face.w < MIN_FACE_PX:
        raise _bad("face-too-small", f"The face in the photo is only {face.w} pixels wide — crop the photo closer "
                   f"to the face or use a larger photo (the face must be at least {MIN_FACE_PX} pixels wide)")
    return rgb, PhotoCheck(width=rgb.shape[1], height=rgb.shape[0], face=face)
