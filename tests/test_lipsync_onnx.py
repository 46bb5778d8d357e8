"""The neural lip-sync engine's pre/post-processing and blending, on a tiny ONNX model built here with
the production model's exact input and output names, shapes and value ranges."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from lipsync_tiny import tiny_wav2lip
from onnx import TensorProto, helper

from appliance.engines.lipsync_onnx import (
    CHUNK,
    MEL_FPS,
    LipsyncModel,
    MelTrack,
    NeuralLipsync,
    NeuralLipsyncAnimator,
)
from appliance.messages import MouthPose


class StillFace:
    """A fixed image standing in for the mesh-warp animator's output."""

    def __init__(self):
        rng = np.random.default_rng(0)
        self.img = (rng.random((256, 256, 3)) * 120 + 60).astype(np.uint8)

    def frame(self, t, mouth):
        return self.img


def _speech(seconds=1.0):
    t = np.arange(int(16000 * seconds)) / 16000
    return (0.5 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def test_mel_track_matches_the_models_input(tmp_path):
    track = MelTrack(_speech(1.0))
    assert track.mel.shape[0] == 80
    assert abs(track.mel.shape[1] - MEL_FPS) <= 5  # 80 frames per second
    assert track.mel.min() >= -4 and track.mel.max() <= 4
    c = track.chunk_at(0.5)
    assert c.shape == (1, 1, 80, CHUNK) and c.dtype == np.float32
    assert np.all(track.chunk_at(0.0) == -4.0)  # nothing has been said yet at t=0


def test_wrong_model_io_is_refused(tmp_path):
    path = tmp_path / "bad.onnx"
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "bad",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    with pytest.raises(ValueError, match="expected inputs 'source' and 'target'"):
        LipsyncModel(path, device="cpu")


def test_mouth_is_repainted_only_in_the_lower_face_while_speaking(tmp_path):
    model = LipsyncModel(tiny_wav2lip(tmp_path / "wav2lip_gan_96.onnx"), device="cuda")  # falls back to CPU here
    assert "CPUExecutionProvider" in model.providers
    box = (64, 48, 192, 176)
    anim = NeuralLipsyncAnimator(StillFace(), NeuralLipsync(model), box)
    still = anim.frame(0.5, MouthPose())
    assert np.array_equal(still, StillFace().img)  # no speech: the base frame untouched
    anim.set_speech(_speech(1.0), t0=10.0)
    talking = anim.frame(10.5, MouthPose())
    changed = np.any(talking != still, axis=2)
    ys, xs = np.nonzero(changed)
    assert len(ys) > 500
    x0, y0, x1, y1 = box
    assert xs.min() >= x0 and xs.max() < x1 and ys.max() < y1
    assert ys.min() >= y0 + 0.4 * (y1 - y0)  # eyes and nose stay as the animator made them
    assert np.array_equal(anim.frame(12.0, MouthPose()), still)  # after the utterance: untouched


def test_streamed_chunks_give_the_models_mel_window(tmp_path):
    """Reply audio arrives in chunks while the TTS still writes the sentence: the per-frame mel cut
    from the streaming buffer is the one MelTrack computes from the finished utterance."""
    lip = NeuralLipsync(LipsyncModel(tiny_wav2lip(tmp_path / "m.onnx"), device="cpu"))
    audio = _speech(1.2)
    whole = MelTrack(audio)
    t0 = 5.0
    for k in range(0, len(audio), 4000):  # 0.25 s chunks, back to back
        lip.add_audio(audio[k:k + 4000], t0 + k / 16000)
    for rel in (0.25, 0.5, 0.8):
        got, want = lip.mel_chunk(t0 + rel)[0, 0], whole.chunk_at(rel)[0, 0]
        assert got.shape == want.shape == (80, CHUNK)
        assert np.abs(got - want)[:, 1:].max() < 0.05  # the first column differs by pre-emphasis' start only
    assert np.all(lip.mel_chunk(t0 - 1.0) == -4.0)  # before the reply: silence
    # chunk seams are not silences: the painted mouth stays fully on across them
    assert lip.speech.speaking(t0 + 0.25) == 1.0 and lip.speech.speaking(t0 + 0.5) == 1.0
    assert 0 < lip.speech.speaking(t0 + 0.001) < 1.0  # it fades in at the start


def test_barge_in_stops_the_painted_mouth_where_playback_stopped(tmp_path):
    lip = NeuralLipsync(LipsyncModel(tiny_wav2lip(tmp_path / "m.onnx"), device="cpu"))
    lip.add_audio(_speech(2.0), 1.0)
    assert lip.speech.speaking(2.5) == 1.0
    lip.clear(after_s=2.0)  # the visitor spoke over the kiosk at t = 2.0
    assert lip.speech.speaking(1.9) > 0 and lip.speech.speaking(2.5) == 0.0
    frame = StillFace().img
    assert np.array_equal(lip.apply(frame, (64, 48, 192, 176), 2.5), frame)
    lip.clear()
    assert lip.speech.segments == [] and lip.speech.speaking(1.5) == 0.0
