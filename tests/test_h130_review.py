"""Final review of session 15's diff (H130): what it found wrong, each pinned by a test."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

F32 = np.float32


def test_a_float32_range_whose_difference_overflows_warns_nothing() -> None:
    # the size bound takes (limit - start) in float32 as onnxruntime 1.23 does (8a3ef80): an
    # overflow there is inf (the length undefined in 1.23: not folded), and no RuntimeWarning
    # on the user's stderr (`graphopt optimize` printed "RuntimeWarning: overflow encountered
    # in subtract" and the source line: the bound runs outside the kernels' np.errstate)
    from graphopt.analysis.fold_kernels import output_elements_bound
    from graphopt.api import optimize

    big = float(np.finfo(F32).max)
    values = {"s": -big, "l": big, "d": big / 30}
    inputs = [np.array(v, F32) for v in values.values()]
    node = helper.make_node("Range", ["s", "l", "d"], ["r"])
    graph = helper.make_graph(
        [node, helper.make_node("Add", ["x", "r"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [60])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [60])],
        [numpy_helper.from_array(a, n) for n, a in zip(values, inputs, strict=True)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert output_elements_bound(node, inputs, 17) == 60
        out = optimize(model, "default")
    assert [n.op_type for n in out.graph.node] == ["Range", "Add"]  # left to the runtime


def _relu_model(opset: int, outputs: int) -> onnx.ModelProto:
    image = [1, 3, 8, 8]
    names = ["a", "b"][:outputs]
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], [o], name=f"relu_{o}") for o in names],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, image)],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, image) for o in names],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=7)


def test_the_merge_report_counts_one_node_in_the_singular() -> None:
    # 6c45486's conversion line said "1 nodes before and after", the totals "merged: 1 nodes"
    # ("(1 nodes ... shared)"), where fcef898's `counted` says the rest of the report
    from graphopt.multitask import merge_with_report

    _, report = merge_with_report([_relu_model(17, 2), _relu_model(13, 1)])
    lines = report.summary().splitlines()
    assert lines[3] == (
        "separate: 2 nodes, 0 params, 0.00 GMACs; merged: 1 node, 0 params, 0.00 GMACs "
        "(1 node, 0 params, 0.00 GMACs shared)"
    )
    assert lines[5].endswith("(model 1): 1 node before and after, no op added or removed")


def test_split_counts_one_kept_node_in_the_singular(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    # split said "kept 1 nodes for outputs a" (its text is this session's, 6c45486's twin)
    from graphopt.cli import main

    onnx.save(_relu_model(17, 2), tmp_path / "m.onnx")
    out = tmp_path / "s.onnx"
    assert main(["split", str(tmp_path / "m.onnx"), "--outputs", "a", "-o", str(out)]) == 0
    said = capsys.readouterr().out
    assert f": kept 1 node for outputs a; wrote {out}" in said, said
    assert [n.name for n in onnx.load(out).graph.node] == ["relu_a"]
