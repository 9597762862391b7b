"""Adversarial review of the input scales and shifts that fold into a Conv (7a0cad3:
fold-input-{mul,div,add,sub}-into-conv). The built-in rules match a Conv and capture its group;
their computations are also open to a user's rule file, which may target a ConvTranspose (W
[C_in, C_out/g, k…]: a per-input-channel factor on W's axis 1 scales output channels) or leave
out `conv_unpadded`. `fold_input_scale` with a per-channel constant and `fold_input_shift` now
prove the matched node is one Conv of the given group (and the shift, that it pads nothing)
themselves; on the parent such a user rule rewrote the model into different values. The rest
are cases the built-in rules must refuse or fold exactly, run in onnxruntime against the
original (default pipeline)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

import graphopt
from tests.conftest import assert_same_outputs
from tests.fusion_models import build, feeds, ops, rand


def _user_pipeline(tmp_path: Path, op: str, conv: str, compute: str, checks: str = "") -> Path:
    """A pipeline running one user rule: y = `op`(x, c) read by `conv` folds by `compute`."""
    target_out = "W2" if "scale" in compute else "B2"
    new_inputs = "x, W2, B" if target_out == "W2" else "x, W, B2"
    (tmp_path / "rules.yaml").write_text(
        f"""rules:
  - name: my-input-fold
    doc: {conv}({op}(x, c), W, B) folded
    target: |
      y = {op}(x, c)
      z = {conv}(y, W, optional(B))
    checks:
      - float_constant(W, B, c)
      - no_broadcast(c){checks}
    compute: {target_out} = {compute}
    replacement: z = {conv}({new_inputs}, **attrs_of(z))
"""
    )
    pipe = tmp_path / "p.yaml"
    pipe.write_text("name: mine\nrules: [rules.yaml]\npasses:\n  - fuse-patterns\n")
    return pipe


def _model(op: str, conv: str, attrs: str, c: np.ndarray, w: np.ndarray, z: str) -> onnx.ModelProto:
    return build(
        f"""<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,4,6,6] x) => (float[{z}] z) {{
          y = {op}(x, c)
          z = {conv}{attrs}(y, W)
        }}""",
        {"W": w, "c": c},
    )


PER_CHANNEL = np.array([0.5, 2.0, -1.5, 3.0], np.float32).reshape(1, 4, 1, 1)


def test_a_users_per_channel_scale_into_a_convtranspose_is_refused(tmp_path):
    """ConvTranspose W [C_in=4, C_out=4, 3, 3]: the parent scaled W's axis 1 (output channels)
    by c and the output was ~50 % off."""
    pipe = _user_pipeline(tmp_path, "Mul", "ConvTranspose", 'fold_input_scale(W, c, "mul")')
    model = _model("Mul", "ConvTranspose", "", PER_CHANNEL, rand(4, 4, 3, 3), "1,4,8,8")
    out = graphopt.optimize(model, str(pipe))
    assert ops(out) == ["Mul", "ConvTranspose"]
    assert_same_outputs(model, out, feeds(model))


def test_a_users_one_element_scale_into_a_convtranspose_still_folds(tmp_path):
    """The scalar path is unchanged: ConvTranspose is linear in x, a scale folds whole."""
    pipe = _user_pipeline(tmp_path, "Mul", "ConvTranspose", 'fold_input_scale(W, c, "mul")')
    model = _model(
        "Mul", "ConvTranspose", "", np.array([1.7], np.float32), rand(4, 4, 3, 3), "1,4,8,8"
    )
    out = graphopt.optimize(model, str(pipe))
    assert ops(out) == ["ConvTranspose"]
    assert_same_outputs(model, out, feeds(model))


@pytest.mark.parametrize(
    ("conv", "attrs", "w", "z"),
    [
        ("ConvTranspose", "", (4, 4, 3, 3), "1,4,8,8"),  # its border sums fewer inputs
        ("Conv", "<pads = [1, 1, 1, 1]>", (6, 4, 3, 3), "1,6,6,6"),  # no conv_unpadded check
        ("Conv", '<auto_pad = "SAME_UPPER">', (6, 4, 3, 3), "1,6,6,6"),
    ],
)
def test_a_users_shift_rule_refuses_what_the_bias_cannot_carry(tmp_path, conv, attrs, w, z):
    """fold_input_shift is exact for a Conv that pads nothing only; a user rule that leaves out
    `conv_unpadded`, or targets a ConvTranspose, was folded on the parent (border outputs off
    by the missing part of Σ W·c)."""
    pipe = _user_pipeline(tmp_path, "Add", conv, 'fold_input_shift(W, B, c, "add")')
    model = _model("Add", conv, attrs, np.array([0.75], np.float32), rand(*w), z)
    out = graphopt.optimize(model, str(pipe))
    assert ops(out) == ["Add", conv]
    assert_same_outputs(model, out, feeds(model))


def test_a_users_shift_rule_folds_an_unpadded_conv(tmp_path):
    """The refusals above are not a blanket one: the same user rule folds a 3×3 VALID Conv."""
    pipe = _user_pipeline(tmp_path, "Add", "Conv", 'fold_input_shift(W, B, c, "add")')
    model = _model("Add", "Conv", "", PER_CHANNEL, rand(6, 4, 3, 3), "1,6,4,4")
    out = graphopt.optimize(model, str(pipe))
    assert ops(out) == ["Conv"]
    assert_same_outputs(model, out, feeds(model))


# ----------------------------------------------------------------- built-in rules, default pipeline


@pytest.mark.parametrize(
    ("op", "c", "expect"),
    [
        ("Sub(c, x)", PER_CHANNEL, ["Sub", "Conv"]),  # c − x is not x − c
        ("Div(c, x)", np.array([2.0], np.float32), ["Div", "Conv"]),  # c / x is not x / c
        ("Mul(x, c)", rand(1, 1, 1, 6), ["Mul", "Conv"]),  # per width, not per channel
        ("Add(x, c)", rand(1, 1, 6, 1), ["Add", "Conv"]),  # per row
        ("Mul(x, c)", np.array([0.0], np.float32), ["Mul", "Conv"]),  # x's inf/NaN would vanish
        ("Mul(x, c)", np.array([-0.0], np.float32), ["Mul", "Conv"]),
        ("Div(x, c)", np.array([np.inf], np.float32), ["Div", "Conv"]),
        ("Add(x, c)", np.array([np.nan], np.float32), ["Add", "Conv"]),
        ("Sub(x, c)", PER_CHANNEL, ["Conv"]),
        ("Div(x, c)", PER_CHANNEL.reshape(4, 1, 1), ["Conv"]),
        ("Add(c, x)", np.array(0.25, np.float32), ["Conv"]),  # rank 0
    ],
)
def test_builtin_input_folds_refuse_or_fold_exactly(op, c, expect):
    model = build(
        f"""<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,4,6,6] x) => (float[1,6,6,6] z) {{
          y = {op}
          z = Conv(y, W, B)
        }}""",
        {"W": rand(6, 4, 1, 1), "B": rand(6), "c": c},
    )
    out = graphopt.optimize(model)
    assert ops(out) == expect
    assert_same_outputs(model, out, feeds(model))


def test_a_weight_shared_with_an_unscaled_conv_is_copied():
    """x·c folds into one Conv's W; the other Conv reading the same W keeps the original."""
    model = build(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,4,6,6] x) => (float[1,6,6,6] z, float[1,6,6,6] z2) {
          y = Mul(x, c)
          z = Conv(y, W)
          z2 = Conv(x, W)
        }""",
        {"W": rand(6, 4, 1, 1), "c": PER_CHANNEL},
    )
    out = graphopt.optimize(model)
    assert ops(out) == ["Conv", "Conv"]
    assert_same_outputs(model, out, feeds(model))
