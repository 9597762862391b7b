"""The hand-written rule kernels (`graphopt.patterns.kernels`) give exactly the generic engine's
model: the same bytes with `rule_kernels=False`, on models where a kernel applies, where it
must defer (each precondition and check the engine would refuse on) and on the real models."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import graphopt
from graphopt.patterns import kernels, rule_set
from graphopt.patterns.kernels import KERNELS, rule_digest
from tests.conftest import assert_same_outputs
from tests.fusion_models import build, feeds, ops


def test_kernels_were_written_for_the_builtin_rules():
    """An edited built-in rule changes its digest: its kernel is then off (the generic engine
    runs it) and this test says which kernel to update."""
    builtin = {r.name: r for r in rule_set([])}
    for name, (digest, _) in KERNELS.items():
        assert rule_digest(builtin[name]) == digest, f"update the kernel of {name}"
        assert kernels.kernel_for(builtin[name]) is not None


def _fired(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the rules whose kernel returned a match, as the runs go."""
    fired: list[str] = []
    for name, (digest, fn) in list(KERNELS.items()):

        def counting(runner, rule, anchor_name, anchor, fn=fn):  # type: ignore[no-untyped-def]
            m = fn(runner, rule, anchor_name, anchor)
            if m is not None:
                fired.append(rule.name)
            return m

        monkeypatch.setitem(KERNELS, name, (digest, counting))
    return fired


def _same_as_generic(model: onnx.ModelProto, run: bool = True) -> onnx.ModelProto:
    fast = graphopt.optimize(model)
    slow = graphopt.optimize(model, rule_kernels=False)
    assert fast.SerializeToString() == slow.SerializeToString()
    if run:  # (onnxruntime has no BatchNormalization with parameters of another dtype)
        assert_same_outputs(model, fast, feeds(model))
    return fast


CONV_BN = """<ir_version: 8, opset_import: ["" : {opset}]>
g (float[1,3,6,6] x) => (float[1,4,6,6] {out}) {{
  y = Conv<pads = [1, 1, 1, 1]>(x, W{bias})
  {bn_outs} = BatchNormalization{bn_attrs}(y, gamma, beta, mean, var)
  {extra}
}}"""


def _conv_bn(
    opset: int = 13,
    bias: bool = True,
    bn_attrs: str = "",
    extra: str = "out = Relu(z)",
    out: str = "out",
    dtype: type = np.float32,
    w_input: bool = False,
    bn_outs: str = "z",
) -> onnx.ModelProto:
    rng = np.random.default_rng(1)
    inits = {
        "W": rng.normal(size=(4, 3, 3, 3)).astype(np.float32),
        "gamma": rng.uniform(0.5, 2, 4).astype(dtype),
        "beta": rng.normal(size=4).astype(dtype),
        "mean": rng.normal(size=4).astype(dtype),
        "var": rng.uniform(0.5, 2, 4).astype(dtype),
    }
    if bias:
        inits["B"] = rng.normal(size=4).astype(np.float32)
    text = CONV_BN.format(
        opset=opset,
        bias=", B" if bias else "",
        bn_attrs=bn_attrs,
        extra=extra,
        out=out,
        bn_outs=bn_outs,
    )
    if w_input:  # W fed at run time: no constant, no fold
        text = text.replace("(float[1,3,6,6] x)", "(float[1,3,6,6] x, float[4,3,3,3] W)")
        del inits["W"]
    return build(text, inits)


@pytest.mark.parametrize(
    ("model", "kernel_applies"),
    [
        (_conv_bn(), True),
        (_conv_bn(bias=False), True),
        (_conv_bn(bn_attrs="<epsilon = 0.001>"), True),
        (_conv_bn(opset=9), True),
        (_conv_bn(opset=7), True),
        # the engine refuses each of these: the kernel must leave them to it
        (_conv_bn(extra="out = Add(z, y)"), False),  # y read elsewhere
        (_conv_bn(extra="out = Relu(z)\n  y2 = Identity(y)", out="out, float[1,4,6,6] y2"), False),
        (_conv_bn(opset=15, dtype=np.float64), False),  # BN parameters of another dtype
        (_conv_bn(w_input=True), False),  # W is no constant
    ],
    ids=[
        "plain",
        "no-bias",
        "epsilon",
        "opset9",
        "opset7",
        "y-shared",
        "y-read-twice",
        "mixed-dtype",
        "runtime-weight",
    ],
)
def test_conv_batchnorm_kernel_agrees_with_the_engine(model, kernel_applies, monkeypatch):
    fired = _fired(monkeypatch)
    out = _same_as_generic(model, run=model.opset_import[0].version != 15)
    assert fired.count("fold-batchnorm-conv") == (1 if kernel_applies else 0)
    assert ("BatchNormalization" not in ops(out)) == kernel_applies


@pytest.mark.parametrize("opset", [7, 9, 12])
def test_a_batchnorm_with_statistics_outputs_before_opset_14_is_not_folded(opset, monkeypatch):
    """Before opset 14 (no training_mode attribute) a BatchNormalization that names its mean and
    variance outputs runs in training mode (the ONNX spec's output case #1; onnxruntime too):
    it normalizes with the batch's statistics, even when nothing reads them. Folding it into
    the Conv with the running statistics changed the output (max |diff| ~5 here)."""
    model = _conv_bn(opset=opset, bn_outs="z, rm, rv, sm, sv")
    fired = _fired(monkeypatch)
    out = _same_as_generic(model)
    assert fired == [] and "BatchNormalization" in ops(out)


def test_conv_batchnorm_kernel_leaves_a_training_mode_batchnorm(monkeypatch):
    model = _conv_bn(opset=15, bn_attrs="<training_mode = 1>", bn_outs="z, rm, rv")
    fired = _fired(monkeypatch)
    fast = graphopt.optimize(model)
    slow = graphopt.optimize(model, rule_kernels=False)
    assert fast.SerializeToString() == slow.SerializeToString()
    assert fired == [] and "BatchNormalization" in ops(fast)


HARDSWISH = """<ir_version: 8, opset_import: ["" : {opset}]>
g (float[1,4,3,3] x0) => (float{y_shape} y{outs}) {{
  x = Relu(x0)
  t = Constant<value = float{shape} {{{three}}}>()
  a = {add}
  z = Constant<value = float {{0.0}}>()
  s = Constant<value = float {{6.0}}>()
  c = Clip(a, z, s)
  m = {mul}
  six = Constant<value = float {{6.0}}>()
  y = Div(m, six)
}}"""


def _hardswish(
    opset: int = 13,
    add: str = "Add(x, t)",
    mul: str = "Mul(x, c)",
    three: str = "3.0",
    shape: str = "",
    outs: str = "",
    y_shape: str = "[1,4,3,3]",
) -> onnx.ModelProto:
    text = HARDSWISH.format(
        opset=opset, add=add, mul=mul, three=three, shape=shape, outs=outs, y_shape=y_shape
    )
    return build(text)


@pytest.mark.parametrize(
    ("model", "fused"),
    [
        (_hardswish(), "HardSigmoid"),  # opset 13: x·HardSigmoid(x)
        (_hardswish(opset=14), "HardSwish"),
        (_hardswish(add="Add(t, x)", mul="Mul(c, x)"), "HardSigmoid"),
        (_hardswish(three="3.0000001"), "HardSigmoid"),  # within the literal's tolerance
        (_hardswish(shape="[1]"), "HardSigmoid"),  # a [1] constant does not raise rank 4
        # the engine refuses or does not match these: the kernel must leave them to it
        (_hardswish(three="3.01"), None),
        (_hardswish(shape="[1,1,1,1,1]", y_shape="[1,1,4,3,3]"), None),  # raises the rank
        (_hardswish(add="Add(t, t)"), None),
        (_hardswish(outs=", float[1,4,3,3] c"), None),  # an intermediate is a graph output
    ],
    ids=[
        "opset13",
        "opset14",
        "swapped",
        "tolerance",
        "rank-1-constant",
        "not-three",
        "rank-raising",
        "no-x",
        "shared-intermediate",
    ],
)
def test_hardswish_kernel_agrees_with_the_engine(model, fused, monkeypatch):
    fired = _fired(monkeypatch)
    out = _same_as_generic(model)
    expected_rule = "hardswish" if fused == "HardSwish" else "hardswish-via-hardsigmoid"
    assert fired == ([expected_rule] if fused else [])
    if fused:
        assert fused in ops(out) and "Clip" not in ops(out)
    else:
        assert "HardSigmoid" not in ops(out) and "HardSwish" not in ops(out)


def test_explain_runs_the_generic_engine(monkeypatch):
    fired = _fired(monkeypatch)
    out = graphopt.optimize(_conv_bn(), "default", explain=True)
    assert fired == [] and "BatchNormalization" not in ops(out)


@pytest.mark.realmodel
@pytest.mark.parametrize(
    "name", ["layout_cdla", "ppocr_det", "common_det", "ppocrv3_det", "slanet", "ppocrv6_det"]
)
def test_real_models_come_out_the_same_with_and_without_kernels(name, monkeypatch):
    from graphopt.realmodels import fetch_model

    fired = _fired(monkeypatch)
    path = str(fetch_model(name))
    for pipeline in ("default", "tensorrt"):
        fast = graphopt.optimize(path, pipeline)
        slow = graphopt.optimize(path, pipeline, rule_kernels=False)
        assert fast.SerializeToString() == slow.SerializeToString(), pipeline
    if name in ("layout_cdla", "ppocr_det"):
        assert fired  # the detectors' Conv+BN and HardSwish chains go through the kernels
