"""--inputs NPZ holding a weight of an IR < 4 model (IR 3 lists every initializer as a graph
input too). onnxruntime feeds no initializer below IR 4 (it reads them as constants), and the
model `optimize` makes of it (IR 4, its weights constants) takes none either: `optimize --verify`
ran the optimization and then said onnxruntime's "Invalid input name: W" as the original model
failing on the comparison inputs, and `bench` said only onnxruntime's words. Now both refuse the
file in one line naming the weight and why, before anything runs. From IR 4 such a weight is an
overridable default and is fed, as before."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from graphopt.backends.onnxruntime import example_feeds, run
from graphopt.cli import main

W = np.arange(6, dtype=np.float32).reshape(2, 3)
B = np.ones(3, np.float32)


def _model(ir_version: int, opset: int) -> onnx.ModelProto:
    """y = x @ W + B, W and B initializers that are also graph inputs."""
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["m"]),
            helper.make_node("Add", ["m", "B"], ["y"]),
        ],
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2]),
            helper.make_tensor_value_info("W", TensorProto.FLOAT, [2, 3]),
            helper.make_tensor_value_info("B", TensorProto.FLOAT, [3]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        [numpy_helper.from_array(W, "W"), numpy_helper.from_array(B, "B")],
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=ir_version
    )


def _files(tmp_path, ir_version: int, opset: int, **arrays: np.ndarray) -> tuple[str, str]:
    model = tmp_path / "m.onnx"
    onnx.save(_model(ir_version, opset), model)
    feeds = tmp_path / "f.npz"
    np.savez(feeds, x=np.ones((1, 2), np.float32), **arrays)  # type: ignore[arg-type]
    return str(model), str(feeds)


def test_verify_refuses_a_weight_of_an_ir3_model_before_optimizing(tmp_path, capsys):
    model, feeds = _files(tmp_path, 3, 9, W=np.full((2, 3), 2, np.float32))
    out = tmp_path / "o.onnx"
    assert main(["optimize", model, "-o", str(out), "--verify", "--inputs", feeds]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "Invalid input name" not in err
    assert f"--inputs {feeds}: W is a weight of this IR 3 model" in err
    assert "below IR 4" in err and "nor does the optimized model" in err
    assert "leave W out of the file" in err
    assert "verify:" not in captured.out and not out.exists()  # refused before optimizing


def test_bench_refuses_a_weight_of_an_ir3_model(tmp_path, capsys):
    model, feeds = _files(tmp_path, 3, 9, W=np.full((2, 3), 2, np.float32), B=B)
    assert main(["bench", model, "--inputs", feeds, "--runs", "2", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "Invalid input name" not in err and "optimized" not in err
    assert f"--inputs {feeds}: W, B are weights of this IR 3 model" in err
    assert "leave W, B out of the file" in err


def test_ir3_model_without_weights_in_the_file_still_verifies(tmp_path, capsys):
    model, feeds = _files(tmp_path, 3, 9)
    out = tmp_path / "o.onnx"
    assert main(["optimize", model, "-o", str(out), "--verify", "--inputs", feeds]) == 0
    assert "verify: y: max abs diff 0" in capsys.readouterr().out


def test_an_ir7_models_overridable_weight_is_fed(tmp_path, capsys):
    given = np.full((2, 3), 2, np.float32)
    model, feeds = _files(tmp_path, 7, 13, W=given)
    proto = onnx.load(model)
    fed = example_feeds(proto, npz=feeds)
    assert set(fed) == {"x", "W"}
    # the file's W, not the model's: ones(1, 2) @ 2 + 1 = 5
    np.testing.assert_array_equal(run(proto, fed)["y"], np.full((1, 3), 5, np.float32))
    out = tmp_path / "o.onnx"
    assert main(["optimize", model, "-o", str(out), "--verify", "--inputs", feeds]) == 0
    assert "verify: y: max abs diff 0" in capsys.readouterr().out
    assert main(["bench", model, "--inputs", feeds, "--runs", "2", "--no-progress"]) == 0


def test_unfed_weights_are_those_of_ir_1_to_3():
    from graphopt.backends.onnxruntime import unfed_weights

    assert unfed_weights(_model(3, 9)) == {"W", "B"}
    assert unfed_weights(_model(4, 9)) == set()
    unset = _model(3, 9)
    unset.ir_version = 0  # unset: read as the current version
    assert unfed_weights(unset) == set()
