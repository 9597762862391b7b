"""The per-channel input folds (`fold_input_scale` / `fold_input_shift` with one value per input
channel) prove the scaled tensor's channel count before folding: x·c with x of one channel and
c of C broadcasts to C, and W·c would then leave the Conv reading one channel. The proof read
whatever the rule named `x`; a user's rule naming its tensors otherwise was refused ("binds no
tensor x"), and one naming the Conv's output `x` had the output's channels proven instead: a
Conv of as many outputs as inputs passed the proof and the folded model read a one-channel
tensor with a four-channel weight. The proof now takes the tensor from the match's structure:
the operand of the Conv's scaled input that is not constant."""

from __future__ import annotations

import numpy as np
import onnx

import graphopt
from tests.conftest import assert_same_outputs
from tests.fusion_models import build, feeds, ops, rand

PER_CHANNEL = np.array([0.5, 2.0, -1.5, 3.0], np.float32).reshape(1, 4, 1, 1)


def _pipeline(tmp_path, data: str, scaled: str, out: str, op: str, compute: str, result: str):
    """A user's rule: `scaled` = op(`data`, c) read by `out` = Conv(scaled, W, B)."""
    (tmp_path / "rules.yaml").write_text(
        f"""rules:
  - name: mine
    target: |
      {scaled} = {op}({data}, c)
      {out} = Conv({scaled}, W, optional(B), group=g)
    checks:
      - float_constant(W, B, c)
    compute: {result} = {compute}
    replacement: {out} = Conv({data}, {"W2, B" if result == "W2" else "W, B2"}, **attrs_of({out}))
"""
    )
    pipe = tmp_path / "p.yaml"
    pipe.write_text("name: mine\nrules: [rules.yaml]\npasses:\n  - fuse-patterns\n")
    return str(pipe)


def _model(x_channels: int, op: str = "Mul") -> onnx.ModelProto:
    return build(
        f"""<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,{x_channels},6,6] x) => (float[1,4,6,6] z) {{
          y = {op}(x, c)
          z = Conv(y, W, B)
        }}""",
        {"W": rand(4, 4, 1, 1), "B": rand(4), "c": PER_CHANNEL},
    )


SCALE = ('fold_input_scale(W, c, "mul", g)', "W2")
SHIFT = ('fold_input_shift(W, B, c, "add", g)', "B2")


def test_a_rule_naming_the_conv_output_x_does_not_prove_the_wrong_tensor(tmp_path):
    """x names the Conv's output (4 channels, as many as W reads): the scaled input `a` has one
    channel, which c broadcasts to four. The parent proved x's four channels and folded."""
    pipe = _pipeline(tmp_path, "a", "y", "x", "Mul", *SCALE)
    model = _model(1)
    out = graphopt.optimize(model, pipe)
    assert ops(out) == ["Mul", "Conv"]
    assert_same_outputs(model, out, feeds(model))


def test_a_rule_naming_the_shifted_input_otherwise_still_folds(tmp_path):
    """data of four channels, named `inp`: the proof finds it (the parent refused: "the rule
    binds no tensor x")."""
    for op, (compute, result) in (("Mul", SCALE), ("Add", SHIFT)):
        pipe = _pipeline(tmp_path, "inp", "y", "z", op, compute, result)
        model = _model(4, op)
        out = graphopt.optimize(model, pipe)
        assert ops(out) == ["Conv"], op
        assert_same_outputs(model, out, feeds(model))


def test_a_one_channel_input_under_another_name_is_still_refused(tmp_path):
    for op, (compute, result) in (("Mul", SCALE), ("Add", SHIFT)):
        pipe = _pipeline(tmp_path, "inp", "y", "z", op, compute, result)
        model = _model(1, op)
        out = graphopt.optimize(model, pipe)
        assert ops(out) == [op, "Conv"], op
        assert_same_outputs(model, out, feeds(model))
