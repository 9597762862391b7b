"""The kernel of fold-scale-shift-into-conv (`kernels.fold_scale_shift_conv`: Conv(x, W, b)·c
+ d, a BatchNormalization exported as Mul and Add, PP-OCR det's 28) gives the generic engine's
model byte for byte: where it applies, in either operand order, and where the engine refuses
or finds no match (the kernel then leaves the anchor to it)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import graphopt
from tests.fusion_models import build, ops
from tests.test_patterns_kernels import _fired, _same_as_generic

RULE = "fold-scale-shift-into-conv"

SCALE_SHIFT = """<ir_version: 8, opset_import: ["" : 13]>
g ({inputs}) => (float[1,4,6,6] out{outs}) {{
  y = Conv<pads = [1, 1, 1, 1]{conv_attrs}>(x, W{bias})
  z = {mul}
  w = {add}
  out = Relu(w)
  {extra}
}}"""


def _scale_shift(
    mul: str = "Mul(y, c)",
    add: str = "Add(z, d)",
    bias: bool = True,
    group: int = 1,
    c_shape: tuple[int, ...] = (1, 4, 1, 1),
    extra: str = "",
    outs: str = "",
    runtime: str = "",
) -> onnx.ModelProto:
    rng = np.random.default_rng(174)
    inits = {
        "W": rng.normal(size=(4, 4 // group, 3, 3)).astype(np.float32),
        "c": rng.uniform(0.5, 2, c_shape).astype(np.float32),
        "d": rng.normal(size=(1, 4, 1, 1)).astype(np.float32),
    }
    if bias:
        inits["B"] = rng.normal(size=4).astype(np.float32)
    inputs = "float[1,4,6,6] x"
    if runtime:  # a tensor fed at run time instead of a constant
        inputs += f", float{list(inits[runtime].shape)} {runtime}"
        del inits[runtime]
    text = SCALE_SHIFT.format(
        inputs=inputs,
        outs=outs,
        conv_attrs=f", group = {group}" if group != 1 else "",
        bias=", B" if bias else "",
        mul=mul,
        add=add,
        extra=extra,
    )
    return build(text, inits)


@pytest.mark.parametrize(
    ("model", "folded", "matched"),
    [
        (_scale_shift(), True, True),
        (_scale_shift(mul="Mul(c, y)", add="Add(d, z)"), True, True),
        (_scale_shift(bias=False), True, True),
        (_scale_shift(group=4), True, True),  # depthwise: group captured
        (_scale_shift(group=2), True, True),
        (_scale_shift(c_shape=(1,)), True, True),  # one scale for every channel
        (_scale_shift(add="Add(z, c)", c_shape=(1, 4, 1, 1)), True, True),  # c both scale and shift
        # the engine refuses or finds no match: the kernel must leave them to it
        (_scale_shift(extra="y2 = Sigmoid(y)", outs=", float[1,4,6,6] y2"), False, False),
        (_scale_shift(extra="z2 = Neg(z)", outs=", float[1,4,6,6] z2"), False, False),
        (_scale_shift(outs=", float[1,4,6,6] z"), False, False),  # an intermediate is an output
        (_scale_shift(runtime="d"), False, False),
        (_scale_shift(runtime="c"), False, False),
        (_scale_shift(runtime="W"), False, False),
        (_scale_shift(runtime="B"), False, False),
        (_scale_shift(add="Add(z, z)"), False, False),
        (_scale_shift(mul="Mul(y, y)"), False, False),
        # not per channel: the kernel's match, which the computation refuses
        (_scale_shift(c_shape=(1, 1, 6, 1)), False, True),
    ],
    ids=[
        "plain",
        "swapped",
        "no-bias",
        "depthwise",
        "group2",
        "one-scale",
        "c-twice",
        "y-shared",
        "z-shared",
        "z-output",
        "runtime-d",
        "runtime-c",
        "runtime-W",
        "runtime-B",
        "add-z-z",
        "mul-y-y",
        "c-not-per-channel",
    ],
)
def test_scale_shift_kernel_agrees_with_the_engine(model, folded, matched, monkeypatch):
    """`matched`: the kernel gives a match (where the computation then refuses it, the engine
    is asked again and refuses it too)."""
    fired = _fired(monkeypatch)
    out = _same_as_generic(model)
    assert (ops(out)[:2] == ["Conv", "Relu"] and "Mul" not in ops(out)) == folded
    assert (RULE in fired) == matched


def test_two_chains_on_one_add_are_left_to_the_engine(monkeypatch):
    """Add(Conv·c, Conv·c'): neither operand is a constant d, so nothing matches; each Mul
    still folds into its Conv (fold-mul-into-conv)."""
    rng = np.random.default_rng(7)
    model = build(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,4,6,6] x) => (float[1,4,6,6] out) {
          y1 = Conv<pads = [1, 1, 1, 1]>(x, W1)
          y2 = Conv<pads = [1, 1, 1, 1]>(x, W2)
          z1 = Mul(y1, c1)
          z2 = Mul(y2, c2)
          out = Add(z1, z2)
        }""",
        {
            "W1": rng.normal(size=(4, 4, 3, 3)).astype(np.float32),
            "W2": rng.normal(size=(4, 4, 3, 3)).astype(np.float32),
            "c1": rng.uniform(0.5, 2, (1, 4, 1, 1)).astype(np.float32),
            "c2": rng.uniform(0.5, 2, (1, 4, 1, 1)).astype(np.float32),
        },
    )
    fired = _fired(monkeypatch)
    out = _same_as_generic(model)
    assert RULE not in fired
    assert ops(out) == ["Conv", "Conv", "Add"]


@pytest.mark.realmodel
def test_ppocr_det_folds_its_scale_shift_pairs_through_the_kernel(monkeypatch):
    """PP-OCRv4 det: the 28 exported BatchNormalizations (Mul, Add) fold through the kernel,
    and the model is the generic engine's byte for byte."""
    from graphopt.realmodels import fetch_model

    fired = _fired(monkeypatch)
    path = str(fetch_model("ppocr_det"))
    fast = graphopt.optimize(path)
    assert fired.count(RULE) == 28
    slow = graphopt.optimize(path, rule_kernels=False)
    assert fast.SerializeToString() == slow.SerializeToString()
