"""bench on a model whose input is no numeric or bool tensor: the error names the input's type
and, where an .npz can hold its value, --inputs. It said "element type UNDEFINED" for a
sequence or optional input (which have none) and "which example_feeds cannot make" (a
function's name, no remedy) for a string tensor."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.cli import main


def _save(tmp_path, node, value_info, out_type, opset=18):
    out = helper.make_value_info("y", out_type)
    graph = helper.make_graph([node], "g", [value_info], [out])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    onnx.checker.check_model(m, full_check=True)
    path = tmp_path / "m.onnx"
    onnx.save(m, path)
    return str(path)


def _string_model(tmp_path):
    t = helper.make_tensor_type_proto(TensorProto.STRING, [2])
    node = helper.make_node("Identity", ["s"], ["y"])
    return _save(tmp_path, node, helper.make_value_info("s", t), t)


def test_string_input_names_inputs_flag(tmp_path, capsys):
    path = _string_model(tmp_path)
    assert main(["bench", path, "--runs", "2", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "example_feeds" not in err and len(err.splitlines()) == 1
    assert "input 's' has element type STRING" in err and err.endswith("--inputs NPZ")
    # what the hint says works: an .npz with the strings is timed
    feeds = tmp_path / "s.npz"
    np.savez(feeds, s=np.array(["a", "bb"]))
    assert main(["bench", path, "--runs", "2", "--no-progress", "--inputs", str(feeds)]) == 0


@pytest.mark.parametrize(
    ("kind", "words", "hint"),
    [("optional", "is an optional, not a tensor", True), ("sequence", "is a sequence", False)],
)
def test_non_tensor_input_is_named_as_it_is(tmp_path, capsys, kind, words, hint):
    tensor = helper.make_tensor_type_proto(TensorProto.FLOAT, [2])
    if kind == "optional":
        t = helper.make_optional_type_proto(tensor)
        node = helper.make_node("OptionalHasElement", ["q"], ["y"])
        out = helper.make_tensor_type_proto(TensorProto.BOOL, [])
    else:
        t = helper.make_sequence_type_proto(tensor)
        node = helper.make_node("SequenceLength", ["q"], ["y"])
        out = helper.make_tensor_type_proto(TensorProto.INT64, [])
    path = _save(tmp_path, node, helper.make_value_info("q", t), out)
    assert main(["bench", path, "--runs", "2", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "UNDEFINED" not in err and f"input 'q' {words}" in err
    assert err.endswith("--inputs NPZ") is hint


def test_bfloat16_input_is_not_called_non_numeric(tmp_path, capsys):
    # 982a021 said "made only for numeric and bool tensors" of a bfloat16 input (numeric)
    t = helper.make_tensor_type_proto(TensorProto.BFLOAT16, [2])
    path = _save(
        tmp_path, helper.make_node("Identity", ["b"], ["y"]), helper.make_value_info("b", t), t
    )
    assert main(["bench", path, "--runs", "2", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "input 'b' has element type BFLOAT16" in err and "numeric" not in err
    assert "float16, float, double, integer and bool tensors" in err
