"""Calibration data whose every feed is a batch of 0 items (a dynamic-batch model fed arrays of
shape [0, C, H, W]) is an empty calibration set: quantize refuses it with one QuantizeError
(the CLI: one line, exit 2, no output file). It returned the float model, every tensor being
'empty in every calibration feed', with a warning that nothing was quantized (the CLI exited 0
and wrote it); with `from_cache`, it chose such feeds as the accuracy search's samples. A feed
of 0 items among others that hold values is read as before, and so is a feed of an input the
model declares empty (a dim fixed at 0: test_quant_robustness's empty-operand model)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from graphopt.cli import main
from graphopt.errors import QuantizeError
from graphopt.quant.api import quantize_with_report


def _dynamic_batch_model() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    f = onnx.TensorProto.FLOAT
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1], name="conv1"),
            helper.make_node("Relu", ["a"], ["r"], name="relu"),
            helper.make_node("Conv", ["r", "w2"], ["y"], pads=[1, 1, 1, 1], name="conv2"),
        ],
        "g",
        [helper.make_tensor_value_info("x", f, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", f, ["N", 4, 8, 8])],
        [
            numpy_helper.from_array(rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32), "w1"),
            numpy_helper.from_array(rng.normal(0, 0.3, (4, 4, 3, 3)).astype(np.float32), "w2"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def _empty() -> dict[str, np.ndarray]:
    return {"x": np.zeros((0, 3, 8, 8), np.float32)}


def _full(seed: int) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(seed).normal(0, 1, (2, 3, 8, 8)).astype(np.float32)}


@pytest.mark.parametrize(("method", "parallel"), [("minmax", 1), ("minmax", 2), ("entropy", 1)])
def test_feeds_of_no_items_are_refused(method: str, parallel: int) -> None:
    with pytest.raises(QuantizeError) as caught:
        quantize_with_report(
            _dynamic_batch_model(), [_empty(), _empty()], method=method, parallel_feeds=parallel
        )
    message = str(caught.value)
    assert message.startswith("the calibration data is empty")
    assert "calibration feed 0: 'x' of shape [0, 3, 8, 8]" in message
    assert "\n" not in message


def test_feeds_of_no_items_are_refused_with_a_cache(tmp_path) -> None:
    model, cache = _dynamic_batch_model(), tmp_path / "m.cache"
    quantize_with_report(model, [_full(1), _full(2)], cache=str(cache))
    with pytest.raises(QuantizeError, match="the calibration data is empty"):
        quantize_with_report(model, [_empty()], from_cache=str(cache))


def test_an_empty_feed_among_others_is_read() -> None:
    q, report = quantize_with_report(
        _dynamic_batch_model(), [_empty(), _full(1), _full(2)], accuracy_target=None
    )
    assert sorted(report.quantized_nodes) == ["conv1", "conv2"]
    assert sum(n.op_type == "QuantizeLinear" for n in q.graph.node) == 2


def test_cli_folder_of_empty_batches_exits_2_without_output(tmp_path, capsys) -> None:
    path, out, calib = tmp_path / "m.onnx", tmp_path / "q.onnx", tmp_path / "calib"
    onnx.save(_dynamic_batch_model(), path)
    calib.mkdir()
    np.save(calib / "a.npy", _empty()["x"])
    code = main(["quantize", str(path), "-o", str(out), "--calib", str(calib), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert not out.exists()
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "the calibration data is empty" in lines[0], err
    assert "a.npy: 'x' of shape [0, 3, 8, 8]" in lines[0]


def test_a_model_without_inputs_is_no_empty_calibration() -> None:
    # (final review of 72151eb: a feed of no arrays, all a model without inputs takes, was
    # counted as a batch of 0 items, and such a model was refused as 'the calibration data is
    # empty'; the parent of 72151eb quantized it)
    import graphopt as _graphopt

    weight = onnx.helper.make_tensor(
        "W", onnx.TensorProto.FLOAT, [4, 3, 3, 3], np.linspace(-1, 1, 108, dtype=np.float32)
    )
    graph = onnx.helper.make_graph(
        [
            onnx.helper.make_node(
                "RandomNormal",
                [],
                ["x"],
                shape=[1, 3, 8, 8],
                dtype=onnx.TensorProto.FLOAT,
                seed=1.0,
            ),
            onnx.helper.make_node("Conv", ["x", "W"], ["y"]),
        ],
        "g",
        [],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4, 6, 6])],
        [weight],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 13)])
    quantized = _graphopt.quantize(model, [{}, {}], target="onnxruntime", accuracy_target=None)
    assert "QuantizeLinear" in {n.op_type for n in quantized.graph.node}
