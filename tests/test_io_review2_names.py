"""Graph inputs and outputs whose names are not UTF-8: one line where onnxruntime must run the
model, and inspect --json still prints.

protobuf hands such a name over as bytes (onnx.checker accepts the model, and optimize keeps it
byte for byte); onnxruntime's Python API raises UnicodeDecodeError naming it, which escaped
`bench`, `optimize --verify` and `inspect --json` (bytes are not JSON) as tracebacks.
"""

from __future__ import annotations

import json

import onnx
import onnx.helper as oh
import pytest

from graphopt.cli import main


def _model_with_a_latin1_output(tmp_path) -> str:  # type: ignore[no-untyped-def]
    graph = oh.make_graph(
        [oh.make_node("Relu", ["x"], ["yQQ"], name="r")],
        "g",
        [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])],
        [oh.make_tensor_value_info("yQQ", onnx.TensorProto.FLOAT, [1, 4])],
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)], ir_version=8)
    data = model.SerializeToString().replace(b"yQQ", b"y\xe9Q")  # Latin-1 'é'
    path = tmp_path / "m.onnx"
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize("command", [["bench", "--runs", "1"], ["optimize", "--verify"]])
def test_running_the_model_is_a_one_line_error(tmp_path, capsys, command):
    src = _model_with_a_latin1_output(tmp_path)
    out = tmp_path / "out.onnx"
    argv = [command[0], src, *command[1:]]
    if command[0] == "optimize":
        argv += ["-o", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not UTF-8 text" in err and "m.onnx" in err
    assert not out.exists()


def test_optimize_without_verify_keeps_the_name_byte_for_byte(tmp_path):
    src = _model_with_a_latin1_output(tmp_path)
    out = tmp_path / "out.onnx"
    assert main(["optimize", src, "-o", str(out)]) == 0
    assert b"y\xe9Q" in out.read_bytes()


def test_inspect_json_prints_the_name_escaped(tmp_path, capsys):
    src = _model_with_a_latin1_output(tmp_path)
    assert main(["inspect", src, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [o["name"] for o in report["outputs"]] == ["y\\xe9Q"]
