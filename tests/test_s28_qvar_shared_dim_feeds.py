"""A calibration feed whose arrays disagree on a dim the model names alike in two inputs (x
['N', 4, 8, 8] and mask ['N', 1, 8, 8] fed 2 and 3 items): each input's own check lets it
through, and onnxruntime's failure named only a node of its optimized graph ('Mul_1') and a
broadcast of '2 by 3', not the inputs. Now the error (one line; the CLI's exit 2) also says
which inputs disagree, on which axes, and the dim's name. A model that names two dims alike
yet runs with them apart is still quantized (the check is made only once onnxruntime fails)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import graphopt
from graphopt.cli import main
from graphopt.errors import QuantizeError

F = onnx.TensorProto.FLOAT


def _masked() -> onnx.ModelProto:
    w = np.random.default_rng(0).normal(0, 0.3, (4, 4, 3, 3)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w"], ["a"], pads=[1, 1, 1, 1], name="conv"),
            helper.make_node("Mul", ["a", "mask"], ["y"], name="masked"),
        ],
        "g",
        [
            helper.make_tensor_value_info("x", F, ["N", 4, 8, 8]),
            helper.make_tensor_value_info("mask", F, ["N", 1, 8, 8]),
        ],
        [helper.make_tensor_value_info("y", F, ["N", 4, 8, 8])],
        [numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def _feed(x_items: int, mask_items: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(x_items * 10 + mask_items)
    return {
        "x": rng.normal(0, 1, (x_items, 4, 8, 8)).astype(np.float32),
        "mask": rng.uniform(0, 1, (mask_items, 1, 8, 8)).astype(np.float32),
    }


@pytest.mark.parametrize("method", ["minmax", "entropy"])
def test_the_error_names_the_inputs_that_disagree(method: str) -> None:
    with pytest.raises(QuantizeError) as caught:
        graphopt.quantize(_masked(), [_feed(2, 2), _feed(2, 3)], method=method)
    message = str(caught.value)
    assert message.startswith(
        "calibration feed 1: input 'x' has 2 on axis 0 and 'mask' 3 on axis 0, dims the model "
        "names alike ('N'); onnxruntime failed:"
    ), message
    assert "\n" not in message


def test_cli_says_it_in_one_line(tmp_path, capsys) -> None:
    path, out, calib = tmp_path / "m.onnx", tmp_path / "q.onnx", tmp_path / "calib"
    onnx.save(_masked(), path)
    calib.mkdir()
    np.savez(calib / "a.npz", **_feed(2, 3))
    code = main(["quantize", str(path), "-o", str(out), "--calib", str(calib), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "a.npz: input 'x' has 2 on axis 0 and 'mask' 3 on axis 0" in lines[0]


def test_dims_named_alike_that_run_apart_are_not_refused() -> None:
    """x ['N', 4] and z ['N', 3] feed separate MatMuls: 2 and 5 rows run."""
    rng = np.random.default_rng(1)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w1"], ["y1"], name="mm1"),
            helper.make_node("MatMul", ["z", "w2"], ["y2"], name="mm2"),
        ],
        "g",
        [
            helper.make_tensor_value_info("x", F, ["N", 4]),
            helper.make_tensor_value_info("z", F, ["N", 3]),
        ],
        [
            helper.make_tensor_value_info("y1", F, ["N", 2]),
            helper.make_tensor_value_info("y2", F, ["N", 2]),
        ],
        [
            numpy_helper.from_array(rng.normal(0, 1, (4, 2)).astype(np.float32), "w1"),
            numpy_helper.from_array(rng.normal(0, 1, (3, 2)).astype(np.float32), "w2"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    feeds = [
        {
            "x": rng.normal(0, 1, (2, 4)).astype(np.float32),
            "z": rng.normal(0, 1, (5, 3)).astype(np.float32),
        }
        for _ in range(3)
    ]
    q = graphopt.quantize(model, feeds, accuracy_target=None)
    assert sum(n.op_type == "QuantizeLinear" for n in q.graph.node) == 2
