"""bench on a model whose output numpy has no type for (int4, uint4, float8 other than
e4m3fn): onnxruntime's `run` refuses to hand it over ("No corresponding Numpy type for Tensor
Type. Int4x2"), and bench said so as if its synthetic inputs were at fault ("give real ones
with --inputs NPZ"). It runs such a model for OrtValues, as it did for bfloat16 outputs."""

from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.cli import main


def _cast_model(tmp_path, to: int) -> str:
    graph = helper.make_graph(
        [helper.make_node("Cast", ["x"], ["y"], to=to)],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("y", to, [2, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    onnx.checker.check_model(model, full_check=True)
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    return str(path)


@pytest.mark.parametrize(
    "to",
    [TensorProto.INT4, TensorProto.UINT4, TensorProto.FLOAT8E5M2, TensorProto.BFLOAT16],
    ids=["int4", "uint4", "float8e5m2", "bfloat16"],
)
def test_bench_times_a_model_whose_output_numpy_cannot_hold(tmp_path, capsys, to):
    path = _cast_model(tmp_path, to)
    assert main(["bench", path, "--runs", "2", "--no-progress"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "onnxruntime" in out
