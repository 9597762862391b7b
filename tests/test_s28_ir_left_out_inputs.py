"""A default-domain node that leaves out (as "") an input its schema requires: onnxruntime
refuses the model ("input 0 is marked single but has an empty string"), onnx's shape inference
crashed the process on some (RegexFullMatch: `graphopt inspect` died of a segmentation fault),
and optimize wrote the model out. Now load refuses it in one line naming the node, the input
and the op's version; an optional input left out (Resize's roi, Clip's min) loads as before."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import graphopt
from graphopt import cli
from graphopt.errors import LoadError


def _model(op: str, inputs: list[str], opset: int, **attrs) -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node(op, inputs, ["y"], name="n", **attrs)],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [
            helper.make_tensor("s", TensorProto.FLOAT, [4], [1, 1, 2, 2]),
            helper.make_tensor("hi", TensorProto.FLOAT, [], [0.5]),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@pytest.mark.parametrize(
    ("op", "inputs", "opset", "attrs"),
    [
        ("RegexFullMatch", [""], 20, {"pattern": "a"}),
        ("Relu", [""], 13, {}),
        ("Add", ["x", ""], 13, {}),
        ("EyeLike", [""], 13, {}),
    ],
)
def test_a_required_input_left_out_is_refused(tmp_path, capsys, op, inputs, opset, attrs) -> None:
    model = _model(op, inputs, opset, **attrs)
    with pytest.raises(Exception, match="INVALID_GRAPH"):  # onnxruntime refuses it too
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    with pytest.raises(LoadError, match=rf"node 'n' \({op}\) leaves out its input"):
        graphopt.optimize(model)
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    out = tmp_path / "o.onnx"
    assert cli.main(["optimize", str(path), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and str(path) in err, err
    assert not out.exists()


def test_inspect_of_such_a_model_is_one_line_not_a_crash(tmp_path) -> None:
    # (in a child process: the parent's inspect died of a segmentation fault here)
    path = tmp_path / "m.onnx"
    path.write_bytes(_model("RegexFullMatch", [""], 20, pattern="a").SerializeToString())
    done = subprocess.run(
        [sys.executable, "-m", "graphopt", "inspect", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "leaves out its input 0" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.parametrize(
    ("op", "inputs", "opset"), [("Resize", ["x", "", "s"], 13), ("Clip", ["x", "", "hi"], 13)]
)
def test_an_optional_input_left_out_loads_as_before(op, inputs, opset) -> None:
    model = _model(op, inputs, opset)
    optimized = graphopt.optimize(model)
    x = np.arange(4, dtype=np.float32).reshape(1, 1, 2, 2)
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = ort.InferenceSession(optimized.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(got.run(None, {"x": x})[0], want.run(None, {"x": x})[0])


def _in_a_body() -> onnx.ModelProto:
    def branch(name: str) -> onnx.GraphProto:
        return helper.make_graph(
            [helper.make_node("RegexFullMatch", [""], [name], pattern="a")],
            f"{name}_g",
            [],
            [helper.make_tensor_value_info(name, TensorProto.BOOL, None)],
        )

    graph = helper.make_graph(
        [helper.make_node("If", ["c"], ["y"], then_branch=branch("a"), else_branch=branch("b"))],
        "g",
        [helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("y", TensorProto.BOOL, None)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])


def test_a_required_input_left_out_in_a_body_is_refused(tmp_path) -> None:
    # (final review of 0712a6c: only the main graph's nodes were checked; inspect of this
    # model still died of a segmentation fault and optimize wrote it out)
    model = _in_a_body()
    with pytest.raises(LoadError, match=r"\(RegexFullMatch\) leaves out its input 0"):
        graphopt.optimize(model)
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    for argv in (["inspect", str(path)], ["optimize", str(path), "-o", str(tmp_path / "o.onnx")]):
        done = subprocess.run(
            [sys.executable, "-m", "graphopt", *argv],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 2, (argv[0], done.returncode, done.stderr)
        assert "leaves out its input 0" in done.stderr
    assert not (tmp_path / "o.onnx").exists()
