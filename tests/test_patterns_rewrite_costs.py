"""The rule runner's shortcuts for speed (graphopt/patterns/rewrite.py, engine.Facts): each one
must leave the rewrite exactly as it was. Node reads cached per run (`Facts.io`), weights read
only for their shape (`Facts.layout`), spare constants checked when taken, and screens skipped
by the ops two producers up; compared with onnxruntime and with the rule's documented choice."""

from __future__ import annotations

import numpy as np
import onnx

from graphopt.ir import Graph
from graphopt.patterns import RuleRunner, rule_set, select
from graphopt.patterns.engine import Facts
from tests.conftest import assert_same_outputs
from tests.fusion_models import build, feeds, ops, rand, run_passes


def conv_add_model(c: np.ndarray) -> onnx.ModelProto:
    return build(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,3,5,5] x) => (float[1,4,5,5] z) {
          y = Conv<pads = [1, 1, 1, 1]>(x, W, B)
          z = Add(y, c)
        }""",
        {"W": rand(4, 3, 3, 3), "B": rand(4), "c": c},
    )


def test_facts_io_reads_the_node_and_follows_a_replacement_of_the_same_name():
    model = conv_add_model(rand(1, 4, 1, 1))
    graph = Graph(model)
    facts = Facts(graph)
    conv = graph.producer_node("y")
    assert conv is not None
    node, op, domain, inputs, outputs = facts.io(conv)
    assert (node, op, domain, inputs, outputs) == (conv, "Conv", "", ("x", "W", "B"), ("y",))
    assert facts.op_of(conv) == ("Conv", "")
    # A node replaced under the same name is read afresh (the cache is keyed by the object).
    graph.remove_node(conv)
    relu = onnx.helper.make_node("Relu", ["x"], ["y"], name=conv.name)
    graph.add_node(relu)
    assert facts.io(relu)[1:] == ("Relu", "", ("x",), ("y",))
    assert facts.op_of(relu) == ("Relu", "")


def test_facts_layout_has_the_constant_dtype_and_shape_without_its_values():
    model = conv_add_model(rand(1, 4, 1, 1))
    graph = Graph(model)
    facts = Facts(graph)
    layout = facts.layout("W")
    assert layout is not None
    assert layout.shape == (4, 3, 3, 3) and layout.dtype == np.float32
    assert not layout.flags.writeable and not np.any(layout)
    assert "W" not in facts._values  # nothing decoded
    value = facts.value("W")
    assert facts.layout("W") is value  # once decoded, the value itself
    assert facts.layout("x") is None and facts.layout("y") is None  # not constants


def test_bias_fold_reads_only_the_weight_shape():
    model = conv_add_model(rand(1, 4, 1, 1))
    original = onnx.ModelProto.FromString(model.SerializeToString())
    graph = Graph(model)
    runner = RuleRunner(graph)
    stats = runner.run(select(rule_set(), [], ["fold-add-into-conv"]))
    assert stats.applied == {"fold-add-into-conv": 1}
    assert "W" not in runner.facts._values  # the weight's bytes were never decoded
    rewritten = graph.commit()
    assert ops(rewritten) == ["Conv"]
    assert_same_outputs(original, rewritten, feeds(original))


def test_bias_fold_of_a_non_per_channel_constant_is_still_refused():
    # The weight placeholder has the weight's shape: the per-channel check sees 4 outputs,
    # and c of shape [5] runs along the width.
    model = conv_add_model(rand(5))
    out, _ = run_passes(model, ["fold-batchnorm"])
    assert ops(out) == ["Conv", "Add"]
    assert_same_outputs(model, out, feeds(model))


def test_folded_bias_takes_the_last_spare_statistic_in_name_order_that_only_bn_reads():
    # B2 ([C]) may overwrite any of B, b, m, s, v (name order); v is also read by the Mul,
    # so the last usable one is s.
    model = build(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,2,4,4] x) => (float[1,3,4,4] z, float[3] u) {
          y = Conv(x, W, B)
          z = BatchNormalization(y, s, b, m, v)
          u = Mul(v, v)
        }""",
        {"W": rand(3, 2, 1, 1), "B": rand(3), "s": rand(3), "b": rand(3), "m": rand(3),
         "v": rand(3, low=0.5, high=2.0)},
    )  # fmt: skip
    out, _ = run_passes(model, ["fold-batchnorm"])
    conv = next(n for n in out.graph.node if n.op_type == "Conv")
    assert list(conv.input) == ["x", "W", "s"]
    assert sorted(t.name for t in out.graph.initializer) == ["W", "s", "v"]
    assert_same_outputs(model, out, feeds(model))


def test_hardswish_found_after_screens_skipped_by_the_ops_two_producers_up():
    # Mul(x, Div(Min(Max(x + 3, 0), 6), 6)): the anchor's first screened target (Relu6 as Clip)
    # rejects it; the other Clip form is skipped unscreened (no Clip two producers up), the
    # Min(Relu) form is screened and rejected, the Min(Max) form matches.
    model = build(
        """<ir_version: 8, opset_import: ["" : 14]>
        g (float[2,3,4,5] x) => (float[2,3,4,5] y) {
          three = Constant<value = float {3.0}>()
          zero = Constant<value = float {0.0}>()
          six = Constant<value = float {6.0}>()
          a = Add(x, three)
          r = Max(a, zero)
          c = Min(r, six)
          h = Div(c, six)
          y = Mul(x, h)
        }"""
    )
    out, _ = run_passes(model, ["fuse-activations"])
    assert ops(out) == ["HardSwish"]
    assert_same_outputs(model, out, feeds(model))
    # Without --explain (the compiled matcher and its screens), the same rewrite.
    graph = Graph(onnx.ModelProto.FromString(model.SerializeToString()))
    stats = RuleRunner(graph).run(select(rule_set(), ["activations"]))
    assert stats.applied == {"hardswish": 1}
    assert ops(graph.commit()) == ["HardSwish"]


def hardswish_chain(decoy_first: bool) -> onnx.ModelProto:
    """Two x·relu6(x+3)/6 and one decoy Div(Mul(a, Relu(a)), 6) whose match fails two nodes
    deep (Relu is no Clip) where the screen rejects it outright."""
    hs = """
          a{i} = Add({x}, three)
          c{i} = Clip(a{i}, zero, six)
          m{i} = Mul({x}, c{i})
          h{i} = Div(m{i}, six)"""
    decoy = """
          r = Relu({x})
          dm = Mul({x}, r)
          d = Div(dm, six)"""
    if decoy_first:
        body, out = decoy.format(x="x") + hs.format(i=1, x="d") + hs.format(i=2, x="h1"), "h2"
    else:
        body, out = hs.format(i=1, x="x") + hs.format(i=2, x="h1") + decoy.format(x="h2"), "d"
    return build(
        f"""<ir_version: 8, opset_import: ["" : 14]>
        g (float[2,3,4,5] x) => (float[2,3,4,5] {out}) {{
          three = Constant<value = float {{3.0}}>()
          zero = Constant<value = float {{0.0}}>()
          six = Constant<value = float {{6.0}}>()
          {body}
        }}"""
    )


def test_searching_before_screening_refuses_nothing_the_screen_would_have_skipped():
    # After two anchors whose screens passed, the decoy is searched first: its failure two
    # nodes deep must be dropped because the screen rejects it, as when it comes first.
    for decoy_first in (True, False):
        model = hardswish_chain(decoy_first)
        original = onnx.ModelProto.FromString(model.SerializeToString())
        graph = Graph(model)
        stats = RuleRunner(graph).run(select(rule_set(), [], ["hardswish"]))
        assert stats.applied == {"hardswish": 2}
        assert stats.refused == {}, decoy_first
        rewritten = graph.commit()
        assert ops(rewritten).count("HardSwish") == 2
        assert_same_outputs(original, rewritten, feeds(original))
