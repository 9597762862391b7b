"""optimize on a model whose Cast `to` (or another default-domain op's type attribute) names
an element type ONNX does not define (99) wrote it back as it was, exit 0: a model onnx's
inference ("Attribute to does not specify a valid type") and onnxruntime refuse. 29e7038
refused such types on graph inputs and outputs only; the attribute is now refused as they
are, in one line naming the node, in the main graph and in If/Loop bodies. Another domain's
attribute of that name is its own business."""

from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto, helper

import graphopt
from graphopt.cli import main
from graphopt.errors import LoadError

_X = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
_Y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])


def _model(nodes: list[onnx.NodeProto], domains: tuple[str, ...] = ()) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", [_X], [_Y])
    opsets = [helper.make_opsetid("", 17)] + [helper.make_opsetid(d, 1) for d in domains]
    return helper.make_model(graph, opset_imports=opsets, ir_version=8)


def _cast_to(to: int) -> onnx.ModelProto:
    return _model(
        [
            helper.make_node("Cast", ["x"], ["t"], name="c", to=to),
            helper.make_node("Cast", ["t"], ["y"], to=TensorProto.FLOAT),
        ]
    )


def _cast_in_if_branch(to: int) -> onnx.ModelProto:
    def branch(cast_to: int, name: str) -> onnx.GraphProto:
        out = helper.make_tensor_value_info(f"{name}_y", TensorProto.FLOAT, [2])
        nodes = [
            helper.make_node("Cast", ["x"], [f"{name}_t"], name=f"{name}_cast", to=cast_to),
            helper.make_node("Cast", [f"{name}_t"], [f"{name}_y"], to=TensorProto.FLOAT),
        ]
        return helper.make_graph(nodes, name, [], [out])

    condition = helper.make_tensor("cond", TensorProto.BOOL, [], [True])
    graph = helper.make_graph(
        [
            helper.make_node(
                "If",
                ["cond"],
                ["y"],
                then_branch=branch(to, "a"),
                else_branch=branch(TensorProto.FLOAT, "b"),
            ),
        ],
        "g",
        [_X],
        [_Y],
        [condition],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.mark.parametrize(
    ("model", "said"),
    [
        (_cast_to(99), "Cast node 'c' writing 't': attribute 'to' names element type 99"),
        (
            _cast_in_if_branch(1000),
            "Cast node 'a_cast' writing 'a_t': attribute 'to' names element type 1000",
        ),
    ],
    ids=["main-graph", "if-branch"],
)
def test_optimize_refuses_it(tmp_path, capsys, model, said) -> None:
    with pytest.raises(LoadError, match=said):
        graphopt.optimize(model)
    path, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(model, path)
    assert main(["optimize", str(path), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and said in err and "which ONNX does not define" in err
    assert not out.exists()


def test_a_defined_type_is_optimized() -> None:
    """Control (passes on the parent too)."""
    out = graphopt.optimize(_cast_to(TensorProto.FLOAT16))
    assert [n.op_type for n in out.graph.node] == ["Cast", "Cast"]


def test_another_domains_attribute_is_left_alone() -> None:
    """Control (passes on the parent too): 'to' of a custom op is no ONNX element type."""
    model = _model([helper.make_node("Route", ["x"], ["y"], domain="my.ops", to=99)], ("my.ops",))
    out = graphopt.optimize(model)
    assert [n.op_type for n in out.graph.node] == ["Route"]
