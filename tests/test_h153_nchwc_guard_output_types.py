"""ort-cpu's block-size guard returns every graph output from an If: only where the If of the
model's opset may return that output's type (If-11/12 return tensors only, If-13 adds
sequences, If-16 optionals and bfloat16). Elsewhere the guard is refused and the model stays
NCHW, so the result still passes onnx.checker (full check) and keeps its outputs."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphopt
from graphopt.backends.onnxruntime import session
from graphopt.passes.nchwc_fallback import branches, with_block_size
from graphopt.passes.ort_nchwc import OrtNchwcLayout
from graphopt.pipeline import make_pipeline
from tests.test_pass_ort_nchwc import BLOCK, needs_nchwc

RNG = np.random.default_rng(153)
CHANNELS = 16


def _model(kind: str, opset: int) -> onnx.ModelProto:
    """y = Relu(Conv(x)) and a second output z of `kind` holding the Conv's output."""
    weight = RNG.standard_normal((32, CHANNELS, 3, 3)).astype(np.float32) / np.float32(12)
    nodes = [
        helper.make_node("Conv", ["x", "W"], ["a"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a"], ["y"]),
    ]
    if kind == "sequence":
        nodes.append(helper.make_node("SequenceConstruct", ["a", "y"], ["z"]))
        z = helper.make_tensor_sequence_value_info("z", TensorProto.FLOAT, None)
    elif kind == "optional":
        nodes.append(helper.make_node("Optional", ["a"], ["z"]))
        inner = helper.make_tensor_type_proto(TensorProto.FLOAT, None)
        z = helper.make_value_info("z", helper.make_optional_type_proto(inner))
    else:
        nodes.append(helper.make_node("Cast", ["a"], ["z"], to=TensorProto.BFLOAT16))
        z = helper.make_tensor_value_info("z", TensorProto.BFLOAT16, [1, 32, 8, 8])
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, CHANNELS, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 32, 8, 8]), z],
        [numpy_helper.from_array(weight, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model, full_check=True)
    return model


def _outputs(model: onnx.ModelProto, x: np.ndarray, kind: str) -> list[np.ndarray]:
    """The outputs at ORT_DISABLE_ALL as arrays (numpy has no bfloat16: y only there)."""
    names = ["y"] if kind == "bfloat16" else ["y", "z"]
    got = session(model, threads=1, level="disable").run(names, {"x": x})
    flat: list[np.ndarray] = []
    for value in got:
        flat.extend(value if isinstance(value, list) else [value])
    return flat


CASES = [
    ("sequence", 11, False),
    ("sequence", 12, False),
    ("sequence", 13, True),
    ("optional", 15, False),
    ("optional", 16, True),
    ("bfloat16", 13, False),
    ("bfloat16", 15, False),
    ("bfloat16", 16, True),
]


@needs_nchwc
@pytest.mark.parametrize(("kind", "opset", "guarded"), CASES)
def test_guard_only_where_the_if_can_return_every_output(kind, opset, guarded):
    original = _model(kind, opset)
    pipe = make_pipeline("t", [OrtNchwcLayout(fallback=True)])
    out, report = graphopt.optimize_with_report(original, pipe, explain=True)
    onnx.checker.check_model(out, full_check=True)
    assert (branches(out) is not None) == guarded
    if not guarded:
        reasons = [why for rule, _n, outcome, why in report.explain if outcome == "refused"]
        assert any("graph output 'z'" in why and f"opset {opset}" in why for why in reasons)
    x = RNG.standard_normal((1, CHANNELS, 8, 8)).astype(np.float32)
    expected = _outputs(original, x, kind)
    variants = [out] + ([with_block_size(out, 2 * BLOCK)] if guarded else [])
    for variant in variants:  # the NCHWc branch, and the NCHW one a CPU with another b takes
        got = _outputs(variant, x, kind)
        assert len(got) == len(expected)
        for g, e in zip(got, expected, strict=True):
            np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5)


@needs_nchwc
def test_ort_cpu_keeps_a_sequence_output_checkable_at_opset_12():
    original = _model("sequence", 12)
    out = graphopt.optimize(original, "ort-cpu")
    onnx.checker.check_model(out, full_check=True)
    assert not any(n.op_type == "If" for n in out.graph.node)
    x = RNG.standard_normal((1, CHANNELS, 8, 8)).astype(np.float32)
    for g, e in zip(_outputs(out, x, "sequence"), _outputs(original, x, "sequence"), strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5)


@needs_nchwc
def test_an_output_declared_without_a_type_is_guarded_as_before():
    """An output with no type at all (onnx.checker rejects the model, onnxruntime loads it):
    nothing to compare with If's constraint, so the guard is made as before the type check."""
    original = _model("sequence", 13)
    del original.graph.output[1]
    del original.graph.node[2]
    original.graph.output[0].ClearField("type")
    out = graphopt.optimize(original, make_pipeline("t", [OrtNchwcLayout(fallback=True)]))
    assert branches(out) is not None
    x = RNG.standard_normal((1, CHANNELS, 8, 8)).astype(np.float32)
    (expected,) = session(original, threads=1, level="disable").run(None, {"x": x})
    for variant in (out, with_block_size(out, 2 * BLOCK)):
        (got,) = session(variant, threads=1, level="disable").run(None, {"x": x})
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
