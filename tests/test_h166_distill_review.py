"""H166 adversarial review of graphopt.distill: soft targets, batches, the loss reference."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.distill import (
    DistillError,
    load_targets,
    log_softmax,
    softmax,
    write_targets,
)


def _model(nodes, inputs, outputs, opset: int = 17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "h166", inputs, outputs)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _identity(elem: int = TensorProto.FLOAT, classes: int = 4) -> onnx.ModelProto:
    """y = x, x[n, classes]: the samples are the teacher's logits."""
    return _model(
        [helper.make_node("Identity", ["x"], ["y"])],
        [helper.make_tensor_value_info("x", elem, ["n", classes])],
        [helper.make_tensor_value_info("y", elem, ["n", classes])],
    )


def test_a_small_temperature_gives_the_one_hot_limit_not_nan(tmp_path):
    # z / T overflowed to inf for T = 1e-310 (finite, > 0, accepted), inf − inf = NaN: the
    # soft targets were NaN and the run exited 0. softmax(z / T) → one-hot of argmax z as T → 0
    z = np.array([[1.0, 3.0, 2.0, -1.0]])
    np.testing.assert_array_equal(softmax(z, 1e-310, axis=1), [[0.0, 1.0, 0.0, 0.0]])
    assert log_softmax(z, 1e-310, axis=1)[0, 1] == 0.0
    feeds = [{"x": z.astype(np.float32)}, {"x": np.array([[5.0, 4.0, 4.5, 0.0]], np.float32)}]
    write_targets(_identity(), feeds, tmp_path / "t", logits=["y"], temperature=1e-310)
    stored = np.asarray(load_targets(tmp_path / "t")["y"])
    np.testing.assert_array_equal(stored, [[0, 1, 0, 0], [1, 0, 0, 0]])


@pytest.mark.parametrize(
    "bad",
    [
        [np.nan, 0.0, 1.0, 2.0],  # a NaN logit
        [np.inf, 0.0, 1.0, 2.0],  # +inf: inf − inf
        [-np.inf, -np.inf, -np.inf, -np.inf],  # nothing left to normalize
    ],
)
def test_logits_whose_softmax_is_not_a_distribution_are_refused_naming_the_sample(tmp_path, bad):
    # they were stored as NaN soft targets and the run exited 0
    feeds = [
        {"x": np.array([[0.0, 1.0, -np.inf, 2.0]], np.float32)},  # -inf masks a class: fine
        {"x": np.array([bad], np.float32)},
    ]
    out = tmp_path / "t"
    with pytest.raises(DistillError, match=r"logits 'y' of feed 1 hold NaN or \+inf"):
        write_targets(_identity(), feeds, out, logits=["y"], checkpoint=1)
    kept = np.asarray(load_targets(out, allow_partial=True)["y"])  # the first checkpoint's
    np.testing.assert_allclose(kept, softmax(feeds[0]["x"], axis=1), rtol=1e-6)
    assert kept[0, 2] == 0.0
    # stored raw, the same values are what the teacher gave
    write_targets(_identity(), feeds, tmp_path / "raw")
    np.testing.assert_array_equal(load_targets(tmp_path / "raw")["y"][1], feeds[1]["x"][0])


def test_a_bad_row_in_a_batch_names_its_own_sample(tmp_path):
    feeds = [{"x": np.zeros((1, 4), np.float32)} for _ in range(4)]
    feeds[2] = {"x": np.full((1, 4), np.nan, np.float32)}
    with pytest.raises(DistillError, match="of feed 2 hold NaN"):
        write_targets(_identity(), feeds, tmp_path / "t", logits=["y"], batch_size=4)


def test_float16_logits_give_float32_soft_targets(tmp_path):
    # they were stored as float16: a probability of 2e-9 became 0 and one of 3e-7 was 2.6 %
    # off, the small ones being what distillation transfers
    z = np.array([[0.0, -9.0, -12.0, -15.0, -20.0], [3.0, 3.0, 2.5, -1.0, 0.25]], np.float16)
    feeds = [{"x": z[i : i + 1]} for i in range(2)]
    manifest = write_targets(
        _identity(TensorProto.FLOAT16, 5), feeds, tmp_path / "t", logits=["y"], outputs=[]
    )
    assert manifest["tensors"]["y"]["dtype"] == "<f4"
    stored = load_targets(tmp_path / "t")["y"]
    assert stored.dtype == np.float32
    np.testing.assert_allclose(stored, softmax(z.astype(np.float64), axis=1), rtol=1e-6)
    assert stored[0, 4] > 0
