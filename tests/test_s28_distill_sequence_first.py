"""Sequence-first teachers: outputs laid out [T, N, C], the samples on axis 1. Where the model
names that axis with the input's batch dim, samples are taken from it (and stored on axis 0,
the manifest's `batch_axis` saying where they were), at any batch size; batch size > 1 was
refused ('it does not stack samples on axis 0; use batch size 1'). Where it does not, the
refusal says how to name it."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.distill import DistillError, load_targets, softmax, write_targets


def _teacher(named: bool = True) -> onnx.ModelProto:
    """x [n, t, 4] → seq = Transpose(x) [t, n, 4], logits = Relu(seq) · W [t, n, 3],
    pooled = mean over t of x [n, 4]; `named`: the input's and outputs' dims name n (else
    neither does, and shape inference cannot tell either)."""
    n, t = ("n", "t") if named else (None, None)
    w = np.arange(12, dtype=np.float32).reshape(4, 3) / 10 - 0.5
    graph = helper.make_graph(
        [
            helper.make_node("Transpose", ["x"], ["seq"], perm=[1, 0, 2]),
            helper.make_node("Relu", ["seq"], ["act"]),
            helper.make_node("MatMul", ["act", "w"], ["logits"]),
            helper.make_node("ReduceMean", ["x", "axes"], ["pooled"], keepdims=0),
        ],
        "s28_seq",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, "t", 4])],
        [
            helper.make_tensor_value_info("seq", TensorProto.FLOAT, [t, n, 4]),
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, [t, n, 3]),
            helper.make_tensor_value_info("pooled", TensorProto.FLOAT, [n, 4]),
        ],
        [
            helper.make_tensor("w", TensorProto.FLOAT, [4, 3], w.ravel()),
            helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _samples(count: int = 5, steps: int = 6) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(1)
    return [{"x": rng.standard_normal((1, steps, 4)).astype(np.float32)} for _ in range(count)]


def _expected(feeds, temperature=2.0):
    x = np.concatenate([f["x"] for f in feeds])  # [N, T, 4]
    w = np.arange(12, dtype=np.float64).reshape(4, 3) / 10 - 0.5
    return {
        "seq": x,
        "logits": softmax(np.maximum(x, 0) @ w, temperature, -1),
        "pooled": x.mean(axis=1),
    }


@pytest.mark.parametrize("batch", [1, 2, 3])
def test_a_named_sequence_first_output_is_stored_samples_first(tmp_path, batch):
    feeds = _samples()
    manifest = write_targets(
        _teacher(), feeds, tmp_path / "t", logits=["logits"], temperature=2.0, batch_size=batch
    )
    tensors = manifest["tensors"]
    assert tensors["seq"]["batch_axis"] == 1 and tensors["logits"]["batch_axis"] == 1
    assert "batch_axis" not in tensors["pooled"] and manifest["samples_per_file"] == 1
    assert tensors["seq"]["shape"] == [5, 6, 4] and tensors["logits"]["shape"] == [5, 6, 3]
    got = load_targets(tmp_path / "t")
    for name, want in _expected(feeds).items():
        np.testing.assert_allclose(got[name], want, rtol=1e-5, atol=1e-6, err_msg=name)


def test_a_sequence_first_hint_is_stored_samples_first(tmp_path):
    feeds = _samples()
    manifest = write_targets(
        _teacher(), feeds, tmp_path / "t", outputs=["pooled"], hints=["act"], batch_size=2
    )
    assert manifest["tensors"]["act"]["batch_axis"] == 1  # [t, n, 4], shape inference's
    x = np.concatenate([f["x"] for f in feeds])
    np.testing.assert_allclose(load_targets(tmp_path / "t")["act"], np.maximum(x, 0), rtol=1e-6)


def test_a_resume_at_another_batch_size_keeps_the_layout(tmp_path):
    feeds = _samples()
    out = tmp_path / "t"

    def stop(done: int, total: int) -> None:
        if done == 2:
            raise KeyboardInterrupt

    options = {"logits": ["logits"], "temperature": 2.0}
    with pytest.raises(KeyboardInterrupt):
        write_targets(_teacher(), feeds, out, checkpoint=2, progress=stop, **options)
    write_targets(_teacher(), feeds, out, batch_size=3, **options)
    got = load_targets(out)
    for name, want in _expected(feeds).items():
        np.testing.assert_allclose(got[name], want, rtol=1e-5, atol=1e-6, err_msg=name)


def test_an_unnamed_batch_axis_is_refused_saying_how_to_name_it(tmp_path):
    with pytest.raises(DistillError, match=r"'seq'.*stacks samples on axis 1.*batch dim \(a"):
        write_targets(_teacher(named=False), _samples(), tmp_path / "t", batch_size=2)
    # at batch size 1 it runs as before: each sample's [t, 1, 4] on axis 0, 6 rows a sample
    manifest = write_targets(
        _teacher(named=False), _samples(), tmp_path / "one", outputs=["seq", "logits"]
    )
    assert manifest["samples_per_file"] == 6 and manifest["tensors"]["seq"]["shape"] == [30, 1, 4]
    assert "batch_axis" not in manifest["tensors"]["seq"]


def test_a_class_axis_on_the_batch_axis_is_refused(tmp_path):
    with pytest.raises(DistillError, match="class axis 1 of logits 'logits' is the batch axis"):
        write_targets(_teacher(), _samples(), tmp_path / "t", logits=["logits"], axis=1)


def test_a_manifest_batch_axis_is_checked(tmp_path):
    out = tmp_path / "t"
    write_targets(_teacher(), _samples(), out)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["tensors"]["seq"]["batch_axis"] = 3
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DistillError, match="'batch_axis' is not one of its axes"):
        load_targets(out)


def test_an_output_declared_without_a_shape_is_told_by_shape_inference(tmp_path):
    teacher = _teacher()
    for vi in teacher.graph.output:
        vi.type.tensor_type.ClearField("shape")
    feeds = _samples()
    manifest = write_targets(teacher, feeds, tmp_path / "t", batch_size=2)
    assert manifest["tensors"]["seq"]["batch_axis"] == 1
    assert "batch_axis" not in manifest["tensors"]["pooled"]
    got = load_targets(tmp_path / "t")
    np.testing.assert_allclose(got["seq"], _expected(feeds)["seq"], rtol=1e-6)
