"""``bench --lipsync``: an independent judge (mediapipe's face mesh) reads the mouth off frames the
kiosk rendered for its own voice. The maths on made-up tracks, and the real chain on the bench's
clips, held to issue 13's bounds: timing, vowel shapes, closed bilabials, rest in silence."""

from __future__ import annotations

import numpy as np
import pytest
from kiosk_helpers import tts

from appliance.bench import lipsync


def test_best_lag_finds_a_late_mouth():
    rng = np.random.default_rng(0)
    env = np.convolve(rng.random(200), np.ones(4) / 4, "same")
    late = np.concatenate([np.zeros(2), env[:-2]])           # the mouth two frames (80 ms) behind
    r, lag = lipsync.best_lag(late, env)
    assert lag == 2 and r > 0.99


def test_a_closed_mouth_between_syllables_counts_and_an_open_one_does_not():
    env = np.array([0, 0, 1, 1, 1, .1, 1, 1, 1, .1, 1, 1, 0, 0], float)
    clip = lipsync.Clip("baby", np.zeros(0, np.float32), 16000, envelope=env)
    clip.opening = np.where(env > .5, .1, .01)
    assert lipsync.bilabial_closures(clip) == (2, 2)
    clip.opening = np.full(len(env), .06)                     # a smile's gap that never closes
    assert lipsync.bilabial_closures(clip) == (2, 0)


@pytest.fixture(scope="module")
def animator():
    from skimage import data

    from appliance.face.animator import MeshWarpAnimator
    from appliance.face.rig import build_rig

    return MeshWarpAnimator(build_rig(data.astronaut()), size=512, seed=0)


def test_the_judge_reads_lips_that_keep_time_and_take_the_shapes(animator, models_dir):
    # The bench's own clips (replies in both languages, the sustained vowels, мама/папа/baby) on
    # a photo smiling with its teeth, held to issue 13's bounds.
    res = lipsync.measure(tts(models_dir), animator)
    assert res["unread_frames"] == 0
    # issue 13's bounds exactly: piper's random timing moves r between 0.82 and 0.86 on this photo
    # since the text decides which dips close (it was 0.79-0.83 when every dip closed)
    assert res["correlation"] >= 0.8 and abs(res["lag_ms"]) <= 40, res
    assert res["vowel_order_ok"], res["vowel_width_height"]                # и > а > о > у
    assert res["bilabial_dips"] >= 5 and res["bilabial_closed"] >= 0.8, res
    assert res["silent_at_rest"] >= 0.95, res   # 0.975-0.985 run to run
