"""--inputs NPZ for a model input of a type numpy has no dtype for other than bfloat16 (float8,
float4, int4, ...): no .npz array can feed it (onnxruntime's python run converts none to it),
yet `optimize --verify` ran the whole optimization and then said onnxruntime's "Unexpected input
data type ... expected: (tensor(Float8E4M3FN))" as the original failing on the comparison
inputs, with "give inputs it accepts", and `bench` said only onnxruntime's words. Now the file
is refused first, in one line naming the input and its type."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.cli import main


@pytest.mark.parametrize("elem", [TensorProto.FLOAT8E4M3FN, TensorProto.FLOAT8E5M2])
@pytest.mark.parametrize("given", [np.uint8, np.float32])
@pytest.mark.parametrize("command", ["optimize", "bench"])
def test_float8_input_from_an_npz_is_one_line(tmp_path, capsys, elem, given, command):
    graph = helper.make_graph(
        [helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT)],
        "g",
        [helper.make_tensor_value_info("x", elem, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)], ir_version=9)
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    feeds = tmp_path / "f.npz"
    np.savez(feeds, x=np.array([56, 64, 72]).astype(given))
    out = tmp_path / "o.onnx"
    args = (
        ["optimize", str(path), "-o", str(out), "--verify"]
        if command == "optimize"
        else ["bench", str(path), "--runs", "2", "--no-progress"]
    )
    assert main([*args, "--inputs", str(feeds)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "Unexpected input data type" not in err
    name = TensorProto.DataType.Name(elem)
    assert f"--inputs {feeds}: the model's input x is {name}, which numpy has no dtype" in err
    assert not out.exists() and "verify:" not in captured.out
