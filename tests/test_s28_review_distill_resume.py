"""A teacher without a batch axis (x [T, 4] -> the mean over T, [1, 4]: one row per file of
any T) whose last data file holds a shorter sequence: the folder a run makes resumes. Since
5f87d39 the rerun read the last file's shorter axis 0 as a short last batch and refused the
folder ('holds targets made counting every data file as holding 1 sample(s) ... start
over'), though the teacher gives it one row, as the folder was made for."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.distill import load_targets, write_targets


def _teacher() -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["x"], ["y"], axes=[0], keepdims=1)],
        "s28_review",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["t", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.mark.parametrize("lengths", [(3, 3, 3, 3, 2), (5, 2, 4, 3, 2)])
def test_a_run_resumes_where_the_last_file_holds_a_shorter_sequence(tmp_path, lengths):
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    data.mkdir()
    xs = [rng.standard_normal((t, 4)).astype(np.float32) for t in lengths]
    for i, x in enumerate(xs):
        np.save(data / f"s{i}.npy", x)
    out = tmp_path / "t"

    def stop(done: int, total: int) -> None:
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_targets(_teacher(), data, out, checkpoint=2, progress=stop)
    assert json.loads((out / "manifest.json").read_text())["done"] == 2
    manifest = write_targets(_teacher(), data, out, checkpoint=2)
    assert manifest["complete"] and "samples_in_last_file" not in manifest
    want = np.concatenate([x.mean(axis=0, keepdims=True) for x in xs])
    np.testing.assert_allclose(load_targets(out)["y"], want, rtol=1e-5, atol=1e-6)
