"""Adversarial review 11 of the analysis layer: dominator trees, op kinds, the FuseOps partition,
its materialization as model-local functions, and `graphopt inspect`'s report of them.

Each test builds a small model in code and fails on the commit before its fix.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx.inliner
from onnx import TensorProto, helper

from graphopt.backends.onnxruntime import run as ort_run
from graphopt.ir import Graph, load_model
from graphopt.passes.base import PassContext
from graphopt.passes.fusion_functions import MaterializeFusionGroups


def _value(name: str, shape: list[int] | None = None) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(
        name, TensorProto.FLOAT, [1, 4] if shape is None else shape
    )


def _model(nodes: list[onnx.NodeProto], outputs: list[str], **graph_fields) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "g", [_value("x")], [_value(o) for o in outputs], **graph_fields
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _materialize(model: onnx.ModelProto) -> onnx.ModelProto:
    graph = Graph(load_model(model))
    assert MaterializeFusionGroups().run(graph, PassContext()).changed
    out = graph.commit()
    onnx.checker.check_model(out, full_check=True)
    return out


def _assert_identical_outputs(a: onnx.ModelProto, b: onnx.ModelProto) -> None:
    feeds = {"x": np.random.default_rng(0).standard_normal((1, 4)).astype(np.float32)}
    expected, got = ort_run(a, feeds), ort_run(b, feeds)
    assert list(got) == list(expected)
    for name, value in expected.items():
        np.testing.assert_array_equal(got[name], value, err_msg=name)


# ---------------------------------------------------------------------------- materialize


def test_materialized_group_keeps_the_value_info_of_the_tensors_it_hides():
    # Relu → Sigmoid → Exp is one group; the model declared the types of r and s, which only
    # the group reads. They left the graph with the nodes (commit prunes value_info of tensors
    # no node writes) and the function did not carry them: inlining the functions gave back a
    # model with less value_info than the original.
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("Sigmoid", ["r"], ["s"], name="sigmoid"),
        helper.make_node("Exp", ["s"], ["y"], name="exp"),
    ]
    infos = [_value("r"), _value("s", [1, "n"])]
    infos[1].doc_string = "declared by the exporter"
    model = _model(nodes, ["y"], value_info=infos)
    out = _materialize(model)
    (function,) = out.functions
    assert [vi.name for vi in function.value_info] == ["r", "s"]
    assert function.value_info[1] == infos[1]
    assert [vi.name for vi in out.graph.value_info] == []
    inlined = onnx.inliner.inline_local_functions(out)
    assert sorted(vi.type.SerializeToString() for vi in inlined.graph.value_info) == sorted(
        vi.type.SerializeToString() for vi in infos
    )
    _assert_identical_outputs(model, out)
