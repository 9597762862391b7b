"""Per-rewrite shortcuts of the rule runner (graphopt/patterns/rewrite.py, engine.Facts) that
must leave every rewrite exactly as it was: computation arguments read through a per-rule plan
(literals, captured attributes, absent optional inputs, layout-only weights), a computed
constant written over a spare one without re-laying its bytes when they are already C-ordered
little-endian, and node reads given the name the graph indexes them by."""

from __future__ import annotations

import numpy as np
import onnx

from graphopt.ir import Graph
from graphopt.ir.graph import content_key
from graphopt.patterns import RuleRunner, rule_set, select
from graphopt.patterns.engine import Facts
from graphopt.patterns.rewrite import _SpareConstants
from tests.conftest import assert_same_outputs
from tests.fusion_models import build, feeds, ops, rand, run_passes


def conv_mul_model(bias: bool, group: int = 1) -> onnx.ModelProto:
    inputs = "x, W, B" if bias else "x, W"
    inits = {"W": rand(4, 4 // group, 3, 3), "c": rand(1, 4, 1, 1, low=0.5, high=2.0)}
    if bias:
        inits["B"] = rand(4)
    return build(
        f"""<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,4,5,5] x) => (float[1,4,5,5] z) {{
          y = Conv<pads = [1, 1, 1, 1], group = {group}>({inputs})
          z = Mul(y, c)
        }}""",
        inits,
    )


def initializer(model: onnx.ModelProto, name: str) -> np.ndarray:
    t = next(t for t in model.graph.initializer if t.name == name)
    return onnx.numpy_helper.to_array(t)


def test_fold_mul_gets_literal_attribute_and_absent_bias_arguments():
    # fold_affine_conv(W, B, c, "mul", group): a literal, a captured attribute and, without B,
    # an absent optional input (None) all reach the computation as before.
    for bias in (True, False):
        for group in (1, 2):
            model = conv_mul_model(bias, group)
            W = initializer(model, "W").astype(np.float64)
            c = initializer(model, "c").astype(np.float64).reshape(-1)
            out, _ = run_passes(model, ["fold-batchnorm"])
            assert ops(out) == ["Conv"]
            conv = out.graph.node[0]
            w2 = initializer(out, conv.input[1])
            np.testing.assert_array_equal(w2, (W * c[:, None, None, None]).astype(np.float32))
            b2 = initializer(out, conv.input[2])
            b = initializer(model, "B").astype(np.float64) if bias else np.zeros(4)
            np.testing.assert_array_equal(b2, (b * c).astype(np.float32))
            assert_same_outputs(model, out, feeds(model))


def test_fold_add_still_reads_the_weight_only_for_its_shape():
    model = build(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,3,5,5] x) => (float[1,4,5,5] z) {
          y = Conv<pads = [1, 1, 1, 1]>(x, W, B)
          z = Add(y, c)
        }""",
        {"W": rand(4, 3, 3, 3), "B": rand(4), "c": rand(1, 4, 1, 1)},
    )
    original = onnx.ModelProto.FromString(model.SerializeToString())
    graph = Graph(model)
    runner = RuleRunner(graph)
    assert runner.run(select(rule_set(), [], ["fold-add-into-conv"])).applied == {
        "fold-add-into-conv": 1
    }
    assert "W" not in runner.facts._values
    assert_same_outputs(original, graph.commit(), feeds(original))


def spare_of(shape: tuple[int, ...]) -> tuple[RuleRunner, _SpareConstants, onnx.TensorProto]:
    dims = ",".join(map(str, shape))
    model = build(
        f"""<ir_version: 8, opset_import: ["" : 13]>
        g (float[{dims}] x) => (float[{dims}] y) {{
          y = Add(x, k)
        }}""",
        {"k": rand(*shape)},
    )
    graph = Graph(model)
    proto = graph.initializers["k"]
    runner = RuleRunner(graph)
    return runner, _SpareConstants(graph, [("k", proto)], {graph.producer["y"]}), proto


def test_store_writes_little_endian_c_order_bytes_for_any_layout():
    values = np.arange(6, dtype=np.float64).reshape(2, 3)
    cases = {
        "contiguous": values.astype(np.float32),
        "transposed": np.ascontiguousarray(values.T.astype(np.float32)).T,
        "strided": np.repeat(values.astype(np.float32), 2, axis=1)[:, ::2],
    }
    for label, value in cases.items():
        runner, spare, proto = spare_of((2, 3))
        proto.float_data.extend([0.0] * 6)  # a typed field the write must clear
        assert runner._store("h", value, spare) == "k", label
        assert len(proto.float_data) == 0
        assert proto.raw_data == values.astype("<f4").tobytes(), label
        np.testing.assert_array_equal(onnx.numpy_helper.to_array(proto), values, label)


def test_facts_io_with_the_indexed_name_reads_what_io_reads():
    model = conv_mul_model(True)
    graph = Graph(model)
    for name, node in graph.nodes.items():
        by_name = Facts(graph).io(node, name)
        plain = Facts(graph).io(node)
        assert by_name == plain
        assert by_name[3] == tuple(node.input) and by_name[4] == tuple(node.output)


def test_store_hands_the_written_bytes_to_the_graph_for_cse():
    # A spare weight overwritten in place: the graph remembers the content key of exactly the
    # bytes now in raw_data (CSE reads them back only when a key is shared).
    runner, spare, proto = spare_of((64, 3))
    graph = runner.graph
    value = rand(64, 3)
    assert runner._store("h", value, spare) == "k"
    assert proto.raw_data == value.tobytes()
    assert graph.content_keys["k"] == (proto, content_key(proto.raw_data))
