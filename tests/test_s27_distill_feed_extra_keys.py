"""write_targets takes feed dicts that hold arrays the teacher does not read (a label beside the
image, as a training data set yields them and as quantize takes them), as it takes an .npz with
more arrays than inputs: they were onnxruntime's 'Invalid input name: label' (the teacher
failed on feed 0). The extra arrays are not batched (a label of another length beside each
sample stacks with nothing), and a batch whose samples differ only in them still counts as
duplicates for the batch check (a mixing teacher is still found)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.distill import DistillError, load_targets, write_targets


def _teacher() -> onnx.ModelProto:
    return onnx.parser.parse_model(
        """<ir_version: 8, opset_import: ["" : 17]>
        g (float[N, 4] x) => (float[N, 4] y, int64[N] k) {
          y = Relu(x)
          k = ArgMax<axis=1, keepdims=0>(x)
        }"""
    )


def _feeds(count: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    return [
        {"x": rng.standard_normal((1, 4)).astype(np.float32), "label": np.arange(i + 1)}
        for i in range(count)
    ]


@pytest.mark.parametrize("batch_size", [1, 2, 3])
def test_arrays_the_teacher_does_not_read_are_left(tmp_path: Path, batch_size: int) -> None:
    feeds = _feeds(5)
    write_targets(_teacher(), feeds, tmp_path / "t", batch_size=batch_size)
    x = np.concatenate([f["x"] for f in feeds])
    targets = load_targets(tmp_path / "t")
    np.testing.assert_array_equal(targets["y"], np.maximum(x, 0))
    np.testing.assert_array_equal(targets["k"], np.argmax(x, axis=1))


def test_samples_of_a_batch_must_still_hold_the_same_keys(tmp_path: Path) -> None:
    x = np.ones((1, 4), np.float32)
    said = "feed 1: feeds ['x'], feed 0 feeds ['label', 'x']"
    with pytest.raises(DistillError, match=re.escape(said)):
        write_targets(_teacher(), [{"x": x, "label": x}, {"x": x}], tmp_path / "t", batch_size=2)


def test_a_first_batch_alike_but_for_its_labels_proves_nothing(tmp_path: Path) -> None:
    # y = x minus the batch's mean x: alone 0. Two equal first samples (labels 0 and 1) pass
    # the check; the next batch, of other samples, is checked and refused
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["x"], ["mu"], axes=[0], keepdims=1),
            helper.make_node("Sub", ["x", "mu"], ["y"]),
        ],
        "s27",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])],
    )
    mixing = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    same = np.ones((1, 4), np.float32)
    feeds = [{"x": same, "label": np.array([0])}, {"x": same, "label": np.array([1])}]
    feeds += [{"x": f["x"], "label": np.array([2])} for f in _feeds(2)]
    with pytest.raises(DistillError, match="mixes the samples of a batch"):
        write_targets(mixing, feeds, tmp_path / "t", batch_size=2)
