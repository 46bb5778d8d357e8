"""The random-weight Wav2Lip architecture: its ONNX export runs through the real lip-sync engine, and the
"full" size keeps the original model's topology (parameter count)."""

from __future__ import annotations

import numpy as np
import onnx
from torch import nn

from appliance.bench.models.wav2lip import build, make, param_count
from appliance.engines.lipsync_onnx import LipsyncModel, NeuralLipsync

# Wav2Lip (github.com/Rudrabha/Wav2Lip models/wav2lip.py, 96x96 generator): 36,298,035 trainable
# parameters, BatchNorm affine included, running statistics excluded.
WAV2LIP_PARAMS = 36_298_035


def _speech(seconds=1.0):
    t = np.arange(int(16000 * seconds)) / 16000
    return (0.5 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def test_tiny_export_drives_the_lipsync_engine(tmp_path):
    path = build(tmp_path / "wav2lip-tiny.onnx", "tiny")
    graph = onnx.load(str(path)).graph
    dims = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in [*graph.input, *graph.output]}
    assert dims == {"source": [1, 1, 80, 16], "target": [1, 6, 96, 96], "output": [1, 3, 96, 96]}

    lipsync = NeuralLipsync(LipsyncModel(path, device="cpu"))
    rng = np.random.default_rng(0)
    frame = (rng.random((256, 256, 3)) * 120 + 60).astype(np.uint8)
    box = (64, 64, 192, 192)

    assert lipsync.apply(frame, box, 0.5) is frame  # no speech yet: untouched

    lipsync.set_speech(_speech(1.0), t0=0.0)
    out = lipsync.apply(frame, box, 0.5)
    assert out.shape == frame.shape and out.dtype == np.uint8
    changed = np.any(out != frame, axis=2)
    assert changed.any()
    ys, xs = np.nonzero(changed)
    x0, y0, x1, y1 = box
    assert xs.min() >= x0 and xs.max() < x1  # only inside the box…
    assert ys.max() < y1 and ys.min() >= y0 + (y1 - y0) // 3  # …and only in its lower part
    outside = np.ones(frame.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(out[outside], frame[outside])

    assert lipsync.apply(frame, box, 5.0) is frame  # the utterance has ended


def test_full_size_keeps_the_wav2lip_topology():
    model = make("full")
    full, tiny = param_count(model), param_count(make("tiny"))
    kinds = [type(m) for m in model.modules()]
    assert kinds.count(nn.Conv2d) == 45 and kinds.count(nn.ConvTranspose2d) == 6  # the original's layer list
    assert abs(full - WAV2LIP_PARAMS) / WAV2LIP_PARAMS < 0.02
    assert tiny < full / 40  # channels / 8: about 1/64 of the weights
