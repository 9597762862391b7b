"""Adversarial review (H210) of the output-side Conv folds' computations in a user's rule file.

`fold_affine_conv`, `fold_batchnorm_conv` and `fold_scale_shift_conv` scale W's axis 0 (a Conv's
W [C_out, C_in/g, k…]); `fold_affine_convtranspose` and `fold_batchnorm_convtranspose` scale W's
axis 1 across groups (a ConvTranspose's W [C_in, C_out/g, k…]); `fold_bias_conv` /
`fold_bias_convtranspose` add to the bias of the layer whose output the constant shifts. The
built-in rules pair each with its op. A user's rule may pair them otherwise: on the parent,
a ConvTranspose with C_in = C_out folded by `fold_affine_conv` had its input channels scaled
(outputs ~100 % off), and a constant applied before the Conv went into its output channels.
The computations now prove they fold into one matched Conv (ConvTranspose) of the default
domain that reads the weight, whose output another matched node reads; else they refuse.
Inputs and weights from np.linspace, compared in onnxruntime with the original.
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

C = np.array([0.5, 2.0, -1.5, 3.0], np.float32).reshape(4, 1, 1)
BN = {
    "gamma": np.linspace(0.5, 1.5, 4, dtype=np.float32),
    "beta": np.linspace(-0.3, 0.4, 4, dtype=np.float32),
    "mean": np.linspace(-0.2, 0.2, 4, dtype=np.float32),
    "var": np.linspace(0.1, 2.0, 4, dtype=np.float32),
}


def _pipeline(tmp_path: Path, target: str, compute: str, replacement: str, checks: str) -> str:
    lines = "\n".join(f"      {line}" for line in target.strip().splitlines())
    (tmp_path / "rules.yaml").write_text(
        f"""rules:
  - name: my-fold
    doc: a user's fold
    target: |
{lines}
    checks:
      - {checks}
    compute: {compute}
    replacement: {replacement}
"""
    )
    pipe = tmp_path / "p.yaml"
    pipe.write_text("name: mine\nrules: [rules.yaml]\npasses:\n  - fuse-patterns\n")
    return str(pipe)


def _model(
    nodes: list[tuple[str, list[str], str]], inits: dict[str, np.ndarray]
) -> onnx.ModelProto:
    made = [helper.make_node(op, inputs, [out]) for op, inputs, out in nodes]
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4, 5, 5])
    last = nodes[-1][2]
    graph = helper.make_graph(
        made,
        "g",
        [x],
        [helper.make_tensor_value_info(last, onnx.TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    inferred = onnx.shape_inference.infer_shapes(model)
    model.graph.output[0].CopyFrom(inferred.graph.output[0])
    onnx.checker.check_model(model, full_check=True)
    return model


def _feeds() -> dict[str, np.ndarray]:
    return {"x": np.linspace(-3.0, 3.0, 100, dtype=np.float32).reshape(1, 4, 5, 5)}


W = np.linspace(-1.0, 1.3, 144, dtype=np.float32).reshape(4, 4, 3, 3)


def _affine(tmp_path: Path, conv: str, fn: str) -> tuple[onnx.ModelProto, str]:
    pipe = _pipeline(
        tmp_path,
        f"y = {conv}(x, W, optional(B), group=g)\nz = Mul(y, c)",
        f'W2, B2 = {fn}(W, B, c, "mul", g)',
        f"z = {conv}(x, W2, B2, **attrs_of(y))",
        "float_constant(W, B, c)",
    )
    return _model([(conv, ["x", "W"], "y"), ("Mul", ["y", "c"], "z")], {"W": W, "c": C}), pipe


def _batchnorm(tmp_path: Path, conv: str, fn: str) -> tuple[onnx.ModelProto, str]:
    args = "W, B, gamma, beta, mean, var, eps" + (", g" if "transpose" in fn else "")
    pipe = _pipeline(
        tmp_path,
        f"y = {conv}(x, W, optional(B), group=g)\n"
        "z = BatchNormalization(y, gamma, beta, mean, var, epsilon=eps)",
        f"W2, B2 = {fn}({args})",
        f"z = {conv}(x, W2, B2, **attrs_of(y))",
        "float_constant(W, B, gamma, beta, mean, var)",
    )
    bn = ("BatchNormalization", ["y", "gamma", "beta", "mean", "var"], "z")
    return _model([(conv, ["x", "W"], "y"), bn], {"W": W, **BN}), pipe


def _scale_shift(tmp_path: Path, conv: str) -> tuple[onnx.ModelProto, str]:
    pipe = _pipeline(
        tmp_path,
        f"y = {conv}(x, W, optional(B), group=g)\nz = Mul(y, c)\nw = Add(z, d)",
        "W2, B2 = fold_scale_shift_conv(W, B, c, d, g)",
        f"w = {conv}(x, W2, B2, **attrs_of(y))",
        "float_constant(W, B, c, d)",
    )
    nodes = [(conv, ["x", "W"], "y"), ("Mul", ["y", "c"], "z"), ("Add", ["z", "d"], "w")]
    return _model(nodes, {"W": W, "c": C, "d": C + 1}), pipe


@pytest.mark.parametrize(
    ("kind", "conv", "fn"),
    [
        ("affine", "ConvTranspose", "fold_affine_conv"),
        ("affine", "Conv", "fold_affine_convtranspose"),
        ("batchnorm", "ConvTranspose", "fold_batchnorm_conv"),
        ("batchnorm", "Conv", "fold_batchnorm_convtranspose"),
        ("scale-shift", "ConvTranspose", "fold_scale_shift_conv"),
    ],
)
def test_a_users_fold_of_the_other_weight_layout_is_refused(tmp_path, kind, conv, fn):
    """W [4, 4, 3, 3] fits both layouts: the parent scaled the axis of the other op's channels
    (ConvTranspose·c by fold_affine_conv: outputs 105 % of their scale off)."""
    if kind == "affine":
        model, pipe = _affine(tmp_path, conv, fn)
    elif kind == "batchnorm":
        model, pipe = _batchnorm(tmp_path, conv, fn)
    else:
        model, pipe = _scale_shift(tmp_path, conv)
    out = graphopt.optimize(model, pipe)
    assert ops(out) == ops(model)
    assert_same_outputs(model, out, _feeds())


@pytest.mark.parametrize(
    ("kind", "conv", "fn"),
    [
        ("affine", "Conv", "fold_affine_conv"),
        ("affine", "ConvTranspose", "fold_affine_convtranspose"),
        ("batchnorm", "Conv", "fold_batchnorm_conv"),
        ("batchnorm", "ConvTranspose", "fold_batchnorm_convtranspose"),
        ("scale-shift", "Conv", "fold_scale_shift_conv"),
    ],
)
def test_a_users_fold_of_its_own_layout_still_folds(tmp_path, kind, conv, fn):
    if kind == "affine":
        model, pipe = _affine(tmp_path, conv, fn)
    elif kind == "batchnorm":
        model, pipe = _batchnorm(tmp_path, conv, fn)
    else:
        model, pipe = _scale_shift(tmp_path, conv)
    out = graphopt.optimize(model, pipe)
    assert ops(out) == [conv]
    assert_same_outputs(model, out, _feeds())


@pytest.mark.parametrize(
    ("op", "compute", "replacement"),
    [
        ("Mul", 'W2, B2 = fold_affine_conv(W, B, c, "mul")', "z = Conv(x, W2, B2, **attrs_of(z))"),
        ("Add", 'B2 = fold_bias_conv(W, B, c, "add")', "z = Conv(x, W, B2, **attrs_of(z))"),
    ],
)
def test_a_users_output_fold_of_a_constant_before_the_conv_is_refused(
    tmp_path, op, compute, replacement
):
    """Conv(x·c) is not Conv(x)·c: the parent folded c, per input channel, into the output
    channels (and x + c into the bias as if added after the Conv)."""
    pipe = _pipeline(
        tmp_path,
        f"y = {op}(x, c)\nz = Conv(y, W, optional(B))",
        compute,
        replacement,
        "float_constant(W, B, c)",
    )
    model = _model([(op, ["x", "c"], "y"), ("Conv", ["y", "W"], "z")], {"W": W, "c": C})
    out = graphopt.optimize(model, pipe)
    assert ops(out) == [op, "Conv"]
    assert_same_outputs(model, out, _feeds())
