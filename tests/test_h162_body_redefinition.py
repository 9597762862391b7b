"""A node in an If/Loop body writing a tensor name the scope around it already defines (a graph
input, an initializer, an earlier node's output, or, in a nested body, the enclosing body's
own): onnx.checker ("SSA form") and onnxruntime ("invalid model", "not acyclic") refuse the
model; graphopt loaded it and wrote it back. `load` (and the Graph's checked index, which
optimize uses) now refuses it in one line naming the tensor.

Still loaded, as onnx.checker and onnxruntime load them: a body input or initializer taking an
outer name, a body node writing a name the outer graph defines only later, or its own node's
output name; the pipelines keep their outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphopt
from graphopt.analysis import post_dominator_tree
from graphopt.cli import main
from graphopt.errors import LoadError
from tests.fusion_models import run_at
from tests.test_cli_review3 import one_line_error

X = np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5


def _info(name: str) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, [2, 3])


def _if_model(then_nodes: list[onnx.NodeProto], then_inits: tuple = ()) -> onnx.ModelProto:
    """a = Identity(x); b = Relu(a); y = If(sum(x) > 0, then: `then_nodes` -> t, else: b + b);
    later = Relu(y); z = Relu(later)."""
    then = helper.make_graph(then_nodes, "then", [], [_info("t")], list(then_inits))
    other = helper.make_graph(
        [helper.make_node("Add", ["b", "b"], ["e"])], "else", [], [_info("e")]
    )
    graph = helper.make_graph(
        [
            helper.make_node("Identity", ["x"], ["a"], name="copy"),
            helper.make_node("Relu", ["a"], ["b"], name="relu"),
            helper.make_node("ReduceSum", ["x"], ["s"], name="sum", keepdims=0),
            helper.make_node("Greater", ["s", "zero"], ["c"], name="greater"),
            helper.make_node("If", ["c"], ["y"], name="if", then_branch=then, else_branch=other),
            helper.make_node("Relu", ["y"], ["later"], name="after"),
            helper.make_node("Relu", ["later"], ["z"], name="last"),
        ],
        "g",
        [_info("x")],
        [_info("z")],
        [numpy_helper.from_array(np.float32(0), "zero")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


def _writes(name: str) -> list[onnx.NodeProto]:
    return [
        helper.make_node("Neg", ["b"], [name], name="neg"),
        helper.make_node("Add", [name, "b"], ["t"], name="add"),
    ]


def _nested(name: str, first: list[onnx.NodeProto]) -> list[onnx.NodeProto]:
    """The then body: `first`, then an If whose branches write `name`, then t."""
    inner = helper.make_graph(
        [helper.make_node("Neg", ["b"], [name], name="inner_neg")], "inner", [], [_info(name)]
    )
    return [
        *first,
        helper.make_node("If", ["c"], ["u"], name="inner_if", then_branch=inner, else_branch=inner),
        helper.make_node("Identity", ["u"], ["t"], name="inner_id"),
    ]


REFUSED = {
    "an outer node output": (_if_model(_writes("a")), "'a'"),
    "a graph input": (_if_model(_writes("x")), "'x'"),
    "an initializer": (_if_model(_writes("zero")), "'zero'"),
    "nested: an outer node output": (_if_model(_nested("s", [])), "'s'"),
    "nested: the enclosing body's": (
        _if_model(_nested("q", [helper.make_node("Neg", ["b"], ["q"], name="body_neg")])),
        "'q'",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused(case: str) -> None:
    model, tensor = REFUSED[case]
    with pytest.raises(onnx.checker.ValidationError, match="SSA"):
        onnx.checker.check_model(model, full_check=True)
    with pytest.raises(LoadError, match=f"writes tensor {tensor}, which the scope around it"):
        graphopt.optimize(model)
    with pytest.raises(LoadError, match=f"writes tensor {tensor}"):
        post_dominator_tree(model)  # load's own walk (check_nodes)


def test_cli_refuses_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source, out = tmp_path / "m.onnx", tmp_path / "out.onnx"
    source.write_bytes(REFUSED["an outer node output"][0].SerializeToString())
    assert main(["optimize", str(source), "-o", str(out)]) == 2
    one_line_error(capsys, "writes tensor 'a'")
    assert not out.exists()


LOADED = {
    "body initializer named a": _if_model(
        [helper.make_node("Add", ["a", "b"], ["t"], name="add")],
        (numpy_helper.from_array(np.full((2, 3), 5.0, np.float32), "a"),),
    ),
    "writes a later outer name": _if_model(_writes("later")),
    "writes its If's own output": _if_model(_writes("y")),
    "nested writes its If's own output": _if_model(_nested("u", [])),
}


@pytest.mark.parametrize("case", sorted(LOADED))
@pytest.mark.parametrize("pipeline", ["default", "tensorrt"])
def test_still_loaded(case: str, pipeline: str) -> None:
    model = LOADED[case]
    onnx.checker.check_model(model, full_check=True)
    out = graphopt.optimize(model, pipeline=pipeline)
    onnx.checker.check_model(out, full_check=True)
    for x in (X, -X):
        np.testing.assert_array_equal(
            run_at(out, {"x": x}, "disable")["z"], run_at(model, {"x": x}, "disable")["z"]
        )


def test_loop_body_input_may_take_an_outer_name() -> None:
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"], name="keep"),
            helper.make_node("Add", ["a", "b"], ["v_out"], name="step"),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            _info("a"),  # the carried value, named like the outer a
        ],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []), _info("v_out")],
    )
    graph = helper.make_graph(
        [
            helper.make_node("Identity", ["x"], ["a"], name="copy"),
            helper.make_node("Relu", ["a"], ["b"], name="relu"),
            helper.make_node("Neg", ["a"], ["a2"], name="neg"),
            helper.make_node("Loop", ["n", "go", "a2"], ["y"], name="loop", body=body),
        ],
        "g",
        [_info("x")],
        [_info("y")],
        [
            numpy_helper.from_array(np.array(3, np.int64), "n"),
            numpy_helper.from_array(np.array(True), "go"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.checker.check_model(model, full_check=True)
    out = graphopt.optimize(model)
    np.testing.assert_array_equal(
        run_at(out, {"x": X}, "disable")["y"], run_at(model, {"x": X}, "disable")["y"]
    )
