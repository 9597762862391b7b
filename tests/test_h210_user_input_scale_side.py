"""Adversarial review (H210): `fold_input_scale` with a one-element constant in a user's rule.

Conv(x·c, W, b) = Conv(x, W·c, b): the built-in fold-input-mul/div-into-conv rules match the
Mul/Div before the Conv. A user's rule may call the same computation for a scale after the
layer, Conv(x, W, b)·c = Conv(x, W·c, b·c): on the parent its replacement Conv(x, W·c, b)
left the bias unscaled (Conv 3.6 %, ConvTranspose 2.0 % of the output scale off; Div 9.0 /
5.0 %). A per-channel constant proved its side already (`_prove_channels`); a one-element one
now needs a matched node making the Conv's input. Inputs and weights from np.linspace,
compared in onnxruntime with the original.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import graphopt
from tests.conftest import assert_same_outputs
from tests.fusion_models import ops

W = np.linspace(-1.0, 1.3, 144, dtype=np.float32).reshape(4, 4, 3, 3)
B = np.linspace(0.5, 1.5, 4, dtype=np.float32)
K = np.array([2.5], np.float32)


def _pipeline(tmp_path: Path, target: str, replacement: str, op: str) -> str:
    lines = "\n".join(f"      {line}" for line in target.strip().splitlines())
    (tmp_path / "rules.yaml").write_text(
        f"""rules:
  - name: my-fold
    doc: a user's fold
    target: |
{lines}
    checks:
      - float_constant(W, B, c)
    compute: W2 = fold_input_scale(W, c, "{op.lower()}")
    replacement: {replacement}
"""
    )
    pipe = tmp_path / "p.yaml"
    pipe.write_text("name: mine\nrules: [rules.yaml]\npasses:\n  - fuse-patterns\n")
    return str(pipe)


def _model(
    first: tuple[str, list[str], str], second: tuple[str, list[str], str]
) -> onnx.ModelProto:
    nodes = [helper.make_node(op, inputs, [out]) for op, inputs, out in (first, second)]
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4, 5, 5])
    z = helper.make_tensor_value_info("z", onnx.TensorProto.FLOAT, None)
    inits = [numpy_helper.from_array(v, k) for k, v in {"W": W, "B": B, "c": K}.items()]
    graph = helper.make_graph(nodes, "g", [x], [z], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    model.graph.output[0].CopyFrom(onnx.shape_inference.infer_shapes(model).graph.output[0])
    onnx.checker.check_model(model, full_check=True)
    return model


def _feeds() -> dict[str, np.ndarray]:
    return {"x": np.linspace(-3.0, 3.0, 100, dtype=np.float32).reshape(1, 4, 5, 5)}


@pytest.mark.parametrize("conv", ["Conv", "ConvTranspose"])
@pytest.mark.parametrize("op", ["Mul", "Div"])
def test_a_users_input_scale_fold_of_a_scale_after_the_layer_is_refused(tmp_path, conv, op):
    pipe = _pipeline(
        tmp_path,
        f"y = {conv}(x, W, optional(B))\nz = {op}(y, c)",
        f"z = {conv}(x, W2, B, **attrs_of(y))",
        op,
    )
    model = _model((conv, ["x", "W", "B"], "y"), (op, ["y", "c"], "z"))
    out = graphopt.optimize(model, pipe)
    assert ops(out) == [conv, op]
    assert_same_outputs(model, out, _feeds())


@pytest.mark.parametrize("conv", ["Conv", "ConvTranspose"])
@pytest.mark.parametrize("op", ["Mul", "Div"])
def test_a_users_input_scale_fold_of_a_scale_before_the_layer_still_folds(tmp_path, conv, op):
    pipe = _pipeline(
        tmp_path,
        f"y = {op}(x, c)\nz = {conv}(y, W, optional(B))",
        f"z = {conv}(x, W2, B, **attrs_of(z))",
        op,
    )
    model = _model((op, ["x", "c"], "y"), (conv, ["y", "W", "B"], "z"))
    out = graphopt.optimize(model, pipe)
    assert ops(out) == [conv]
    assert_same_outputs(model, out, _feeds())
