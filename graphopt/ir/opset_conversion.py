"""What `onnx.version_converter` is known to convert wrongly (found by comparing onnxruntime's
outputs before and after): every caller that converts a model's default-domain opset asks
`misconverted` first and leaves the model as it is where the answer is not "".

What it does not do: convert anything, or prove a conversion right (the cases here are the
ones seen to go wrong; the converter's own errors are the callers' to handle).
"""

from __future__ import annotations

import itertools

import onnx

from graphopt.ir.nodes import attribute_value, nested_bodies


def misconverted(graph: onnx.GraphProto, before: int, version: int) -> str:
    """Why onnx.version_converter would change what the model computes between opsets `before`
    and `version` ("" if no op it is known to convert wrongly is there, bodies included): it
    turns Upsample and opset-10 Resize in linear mode into a Resize with the half_pixel
    coordinates of opset 11 (Upsample's and Resize-10's are asymmetric), and keeps a Hardmax
    across opset 13, where it stopped flattening to 2-D around its axis (Softmax gets a
    Flatten/Reshape adapter, Hardmax none)."""
    for node in itertools.chain(graph.node, (n for b in nested_bodies(graph) for n in b.node)):
        if node.domain not in ("", "ai.onnx"):
            continue
        op = node.op_type
        mode = attribute_value(node, "mode", "nearest")
        if isinstance(mode, bytes):
            mode = mode.decode()
        if op == "Upsample" and mode != "nearest":
            return f"{node.name or op}: Upsample in {mode} mode would become a half_pixel Resize"
        if op == "Resize" and before < 11 <= version and mode != "nearest":
            return f"{node.name or op}: Resize-10 in {mode} mode would become a half_pixel Resize"
        if op == "Hardmax" and before < 13 <= version:
            return f"{node.name or op}: Hardmax changes meaning at opset 13 (no adapter)"
    return ""
