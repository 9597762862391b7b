"""A targets folder made before batch axes were read from the model (2d91b9a) stored a
sequence-first output (y = x^T, declared [4, 'n']) as the teacher gives it: 4 rows of [1]
per sample, its manifest naming no batch_axis. Resumed at a batch size > 1 the samples stack
on axis 1 of that layout, which the run refuses; it said the model does not say axis 1 is
the batch axis and to declare it, though the model does. Now it says the folder's layout and
to resume at batch size 1 (which goes on as the folder was made)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.distill import DistillError, load_targets, write_targets


def _teacher() -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Transpose", ["x"], ["y"], perm=[1, 0])],
        "s28_review_layout",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, "n"])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _old_folder(tmp_path, feeds):
    """A folder of 2 of the samples done, in the layout (and manifest) of 2ce7464 at batch
    size 1: y's 4 rows of [1] per sample, no batch_axis."""
    out = tmp_path / "t"

    def stop(done: int, total: int) -> None:
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_targets(_teacher(), feeds, out, checkpoint=2, progress=stop)
    manifest = json.loads((out / "manifest.json").read_text())
    entry = manifest["tensors"]["y"]
    assert entry.pop("batch_axis") == 1
    manifest["samples_per_file"] = 4
    entry["shape"] = [4 * len(feeds), 1]
    rows = np.zeros(entry["shape"], dtype=entry["dtype"])
    rows[:8] = np.concatenate([f["x"].T for f in feeds[:2]])
    np.save(out / entry["file"], rows)
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


def _feeds():
    rng = np.random.default_rng(3)
    return [{"x": rng.standard_normal((1, 4)).astype(np.float32)} for _ in range(6)]


def test_a_batch_resume_of_an_old_layout_says_to_resume_at_batch_size_1(tmp_path):
    feeds = _feeds()
    out = _old_folder(tmp_path, feeds)
    with pytest.raises(DistillError) as caught:
        write_targets(_teacher(), feeds, out, batch_size=2, checkpoint=2)
    text = str(caught.value)
    assert "resume it at batch size 1" in text and "from axis 0" in text
    assert "declare" not in text and "\n" not in text


def test_the_old_layout_resumes_at_batch_size_1(tmp_path):
    feeds = _feeds()
    out = _old_folder(tmp_path, feeds)
    manifest = write_targets(_teacher(), feeds, out, checkpoint=2)
    assert manifest["complete"] and "batch_axis" not in manifest["tensors"]["y"]
    want = np.concatenate([f["x"].T for f in feeds])
    np.testing.assert_array_equal(load_targets(out)["y"], want)
