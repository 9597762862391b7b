"""A user rule's replacement is type-checked by ONNX inference of the replacement alone
(graphopt/patterns/rewrite.py `_type_fit`): sites of the same types infer once per run, and a
computed weight enters that inference by its type and shape, not its bytes."""

from __future__ import annotations

import numpy as np
import onnx

import graphopt.patterns.rewrite as rewrite
from graphopt.passes.fuse_patterns import FusePatterns
from tests.conftest import assert_same_outputs
from tests.fusion_models import run_passes

RULES = """rules:
  - name: neg-neg
    target: |
      t = Neg(x)
      y = Neg(t)
    replacement: y = Identity(x)
  - name: scale-conv
    target: |
      c = Conv(x, W)
      y = Mul(c, k)
    checks:
      - float_constant(W, k)
    compute: W2 = combine(W, k, "mul")
    replacement: y = Conv(x, W2)
"""


def _count_inferences(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = rewrite._infer_output

    def counted(model, out):  # type: ignore[no-untyped-def]
        calls.append(len(model.graph.initializer))
        return real(model, out)

    monkeypatch.setattr(rewrite, "_infer_output", counted)
    return calls


def test_sites_of_the_same_types_infer_once(tmp_path, monkeypatch):
    model = onnx.parser.parse_model("""
<ir_version: 8, opset_import: ["" : 13]>
g (float[2,3] x) => (float[2,3] y) {
  a1 = Neg(x)
  a2 = Neg(a1)
  b1 = Neg(a2)
  b2 = Neg(b1)
  c0 = Relu(b2)
  c1 = Neg(c0)
  c2 = Neg(c1)
  y = Sigmoid(c2)
}""")
    calls = _count_inferences(monkeypatch)
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    out, _ = run_passes(model, [FusePatterns()], rule_files=[path])
    assert [n.op_type for n in out.graph.node].count("Neg") == 0
    assert len(calls) == 1  # three sites, one replacement model: inferred once
    feeds = {"x": np.linspace(-2, 2, 6, dtype=np.float32).reshape(2, 3)}
    assert_same_outputs(model, out, feeds)


def test_a_computed_weight_is_inferred_by_its_type_not_embedded(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    w = onnx.numpy_helper.from_array(rng.standard_normal((8, 4, 3, 3)).astype(np.float32), "W")
    k = onnx.numpy_helper.from_array(np.float32(0.5).reshape(()), "k")
    model = onnx.parser.parse_model("""
<ir_version: 8, opset_import: ["" : 13]>
g (float[1,4,6,6] x) => (float[1,8,4,4] y) {
  c = Conv(x, W)
  y = Mul(c, k)
}""")
    model.graph.initializer.extend([w, k])
    calls = _count_inferences(monkeypatch)
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    out, _ = run_passes(model, [FusePatterns()], rule_files=[path])
    assert [n.op_type for n in out.graph.node] == ["Conv"]
    assert calls == [0]  # W2 (288 values) was an input of its type and shape, not an initializer
    feeds = {"x": rng.standard_normal((1, 4, 6, 6)).astype(np.float32)}
    assert_same_outputs(model, out, feeds)
