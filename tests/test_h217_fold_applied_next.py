"""The Conv/Gemm fold computations prove that the constant they fold is applied by the node
next to the layer, the way round they compute (H217). H210 (563612d, ee7e8bd, 0df1f79) made
them prove the layer's op, layout and side; a user's rule could still put a node between
(Sigmoid(x·c) before the Conv, Relu(Conv(x))·c or Relu(Conv(x)) → BN after it) or have the
operands the other way round (c − Conv(x), c / Conv(x), c / x, c − x), and on the parent each
folded into a model that computes another thing (max |error| / max |output|: Sigmoid 3.5,
Relu·c 0.78, Relu → BN 0.11, c − Conv 2.0, c / Conv 33.5, c / x 1.0 (one element) and 1.2
(per channel), c − x 2.0). Each now stays as it was; the same user rules on the ops next to
each other, the right way round, still fold. Inputs and weights from np.linspace, compared in
onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import graphopt
from tests.conftest import assert_same_outputs

W = np.linspace(-1.0, 1.3, 144, dtype=np.float32).reshape(4, 4, 3, 3)
B = np.linspace(0.5, 1.5, 4, dtype=np.float32)
PER_CHANNEL = np.array([-2.0, 1.0, 3.0, -0.5], np.float32).reshape(1, 4, 1, 1)
ONE = np.array([-2.5], np.float32)
BN = {
    "gamma": np.array([1.5, -0.5, 2.0, 0.75], np.float32),
    "beta": np.array([0.1, -0.2, 0.3, 0.0], np.float32),
    "mean": np.array([0.5, -1.0, 0.25, 2.0], np.float32),
    "var": np.array([1.0, 2.0, 0.5, 4.0], np.float32),
}

# name: (rule target, compute, replacement, nodes (op, inputs, output), c)
CASES = {
    "sigmoid-between-scale-and-conv": (
        "y = Mul(x, c)\nr = Sigmoid(y)\nz = Conv(r, W, optional(B))",
        'W2 = fold_input_scale(W, c, "mul")',
        "z = Conv(Sigmoid(x), W2, B, **attrs_of(z))",
        [("Mul", ["x", "c"], "y"), ("Sigmoid", ["y"], "r"), ("Conv", ["r", "W", "B"], "z")],
        ONE,
    ),
    "relu-between-conv-and-scale": (
        "y = Conv(x, W, optional(B))\nr = Relu(y)\nz = Mul(r, c)",
        'W2, B2 = fold_affine_conv(W, B, c, "mul")',
        "z = Relu(Conv(x, W2, B2, **attrs_of(y)))",
        [("Conv", ["x", "W", "B"], "y"), ("Relu", ["y"], "r"), ("Mul", ["r", "c"], "z")],
        PER_CHANNEL,
    ),
    "relu-between-conv-and-batchnorm": (
        "y = Conv(x, W, optional(B))\nr = Relu(y)\n"
        "z = BatchNormalization(r, gamma, beta, mean, var, epsilon=eps)",
        "W2, B2 = fold_batchnorm_conv(W, B, gamma, beta, mean, var, eps)",
        "z = Relu(Conv(x, W2, B2, **attrs_of(y)))",
        [
            ("Conv", ["x", "W", "B"], "y"),
            ("Relu", ["y"], "r"),
            ("BatchNormalization", ["r", "gamma", "beta", "mean", "var"], "z"),
        ],
        ONE,
    ),
    "constant-minus-conv": (
        "y = Conv(x, W, optional(B))\nz = Sub(c, y)",
        'B2 = fold_bias_conv(W, B, c, "sub")',
        "z = Conv(x, W, B2, **attrs_of(y))",
        [("Conv", ["x", "W", "B"], "y"), ("Sub", ["c", "y"], "z")],
        PER_CHANNEL,
    ),
    "constant-over-conv": (
        "y = Conv(x, W, optional(B))\nz = Div(c, y)",
        'W2, B2 = fold_affine_conv(W, B, c, "div")',
        "z = Conv(x, W2, B2, **attrs_of(y))",
        [("Conv", ["x", "W", "B"], "y"), ("Div", ["c", "y"], "z")],
        PER_CHANNEL,
    ),
    "constant-over-input": (
        "y = Div(c, x)\nz = Conv(y, W, optional(B))",
        'W2 = fold_input_scale(W, c, "div")',
        "z = Conv(x, W2, B, **attrs_of(z))",
        [("Div", ["c", "x"], "y"), ("Conv", ["y", "W", "B"], "z")],
        ONE,
    ),
    "constant-over-input-per-channel": (
        "y = Div(c, x)\nz = Conv(y, W, optional(B))",
        'W2 = fold_input_scale(W, c, "div")',
        "z = Conv(x, W2, B, **attrs_of(z))",
        [("Div", ["c", "x"], "y"), ("Conv", ["y", "W", "B"], "z")],
        PER_CHANNEL,
    ),
    "constant-minus-input": (
        "y = Sub(c, x)\nz = Conv(y, W, optional(B))",
        'B2 = fold_input_shift(W, B, c, "sub")',
        "z = Conv(x, W, B2, **attrs_of(z))",
        [("Sub", ["c", "x"], "y"), ("Conv", ["y", "W", "B"], "z")],
        PER_CHANNEL,
    ),
}

# the same computations where the constant is next to the layer and the right way round
FITTING = {
    "scale-then-conv": (
        "y = Mul(x, c)\nz = Conv(y, W, optional(B))",
        'W2 = fold_input_scale(W, c, "mul")',
        "z = Conv(x, W2, B, **attrs_of(z))",
        [("Mul", ["x", "c"], "y"), ("Conv", ["y", "W", "B"], "z")],
        ONE,
    ),
    "conv-then-scale": (
        "y = Conv(x, W, optional(B))\nz = Mul(c, y)",
        'W2, B2 = fold_affine_conv(W, B, c, "mul")',
        "z = Conv(x, W2, B2, **attrs_of(y))",
        [("Conv", ["x", "W", "B"], "y"), ("Mul", ["c", "y"], "z")],
        PER_CHANNEL,
    ),
    "conv-then-batchnorm": (
        "y = Conv(x, W, optional(B))\nz = BatchNormalization(y, gamma, beta, mean, var, epsilon=eps)",
        "W2, B2 = fold_batchnorm_conv(W, B, gamma, beta, mean, var, eps)",
        "z = Conv(x, W2, B2, **attrs_of(y))",
        [
            ("Conv", ["x", "W", "B"], "y"),
            ("BatchNormalization", ["y", "gamma", "beta", "mean", "var"], "z"),
        ],
        ONE,
    ),
    "conv-minus-constant": (
        "y = Conv(x, W, optional(B))\nz = Sub(y, c)",
        'B2 = fold_bias_conv(W, B, c, "sub")',
        "z = Conv(x, W, B2, **attrs_of(y))",
        [("Conv", ["x", "W", "B"], "y"), ("Sub", ["y", "c"], "z")],
        PER_CHANNEL,
    ),
    "input-over-constant-per-channel": (
        "y = Div(x, c)\nz = Conv(y, W, optional(B))",
        'W2 = fold_input_scale(W, c, "div")',
        "z = Conv(x, W2, B, **attrs_of(z))",
        [("Div", ["x", "c"], "y"), ("Conv", ["y", "W", "B"], "z")],
        PER_CHANNEL,
    ),
    "input-minus-constant": (
        "y = Sub(x, c)\nz = Conv(y, W, optional(B))",
        'B2 = fold_input_shift(W, B, c, "sub")',
        "z = Conv(x, W, B2, **attrs_of(z))",
        [("Sub", ["x", "c"], "y"), ("Conv", ["y", "W", "B"], "z")],
        PER_CHANNEL,
    ),
}


def _pipeline(tmp_path: Path, target: str, compute: str, replacement: str) -> str:
    lines = "\n".join(f"      {line}" for line in target.strip().splitlines())
    constants = "W, B, gamma, beta, mean, var" if "gamma" in target else "W, B, c"
    (tmp_path / "rules.yaml").write_text(
        f"""rules:
  - name: my-fold
    doc: a user's fold
    target: |
{lines}
    checks:
      - float_constant({constants})
    compute: {compute}
    replacement: {replacement}
"""
    )
    pipe = tmp_path / "p.yaml"
    pipe.write_text("name: mine\nrules: [rules.yaml]\npasses:\n  - fuse-patterns\n")
    return str(pipe)


def _model(nodes: list[tuple[str, list[str], str]], c: np.ndarray) -> onnx.ModelProto:
    graph_nodes = []
    for op, inputs, out in nodes:
        attrs = {"epsilon": 1e-5} if op == "BatchNormalization" else {}
        graph_nodes.append(helper.make_node(op, inputs, [out], **attrs))
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4, 5, 5])
    z = helper.make_tensor_value_info("z", onnx.TensorProto.FLOAT, None)
    values = {"W": W, "B": B, "c": c, **BN}
    used = {name for _, inputs, _ in nodes for name in inputs}
    inits = [numpy_helper.from_array(v, k) for k, v in values.items() if k in used]
    graph = helper.make_graph(graph_nodes, "g", [x], [z], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    model.graph.output[0].CopyFrom(onnx.shape_inference.infer_shapes(model).graph.output[0])
    onnx.checker.check_model(model, full_check=True)
    return model


def _feeds() -> dict[str, np.ndarray]:
    return {"x": np.linspace(-3.0, 3.0, 100, dtype=np.float32).reshape(1, 4, 5, 5)}


def _ops(model: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in model.graph.node]


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_constant_not_applied_next_to_the_layer_the_fold_way_is_not_folded(tmp_path, case):
    target, compute, replacement, nodes, c = CASES[case]
    model = _model(nodes, c)
    out = graphopt.optimize(model, _pipeline(tmp_path, target, compute, replacement))
    assert _ops(out) == [op for op, _, _ in nodes]
    assert_same_outputs(model, out, _feeds())


@pytest.mark.parametrize("case", sorted(FITTING))
def test_the_same_computation_next_to_the_layer_still_folds(tmp_path, case):
    target, compute, replacement, nodes, c = FITTING[case]
    model = _model(nodes, c)
    out = graphopt.optimize(model, _pipeline(tmp_path, target, compute, replacement))
    assert _ops(out) == ["Conv"]
    assert_same_outputs(model, out, _feeds())


GEMM_B = np.linspace(-1.0, 1.2, 20, dtype=np.float32).reshape(4, 5)
GEMM_C = np.linspace(0.1, 0.5, 5, dtype=np.float32)
GEMM_BN = {
    "gamma": np.linspace(-1.5, 2.0, 5, dtype=np.float32),
    "beta": np.linspace(-0.2, 0.3, 5, dtype=np.float32),
    "mean": np.linspace(-1.0, 1.0, 5, dtype=np.float32),
    "var": np.linspace(0.5, 2.0, 5, dtype=np.float32),
}
GEMM_RULES = {
    "Gemm": (
        "y = Gemm(a, Bw, optional(C), transB=tb, beta=bg)",
        "B2, C2 = fold_batchnorm_gemm(Bw, C, gamma, beta, mean, var, eps, tb, bg)",
        "Gemm(a, B2, C2, **attrs_of(y), beta=1.0)",
        "Bw, C, gamma, beta, mean, var",
        ["a", "Bw", "C"],
    ),
    "MatMul": (
        "y = MatMul(a, Bw)",
        "B2, C2 = fold_batchnorm_matmul(Bw, gamma, beta, mean, var, eps)",
        "Gemm(a, B2, C2)",
        "Bw, gamma, beta, mean, var",
        ["a", "Bw"],
    ),
}


@pytest.mark.parametrize("op", sorted(GEMM_RULES))
@pytest.mark.parametrize("between", [True, False])
def test_a_gemm_batchnorm_fold_needs_the_batchnorm_next_to_it(tmp_path, op, between):
    # on the parent Gemm/MatMul → Relu → BN folded: max |error| / max |output| 1.0
    first, compute, layer, constants, inputs = GEMM_RULES[op]
    bn_input = "r" if between else "y"
    target = f"{first}\n" + ("r = Relu(y)\n" if between else "")
    target += f"z = BatchNormalization({bn_input}, gamma, beta, mean, var, epsilon=eps)"
    lines = "\n".join(f"      {line}" for line in target.splitlines())
    (tmp_path / "rules.yaml").write_text(
        f"""rules:
  - name: my-fold
    doc: a user's fold
    target: |
{lines}
    checks:
      - float_constant({constants})
    compute: {compute}
    replacement: z = {f"Relu({layer})" if between else layer}
"""
    )
    pipe = tmp_path / "p.yaml"
    pipe.write_text("name: mine\nrules: [rules.yaml]\npasses:\n  - fuse-patterns\n")
    nodes = [helper.make_node(op, inputs, ["y"])]
    if between:
        nodes.append(helper.make_node("Relu", ["y"], ["r"]))
    bn_inputs = [bn_input, "gamma", "beta", "mean", "var"]
    nodes.append(helper.make_node("BatchNormalization", bn_inputs, ["z"], epsilon=1e-5))
    values = {"Bw": GEMM_B, "C": GEMM_C, **GEMM_BN}
    inits = [numpy_helper.from_array(v, k) for k, v in values.items() if k != "C" or op == "Gemm"]
    a = helper.make_tensor_value_info("a", onnx.TensorProto.FLOAT, [3, 4])
    z = helper.make_tensor_value_info("z", onnx.TensorProto.FLOAT, [3, 5])
    graph = helper.make_graph(nodes, "g", [a], [z], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    out = graphopt.optimize(model, str(pipe))
    if between:
        assert _ops(out) == [op, "Relu", "BatchNormalization"]
    else:
        assert _ops(out) == ["Gemm"]
    feeds = {"a": np.linspace(-2.0, 2.0, 12, dtype=np.float32).reshape(3, 4)}
    assert_same_outputs(model, out, feeds)
