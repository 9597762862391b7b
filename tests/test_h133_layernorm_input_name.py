"""`layernorm_params` proves the normalized dimensions of the tensor the match normalizes: the
input of the matched ReduceMean that no matched node produces (E[x], not E[d²]). The proof read
whatever the rule named `x`: a user's rule naming its input otherwise was refused ("binds no
tensor x to normalize"); one naming its mean `x` had the mean's [.., 1] proven and was refused
for γ of 8; one naming its output `x` had the output's dimensions proven, which hold γ's 8 even
where the input has one element on the axis (n = 0, the output is β broadcast): only the
engine's check of the replacement's shape stopped that fold.

The models are compared at onnxruntime's "disable" level: its own LayerNormFusion (1.23-1.32
at least) makes the same LayerNormalization of the one-element original and fails on it."""

from __future__ import annotations

import numpy as np
import onnx

import graphopt
from graphopt.api import optimize_with_report
from tests.fusion_models import build, feeds, ops, rand, run_at


def _pipeline(tmp_path, data: str, out: str, mean: str = "mu") -> str:
    """A user's layernorm rule normalizing `data` (mean `mean`) into `out`."""
    (tmp_path / "rules.yaml").write_text(
        f"""rules:
  - name: mine
    target: |
      {mean} = ReduceMean({data}, axes=ax, keepdims=1)
      d = Sub({data}, {mean})
      v = ReduceMean(Pow(d, 2), axes=ax2, keepdims=1)
      n = Div(d, Sqrt(Add(v, eps)))
      {out} = Add(Mul(n, gamma), beta)
    checks:
      - scalar(eps)
      - float_constant(eps, gamma, beta)
      - no_broadcast(eps)
      - float32_exact(eps)
      - trailing_axes(ax, {data})
      - same_axes(ax, ax2, {data})
    compute: axis, g2, b2 = layernorm_params(gamma, beta, ax)
    replacement: {out} = LayerNormalization({data}, g2, b2, axis=axis, epsilon=eps)
"""
    )
    pipe = tmp_path / "p.yaml"
    pipe.write_text("name: mine\nrules: [rules.yaml]\npasses:\n  - fuse-patterns\n")
    return str(pipe)


def _model(last: int) -> onnx.ModelProto:
    """A layernorm over the last axis of an input of `last` elements there, γ/β of 8."""
    return build(
        f"""<ir_version: 8, opset_import: ["" : 17]>
        g (float[2,5,{last}] inp) => (float[2,5,8] y) {{
          mu = ReduceMean<axes = [-1]>(inp)
          d = Sub(inp, mu)
          two = Constant<value = float {{2.0}}>()
          sq = Pow(d, two)
          var = ReduceMean<axes = [-1]>(sq)
          eps = Constant<value = float {{1e-5}}>()
          ve = Add(var, eps)
          sd = Sqrt(ve)
          n = Div(d, sd)
          sc = Mul(n, gamma)
          y = Add(sc, beta)
        }}""",
        {"gamma": rand(8), "beta": rand(8)},
    )


def _assert_same_outputs(model: onnx.ModelProto, out: onnx.ModelProto) -> None:
    inputs = feeds(model)
    want, got = run_at(model, inputs, "disable"), run_at(out, inputs, "disable")
    assert list(got) == list(want)
    for name in want:
        assert got[name].shape == want[name].shape, name
        np.testing.assert_allclose(got[name], want[name], rtol=1e-4, atol=1e-5, err_msg=name)


def _reasons(model: onnx.ModelProto, pipe: str) -> list[str]:
    _out, report = optimize_with_report(model, pipe, explain=True)
    return [reason for rule, _node, outcome, reason in report.explain if outcome == "refused"]


def test_a_rule_naming_the_normalized_input_otherwise_still_fuses(tmp_path):
    model = _model(8)
    out = graphopt.optimize(model, _pipeline(tmp_path, "inp", "y"))
    assert ops(out) == ["LayerNormalization"]
    _assert_same_outputs(model, out)


def test_a_rule_naming_the_mean_x_proves_the_input_not_the_mean(tmp_path):
    model = _model(8)
    out = graphopt.optimize(model, _pipeline(tmp_path, "inp", "y", mean="x"))
    assert ops(out) == ["LayerNormalization"]
    _assert_same_outputs(model, out)


def test_a_rule_naming_the_output_x_proves_the_input_not_the_output(tmp_path):
    """The input has one element on the normalized axis: the proof itself refuses (the parent's
    proof passed on the output's 8, and the replacement's shape check refused)."""
    model = _model(1)
    pipe = _pipeline(tmp_path, "inp", "x")
    out = graphopt.optimize(model, pipe)
    assert "LayerNormalization" not in ops(out)
    _assert_same_outputs(model, out)
    (reason,) = _reasons(model, pipe)
    assert "normalized dimensions [1]" in reason, reason


def test_a_one_element_axis_under_another_name_is_still_refused(tmp_path):
    model = _model(1)
    pipe = _pipeline(tmp_path, "inp", "y")
    out = graphopt.optimize(model, pipe)
    assert "LayerNormalization" not in ops(out)
    _assert_same_outputs(model, out)
    (reason,) = _reasons(model, pipe)
    assert "normalized dimensions [1]" in reason, reason
