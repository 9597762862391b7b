"""materialize-fusion-groups: fusion groups become model-local functions; outputs unchanged."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphopt
from graphopt.analysis import fuse_ops
from graphopt.ir import Graph, load_model
from graphopt.passes.base import PassContext
from graphopt.passes.fusion_functions import FUSED_DOMAIN, MaterializeFusionGroups

from .conftest import assert_same_outputs


def _model(ir_version: int = 7) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "W1")
    w2 = numpy_helper.from_array(rng.standard_normal((4, 4, 1, 1)).astype(np.float32), "W2")
    s = numpy_helper.from_array(rng.standard_normal((1, 4, 1, 1)).astype(np.float32), "s")
    nodes = [
        helper.make_node("Conv", ["x", "W1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Sigmoid", ["c1"], ["g1"], name="sig1"),
        helper.make_node("Mul", ["c1", "g1"], ["a1"], name="silu1"),  # also a graph output
        helper.make_node("Conv", ["a1", "W2"], ["c2"], name="conv2"),
        helper.make_node("Mul", ["c2", "s"], ["m2"], name="scale2"),
        helper.make_node("Relu", ["m2"], ["r2"], name="relu2"),
        helper.make_node("Transpose", ["a1"], ["t"], name="transpose", perm=[0, 1, 3, 2]),
        helper.make_node("Concat", ["r2", "t"], ["y"], name="concat", axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 8, 8]),
            helper.make_tensor_value_info("a1", TensorProto.FLOAT, [1, 4, 8, 8]),
        ],
        [w1, w2, s],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = ir_version
    return model


def _feeds() -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(1).standard_normal((1, 3, 8, 8)).astype(np.float32)}


def _run_pass(model: onnx.ModelProto, **options) -> tuple[onnx.ModelProto, dict[str, int]]:
    graph = Graph(load_model(model))
    result = MaterializeFusionGroups(**options).run(graph, PassContext())
    return graph.commit(), result.stats


def test_groups_become_functions_with_identical_outputs():
    model = _model()
    groups = [g for g in fuse_ops(model) if len(g) >= 2]
    assert sorted(map(sorted, groups)) == [
        ["concat", "transpose"],
        ["conv1", "sig1", "silu1"],
        ["conv2", "relu2", "scale2"],
    ]
    out, stats = _run_pass(model)
    assert stats == {"functions": 3, "nodes": 8}
    assert len(out.functions) == 3
    assert all(f.domain == FUSED_DOMAIN for f in out.functions)
    assert len(out.graph.node) == 3
    assert {n.domain for n in out.graph.node} == {FUSED_DOMAIN}
    assert [o.name for o in out.graph.output] == ["y", "a1"]
    assert out.ir_version >= 8
    assert any(o.domain == FUSED_DOMAIN for o in out.opset_import)
    onnx.checker.check_model(out, full_check=True)
    assert_same_outputs(model, out, _feeds())


def test_function_boundaries():
    out, _ = _run_pass(_model())
    by_body = {tuple(n.name for n in f.node): f for f in out.functions}
    silu = by_body[("conv1", "sig1", "silu1")]
    assert list(silu.input) == ["x", "W1"]  # initializers are passed in, not captured
    assert list(silu.output) == ["a1"]  # c1, g1 stay inside
    scale = by_body[("conv2", "scale2", "relu2")]
    assert list(scale.input) == ["a1", "W2", "s"]
    assert list(scale.output) == ["r2"]


def test_min_size_and_rerun_is_a_no_op():
    model = _model()
    out, stats = _run_pass(model, min_size=3)
    assert stats["functions"] == 2  # the Transpose+Concat pair stays as plain nodes
    assert sorted(n.op_type for n in out.graph.node if n.domain != FUSED_DOMAIN) == [
        "Concat",
        "Transpose",
    ]
    assert_same_outputs(model, out, _feeds())
    again, stats = _run_pass(out, min_size=3)
    assert stats["functions"] == 0
    assert len(again.functions) == 2


def test_opt_in_through_a_user_pipeline(tmp_path):
    yaml_path = tmp_path / "fused.yaml"
    yaml_path.write_text("passes:\n  - materialize-fusion-groups: {min_size: 2}\n")
    model = _model()
    out = graphopt.optimize(model, pipeline=yaml_path)
    assert len(out.functions) == 3
    assert_same_outputs(model, out, _feeds())
    # Not in any built-in pipeline.
    from graphopt.pipeline import builtin_pipelines

    for path in builtin_pipelines().values():
        assert "materialize-fusion-groups" not in path.read_text()


@pytest.mark.realmodel
def test_real_common_det(real_model, real_feeds):
    model = load_model(real_model("common_det"))
    multi = [g for g in fuse_ops(model) if len(g) >= 2]
    out, stats = _run_pass(model)
    assert stats["functions"] == len(multi) == len(out.functions)
    assert stats["nodes"] == sum(map(len, multi))
    assert len(out.graph.node) == len(model.graph.node) - stats["nodes"] + stats["functions"]
    for feeds in real_feeds("common_det", 2):
        assert_same_outputs(model, out, feeds)


def test_a_dead_group_stays_plain_nodes_not_a_function_returning_nothing():
    """Sigmoid → Exp → Neg whose result nothing reads formed a group that became a function
    with no outputs, called by a node with no outputs."""
    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["x"], ["r"], name="relu"),
            helper.make_node("Sigmoid", ["x"], ["d1"], name="sig"),
            helper.make_node("Exp", ["d1"], ["d2"], name="exp"),
            helper.make_node("Neg", ["d2"], ["d3"], name="neg"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("r", TensorProto.FLOAT, [3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    out, stats = _run_pass(model)
    assert stats["functions"] == 0 and list(out.functions) == []
    assert [n.op_type for n in out.graph.node] == ["Relu", "Sigmoid", "Exp", "Neg"]
