"""Adversarial review (H210) of `fold_batchnorm_gemm` / `fold_batchnorm_matmul` in a user's rule.

The built-in rules fold-batchnorm-gemm and fold-batchnorm-matmul capture the Gemm's transB and
beta and prove A of rank 2 (`rank(a, 2)`); the computations took what the rule passed. A user's
rule that passes literals or targets another op made other values on the parent: a literal
transB 0 for a square B of transB 1 scaled B's columns (outputs 21 % of their scale off), a
literal beta 1 for a Gemm of beta 0.5 (5 %), fold_batchnorm_matmul on a Gemm of transB 1
(22 %), and a BatchNormalization before the MatMul folded into W's columns (82 %). They now
prove the matched Gemm/MatMul (one, default domain, reading the weight, its output read by
another matched node) fits what they were given, else refuse. Inputs and weights from
np.linspace, compared in onnxruntime with the original.
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

BN = {
    "gamma": np.linspace(0.5, 1.5, 4, dtype=np.float32),
    "beta": np.linspace(-0.3, 0.4, 4, dtype=np.float32),
    "mean": np.linspace(-0.2, 0.2, 4, dtype=np.float32),
    "var": np.linspace(0.1, 2.0, 4, dtype=np.float32),
}
BN_INPUTS = ["gamma", "beta", "mean", "var"]
W = np.linspace(-1.0, 1.3, 16, dtype=np.float32).reshape(4, 4)
C = np.linspace(-0.5, 0.5, 4, dtype=np.float32)
CHECK = "float_constant(W, C, gamma, beta, mean, var)"
BN_AFTER = "z = BatchNormalization(y, gamma, beta, mean, var, epsilon=eps)"


def _pipeline(
    tmp_path: Path, target: str, compute: str, replacement: str, check: str = CHECK
) -> str:
    lines = "\n".join(f"      {line}" for line in target.strip().splitlines())
    (tmp_path / "rules.yaml").write_text(
        f"""rules:
  - name: my-fold
    doc: a user's fold
    target: |
{lines}
    checks:
      - {check}
    compute: {compute}
    replacement: {replacement}
"""
    )
    pipe = tmp_path / "p.yaml"
    pipe.write_text("name: mine\nrules: [rules.yaml]\npasses:\n  - fuse-patterns\n")
    return str(pipe)


def _model(nodes: list[onnx.NodeProto], inits: dict[str, np.ndarray]) -> onnx.ModelProto:
    a = helper.make_tensor_value_info("a", onnx.TensorProto.FLOAT, [3, 4])
    z = helper.make_tensor_value_info("z", onnx.TensorProto.FLOAT, [3, 4])
    graph = helper.make_graph(
        nodes, "g", [a], [z], [numpy_helper.from_array(v, k) for k, v in inits.items()]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    return model


def _gemm_bn(with_c: bool = True, **attrs: float) -> onnx.ModelProto:
    inputs = ["a", "W", "C"] if with_c else ["a", "W"]
    nodes = [
        helper.make_node("Gemm", inputs, ["y"], **attrs),
        helper.make_node("BatchNormalization", ["y", *BN_INPUTS], ["z"]),
    ]
    return _model(nodes, {"W": W, "C": C, **BN} if with_c else {"W": W, **BN})


def _feeds() -> dict[str, np.ndarray]:
    return {"a": np.linspace(-3.0, 3.0, 12, dtype=np.float32).reshape(3, 4)}


GEMM_LITERALS = (
    "y = Gemm(a, W, optional(C))\n" + BN_AFTER,
    "W2, C2 = fold_batchnorm_gemm(W, C, gamma, beta, mean, var, eps, 0, 1.0)",
    "z = Gemm(a, W2, C2, **attrs_of(y), beta=1.0)",
)


@pytest.mark.parametrize("attrs", [{"transB": 1}, {"beta": 0.5}], ids=["transB", "beta"])
def test_a_users_gemm_fold_with_literals_the_gemm_does_not_have_is_refused(tmp_path, attrs):
    model = _gemm_bn(**attrs)
    out = graphopt.optimize(model, _pipeline(tmp_path, *GEMM_LITERALS))
    assert ops(out) == ["Gemm", "BatchNormalization"]
    assert_same_outputs(model, out, _feeds())


def test_a_users_gemm_fold_with_literals_the_gemm_has_still_folds(tmp_path):
    model = _gemm_bn()
    out = graphopt.optimize(model, _pipeline(tmp_path, *GEMM_LITERALS))
    assert ops(out) == ["Gemm"]
    assert_same_outputs(model, out, _feeds())


def test_a_users_matmul_fold_of_a_gemm_is_refused(tmp_path):
    """fold_batchnorm_matmul scales W's columns and knows no C: a Gemm's B of transB 1 has
    its output channels on the rows."""
    pipe = _pipeline(
        tmp_path,
        "y = Gemm(a, W)\n" + BN_AFTER,
        "W2, C2 = fold_batchnorm_matmul(W, gamma, beta, mean, var, eps)",
        "z = Gemm(a, W2, C2, **attrs_of(y))",
        "float_constant(W, gamma, beta, mean, var)",
    )
    model = _gemm_bn(with_c=False, transB=1)
    out = graphopt.optimize(model, pipe)
    assert ops(out) == ["Gemm", "BatchNormalization"]
    assert_same_outputs(model, out, _feeds())


def test_a_users_matmul_fold_of_a_batchnorm_before_it_is_refused(tmp_path):
    """BN(a)·W normalizes a's columns, the rows W's columns do not see one by one."""
    pipe = _pipeline(
        tmp_path,
        "y = BatchNormalization(a, gamma, beta, mean, var, epsilon=eps)\nz = MatMul(y, W)",
        "W2, C2 = fold_batchnorm_matmul(W, gamma, beta, mean, var, eps)",
        "z = Gemm(a, W2, C2)",
        "float_constant(W, gamma, beta, mean, var)",
    )
    nodes = [
        helper.make_node("BatchNormalization", ["a", *BN_INPUTS], ["y"]),
        helper.make_node("MatMul", ["y", "W"], ["z"]),
    ]
    model = _model(nodes, {"W": W, **BN})
    out = graphopt.optimize(model, pipe)
    assert ops(out) == ["BatchNormalization", "MatMul"]
    assert_same_outputs(model, out, _feeds())


def test_the_builtin_gemm_and_matmul_folds_still_fold():
    for model in (_gemm_bn(transB=1, beta=0.5), _gemm_bn(alpha=2.0)):
        out = graphopt.optimize(model)
        assert ops(out) == ["Gemm"]
        assert_same_outputs(model, out, _feeds())
    nodes = [
        helper.make_node("MatMul", ["a", "W"], ["y"]),
        helper.make_node("BatchNormalization", ["y", *BN_INPUTS], ["z"]),
    ]
    model = _model(nodes, {"W": W, **BN})
    out = graphopt.optimize(model)
    assert ops(out) == ["Gemm"]
    assert_same_outputs(model, out, _feeds())
