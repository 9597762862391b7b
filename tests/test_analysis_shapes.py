"""graphopt.analysis.shapes: one shape-inference run over a lightweight copy of the model."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.analysis import ShapeFacts, shape_facts
from graphopt.ir import Graph, load_model
from graphopt.passes.base import PassContext


def _model() -> onnx.ModelProto:
    """x[N,3,8,8] → Conv(W 16x3x3x3, large) → Reshape(shape from Constant) → Cast(int32)."""
    w = numpy_helper.from_array(np.ones((16, 3, 3, 3), np.float32), "W")
    shape = helper.make_tensor("target", TensorProto.INT64, [2], [0, -1])
    nodes = [
        helper.make_node("Conv", ["x", "W"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Constant", [], ["shape"], name="shape_const", value=shape),
        helper.make_node("Reshape", ["c", "shape"], ["r"], name="reshape"),
        helper.make_node("Cast", ["r"], ["y"], name="cast", to=TensorProto.INT32),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, None)],
        [w],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_shapes_dtypes_symbolic_dims_and_constants():
    facts = shape_facts(Graph(_model()))
    assert facts.shape("x") == ("N", 3, 8, 8)
    assert facts.shape("c") == ("N", 16, 8, 8)
    assert facts.shape("W") == (16, 3, 3, 3)
    assert facts.dtype("W") == TensorProto.FLOAT
    assert facts.shape("shape") == (2,)
    assert facts.dtype("y") == TensorProto.INT32
    # Reshape(c, [0, -1]) infers through the kept small constant: 16*8*8 = 1024.
    assert facts.shape("r") == ("N", 1024)
    assert facts.rank("r") == 2
    assert not facts.is_static("r")
    assert facts.is_static("W")
    assert facts.size("W") == 16 * 27
    assert facts.size("r") is None
    assert facts.shape("nope") is None and facts.dtype("nope") is None
    assert facts.rank("nope") is None
    assert "c" in facts and "nope" not in facts


def test_large_constant_node_is_replaced_but_still_described():
    big = numpy_helper.from_array(np.arange(200, dtype=np.float32).reshape(2, 100), "v")
    nodes = [
        helper.make_node("Constant", [], ["k"], name="k", value=big),
        helper.make_node("Add", ["x", "k"], ["y"], name="add"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 100])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    facts = shape_facts(Graph(helper.make_model(graph)))
    assert facts.shape("k") == (2, 100)
    assert facts.shape("y") == (2, 100)


def test_out_of_order_nodes_are_toposorted_and_model_is_not_mutated():
    model = _model()
    nodes = list(model.graph.node)
    model.graph.ClearField("node")
    model.graph.node.extend(reversed(nodes))
    before = model.SerializeToString()
    g = Graph(onnx.ModelProto.FromString(before))
    facts = shape_facts(g)
    assert facts.shape("r") == ("N", 1024)
    facts_from_proto = shape_facts(model)
    assert facts_from_proto.shape("r") == ("N", 1024)
    assert model.SerializeToString() == before


def test_cached_in_context_until_invalidated():
    g = Graph(_model())
    ctx = PassContext()
    first = shape_facts(g, ctx)
    assert isinstance(ctx.facts["shapes"], ShapeFacts)
    assert shape_facts(g, ctx) is first
    ctx.invalidate()
    # Nothing new appeared: the facts still cover every tensor and are reused.
    assert shape_facts(g, ctx) is first
    # A rewrite adds a tensor the facts don't know: they are inferred again and cover it.
    source = g.graph_inputs[0]
    new = g.make_node("Relu", [source]).output[0]
    ctx.invalidate()
    again = shape_facts(g, ctx)
    assert again is not first
    assert again.shape(new) == first.shape(source)


def test_a_tensor_folded_into_a_constant_gets_its_facts_inferred_again():
    # Reshape(x, t) with t computed: its output's shape is unknown until t becomes a constant
    # of the same name (what constant folding writes); the earlier facts cover every name but
    # would keep that shape unknown, so a pipeline needed another run per layer of such
    # Reshapes (LORE's transformer with input_shapes: 495 -> 427 -> 411 nodes)
    graph = helper.make_graph(
        [
            helper.make_node("Shape", ["x"], ["d"], name="shape"),
            helper.make_node("Abs", ["d"], ["s"], name="abs"),  # no data propagation
            helper.make_node("Reshape", ["x", "s"], ["r"], name="reshape"),
            helper.make_node("Relu", ["r"], ["y"], name="relu"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    g = Graph(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    ctx = PassContext()
    first = shape_facts(g, ctx)
    assert first.shape("s") == (2,) and first.shape("r") is None
    g.remove_node("abs")  # folded: its output becomes a constant of the same name
    g.add_initializer("s", np.array([3, 2], np.int64), exact_name=True)
    ctx.invalidate()
    assert shape_facts(g, ctx).shape("r") == (3, 2)


def test_inference_failure_leaves_unknowns_not_errors():
    # A custom-domain op: ONNX cannot infer its output; the facts say unknown.
    nodes = [
        helper.make_node("Mystery", ["x"], ["m"], name="m", domain="custom"),
        helper.make_node("Relu", ["m"], ["y"], name="relu"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("custom", 1)]
    )
    facts = shape_facts(Graph(model))
    assert facts.shape("x") == (4,)
    assert facts.shape("m") is None


@pytest.mark.realmodel
@pytest.mark.parametrize("name", ["layout_cdla", "common_det"])
def test_real_models_every_node_output_is_static(real_model, name):
    g = Graph(load_model(real_model(name)))
    facts = shape_facts(g)
    outputs = [o for n in g.nodes.values() for o in n.output if o]
    assert all(facts.is_static(o) for o in outputs)
    assert all(facts.dtype(o) is not None for o in outputs)
    inp = g.graph_inputs[0]
    assert facts.shape(inp)[:2] == (1, 3)


def test_a_negative_declared_dim_is_unknown():
    """A batch declared as dim_value -1 (older paddle2onnx) is an unknown dim in the facts,
    and nothing computed from it becomes a size (y's batch is N·N at run time)."""
    import onnx.parser

    model = onnx.parser.parse_model(
        """
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[1, 4, 3, 5] x) => (float[1, 60] y) {
          s = Shape (x)
          z = Constant <value = int64 {0}> ()
          n = Gather <axis = 0> (s, z)
          nn = Mul (n, n)
          ax = Constant <value = int64[1] {0}> ()
          u = Unsqueeze (nn, ax)
          m1 = Constant <value = int64[1] {-1}> ()
          target = Concat <axis = 0> (u, m1)
          y = Reshape (x, target)
        }
        """
    )
    for vi in (model.graph.input[0], model.graph.output[0]):
        vi.type.tensor_type.shape.dim[0].dim_value = -1
    facts = shape_facts(model)
    assert facts.shape("x") == (None, 4, 3, 5)
    y = facts.shape("y")
    assert y is None or not isinstance(y[0], int)


def _declared_wrong(vi_dims: list[int]) -> onnx.ModelProto:
    """x[2,6] → Relu → y → Reshape(y, [3, 4]) → z, with y's value_info declaring `vi_dims`
    (an exporter's stale declaration: y is [2, 6]); z also reads Shape(y)."""
    nodes = [
        helper.make_node("Relu", ["x"], ["y"]),
        helper.make_node("Reshape", ["y", "t"], ["z"]),
        helper.make_node("Shape", ["y"], ["s"]),
        helper.make_node("Cast", ["s"], ["sf"], to=TensorProto.FLOAT),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 6])],
        [
            helper.make_tensor_value_info("z", TensorProto.FLOAT, [3, 4]),
            helper.make_tensor_value_info("sf", TensorProto.FLOAT, [2]),
        ],
        [numpy_helper.from_array(np.array([3, 4], np.int64), "t")],
        value_info=[helper.make_tensor_value_info("y", TensorProto.FLOAT, vi_dims)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_a_value_info_shape_is_not_taken_as_a_fact():
    # No runtime checks a value_info: onnxruntime runs this model (y is [2, 6]); facts that took
    # the declared [3, 4] made eliminate-noops drop the Reshape and Shape(y) fold to [3, 4].
    model = _declared_wrong([3, 4])
    facts = shape_facts(model)
    assert facts.shape("y") == (2, 6)
    assert facts.dtype("y") == TensorProto.FLOAT
    import graphopt
    from tests.conftest import assert_same_outputs

    feeds = {"x": np.arange(12, dtype=np.float32).reshape(2, 6) - 5}
    for pipeline in ("default", "tensorrt", "simplify"):
        out = graphopt.optimize(model, pipeline)
        assert_same_outputs(model, out, feeds)


def test_facts_of_a_model_proto_infer_with_its_small_initializers():
    # shape_facts(ModelProto) infers over a skeleton copy: it must keep the Reshape target's
    # values (it once kept only dims, inference gave up, and only value_info said anything)
    model = _declared_wrong([2, 6])
    model.graph.ClearField("value_info")
    model.graph.output[0].type.tensor_type.ClearField("shape")  # z: only the target says
    facts = shape_facts(model)
    assert facts.shape("z") == (3, 4)
    assert facts.shape("s") == (2,)


def test_a_constant_sharper_than_its_symbolic_facts_gets_its_readers_inferred_again():
    # T5 relative-attention bias (traceforge's encoder) with input_shapes: Gather(table,
    # Range(0, N)) folds to [3, 5] where the facts said [N, 5]; the Slice of its last N rows
    # is then a no-op, seen only if the facts are inferred again (a second optimize removed it)
    import graphopt

    inits = [
        numpy_helper.from_array((np.arange(50) * 3 % 256).astype(np.uint8).reshape(10, 5), "q"),
        numpy_helper.from_array(np.array(0.05, np.float32), "scale"),
        numpy_helper.from_array(np.array(128, np.uint8), "zp"),
        numpy_helper.from_array(np.array(0, np.int64), "zero"),
        numpy_helper.from_array(np.array(1, np.int64), "one"),
        numpy_helper.from_array(np.array([0], np.int64), "ax0"),
        numpy_helper.from_array(np.array([2**63 - 1], np.int64), "end"),
    ]
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
        helper.make_node("Range", ["zero", "n", "one"], ["r"]),
        helper.make_node("Gather", ["q", "r"], ["tq"], axis=0),
        helper.make_node("DequantizeLinear", ["tq", "scale", "zp"], ["t"]),
        helper.make_node("Unsqueeze", ["n", "ax0"], ["nu"]),
        helper.make_node("Neg", ["nu"], ["negn"]),
        helper.make_node("Slice", ["t", "negn", "end", "ax0"], ["sl"]),
        helper.make_node("Add", ["sl", "x"], ["y"]),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 5])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])
    model = helper.make_model(
        helper.make_graph(nodes, "g", [x], [y], inits),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    once = graphopt.optimize(model, input_shapes={"x": [3, 5]})
    assert [n.op_type for n in once.graph.node] == ["DequantizeLinear", "Add"]
    twice = graphopt.optimize(once)
    assert twice.SerializeToString() == graphopt.optimize(twice).SerializeToString()
    assert len(twice.graph.node) == len(once.graph.node)


def test_a_value_info_of_a_constant_does_not_hide_its_dims():
    # torch exporters declare constants in value_info; once a Constant is an initializer, its
    # shape-cleared value_info was taken over the initializer's dims by inference, and every
    # shape after Sub(c, x) was lost (a T5 encoder with input_shapes: 570 -> 638 nodes)
    nodes = [
        helper.make_node(
            "Constant", [], ["c"], value=numpy_helper.from_array(np.array(1.0, np.float32))
        ),
        helper.make_node("Sub", ["c", "x"], ["y"]),
        helper.make_node("Shape", ["y"], ["s"]),
        helper.make_node("Reshape", ["y", "s"], ["z"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [2, 3])],
        value_info=[
            helper.make_tensor_value_info("c", TensorProto.FLOAT, []),
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    import graphopt

    out = graphopt.optimize(model)
    assert [n.op_type for n in out.graph.node] == ["Sub"]  # Reshape(y, Shape(y)) is a no-op


def test_a_folded_pads_constant_gets_the_pad_output_inferred_again():
    # torch's F.pad computes the pads (Reshape(Transpose(c), [8]): no data propagation through
    # Transpose): once folded, the Pad's output dims are fixed, and Reshape(p, Shape(p)) is a
    # no-op in the same run (Yahoo open_nsfw: 469 -> 386 nodes in one run instead of two)
    import graphopt

    nodes = [
        helper.make_node("Transpose", ["c"], ["ct"], perm=[1, 0]),
        helper.make_node("Reshape", ["ct", "eight"], ["pads"]),
        helper.make_node("Pad", ["x", "pads"], ["p"]),
        helper.make_node("Shape", ["p"], ["s"]),
        helper.make_node("Reshape", ["p", "s"], ["y"]),
    ]
    inits = [
        numpy_helper.from_array(np.array([[0, 0], [0, 0], [1, 1], [1, 1]], np.int64), "c"),
        numpy_helper.from_array(np.array([8], np.int64), "eight"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    once = graphopt.optimize(model)
    assert [n.op_type for n in once.graph.node] == ["Pad"]
    assert graphopt.optimize(once).SerializeToString() == once.SerializeToString()
