"""The neural lip-sync engine's pre/post-processing and blending, on a tiny ONNX model built here with
the production model's exact input and output names, shapes and value ranges."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
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


def tiny_wav2lip(path):
    """out = clip(face + 0.2 * mean(mel), 0, 1) on the unmasked half of `target`: depends on both inputs."""
    nodes = [
        helper.make_node("Slice", ["target", "starts", "ends", "axes"], ["face"]),
        helper.make_node("ReduceMean", ["source"], ["m"], keepdims=1),
        helper.make_node("Mul", ["m", "k"], ["mk"]),
        helper.make_node("Add", ["face", "mk"], ["raw"]),
        helper.make_node("Clip", ["raw", "lo", "hi"], ["out"]),
    ]
    inits = [
        helper.make_tensor("starts", TensorProto.INT64, [1], [3]),
        helper.make_tensor("ends", TensorProto.INT64, [1], [6]),
        helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
        helper.make_tensor("k", TensorProto.FLOAT, [], [0.2]),
        helper.make_tensor("lo", TensorProto.FLOAT, [], [0.0]),
        helper.make_tensor("hi", TensorProto.FLOAT, [], [1.0]),
    ]
    graph = helper.make_graph(
        nodes, "tiny_wav2lip",
        [helper.make_tensor_value_info("source", TensorProto.FLOAT, [1, 1, 80, 16]),
         helper.make_tensor_value_info("target", TensorProto.FLOAT, [1, 6, 96, 96])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, 96, 96])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


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
