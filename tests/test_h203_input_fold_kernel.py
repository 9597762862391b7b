"""The kernel of fold-input-add-into-conv / fold-input-mul-into-conv
(`kernels.fold_input_into_conv`) gives the generic engine's model and counts: where it applies
(either operand order), where it proves the engine refuses (`REFUSES`: a Mul or Add of no
constant before the Conv, as layout_cdla's 88 x·HardSigmoid(x); a padded Conv for x + c; y
read elsewhere; a weight fed at run time) and where it leaves the anchor to the engine. The
rewritten graph's bytes and the applied and refused counts are those of the engine alone."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from graphopt.ir import Graph
from graphopt.patterns import RuleRunner, kernels, rule_set, select
from graphopt.patterns.kernels import KERNELS, REFUSES
from tests.conftest import assert_same_outputs
from tests.fusion_models import build, feeds, ops

FOLD = """<ir_version: 8, opset_import: ["" : 13]>
g ({inputs}) => (float[1,6,5,5] out{outs}) {{
  {pre}
  t = {affine}
  y = Conv<{conv_attrs}>(t, W{bias})
  out = Relu(y)
  {extra}
}}"""


def _fold(
    affine: str = "Add(x, c)",
    conv_attrs: str = "group = 1",
    bias: str = ", B",
    c_shape: tuple[int, ...] = (1,),
    inputs: str = "float[1,4,5,5] x",
    outs: str = "",
    extra: str = "",
    runtime: str = "",
    pre: str = "",
) -> onnx.ModelProto:
    rng = np.random.default_rng(2032)
    inits = {
        "c": rng.uniform(0.5, 2, c_shape).astype(np.float32),
        "W": rng.normal(size=(6, 4, 1, 1) if "pads" not in conv_attrs else (6, 4, 3, 3)).astype(
            np.float32
        ),
        "B": rng.normal(size=6).astype(np.float32),
    }
    if runtime:  # fed at run time instead of a constant
        inputs += f", float{list(inits[runtime].shape)} {runtime}"
        del inits[runtime]
    text = FOLD.format(
        inputs=inputs,
        outs=outs,
        affine=affine,
        conv_attrs=conv_attrs,
        bias=bias,
        extra=extra,
        pre=pre,
    )
    return build(text, inits)


RULES = ("fold-input-add-into-conv", "fold-input-mul-into-conv")


def _run(model: onnx.ModelProto, use_kernels: bool) -> tuple[bytes, dict, dict]:
    graph = Graph(onnx.ModelProto.FromString(model.SerializeToString()))
    runner = RuleRunner(graph)
    runner.use_kernels = use_kernels
    stats = runner.run(select(rule_set(), ["batchnorm", "affine"]))
    return graph.commit().SerializeToString(), dict(stats.applied), dict(stats.refused)


def _outcomes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """(rule, "match" | "refuses" | "engine") for each call of the input-fold kernel."""
    seen: list[tuple[str, str]] = []
    for name in RULES:
        digest, fn = KERNELS[name]

        def recording(runner, rule, anchor_name, anchor, fn=fn):  # type: ignore[no-untyped-def]
            m = fn(runner, rule, anchor_name, anchor)
            kind = "engine" if m is None else "refuses" if m is REFUSES else "match"
            seen.append((rule.name, kind))
            return m

        monkeypatch.setitem(KERNELS, name, (digest, recording))
    return seen


CASES = {
    # applied
    "add": (_fold(), "fold-input-add-into-conv", "match"),
    "add-swapped": (_fold(affine="Add(c, x)"), "fold-input-add-into-conv", "match"),
    "mul": (_fold(affine="Mul(x, c)"), "fold-input-mul-into-conv", "match"),
    "mul-swapped-no-bias": (
        _fold(affine="Mul(c, x)", bias=""),
        "fold-input-mul-into-conv",
        "match",
    ),
    "mul-per-channel": (
        _fold(affine="Mul(x, c)", c_shape=(1, 4, 1, 1)),
        "fold-input-mul-into-conv",
        "match",
    ),
    "add-per-channel": (
        _fold(c_shape=(1, 4, 1, 1)),
        "fold-input-add-into-conv",
        "match",
    ),
    # the engine refuses: the kernel says so
    "mul-of-no-constant": (
        _fold(affine="Mul(x, h)", pre="h = Sigmoid(x)"),
        "fold-input-mul-into-conv",
        "refuses",
    ),
    "add-of-no-constant": (
        _fold(affine="Add(x, h)", pre="h = Sigmoid(x)"),
        "fold-input-add-into-conv",
        "refuses",
    ),
    "add-padded-conv": (
        _fold(conv_attrs="pads = [1, 1, 1, 1]"),
        "fold-input-add-into-conv",
        "refuses",
    ),
    "y-read-elsewhere": (
        _fold(outs=", float[1,4,5,5] t2", extra="t2 = Neg(t)"),
        "fold-input-add-into-conv",
        "refuses",
    ),
    "runtime-weight": (_fold(runtime="W"), "fold-input-add-into-conv", "refuses"),
    "runtime-bias": (_fold(runtime="B"), "fold-input-add-into-conv", "refuses"),
    "c-rank-unproven": (  # no_broadcast: Sinh's rank is not proven
        _fold(affine="Mul(h, c)", pre="h = Sinh(x)", c_shape=(1, 4, 1, 1)),
        "fold-input-mul-into-conv",
        "refuses",
    ),
    "runtime-c": (_fold(runtime="c"), "fold-input-add-into-conv", "refuses"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_input_fold_kernel_agrees_with_the_engine(case, monkeypatch):
    model, rule, outcome = CASES[case]
    seen = _outcomes(monkeypatch)
    fast = _run(model, use_kernels=True)
    assert (rule, outcome) in seen
    with monkeypatch.context() as patched:
        patched.setitem(kernels.KERNELS, rule, ("off", KERNELS[rule][1]))  # digest mismatch
        slow = _run(model, use_kernels=False)
    assert fast == slow  # the bytes, the applied and the refused counts
    applied = fast[1].get(rule, 0)
    assert applied == (1 if outcome == "match" else 0)
    if outcome == "refuses":
        assert fast[2].get(rule, 0) >= 1 or case.startswith("runtime-")


@pytest.mark.parametrize("case", ["add", "mul", "mul-per-channel", "add-per-channel"])
def test_input_fold_kernel_matches_run_like_the_original(case):
    model = CASES[case][0]
    graph = Graph(onnx.ModelProto.FromString(model.SerializeToString()))
    RuleRunner(graph).run(select(rule_set(), ["batchnorm", "affine"]))
    rewritten = graph.commit()
    assert ops(rewritten) == ["Conv", "Relu"]
    assert_same_outputs(model, rewritten, feeds(model))


@pytest.mark.realmodel
@pytest.mark.parametrize("name", ["ppocr_det", "layout_cdla", "ppocrv3_det", "ppocrv6_det"])
def test_real_models_fold_and_count_alike_with_the_input_fold_kernel(name, monkeypatch):
    """The pipelines' outputs and every pass's counts (rules applied and refused) are the
    engine's, and the kernel answered at the detectors' Convs."""
    from graphopt.api import optimize_with_report
    from graphopt.realmodels import fetch_model

    seen = _outcomes(monkeypatch)
    path = str(fetch_model(name))
    for pipeline in ("default", "tensorrt"):
        fast, fast_report = optimize_with_report(path, pipeline)
        slow, slow_report = optimize_with_report(path, pipeline, rule_kernels=False)
        assert fast.SerializeToString() == slow.SerializeToString(), pipeline
        assert [(r.name, r.stats) for r in fast_report.records] == [
            (r.name, r.stats) for r in slow_report.records
        ], pipeline
    if name == "ppocr_det":
        assert ("fold-input-add-into-conv", "match") in seen
        assert ("fold-input-add-into-conv", "refuses") in seen
    if name == "layout_cdla":
        assert seen.count(("fold-input-mul-into-conv", "refuses")) >= 88
