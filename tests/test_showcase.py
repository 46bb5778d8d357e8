"""The kiosk app (conversation + face + screen) on one loop, headless: which face engine the
config's choice really runs, and that the reply audio drives the neural lip-sync on the speaker's
timeline. Real engines and models; the microphone is a WAV file, the speaker records, SDL is dummy."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest
from lipsync_tiny import tiny_wav2lip
from support import bundles as T
from support.runs import run_silent

from appliance import config as config_mod
from appliance import models as models_mod
from appliance.app.kiosk import KioskApp
from appliance.engines.lipsync_onnx import NeuralLipsyncAnimator
from appliance.messages import MouthPose
from appliance.paths import Settings

REPO_PERSONA = """name = "Anna"
languages = ["en"]
[greeting]
en = "Hi! I'm Anna. Ask me anything about space!"
"""


@pytest.fixture
def kiosk(settings, models_dir, manifest, tmp_path):
    """A kiosk whose models folder has the embedded models and, unless told otherwise, the lip-sync
    ONNX installed the way a USB bundle installs it (with its site pin)."""
    own = tmp_path / "models"
    own.mkdir()
    for m in manifest.for_tier("embedded"):
        if m.folder(models_dir).exists():
            (own / m.id).symlink_to(m.folder(models_dir), target_is_directory=True)
    bundle = settings.paths.demo_bundle
    bundle.mkdir(parents=True, exist_ok=True)
    (bundle / "persona.toml").write_text(REPO_PERSONA, encoding="utf-8")
    T.save_photo(T.photo("one"), bundle / "photo.png")

    def make(face_engine: str, with_model: bool = True) -> Settings:
        if with_model:
            m = manifest.get("lipsync-wav2lip-onnx")
            onnx = tiny_wav2lip(tmp_path / "stick.onnx")
            models_mod.copy_verified(onnx, m, m.files[0], own, site_sha256=models_mod.sha256_file(onnx))
        cfg = config_mod.replace(settings.config, "face", engine=face_engine)
        return Settings(cfg, dataclasses.replace(settings.paths, models_dir=own))

    return make


def run_show(settings: Settings, seconds: float = 7.0) -> KioskApp:
    return run_silent(settings, seconds)


def test_neural_lipsync_paints_the_mouth_while_the_greeting_plays(kiosk):
    show = run_show(kiosk("neural-lipsync"))
    assert isinstance(show.animator, NeuralLipsyncAnimator) and show.lipsync is show.animator
    assert show.frames > 25
    heard = show.speaker.recording()
    assert float(np.max(np.abs(heard))) > 0.05  # the greeting was spoken

    # The greeting's audio reached the lip-sync on the speaker's clock, where the recording has it.
    speech = show.lipsync.lipsync.speech
    start = min(s for s, _ in speech.segments)
    end = speech.end_s
    rate = show.speaker.rate
    voiced = np.flatnonzero(np.abs(heard) > 0.02)
    assert abs(voiced[0] / rate - start) < 0.3 and abs(voiced[-1] / rate - end) < 0.3

    x0, y0, x1, y1 = show.lipsync.face_box
    size = show.settings.config.face.size
    assert 0 <= x0 < x1 <= size and 0 <= y0 < y1 <= size and (x1 - x0) > size // 4
    t = (start + end) / 2
    base = show.animator.base.frame(t, MouthPose(0.5, 0.3))
    painted = show.animator.frame(t, MouthPose(0.5, 0.3))
    diff = np.abs(painted.astype(int) - base.astype(int)).sum(axis=2)
    mid = (y0 + y1) // 2
    assert diff[mid:y1, x0:x1].mean() > 1.0           # the lower face is repainted
    assert diff[:y0].sum() == 0 and diff[y1:].sum() == 0  # nothing outside the face box
    assert diff[y0:y0 + (y1 - y0) // 4].sum() == 0       # nor the eyes and brow
    after = end + 1.0
    assert np.array_equal(show.animator.frame(after, MouthPose()), show.animator.base.frame(after, MouthPose()))


def test_lipsync_weights_missing_fall_back_to_the_mesh_warp(kiosk, caplog):
    with caplog.at_level(logging.WARNING):
        show = run_show(kiosk("neural-lipsync", with_model=False), seconds=3.0)
    assert show.lipsync is None and not isinstance(show.animator, NeuralLipsyncAnimator)
    assert any("neural-lipsync" in r.getMessage() and "mesh-warp" in r.getMessage() for r in caplog.records)
    assert show.frames > 10


def test_mesh_warp_is_the_default_face(kiosk):
    show = run_show(kiosk("mesh-warp", with_model=False), seconds=3.0)
    assert show.lipsync is None and show.frames > 10
