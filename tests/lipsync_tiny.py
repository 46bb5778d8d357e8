"""A tiny ONNX model with the production lip-sync model's exact input and output names, shapes and
value ranges (see appliance/engines/lipsync_onnx.py), built with the onnx package."""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper


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
