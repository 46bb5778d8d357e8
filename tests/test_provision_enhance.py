"""Real-ESRGAN ×4 through plain ncnn on the CPU, tiled."""

from __future__ import annotations

import cv2
import numpy as np
from support import bundles as T

from provisioning import enhance


def test_tiled_upscale_matches_the_whole_image_and_the_photo(models_dir):
    net = enhance.load_net(models_dir / enhance.MODEL_ID)
    crop = np.ascontiguousarray(T.astronaut()[80:112, 200:232])  # 32×32 around an eye
    whole = enhance.upscale(net, crop, tile=64)
    tiled = enhance.upscale(net, crop, tile=16, pad=8)
    assert whole.shape == tiled.shape == (128, 128, 3)
    assert np.abs(whole.astype(int) - tiled.astype(int)).mean() < 3.0  # no visible seams
    bicubic = cv2.resize(crop, (128, 128), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    corr = np.corrcoef(whole.astype(np.float32).ravel(), bicubic.ravel())[0, 1]
    assert corr > 0.9  # the same picture, sharper


def test_enhance_photo_scales_the_face_to_the_target(models_dir, monkeypatch):
    monkeypatch.setattr(enhance, "MAX_INPUT", 48)  # keep the network's work small in the test
    img = T.astronaut()
    out = enhance.enhance_photo(img, (174, 68, 104, 104), models_dir / enhance.MODEL_ID, target_face_px=208)
    assert out.shape == (1024, 1024, 3)
    small = cv2.resize(out, (512, 512), interpolation=cv2.INTER_AREA).astype(np.float32)
    assert np.abs(small - img.astype(np.float32)).mean() < 8.0  # the face blended in, nothing shifted
