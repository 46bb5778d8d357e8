"""A face rig: one photo turned, once per profile, into everything the animator needs per frame.

Public API::

    load_image(path: Path) -> np.ndarray                      # HxWx3 uint8 RGB; raises FaceError (.landmarks)
    build_rig(image_rgb: np.ndarray, size: int = 512) -> FaceRig   # raises FaceError
    load_or_build_rig(photo_path: Path, cache_dir: Path, size: int = 512) -> FaceRig
        # cached as <cache_dir>/face-rigs/<sha256 of the photo>-<size>-v<RIG_VERSION>.npz
    FaceManager(cache_dir, size).load(photo_path) -> FaceRig   # raises FaceError; .rig keeps the last good one
    FaceRig.save(path) / FaceRig.load(path)

The landmarks come from :mod:`.landmarks` (mediapipe's 478-point face mesh, with the iris centres,
so alignment and gaze use the pupils, and dense lip and eyelid contours for the mouth and blinks).

What the rig holds (all in "canvas" pixels: the aligned portrait of ``size`` plus a margin on each
side, so the animator's head sway never shows an edge):

* the aligned, cropped photo: eyes level, the eye midpoint at 40 % height, eye distance 22 %;
* the 478 landmarks and a triangle mesh (Delaunay over the landmarks plus fixed anchors on the
  frame) covering face, jaw, lips, mouth interior and eyes;
* precomputed dense displacement fields, one per control parameter, over two small regions:
  - the eyes: blink left/right (at four levels, blended per frame) and gaze x/y, each the exact
    inverse of a piecewise-affine warp of the mesh (displacements interpolated over the moved
    triangles), so a closing lid really hides the eyeball;
  - the lower face: jaw open and lip width, smooth analytic fields anchored on the mesh's lip
    contours. The jaw field has an *upper* and a *lower* sheet split at the lips' seam, because
    a mesh cannot tear open: the animator inverts each sheet and shows the mouth interior where
    neither covers a pixel.
  Every field is zero on its region's border (feathered), so the warped regions join the
  untouched photo without a seam.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .errors import FaceError, ImageUnreadableError
from .landmarks import MAX_FILE_BYTES, as_rgb, find_landmarks, load_image

log = logging.getLogger(__name__)

RIG_VERSION = 7
BLINK_LEVELS = (0.25, 0.5, 0.75, 1.0)  # exact inverse fields per blink level, blended
MARGIN = 0.06             # canvas margin per side, fraction of size
EYE_Y = 0.40              # eye midpoint height in the portrait, fraction of size
IOD = 0.22                # distance between the pupils, fraction of size

# mediapipe face-mesh indices
LIPS_UPPER_INNER = [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308]
LIPS_LOWER_INNER = [78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308]
LIPS_OUTER = [61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146]
FACE_OVAL = [10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
             152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109]
# eyes, ordered from the outer to the inner corner (image left eye first = the person's right eye)
EYES = {
    "r": {"upper": [33, 246, 161, 160, 159, 158, 157, 173, 133],
          "lower": [33, 7, 163, 144, 145, 153, 154, 155, 133],
          "upper1": [247, 30, 29, 27, 28, 56, 190], "upper2": [113, 225, 224, 223, 222, 221, 189],
          "brow": [70, 63, 105, 66, 107, 55, 65, 52, 53, 46], "iris": [468, 469, 470, 471, 472]},
    "l": {"upper": [263, 466, 388, 387, 386, 385, 384, 398, 362],
          "lower": [263, 249, 390, 373, 374, 380, 381, 382, 362],
          "upper1": [467, 260, 259, 257, 258, 286, 414], "upper2": [342, 445, 444, 443, 442, 441, 413],
          "brow": [300, 293, 334, 296, 336, 285, 295, 282, 283, 276], "iris": [473, 474, 475, 476, 477]},
}


@dataclass
class FaceRig:
    """Everything derived from one photo. Coordinates are canvas pixels (portrait + margin)."""

    size: int                      # side of the portrait the rig was built for
    margin: int                    # canvas margin per side; canvas side = size + 2 * margin
    image: np.ndarray              # canvas, uint8 RGB
    landmarks: np.ndarray          # (478, 2) float32, canvas pixels
    triangles: np.ndarray          # (T, 3) int32 into mesh_points
    mesh_points: np.ndarray        # (478 + anchors, 2) float32
    mouth_roi: tuple[int, int, int, int]   # x0, y0, x1, y1 (canvas)
    eye_roi: tuple[int, int, int, int]
    fields: dict[str, np.ndarray]  # name -> (h, w, 2) float32 displacement (forward, pixels)
    seam: np.ndarray               # (mouth roi width,) lips' seam y, mouth-roi-local
    gap_top: np.ndarray            # (w,) upper-lip edge displacement at open = 1 (<= 0)
    gap_bottom: np.ndarray         # (w,) lower-lip edge displacement at open = 1 (>= 0)
    mouth_u: np.ndarray            # (w,) lateral coordinate across the mouth, -1 … 1 at the corners
    meta: dict = field(default_factory=dict)   # teeth_hint, iod, photo transform, …

    @property
    def canvas(self) -> int:
        return self.size + 2 * self.margin

    def region(self, name: str) -> tuple[int, int, int, int]:
        """A named region in portrait pixels (x0, y0, x1, y1): mouth, lower_face, eye_l, eye_r, eyes."""
        m = self.margin
        if name == "lower_face":
            x0, y0, x1, y1 = self.mouth_roi
        elif name == "eyes":
            x0, y0, x1, y1 = self.eye_roi
        elif name == "mouth":
            pts = self.landmarks[LIPS_OUTER]
            x0, y0 = pts.min(0)
            x1, y1 = pts.max(0)
        elif name in ("eye_l", "eye_r"):
            e = EYES[name[-1]]
            pts = self.landmarks[e["upper"] + e["lower"] + e["upper2"] + e["brow"]]
            x0, y0 = pts.min(0)
            x1, y1 = pts.max(0)
        else:
            raise KeyError(name)
        return (int(max(0, x0 - m)), int(max(0, y0 - m)), int(min(self.size, x1 - m)),
                int(min(self.size, y1 - m)))

    def portrait(self) -> np.ndarray:
        """The aligned photo, still (size x size)."""
        m = self.margin
        return self.image[m:m + self.size, m:m + self.size]

    # --- cache
    def save(self, path: Path) -> None:
        """Write atomically (temp file, fsync, rename)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.partial")
        arrays = {f"field_{k}": v for k, v in self.fields.items()}
        header = {"size": self.size, "margin": self.margin, "mouth_roi": self.mouth_roi,
                  "eye_roi": self.eye_roi, "meta": self.meta, "version": RIG_VERSION}
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, header=np.array(json.dumps(header)), image=self.image,
                                landmarks=self.landmarks, triangles=self.triangles,
                                mesh_points=self.mesh_points, seam=self.seam, gap_top=self.gap_top,
                                gap_bottom=self.gap_bottom, mouth_u=self.mouth_u, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> FaceRig:
        with np.load(path, allow_pickle=False) as z:
            header = json.loads(str(z["header"]))
            if header.get("version") != RIG_VERSION:
                raise ValueError(f"rig cache {path} has version {header.get('version')}, need {RIG_VERSION}")
            fields = {k[6:]: z[k] for k in z.files if k.startswith("field_")}
            return cls(size=header["size"], margin=header["margin"], image=z["image"],
                       landmarks=z["landmarks"], triangles=z["triangles"], mesh_points=z["mesh_points"],
                       mouth_roi=tuple(header["mouth_roi"]), eye_roi=tuple(header["eye_roi"]),
                       fields=fields, seam=z["seam"], gap_top=z["gap_top"], gap_bottom=z["gap_bottom"],
                       mouth_u=z["mouth_u"], meta=header["meta"])


# --------------------------------------------------------------------------- building the rig

def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _feather(h: int, w: int, width: float) -> np.ndarray:
    ys = np.arange(h, dtype=np.float32)[:, None]
    xs = np.arange(w, dtype=np.float32)[None, :]
    d = np.minimum(np.minimum(ys, h - 1 - ys), np.minimum(xs, w - 1 - xs))
    return _smoothstep(1.0, width, d).astype(np.float32)


def _align(image: np.ndarray, lm: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Crop and rotate so the pupils are level at a fixed place; returns canvas, landmarks, transform."""
    margin = round(MARGIN * size)
    canvas = size + 2 * margin
    eye_r, eye_l = lm[468].astype(np.float64), lm[473].astype(np.float64)
    if eye_r[0] > eye_l[0]:
        eye_r, eye_l = eye_l, eye_r
    d = eye_l - eye_r
    iod = float(np.hypot(*d))
    scale = IOD * size / iod
    angle = np.degrees(np.arctan2(d[1], d[0]))
    mid = (eye_r + eye_l) / 2
    src = image
    pre = 1.0
    if scale < 0.5:  # shrink big photos first so the final resample does not alias
        pre = min(1.0, scale * 1.5)
        src = cv2.resize(image, (round(image.shape[1] * pre), round(image.shape[0] * pre)),
                         interpolation=cv2.INTER_AREA)
    m = cv2.getRotationMatrix2D((float(mid[0] * pre), float(mid[1] * pre)), float(angle), scale / pre)
    m[0, 2] += margin + 0.5 * size - mid[0] * pre
    m[1, 2] += margin + EYE_Y * size - mid[1] * pre
    flags = cv2.INTER_CUBIC if scale / pre > 1 else cv2.INTER_LINEAR
    out = cv2.warpAffine(src, m, (canvas, canvas), flags=flags, borderMode=cv2.BORDER_REPLICATE)
    if scale / pre > 1.6:  # an upscaled small face: a gentle unsharp mask
        blur = cv2.GaussianBlur(out, (0, 0), 1.2)
        out = cv2.addWeighted(out, 1.5, blur, -0.5, 0)
    full = m.copy()
    full[:, :2] *= pre  # photo pixels -> canvas pixels
    pts = lm.astype(np.float64) @ full[:, :2].T + full[:, 2]
    return out, pts.astype(np.float32), full, margin


def _mesh(lm: np.ndarray, canvas: int) -> tuple[np.ndarray, np.ndarray]:
    from scipy.spatial import Delaunay

    edge = np.linspace(0, canvas - 1, 9)
    anchors = [(x, 0) for x in edge] + [(x, canvas - 1) for x in edge] + \
              [(0, y) for y in edge[1:-1]] + [(canvas - 1, y) for y in edge[1:-1]]
    pts = np.vstack([lm, np.array(anchors, np.float32)]).astype(np.float32)
    return pts, Delaunay(pts).simplices.astype(np.int32)


def _mouth_fields(lm: np.ndarray, canvas: int, iod: float, y_min: int) -> dict:
    """Lower-face region and its fields: jaw (upper/lower sheets) and lip width."""
    up_in, lo_in = lm[LIPS_UPPER_INNER], lm[LIPS_LOWER_INNER]
    seam_pts = (up_in + lo_in) / 2
    order = np.argsort(seam_pts[:, 0])
    seam_x, seam_y = seam_pts[order, 0], seam_pts[order, 1]
    oval = lm[FACE_OVAL]
    lower = oval[oval[:, 1] > seam_y.mean() - 0.3 * iod]
    cx = float((lm[78, 0] + lm[308, 0]) / 2)
    # wide enough that the jaw's motion has died out well inside the region
    x0 = int(max(0, min(lower[:, 0].min() - 0.25 * iod, cx - 1.7 * iod)))
    x1 = int(min(canvas, max(lower[:, 0].max() + 0.25 * iod, cx + 1.7 * iod)))
    y0 = int(max(y_min, seam_y.min() - 0.75 * iod))
    y1 = canvas
    h, w = y1 - y0, x1 - x0
    xs = np.arange(x0, x1, dtype=np.float32)
    ys = np.arange(y0, y1, dtype=np.float32)[:, None]
    seam = np.interp(xs, seam_x, seam_y).astype(np.float32)          # canvas y per column
    half = float(abs(lm[308, 0] - lm[78, 0]) / 2 + 0.04 * iod)
    u = (xs - cx) / half
    c = np.clip(1 - u * u, 0, 1) ** 0.6                                  # opening profile across the mouth
    g = np.exp(-(np.abs((xs - cx) / (0.5 * iod)) / 1.6) ** 3)            # how much of the jaw moves
    chin_y = float(lm[152, 1])
    fade_end = min(chin_y + 0.9 * iod, y1 - 0.12 * iod)
    fade = 1 - _smoothstep(chin_y - 0.05 * iod, fade_end, ys)
    below = ys - seam[None, :]                                           # + below the seam
    drop = 0.30 * iod
    up = 0.1 * drop
    s = _smoothstep(0, 0.9 * iod, np.maximum(below, 0))  # gentle: the warp must never fold
    jaw_low_y = ((1 - s) * c + s * g) * fade * drop
    k = 1 - _smoothstep(0, 0.35 * iod, np.maximum(-below, 0))
    jaw_up_y = -up * c * k * np.ones_like(below)
    mw = float(abs(lm[291, 0] - lm[61, 0]))
    um = (xs - cx) / (mw / 2)
    hu = np.where(np.abs(um) <= 1, um, np.sign(um) * np.exp(-((np.abs(um) - 1) / 0.7) ** 2))
    q = np.exp(-(below / (0.45 * iod)) ** 2)
    width_x = 0.09 * mw * hu[None, :] * q
    width_y = -0.02 * iod * np.abs(hu)[None, :] * q * np.exp(-(below / (0.15 * iod)) ** 2)
    feather = _feather(h, w, 0.2 * iod)
    zeros = np.zeros((h, w), np.float32)

    def pack(fx: np.ndarray, fy: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.dstack([fx * feather, fy * feather]).astype(np.float32))

    fields = {"jaw_low": pack(zeros, jaw_low_y), "jaw_up": pack(zeros, jaw_up_y), "width": pack(width_x, width_y),
              "close": pack(zeros, _closing_field(up_in, lo_in, xs, ys, iod))}
    col = np.clip(np.round(seam - y0).astype(int), 0, h - 1)
    ix = np.arange(w)
    return {"roi": (x0, y0, x1, y1), "fields": fields, "seam": (seam - y0).astype(np.float32),
            "gap_top": fields["jaw_up"][col, ix, 1].copy(), "gap_bottom": fields["jaw_low"][col, ix, 1].copy(),
            "u": u.astype(np.float32)}


def _closing_field(up_in: np.ndarray, lo_in: np.ndarray, xs: np.ndarray, ys: np.ndarray, iod: float) -> np.ndarray:
    """The lips pressed together (м/п/б), as an *inverse* map's vertical offsets: output pixel y
    samples the photo at y + F(y). Per column, the upper lip and the skin above it stretch down
    to the middle of the gap and the lower lip and the skin below stretch up to it, covering
    whatever the gap shows (a smile's teeth). Where the photo's lips already meet (gap 0, and
    beyond the mouth's corners) it is zero, so a closed-mouth photo is left as it is."""
    def line(pts: np.ndarray) -> np.ndarray:
        order = np.argsort(pts[:, 0])
        return np.interp(xs, pts[order, 0], pts[order, 1]).astype(np.float32)
    upper, lower = line(up_in), line(lo_in)
    lower = np.maximum(lower, upper)
    mid = (upper + lower) / 2
    top, bottom = upper - 0.30 * iod, lower + 0.40 * iod   # how far the stretch reaches
    y = np.broadcast_to(ys, (len(ys), len(xs)))
    src = y.copy()
    up = (y >= top) & (y < mid)
    k = (upper - top) / np.maximum(mid - top, 1e-3)
    src = np.where(up, top + (y - top) * k, src)
    lo = (y >= mid) & (y <= bottom)
    k = (bottom - lower) / np.maximum(bottom - mid, 1e-3)
    src = np.where(lo, bottom - (bottom - y) * k, src)
    return (src - y).astype(np.float32)


def _eye_fields(lm: np.ndarray, canvas: int, iod: float) -> dict:
    """Eye region and its fields: blink per eye (lids meet), gaze x/y (irises move)."""
    from scipy.interpolate import LinearNDInterpolator

    sets = [EYES["r"], EYES["l"]]
    allpts = np.vstack([lm[e["upper"] + e["lower"] + e["upper2"] + e["brow"]] for e in sets])
    x0 = int(max(0, allpts[:, 0].min() - 0.25 * iod))
    x1 = int(min(canvas, allpts[:, 0].max() + 0.25 * iod))
    y0 = int(max(0, allpts[:, 1].min() - 0.12 * iod))
    y1 = int(min(canvas, max(lm[e["lower"]][:, 1].max() for e in sets) + 0.3 * iod))
    h, w = y1 - y0, x1 - x0
    iris = set(EYES["r"]["iris"] + EYES["l"]["iris"])
    inside = [i for i in range(len(lm)) if i not in iris and x0 < lm[i, 0] < x1 - 1 and y0 < lm[i, 1] < y1 - 1]
    border = [(x, y0) for x in np.linspace(x0, x1 - 1, 24)] + [(x, y1 - 1) for x in np.linspace(x0, x1 - 1, 24)] + \
             [(x0, y) for y in np.linspace(y0, y1 - 1, 8)[1:-1]] + [(x1 - 1, y) for y in np.linspace(y0, y1 - 1, 8)[1:-1]]
    border = np.array(border, np.float32)
    gy, gx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    feather = _feather(h, w, 0.06 * iod)

    def dense_inverse(idx: list[int], disp: np.ndarray, blur: float) -> np.ndarray:
        """The exact inverse of a piecewise-affine warp: each point's displacement interpolated
        over the triangles of the *moved* mesh, so output pixel p samples the photo at p - D(p).
        (Inverting a forward field by iteration fails where a closing lid squeezes the eyeball
        to nothing — a sliver of eye would shine through the blink; this cannot.)"""
        pts = np.vstack([lm[idx] + disp, border])
        vals = np.vstack([disp, np.zeros((len(border), 2), np.float32)])
        f = LinearNDInterpolator(pts, vals, fill_value=0.0)(gx, gy).astype(np.float32)
        if blur > 0:
            f = cv2.GaussianBlur(f, (0, 0), blur)
        return np.ascontiguousarray(f * feather[..., None])

    fields = {}
    for name, e in (("blink_r", EYES["r"]), ("blink_l", EYES["l"])):
        upper, lower = lm[e["upper"]], lm[e["lower"]]
        # the traced lower contour runs a little inside the eye: the lids meet just below it,
        # or a sliver of white shows under the closed lid
        extra = 0.22 * float(np.max(lower[:, 1] - upper[:, 1]))
        taper = np.sin(np.pi * np.arange(1, len(e["upper"]) - 1) / (len(e["upper"]) - 1))
        lid_x, lid_dy = upper[1:-1, 0], lower[1:-1, 1] - upper[1:-1, 1] + extra * taper - 0.3
        for level in BLINK_LEVELS:
            disp = {i: np.zeros(2, np.float32) for i in inside}
            for k in range(1, len(e["upper"]) - 1):
                d = lower[k] - upper[k]
                sink = np.array([0.0, extra * np.sin(np.pi * k / (len(e["upper"]) - 1))], np.float32)
                # 0.3 px apart where they meet, so the moved mesh stays a valid triangulation
                disp[e["upper"][k]] = level * (d + sink - np.array([0.0, 0.3], np.float32))
                disp[e["lower"][k]] = level * sink
            # the lash band above the margin comes down whole (stretching it smears the lashes);
            # the plain skin between the crease and the brow stretches instead
            order = np.argsort(lid_x)   # np.interp needs increasing x (the left eye runs backwards)
            for ring, share in (("upper1", 1.0), ("upper2", 0.55), ("brow", 0.12)):
                for i in e[ring]:
                    dy = np.interp(lm[i, 0], lid_x[order], lid_dy[order])
                    disp[i] = np.array([0.0, level * share * dy], np.float32)
            idx = list(disp)
            fields[f"{name}_{round(level * 100)}"] = dense_inverse(
                idx, np.array([disp[i] for i in idx], np.float32), 0.4)  # more blur smears the eyeball back in
    eye_w = float(np.mean([abs(lm[e["upper"][0], 0] - lm[e["upper"][-1], 0]) for e in sets]))
    contour = sorted({i for e in sets for i in e["upper"] + e["lower"] + e["upper1"] + e["upper2"]})
    moving = EYES["r"]["iris"] + EYES["l"]["iris"]
    for name, vec in (("gaze_x", (0.13 * eye_w, 0.0)), ("gaze_y", (0.0, 0.05 * eye_w))):
        idx = contour + moving
        disp = np.zeros((len(idx), 2), np.float32)
        disp[len(contour):] = vec
        fields[name] = dense_inverse(idx, disp, 0.012 * iod)
    return {"roi": (x0, y0, x1, y1), "fields": fields}


def build_rig(image_rgb: np.ndarray, size: int = 512) -> FaceRig:
    """Find the one face, align it into a ``size`` portrait and precompute its animation fields."""
    image = as_rgb(image_rgb)
    lm_photo = find_landmarks(image)
    canvas_img, lm, transform, margin = _align(image, lm_photo, size)
    canvas = size + 2 * margin
    iod = IOD * size
    eyes = _eye_fields(lm, canvas, iod)
    mouth = _mouth_fields(lm, canvas, iod, y_min=eyes["roi"][3])
    mesh_points, triangles = _mesh(lm, canvas)
    gap0 = float(np.hypot(*(lm[13] - lm[14]))) / iod
    meta = {"iod": iod, "teeth_hint": float(np.clip(1 - gap0 / 0.05, 0, 1)), "rest_gap": gap0,
            "photo_to_canvas": transform.tolist(), "photo_size": [int(image.shape[1]), int(image.shape[0])]}
    fields = {**eyes["fields"], **mouth["fields"]}
    return FaceRig(size=size, margin=margin, image=canvas_img, landmarks=lm, triangles=triangles,
                   mesh_points=mesh_points, mouth_roi=mouth["roi"], eye_roi=eyes["roi"], fields=fields,
                   seam=mouth["seam"], gap_top=mouth["gap_top"], gap_bottom=mouth["gap_bottom"],
                   mouth_u=mouth["u"], meta=meta)


def rig_cache_path(photo_path: Path, cache_dir: Path, size: int = 512) -> Path:
    digest = hashlib.sha256(Path(photo_path).read_bytes()).hexdigest()
    return Path(cache_dir) / "face-rigs" / f"{digest}-{size}-v{RIG_VERSION}.npz"


def load_or_build_rig(photo_path: Path, cache_dir: Path, size: int = 512) -> FaceRig:
    """The rig for this photo from the cache (keyed by the photo's sha256), building it on a miss."""
    photo_path = Path(photo_path)
    if not photo_path.is_file():
        raise ImageUnreadableError(f"The photo file {photo_path.name} is missing — put the portrait photo in the bundle.")
    if photo_path.stat().st_size > MAX_FILE_BYTES:
        load_image(photo_path)  # raises ImageTooLargeError with the right words
    cached = rig_cache_path(photo_path, cache_dir, size)
    if cached.is_file():
        try:
            return FaceRig.load(cached)
        except Exception as e:  # a damaged or old cache file is rebuilt, never fatal
            log.warning("face rig cache %s unusable (%s); rebuilding", cached, e)
    rig = build_rig(load_image(photo_path), size)
    try:
        rig.save(cached)
    except OSError as e:
        log.warning("could not cache the face rig at %s: %s", cached, e)
    return rig


class FaceManager:
    """Keeps the last good face: a new photo that fails leaves the current rig in place.

    ``load(photo_path)`` returns the new rig or raises the FaceError (also kept in ``last_error``);
    ``rig`` is always the last rig that loaded (None before the first success).
    """

    def __init__(self, cache_dir: Path, size: int = 512) -> None:
        self.cache_dir = Path(cache_dir)
        self.size = size
        self.rig: FaceRig | None = None
        self.photo: Path | None = None
        self.last_error: FaceError | None = None

    def load(self, photo_path: Path) -> FaceRig:
        try:
            rig = load_or_build_rig(photo_path, self.cache_dir, self.size)
        except FaceError as e:
            self.last_error = e
            log.warning("face photo %s rejected (%s): %s; keeping the previous face", photo_path, e.code, e)
            raise
        self.rig, self.photo, self.last_error = rig, Path(photo_path), None
        return rig
