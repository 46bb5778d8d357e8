"""Real-ESRGAN ×4 through plain ncnn on the CPU (model id ``realesrgan-x4plus-ncnn``), tiled.

Used once at provisioning time when the face in the photo is small (see :func:`enhance_photo`), so the
face animator gets detail instead of blur. Never run per frame.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

MODEL_ID = "realesrgan-x4plus-ncnn"
SCALE = 4
TILE = 128
PAD = 8
MAX_INPUT = 128  # the face square is scaled down to at most this before ×4 (bounds the time on a CPU)


def load_net(model_dir: Path, threads: int = 2):
    import ncnn

    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.num_threads = threads
    if net.load_param(str(model_dir / "realesrgan-x4plus.param")) != 0 or \
            net.load_model(str(model_dir / "realesrgan-x4plus.bin")) != 0:
        raise RuntimeError(f"cannot load Real-ESRGAN from {model_dir}")
    return net


def upscale(net, rgb: np.ndarray, tile: int = TILE, pad: int = PAD) -> np.ndarray:
    """H×W×3 uint8 -> 4H×4W×3 uint8, in overlapping tiles (each tile padded by ``pad`` pixels of context)."""
    import ncnn

    h, w = rgb.shape[:2]
    src = rgb.astype(np.float32) / 255.0
    out = np.zeros((h * SCALE, w * SCALE, 3), np.float32)
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            y1, x1 = min(h, y0 + tile), min(w, x0 + tile)
            py0, px0, py1, px1 = max(0, y0 - pad), max(0, x0 - pad), min(h, y1 + pad), min(w, x1 + pad)
            patch = np.ascontiguousarray(src[py0:py1, px0:px1].transpose(2, 0, 1))
            ex = net.create_extractor()
            mat = ncnn.Mat(patch)  # wraps ``patch``'s memory: both must live until extract() returns
            ex.input("data", mat)
            ret, res = ex.extract("output")
            if ret != 0:
                raise RuntimeError(f"Real-ESRGAN failed on a tile (ncnn error {ret})")
            res = np.array(res).transpose(1, 2, 0)
            oy, ox = (y0 - py0) * SCALE, (x0 - px0) * SCALE
            out[y0 * SCALE:y1 * SCALE, x0 * SCALE:x1 * SCALE] = res[oy:oy + (y1 - y0) * SCALE,
                                                                    ox:ox + (x1 - x0) * SCALE]
    return (np.clip(out, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def enhance_photo(rgb: np.ndarray, face_box: tuple[int, int, int, int], model_dir: Path,
                  target_face_px: int = 240) -> np.ndarray:
    """The whole photo scaled up so the face is about ``target_face_px`` wide (×1…×4): bicubic for the
    photo, Real-ESRGAN for the square around the face, blended in with a feathered edge.

    Only the face square goes through the network (its input capped at ``MAX_INPUT`` px), which keeps
    the cost to a few seconds on two cores while the detail lands where the animator needs it."""
    import cv2

    x, y, w, h = face_box
    H, W = rgb.shape[:2]
    k = float(np.clip(target_face_px / max(w, 1), 1.0, SCALE))
    out = cv2.resize(rgb, (round(W * k), round(H * k)), interpolation=cv2.INTER_CUBIC)
    side = int(min(max(w, h) * 1.5, H, W))
    left = min(max(0, x + w // 2 - side // 2), W - side)
    top = min(max(0, y + h // 2 - side // 2), H - side)
    crop = rgb[top:top + side, left:left + side]
    if side > MAX_INPUT:
        crop = cv2.resize(crop, (MAX_INPUT, MAX_INPUT), interpolation=cv2.INTER_AREA)
    sr = upscale(load_net(model_dir), np.ascontiguousarray(crop))
    ox, oy, os_ = round(left * k), round(top * k), round(side * k)
    os_ = min(os_, out.shape[0] - oy, out.shape[1] - ox)
    sr = cv2.resize(sr, (os_, os_), interpolation=cv2.INTER_AREA if sr.shape[0] > os_ else cv2.INTER_CUBIC)
    # feathered square mask: 1 inside, falling to 0 over the outer 12 % of each side
    ramp = np.clip(np.minimum(np.arange(os_), np.arange(os_)[::-1]) / max(1.0, 0.12 * os_), 0.0, 1.0)
    mask = (ramp[:, None] * ramp[None, :])[..., None]
    region = out[oy:oy + os_, ox:ox + os_].astype(np.float32)
    out[oy:oy + os_, ox:ox + os_] = (mask * sr + (1 - mask) * region + 0.5).astype(np.uint8)
    return out
