"""merge with model-local functions that share a name: equal ones kept once, differing ones
renamed (calls included) so each task still computes what its own model does."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from graphopt.backends.onnxruntime import run as ort_run
from graphopt.multitask import merge_with_report, split

X = np.array([1.5, -2.0, 3.0], np.float32)


def function(name: str, op: str, call: str | None = None) -> onnx.FunctionProto:
    """local:name(a) = op(a, a), or, with `call`, local:call(op(a, a))."""
    if call is None:
        nodes = [helper.make_node(op, ["a", "a"], ["b"])]
    else:
        nodes = [
            helper.make_node(op, ["a", "a"], ["t"]),
            helper.make_node(call, ["t"], ["b"], domain="local"),
        ]
    imports = [helper.make_opsetid("", 17)]
    if call is not None:
        imports.append(helper.make_opsetid("local", 1))
    return helper.make_function("local", name, ["a"], ["b"], nodes, imports)


def model(functions: list[onnx.FunctionProto], called: str) -> onnx.ModelProto:
    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["x"], ["r"]),
            helper.make_node(called, ["r"], ["y"], domain="local"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])],
    )
    m = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("local", 1)],
        functions=functions,
    )
    m.ir_version = 8
    return m


def check_tasks(models: list[onnx.ModelProto]) -> tuple[onnx.ModelProto, object]:
    merged, report = merge_with_report(models)
    got = ort_run(merged, {"x": X})
    for i, m in enumerate(models):
        expected = ort_run(m, {"x": X})["y"]
        np.testing.assert_array_equal(got[f"m{i}_y"], expected)
        back = split(merged, task=f"m{i}")
        np.testing.assert_array_equal(ort_run(back, {"x": X})["y"], expected)
        # the task's own function names come back
        assert sorted(f.name for f in back.functions) == sorted(f.name for f in m.functions)
    return merged, report


def test_same_named_functions_that_differ_are_renamed_not_refused():
    """Was a MergeError ('local function local:Block differs from another model's function of
    the same name'): two exports that both call their block local:Block could not merge."""
    a = model([function("Block", "Add")], "Block")
    b = model([function("Block", "Mul")], "Block")
    merged, report = check_tasks([a, b])
    assert sorted(f.name for f in merged.functions) == ["Block", "m1_Block"]
    assert report.renamed_functions == ["m1_: local:Block -> local:m1_Block"]
    assert "local functions renamed" in report.summary()


def test_a_function_equal_in_bytes_whose_callee_differs_is_renamed_too():
    """Outer is byte-equal in both models but calls Inner, which differs: once model 1's
    Inner is renamed, its Outer (now calling m1_Inner) must not be dropped as a duplicate of
    model 0's Outer, which would make model 1 compute with model 0's Inner."""
    a = model([function("Inner", "Add"), function("Outer", "Sub", call="Inner")], "Outer")
    b = model([function("Inner", "Mul"), function("Outer", "Sub", call="Inner")], "Outer")
    merged, report = check_tasks([a, b])
    assert sorted(f.name for f in merged.functions) == ["Inner", "Outer", "m1_Inner", "m1_Outer"]
    assert len(report.renamed_functions) == 2


def test_equal_functions_are_kept_once_under_their_name():
    a = model([function("Block", "Add")], "Block")
    b = model([function("Block", "Add")], "Block")
    merged, report = check_tasks([a, b])
    assert [f.name for f in merged.functions] == ["Block"]
    assert report.renamed_functions == []


def test_two_inputs_mapped_to_one_merged_input_are_both_declared_by_split():
    """input_map may send two inputs of one model to one merged input (the model reads the
    same image twice). split(task=) declared only one of them (the last name won), so the
    task's model lost an input of its interface; both come back, in the model's order, the
    second read by nothing (the merged model reads the two as one value)."""
    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["a", "c"], ["t"]),
            helper.make_node("Add", ["t", "b"], ["y"]),
        ],
        "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [3]) for n in ("a", "c", "b")],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])],
    )
    first = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    first.ir_version = 8
    other = model([function("Block", "Add")], "Block")
    merged = merge_with_report(
        [first, other], input_map={0: {"a": "x", "b": "x", "c": "c"}, 1: {"x": "x"}}
    )[0]
    back = split(merged, task="m0")
    assert [vi.name for vi in back.graph.input] == ["a", "c", "b"]
    assert [vi.type for vi in back.graph.input] == [vi.type for vi in first.graph.input]
    feeds = {"a": X, "c": X + 1, "b": X}
    np.testing.assert_array_equal(ort_run(back, feeds)["y"], ort_run(first, feeds)["y"])
