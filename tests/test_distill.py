"""Distillation targets (writer, resumable, memory-mapped reader) and the NumPy loss reference."""

from __future__ import annotations

import json
import math

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.backends.onnxruntime import run as ort_run
from graphopt.backends.onnxruntime import session
from graphopt.distill import (
    DistillError,
    distillation_loss,
    hint_loss,
    iter_batches,
    kd_kl_loss,
    load_targets,
    log_softmax,
    read_manifest,
    softmax,
    write_targets,
)

# --------------------------------------------------------------------------- losses


def test_softmax_with_temperature_hand_values():
    p = softmax(np.array([0.0, math.log(3.0)]))
    np.testing.assert_allclose(p, [0.25, 0.75])
    # T = 2 halves the logits: [0, 2 ln 3] / 2 = [0, ln 3]
    np.testing.assert_allclose(softmax(np.array([0.0, 2 * math.log(3.0)]), 2.0), [0.25, 0.75])
    np.testing.assert_allclose(log_softmax(np.array([0.0, math.log(3.0)])), np.log([0.25, 0.75]))
    big = softmax(np.array([1000.0, 1000.0]))  # stable
    np.testing.assert_allclose(big, [0.5, 0.5])


def test_kd_kl_loss_hand_values():
    teacher = np.array([[0.5, 0.5]])
    # q = [0.25, 0.75]: KL = 0.5 ln(0.5/0.25) + 0.5 ln(0.5/0.75) = 0.5 ln(4/3)
    assert kd_kl_loss(np.array([[0.0, math.log(3.0)]]), teacher, 1.0) == pytest.approx(
        0.5 * math.log(4 / 3)
    )
    # T = 2: same q after dividing by T, times T² = 4
    assert kd_kl_loss(np.array([[0.0, 2 * math.log(3.0)]]), teacher, 2.0) == pytest.approx(
        4 * 0.5 * math.log(4 / 3)
    )
    # identical distributions: 0; zero-probability teacher classes contribute nothing
    assert kd_kl_loss(np.array([[1.0, 1.0]]), teacher) == pytest.approx(0.0, abs=1e-15)
    one_hot = np.array([[1.0, 0.0]])
    assert kd_kl_loss(np.array([[0.0, math.log(3.0)]]), one_hot) == pytest.approx(-math.log(0.25))
    # batchmean: the mean over rows of per-row KL
    two = kd_kl_loss(
        np.array([[0.0, math.log(3.0)], [1.0, 1.0]]), np.array([[0.5, 0.5], [0.5, 0.5]])
    )
    assert two == pytest.approx(0.25 * math.log(4 / 3))
    with pytest.raises(DistillError):
        kd_kl_loss(np.zeros((1, 3)), teacher)


def test_kd_loss_matches_the_torch_formula_on_the_class_axis():
    rng = np.random.default_rng(0)
    s, t = rng.standard_normal((4, 5, 3)), rng.standard_normal((4, 5, 3))
    p = softmax(t, 3.0, axis=1)
    expected = 9.0 * np.sum(p * (np.log(p) - log_softmax(s, 3.0, axis=1))) / (4 * 3)
    assert kd_kl_loss(s, p, 3.0, axis=1) == pytest.approx(expected)


def test_hint_and_combined_losses_hand_values():
    assert hint_loss(np.array([1.0, 2.0, 3.0]), np.array([1.0, 1.0, 1.0])) == pytest.approx(5 / 3)
    with pytest.raises(DistillError):
        hint_loss(np.zeros(2), np.zeros(3))
    s = np.array([[0.0, math.log(3.0)]])
    p = np.array([[0.5, 0.5]])
    kd = 0.5 * math.log(4 / 3)
    ce = -math.log(0.75)  # label 1 under softmax(s) = [0.25, 0.75]
    assert distillation_loss(s, p, np.array([1]), alpha=0.3) == pytest.approx(0.3 * kd + 0.7 * ce)
    assert distillation_loss(s, p) == pytest.approx(kd)


# --------------------------------------------------------------------------- writer


def classifier(batch: int | str = "n") -> onnx.ModelProto:
    """x[n,4] → Gemm → logits[n,3]; hidden tensor h = Relu(x W1)."""
    rng = np.random.default_rng(1)
    w1 = numpy_helper.from_array(rng.standard_normal((4, 6)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((6, 3)).astype(np.float32), "w2")
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["m"]),
        helper.make_node("Relu", ["m"], ["h"]),
        helper.make_node("MatMul", ["h", "w2"], ["logits"]),
        helper.make_node("ReduceMax", ["h"], ["peak"], keepdims=0, axes=[1]),
    ]
    graph = helper.make_graph(
        nodes,
        "clf",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 4])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 3]),
            helper.make_tensor_value_info("peak", TensorProto.FLOAT, [batch]),
        ],
        initializer=[w1, w2],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.fixture
def teacher(tmp_path):
    path = tmp_path / "teacher.onnx"
    onnx.save(classifier(), path)
    return path


@pytest.fixture
def data(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    rng = np.random.default_rng(2)
    samples = [rng.standard_normal((1, 4)).astype(np.float32) for _ in range(7)]
    for i, x in enumerate(samples):
        if i % 2:
            np.save(folder / f"s{i:02d}.npy", x)
        else:
            np.savez(folder / f"s{i:02d}.npz", x=x)
    (folder / "notes.txt").write_text("ignored")
    return folder, samples


def expected_outputs(samples, model=None):
    sess = session(model or classifier())
    return [ort_run(sess, {"x": x}) for x in samples]


def test_soft_raw_and_hint_targets_match_the_teacher(teacher, data, tmp_path):
    folder, samples = data
    out = tmp_path / "targets"
    manifest = write_targets(
        teacher, folder, out, temperature=4.0, logits=["logits"], hints=["h"], checkpoint=3
    )
    assert manifest["complete"] and manifest["done"] == 7 and manifest["count"] == 7
    assert manifest["temperature"] == 4.0
    assert manifest["sources"] == [f"s{i:02d}.{'npy' if i % 2 else 'npz'}" for i in range(7)]
    assert len(manifest["teacher"]["sha256"]) == 64
    assert {k: v["kind"] for k, v in manifest["tensors"].items()} == {
        "logits": "soft",
        "peak": "raw",
        "h": "hint",
    }
    assert manifest["tensors"]["h"]["shape"] == [7, 6]
    assert read_manifest(out) == manifest
    targets = load_targets(out)
    assert isinstance(targets["logits"], np.memmap)  # memory-mapped, not read into memory
    expected = expected_outputs(samples)
    for i, e in enumerate(expected):
        np.testing.assert_allclose(targets["logits"][i], softmax(e["logits"][0], 4.0), rtol=1e-6)
        np.testing.assert_array_equal(targets["peak"][i], e["peak"][0])
        np.testing.assert_allclose(
            targets["h"][i], np.maximum(samples[i] @ _w1(), 0)[0], rtol=1e-5, atol=1e-6
        )
    np.testing.assert_allclose(targets["logits"].sum(axis=1), 1.0, rtol=1e-6)
    batches = list(iter_batches(out, 3))
    assert [len(b["peak"]) for b in batches] == [3, 3, 1]


def _w1() -> np.ndarray:
    return numpy_helper.to_array(classifier().graph.initializer[0])


def test_interrupted_run_resumes_from_the_last_checkpoint(teacher, data, tmp_path):
    folder, samples = data
    out = tmp_path / "targets"
    seen = []

    def stop_after_five(done: int, total: int) -> None:
        seen.append(done)
        if done == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_targets(
            teacher, folder, out, logits=["logits"], checkpoint=2, progress=stop_after_five
        )
    partial = read_manifest(out)
    assert partial["done"] == 4 and not partial["complete"]  # the checkpoint before sample 5
    with pytest.raises(DistillError, match="incomplete"):
        load_targets(out)
    assert len(load_targets(out, allow_partial=True)["peak"]) == 4
    resumed = []
    write_targets(
        teacher,
        folder,
        out,
        logits=["logits"],
        checkpoint=2,
        progress=lambda d, t: resumed.append(d),
    )
    assert resumed[0] == 4 and resumed[-1] == 7  # only the missing samples ran
    targets = load_targets(out)
    for i, e in enumerate(expected_outputs(samples)):
        np.testing.assert_allclose(targets["logits"][i], softmax(e["logits"][0]), rtol=1e-6)
    # a complete folder is not recomputed
    again = []
    write_targets(teacher, folder, out, logits=["logits"], progress=lambda d, t: again.append(d))
    assert again == []


def test_a_folder_of_other_targets_is_refused(teacher, data, tmp_path):
    folder, _ = data
    out = tmp_path / "targets"
    write_targets(teacher, folder, out, temperature=2.0, logits=["logits"])
    with pytest.raises(DistillError, match="another temperature"):
        write_targets(teacher, folder, out, temperature=3.0, logits=["logits"])
    with pytest.raises(DistillError, match="tensors"):
        write_targets(teacher, folder, out, temperature=2.0)
    other = tmp_path / "other.onnx"
    m = classifier()
    m.graph.initializer[0].raw_data = np.zeros((4, 6), np.float32).tobytes()
    onnx.save(m, other)
    with pytest.raises(DistillError, match="another teacher"):
        write_targets(other, folder, out, temperature=2.0, logits=["logits"])


def test_batches_of_several_samples(teacher, data, tmp_path):
    folder, samples = data
    out = tmp_path / "targets"
    write_targets(teacher, folder, out, logits=["logits"], batch_size=3)
    targets = load_targets(out)
    assert targets["logits"].shape == (7, 3)
    for i, e in enumerate(expected_outputs(samples)):
        np.testing.assert_allclose(targets["logits"][i], softmax(e["logits"][0]), rtol=1e-6)
    fixed = tmp_path / "fixed.onnx"
    onnx.save(classifier(batch=1), fixed)
    with pytest.raises(DistillError, match="fixed batch of 1"):
        write_targets(fixed, folder, tmp_path / "t2", batch_size=2)


def test_in_memory_feeds_and_errors(tmp_path):
    feeds = [{"x": np.full((1, 4), float(i), np.float32)} for i in range(3)]
    manifest = write_targets(classifier(), feeds, tmp_path / "t", outputs=["peak"])
    assert list(manifest["tensors"]) == ["peak"]
    peaks = load_targets(tmp_path / "t")["peak"]
    assert peaks.shape == (3,)
    for i, f in enumerate(feeds):
        np.testing.assert_array_equal(peaks[i], expected_outputs([f["x"]])[0]["peak"][0])
    doubles = [{"x": np.ones((1, 4), np.float64)}]  # float64 samples are cast to float32
    write_targets(classifier(), doubles, tmp_path / "t6")
    with pytest.raises(DistillError, match="the teacher failed on feed 0"):
        write_targets(classifier(), [{"x": np.ones((1, 5), np.float32)}], tmp_path / "t7")
    with pytest.raises(DistillError, match="no value for teacher input 'x'"):
        write_targets(classifier(), [{"y": np.ones((1, 4), np.float32)}], tmp_path / "t8")
    with pytest.raises(DistillError, match="no output 'nope'"):
        write_targets(classifier(), feeds, tmp_path / "t3", logits=["nope"])
    for bad in (0, -1.0, float("nan")):  # NaN wrote NaN targets
        with pytest.raises(DistillError, match="temperature must be > 0"):
            write_targets(classifier(), feeds, tmp_path / "t4", temperature=bad)
        assert not (tmp_path / "t4").exists()
    with pytest.raises(DistillError, match="no such file"):
        write_targets(classifier(), tmp_path / "missing", tmp_path / "t5")
    with pytest.raises(DistillError, match="not a graphopt"):
        (tmp_path / "bad").mkdir()
        (tmp_path / "bad" / "manifest.json").write_text(json.dumps({"format": "x"}))
        load_targets(tmp_path / "bad")


def test_cli_distill_targets(teacher, data, tmp_path, capsys):
    from graphopt.cli import main

    folder, samples = data
    out = tmp_path / "cli-targets"
    code = main(
        [
            "distill-targets",
            str(teacher),
            "--data",
            str(folder),
            "-o",
            str(out),
            "-T",
            "2",
            "--logits",
            "logits",
            "--hints",
            "h",
        ]
    )
    assert code == 0
    captured = capsys.readouterr()
    assert "7/7" in captured.err  # progress bar
    assert "soft  logits" in captured.out
    targets = load_targets(out)
    e = expected_outputs(samples[:1])[0]
    np.testing.assert_allclose(targets["logits"][0], softmax(e["logits"][0], 2.0), rtol=1e-6)
    code = main(["distill-targets", str(teacher), "--data", str(tmp_path / "nope"), "-o", str(out)])
    assert code == 2
    assert "no such file" in capsys.readouterr().err


# --------------------------------------------------------------------------- real model


@pytest.mark.realmodel
def test_real_detector_targets_from_photographs(real_model, tmp_path):
    import shutil

    from graphopt.realmodels import PREPROCESS, image_paths, load_image, preprocess

    photos = tmp_path / "photos"
    photos.mkdir()
    paths = image_paths()[:3]
    for p in paths:
        shutil.copy(p, photos / p.name)
    teacher = real_model("layout_cdla")
    hint = "hardswish_96.tmp_0"
    out = tmp_path / "targets"
    manifest = write_targets(
        teacher, photos, out, hints=[hint], preprocess=PREPROCESS["layout_cdla"], checkpoint=1
    )
    assert manifest["tensors"][hint]["shape"] == [3, 128, 100, 76]
    targets = load_targets(out)
    model = onnx.load(str(teacher))
    sess = session(model)
    for i, p in enumerate(sorted(paths)):
        x = preprocess(load_image(p), **PREPROCESS["layout_cdla"])
        expected = ort_run(sess, {"image": x})
        for name, value in expected.items():
            # exposing the hint changes onnxruntime's fusions around it: fp32 tolerance
            np.testing.assert_allclose(targets[name][i], value[0], rtol=1e-4, atol=1e-4)
    assert float(np.abs(targets[hint]).max()) > 0


def test_quantization_folder_feeds_can_be_the_data(teacher, data, tmp_path):
    """The quantization loader's sized feed sequence plugs straight into write_targets."""
    quant_data = pytest.importorskip("graphopt.quant.data")
    folder, _ = data
    feeds = quant_data.folder_feeds(folder, onnx.load(teacher))
    write_targets(teacher, feeds, tmp_path / "a", logits=["logits"])
    write_targets(teacher, folder, tmp_path / "b", logits=["logits"])
    a, b = load_targets(tmp_path / "a"), load_targets(tmp_path / "b")
    for name in b:
        np.testing.assert_array_equal(a[name], b[name])


def test_a_sized_feed_sequence_is_read_one_batch_at_a_time(tmp_path):
    """A lazy sequence (like quant.data.folder_feeds) is indexed per batch, not loaded whole."""

    class LazyFeeds:
        def __init__(self, n):
            self.n, self.reads = n, []

        def __len__(self):
            return self.n

        def __getitem__(self, i):
            if not 0 <= i < self.n:
                raise IndexError(i)
            self.reads.append(i)
            return {"x": np.full((1, 4), float(i), np.float32)}

    feeds = LazyFeeds(5)
    seen = []

    def progress(done, total):
        seen.append(list(feeds.reads))

    write_targets(classifier(), feeds, tmp_path / "t", outputs=["peak"], progress=progress)
    assert seen[:2] == [[], [0]]  # nothing read before the first batch, then one sample
    assert seen[-1] == [0, 1, 2, 3, 4]
    expected = [expected_outputs([feeds[i]["x"]])[0]["peak"][0] for i in range(5)]
    np.testing.assert_array_equal(load_targets(tmp_path / "t")["peak"], expected)


def test_a_bad_class_axis_or_output_folder_is_a_distill_error(teacher, data, tmp_path):
    folder, _ = data
    with pytest.raises(DistillError, match="logits 'logits' have 2 axes; there is no class axis 5"):
        write_targets(teacher, folder, tmp_path / "t", logits=["logits"], axis=5)
    assert list((tmp_path / "t").iterdir()) == []  # nothing half-made to trip a rerun
    (tmp_path / "file").write_text("")
    with pytest.raises(DistillError, match="cannot create the targets folder"):
        write_targets(teacher, folder, tmp_path / "file")


def test_targets_inside_the_data_folder_resume(teacher, data, tmp_path):
    folder, samples = data
    first = write_targets(teacher, folder, folder / "targets", logits=["logits"])
    assert first["count"] == len(samples)
    again = write_targets(teacher, folder, folder / "targets", logits=["logits"])
    assert again["sources"] == first["sources"] and again["complete"]


def test_integer_logits_give_float_soft_targets(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Cast", ["x"], ["z"], to=TensorProto.INT32)],
        "int_logits",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("z", TensorProto.INT32, [1, 3])],
    )
    teacher = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    feeds = [{"x": np.array([[0.0, 1.0, 2.0]], np.float32)}]
    write_targets(teacher, feeds, tmp_path / "t", logits=["z"])
    soft = load_targets(tmp_path / "t")["z"]
    assert soft.dtype == np.float32
    np.testing.assert_allclose(soft[0], softmax(np.array([0.0, 1.0, 2.0])), rtol=1e-6)


def test_cli_image_flags_take_quantizes_syntax():
    """--size HxW (and the older H,W), --mean / --std with 1 or 3 numbers, as in quantize."""
    import argparse

    from graphopt.commands.distill import _preprocess
    from graphopt.distill import DistillError

    def args(**kw):
        base = dict(preset=None, size=None, scale=None, mean=None, std=None, bgr=False)
        return argparse.Namespace(**(base | kw))

    assert _preprocess(args(size="48x192", mean="0.5", std="0.5")) == {
        "size": (48, 192),
        "mean": (0.5, 0.5, 0.5),
        "std": (0.5, 0.5, 0.5),
    }
    assert _preprocess(args(size="64,256", mean="1,2,3"))["size"] == (64, 256)
    with pytest.raises(DistillError, match="is not HxW"):
        _preprocess(args(size="48x"))
    with pytest.raises(DistillError, match="--mean needs 1 or 3 numbers"):
        _preprocess(args(mean="1,2"))
