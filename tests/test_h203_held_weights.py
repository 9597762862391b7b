"""A weight the rule runner computes and will compute again in the same run is held, not
written into the protobuf (`Facts.hold`, `RuleRunner._refoldable`): PP-OCR det's affine blocks
a·x + b before a Conv that a BatchNormalization (exported as Mul and Add) follows fold three
times into one Conv (fold-scale-shift-into-conv, then fold-input-add-into-conv, then
fold-input-mul-into-conv), and W and B were each written twice (ppocr_det: 1.83 of 5.52 MB
written, and read back). Held, each is written once, when the run ends; the model comes out
byte for byte as with every weight written at once."""

from __future__ import annotations

import collections

import numpy as np
import onnx
import pytest

import graphopt
from graphopt.ir import Graph
from graphopt.patterns import RuleRunner, rule_set, select
from graphopt.patterns.rewrite import RuleRunner as Runner
from tests.conftest import assert_same_outputs
from tests.fusion_models import build, feeds, ops

AFFINE_CONV = """<ir_version: 8, opset_import: ["" : 13]>
g (float[1,4,5,5] x) => (float[1,6,5,5] out) {{
  s = Mul(x, a)
  t = Add(s, b)
  y = Conv(t, W, B)
  z = Mul(y, c)
  w = Add(z, d)
  out = Relu(w)
}}"""


def _affine_conv(per_channel: bool = False) -> onnx.ModelProto:
    """a·x + b → Conv 1×1 → ·c + d (a BatchNormalization as Mul and Add). `per_channel`: a and
    b of shape [1, 4, 1, 1] (their folds infer x's shape), else one element each."""
    rng = np.random.default_rng(203)
    shape = (1, 4, 1, 1) if per_channel else (1,)
    inits = {
        "a": rng.uniform(0.5, 2, shape).astype(np.float32),
        "b": rng.normal(size=shape).astype(np.float32),
        "W": rng.normal(size=(6, 4, 1, 1)).astype(np.float32),
        "B": rng.normal(size=6).astype(np.float32),
        "c": rng.uniform(0.5, 2, (1, 6, 1, 1)).astype(np.float32),
        "d": rng.normal(size=(1, 6, 1, 1)).astype(np.float32),
    }
    return build(AFFINE_CONV.format(), inits)


RULES = ("fold-scale-shift-into-conv", "fold-input-add-into-conv", "fold-input-mul-into-conv")


def _writes(model: onnx.ModelProto, monkeypatch: pytest.MonkeyPatch) -> tuple[Graph, dict]:
    """Run the fold-batchnorm rules over `model`; (the graph, initializer → bytes writes)."""
    written: collections.Counter[str] = collections.Counter()
    original = Graph.write_raw_data

    def counting(self, name, raw_data):  # type: ignore[no-untyped-def]
        written[name] += 1
        original(self, name, raw_data)

    monkeypatch.setattr(Graph, "write_raw_data", counting)
    graph = Graph(model)
    stats = RuleRunner(graph).run(select(rule_set(), ["batchnorm", "affine"]))
    assert stats.applied == dict.fromkeys(RULES, 1)
    return graph, dict(written)


@pytest.mark.parametrize(
    ("per_channel", "expected"),
    [
        (False, {"W": 1, "B": 1}),
        # a per-channel a, b: their folds infer x's shape, and inference reads the graph's
        # small constants, so what is held is written first (W·c and B·c + d, then again)
        (True, {"W": 2, "B": 2}),
    ],
    ids=["one-element", "per-channel"],
)
def test_a_weight_folded_twice_in_a_run_is_written_once(per_channel, expected, monkeypatch):
    model = _affine_conv(per_channel)
    original = onnx.ModelProto.FromString(model.SerializeToString())
    graph, written = _writes(model, monkeypatch)
    # W: W·c, then (W·c)·a; B: B·c + d, then + Σ (W·c)·b. Before: each written twice.
    assert written == expected
    rewritten = graph.commit()
    assert ops(rewritten) == ["Conv", "Relu"]
    assert_same_outputs(original, rewritten, feeds(original))


@pytest.mark.parametrize("per_channel", [False, True], ids=["one-element", "per-channel"])
def test_held_weights_give_the_model_of_weights_written_at_once(per_channel, monkeypatch):
    model = _affine_conv(per_channel)
    held = graphopt.optimize(model)
    with monkeypatch.context() as patched:
        patched.setattr(Runner, "_refoldable", lambda self, m: False)
        at_once = graphopt.optimize(model)
    assert held.SerializeToString() == at_once.SerializeToString()
    assert ops(held) == ["Conv", "Relu"]


def test_a_held_weight_is_written_when_a_run_fails(monkeypatch):
    """The run ends in an exception after W and B were held: they are written all the same,
    so the graph the caller keeps holds no stale weight."""
    model = _affine_conv()
    graph = Graph(model)
    runner = RuleRunner(graph)
    original = Runner._apply
    calls = []

    def failing(self, m):  # type: ignore[no-untyped-def]
        original(self, m)
        calls.append(m.rule.name)
        if m.rule.name == "fold-input-add-into-conv":
            raise RuntimeError("stop")

    monkeypatch.setattr(Runner, "_apply", failing)
    with pytest.raises(RuntimeError, match="stop"):
        runner.run(select(rule_set(), ["batchnorm", "affine"]))
    assert calls == ["fold-scale-shift-into-conv", "fold-input-add-into-conv"]
    assert not runner.facts._held
    w = onnx.numpy_helper.to_array(graph.initializers["W"])
    np.testing.assert_array_equal(w, runner.facts.value("W"))  # W·c, written at the end


@pytest.mark.realmodel
@pytest.mark.parametrize("pipeline", ["default", "tensorrt"])
def test_ppocr_det_comes_out_the_same_with_its_weights_held(pipeline, monkeypatch):
    from graphopt.realmodels import fetch_model

    path = str(fetch_model("ppocr_det"))
    held = graphopt.optimize(path, pipeline)
    with monkeypatch.context() as patched:
        patched.setattr(Runner, "_refoldable", lambda self, m: False)
        at_once = graphopt.optimize(path, pipeline)
    assert held.SerializeToString() == at_once.SerializeToString()


def test_a_second_run_of_one_runner_holds_by_its_own_rules(monkeypatch):
    """Which writes are held follows the rules of the run in progress: a runner run first
    with fold-batchnorm-conv alone (a Conv+BN beside the affine block), then with every fold,
    writes the affine block's W and B once each in the second run."""
    rng = np.random.default_rng(2031)
    base = _affine_conv()
    text = AFFINE_CONV.format().replace(
        "(float[1,6,5,5] out)", "(float[1,6,5,5] out, float[1,6,5,5] out2)"
    )
    text = text.replace(
        "  out = Relu(w)\n",
        "  out = Relu(w)\n  y2 = Conv(x, W3)\n  out2 = BatchNormalization(y2, g3, b3, m3, v3)\n",
    )
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in base.graph.initializer}
    inits["W3"] = rng.normal(size=(6, 4, 1, 1)).astype(np.float32)
    for name in ("g3", "b3", "m3"):
        inits[name] = rng.normal(size=6).astype(np.float32)
    inits["v3"] = rng.uniform(0.5, 2, 6).astype(np.float32)
    graph = Graph(build(text, inits))
    runner = RuleRunner(graph)
    first = runner.run(select(rule_set(), [], ["fold-batchnorm-conv"]))
    assert first.applied == {"fold-batchnorm-conv": 1}
    written: collections.Counter[str] = collections.Counter()
    original = Graph.write_raw_data

    def counting(self, name, raw_data):  # type: ignore[no-untyped-def]
        written[name] += 1
        original(self, name, raw_data)

    monkeypatch.setattr(Graph, "write_raw_data", counting)
    second = runner.run(select(rule_set(), ["batchnorm", "affine"]))
    assert {k: second.applied[k] for k in RULES} == dict.fromkeys(RULES, 1)
    assert written["W"] == 1 and written["B"] == 1
