"""split's errors that list the model's names (the tasks of a merged model, its graph outputs,
the tensors whose type it cannot tell) named them as they are: a newline in a task prefix or an
output name made the CLI's error two lines. They are shown (`repr` where not printable) now."""

from __future__ import annotations

import onnx
import onnx.helper as h
import pytest
from onnx import TensorProto

from graphopt.cli import main
from graphopt.multitask import MergeError, merge, split


def _model(output: str) -> onnx.ModelProto:
    graph = h.make_graph(
        [h.make_node("Relu", ["x"], [output])],
        "g",
        [h.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [h.make_tensor_value_info(output, TensorProto.FLOAT, [2])],
    )
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


def _one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


def test_no_such_tensor_lists_outputs_on_one_line(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "m.onnx"
    onnx.save(_model("o\n2"), path)
    out = tmp_path / "o.onnx"
    err = _one_line_error(capsys, ["split", str(path), "-o", str(out), "--outputs", "nope"])
    assert "graph outputs: 'o\\n2'" in err
    assert not out.exists()


def test_no_such_task_lists_tasks_on_one_line(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "m.onnx"
    onnx.save(merge([_model("a"), _model("b")], prefixes=["p\n_", "q_"]), path)
    out = tmp_path / "o.onnx"
    err = _one_line_error(capsys, ["split", str(path), "-o", str(out), "--task", "zz"])
    assert "tasks: 'p\\n_', q_" in err
    assert not out.exists()


def test_ambiguous_task_names_them_escaped() -> None:
    model = merge([_model("a"), _model("b")], prefixes=["p\n_", "p\n__"])
    with pytest.raises(MergeError) as e:
        split(model, task="p\n")
    assert "\n" not in str(e.value)
    assert "('p\\n_', 'p\\n__')" in str(e.value)


def test_untyped_output_named_escaped() -> None:
    graph = h.make_graph(
        [h.make_node("Foo", ["x"], ["t\nu"], domain="custom")],
        "g",
        [h.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [h.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        value_info=[],
    )
    graph.node.append(h.make_node("Relu", ["x"], ["y"]))
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17), h.make_opsetid("custom", 1)])
    with pytest.raises(MergeError) as e:
        split(model, ["t\nu"], check=False)
    assert str(e.value) == "cannot tell the type of tensor(s) 't\\nu'; run shape inference"
