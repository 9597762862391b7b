"""A data set of pre-batched .npy files whose last file holds fewer samples (a data set size
not divisible by the batch size): its samples are stored, and a run resumes across it. The
run failed at that file ('every sample must give the same shape') and every rerun did again;
at a batch size > 1 the files of one batch were refused ('must hold as many')."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.distill import DistillError, iter_batches, load_targets, write_targets


def _teacher() -> onnx.ModelProto:
    """y = 2x + 1 and z = sum(x) per row, x [n, 4]: one row of each per sample."""
    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["x", "two"], ["m"]),
            helper.make_node("Add", ["m", "one"], ["y"]),
            helper.make_node("ReduceSum", ["x", "axes"], ["z"], keepdims=0),
        ],
        "s28",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4]),
            helper.make_tensor_value_info("z", TensorProto.FLOAT, ["n"]),
        ],
        [
            helper.make_tensor("two", TensorProto.FLOAT, [], [2.0]),
            helper.make_tensor("one", TensorProto.FLOAT, [], [1.0]),
            helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _data(tmp_path, rows=(4, 4, 4, 3)):
    """Files of `rows` samples each (the last short) and the samples, stacked."""
    samples = np.random.default_rng(0).standard_normal((sum(rows), 4)).astype(np.float32)
    data = tmp_path / "data"
    data.mkdir()
    start = 0
    for i, n in enumerate(rows):
        np.save(data / f"b{i}.npy", samples[start : start + n])
        start += n
    return data, samples


@pytest.mark.parametrize("batch", [1, 2, 3, 4])
def test_a_short_last_file_is_stored(tmp_path, batch):
    data, samples = _data(tmp_path)
    out = tmp_path / "t"
    manifest = write_targets(_teacher(), data, out, batch_size=batch, checkpoint=1)
    assert manifest["complete"] and manifest["done"] == manifest["count"] == 4
    assert manifest["samples_per_file"] == 4 and manifest["samples_in_last_file"] == 3
    targets = load_targets(out)
    np.testing.assert_allclose(targets["y"], 2 * samples + 1, rtol=1e-6)
    np.testing.assert_allclose(targets["z"], samples.sum(axis=1), rtol=1e-5, atol=1e-6)
    assert np.load(out / manifest["tensors"]["y"]["file"]).shape == (15, 4)  # no padding rows
    assert [len(b["y"]) for b in iter_batches(out, 4)] == [4, 4, 4, 3]


@pytest.mark.parametrize(("stop_at", "batch"), [(2, 1), (3, 1), (2, 2), (3, 3)])
def test_a_run_resumes_across_a_short_last_file(tmp_path, stop_at, batch):
    data, samples = _data(tmp_path)
    out = tmp_path / "t"

    def stop(done: int, total: int) -> None:
        if done == stop_at:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_targets(_teacher(), data, out, checkpoint=1, progress=stop)
    partial = load_targets(out, allow_partial=True)
    np.testing.assert_allclose(partial["y"], 2 * samples[: 4 * stop_at] + 1, rtol=1e-6)
    manifest = write_targets(_teacher(), data, out, batch_size=batch, checkpoint=1)
    assert manifest["complete"]
    np.testing.assert_allclose(load_targets(out)["y"], 2 * samples + 1, rtol=1e-6)
    again = write_targets(_teacher(), data, out, batch_size=2)  # complete: nothing runs
    assert again["tensors"] == manifest["tensors"]


def test_files_all_alike_keep_the_manifest_as_before(tmp_path):
    data, samples = _data(tmp_path, rows=(4, 4))
    manifest = write_targets(_teacher(), data, tmp_path / "t", batch_size=2)
    assert "samples_in_last_file" not in manifest and manifest["samples_per_file"] == 4
    np.testing.assert_allclose(load_targets(tmp_path / "t")["y"], 2 * samples + 1, rtol=1e-6)


def test_only_the_last_file_may_be_short(tmp_path):
    data, _ = _data(tmp_path, rows=(4, 3, 4))
    with pytest.raises(DistillError, match=r"on b1\.npy, expected \(4, 4\)"):
        write_targets(_teacher(), data, tmp_path / "t")


def test_a_manifest_with_a_short_last_file_is_checked(tmp_path):
    data, _ = _data(tmp_path)
    out = tmp_path / "t"
    write_targets(_teacher(), data, out)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["samples_in_last_file"] = 5  # more than samples_per_file
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DistillError, match="samples_in_last_file"):
        load_targets(out)


def test_a_folder_made_without_a_short_last_file_is_refused_clearly(tmp_path):
    """A folder whose manifest counts every file as full (an earlier graphopt's, stopped at
    the short file) cannot take its rows: the rerun says to start over."""
    data, _ = _data(tmp_path)
    out = tmp_path / "t"

    def stop(done: int, total: int) -> None:
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_targets(_teacher(), data, out, checkpoint=1, progress=stop)
    manifest = json.loads((out / "manifest.json").read_text())
    del manifest["samples_in_last_file"]
    for entry in manifest["tensors"].values():
        entry["shape"][0] = 16
        name = out / entry["file"]
        np.save(name, np.zeros([16, *entry["shape"][1:]], dtype=entry["dtype"]))
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DistillError, match=r"b3.npy.*fewer.*start over"):
        write_targets(_teacher(), data, out, checkpoint=1)


def test_a_short_last_file_for_a_fixed_batch_teacher_is_refused_saying_so(tmp_path):
    teacher = _teacher()
    for vi in [*teacher.graph.input, *teacher.graph.output]:
        vi.type.tensor_type.shape.dim[0].dim_value = 4
    data, _ = _data(tmp_path)
    with pytest.raises(
        DistillError, match=r"b3.npy: the last data file holds 3 samples.*batch of 4"
    ):
        write_targets(teacher, data, tmp_path / "t")


def test_a_short_last_file_replaced_since_the_checkpoint_says_to_start_over(tmp_path):
    """Samples after the last checkpoint may be replaced (a bad one fixed) and the run
    resumed; a short last file replaced by a full one no longer fits the files' rows."""
    data, samples = _data(tmp_path)
    out = tmp_path / "t"

    def stop(done: int, total: int) -> None:
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_targets(_teacher(), data, out, checkpoint=1, progress=stop)
    np.save(data / "b3.npy", samples[:4])
    with pytest.raises(DistillError, match=r"made for a last data file of 3 sample.*start over"):
        write_targets(_teacher(), data, out)
