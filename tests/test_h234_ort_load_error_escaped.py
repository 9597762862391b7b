"""onnxruntime's load error keeps a model's names with a newline on one line, for every
caller of `backends.onnxruntime.session` (H234, after H227's bench-only fix).

`session` said onnxruntime's error by its first line, which a newline inside a node's name
(valid ONNX) cut at the name: "... in node (a" for node 'a\\ndd', in `optimize --verify`,
quantize, merge, distill and bench alike (bench alone re-said it). Now `session` escapes the
model's names in the message before taking its first line ("in node (a\\ndd)."), and the path
of a model given by path too ("Load model from x\\ny.onnx failed:..."). A plain name reads as
before (the control).
"""

from __future__ import annotations

from pathlib import Path

import onnx
import onnx.helper as oh
import pytest
from onnx import TensorProto

from graphopt import cli
from graphopt.backends.onnxruntime import session
from graphopt.errors import BackendError

F32 = TensorProto.FLOAT


def _model(name: str) -> onnx.ModelProto:
    """Add(float, int64): onnxruntime refuses it on load, naming the node."""
    x = oh.make_tensor_value_info("x", F32, [2, 3])
    y = oh.make_tensor_value_info("y", F32, None)
    k = oh.make_tensor("k", TensorProto.INT64, [1], [1])
    nodes = [
        oh.make_node("Relu", ["x"], ["t"], name="r"),
        oh.make_node("Add", ["t", "k"], ["y"], name=name),
    ]
    graph = oh.make_graph(nodes, "g", [x], [y], [k])
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)])


def _load_error(source: onnx.ModelProto | str | Path) -> str:
    with pytest.raises(BackendError) as e:
        session(source)
    text = str(e.value)
    assert text.isprintable(), text
    assert text.startswith("onnxruntime cannot load the model: [ONNXRuntimeError] : 1 : FAIL")
    return text


def test_a_node_name_with_a_newline_is_escaped_not_cut() -> None:
    text = _load_error(_model("a\ndd"))
    assert text.endswith(
        "bound to different types (tensor(float) and tensor(int64) in node (a\\ndd)."
    )


def test_a_path_with_a_newline_and_the_names_in_it_are_escaped(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "x\ny.onnx"
    onnx.save(_model("a\ndd"), path)
    for given in (str(path), path):
        text = _load_error(given)
        assert f"Load model from {tmp_path}/x\\ny.onnx failed:Type Error:" in text
        assert text.endswith("in node (a\\ndd).")


def test_optimize_verify_says_the_whole_line(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    onnx.save(_model("a\ndd"), tmp_path / "m.onnx")
    code = cli.main(
        ["optimize", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "o.onnx"), "--verify"]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(
        "graphopt optimize: error: the original model does not load in onnxruntime"
    )
    assert err.endswith("in node (a\\ndd).\n")
    assert not (tmp_path / "o.onnx").exists()


def test_a_plain_name_as_before(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert _load_error(_model("add")).endswith("in node (add).")
    onnx.save(_model("add"), tmp_path / "m.onnx")
    assert _load_error(tmp_path / "m.onnx").endswith(
        f"Load model from {tmp_path}/m.onnx failed:Type Error: Type parameter (T) of Optype "
        "(Add) bound to different types (tensor(float) and tensor(int64) in node (add)."
    )
