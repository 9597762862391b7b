"""distill-targets: a run stopped while the first batch's files are made can be rerun as is,
and soft targets over the batch axis (axis 0, where samples are stacked) are refused."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from graphopt.cli import main
from graphopt.distill import DistillError, load_targets, softmax, write_targets
from tests.test_distill import classifier, expected_outputs


@pytest.fixture
def teacher(tmp_path):
    path = tmp_path / "teacher.onnx"
    onnx.save(classifier(), path)
    return path


@pytest.fixture
def feeds():
    rng = np.random.default_rng(3)
    return [{"x": rng.standard_normal((1, 4)).astype(np.float32)} for _ in range(5)]


def test_interrupted_while_the_first_files_are_made_reruns(teacher, feeds, tmp_path, monkeypatch):
    out = tmp_path / "targets"
    real = np.lib.format.open_memmap
    calls = []

    def stop_at_second_file(*args, **kwargs):
        calls.append(args)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(np.lib.format, "open_memmap", stop_at_second_file)
    with pytest.raises(KeyboardInterrupt):
        write_targets(teacher, feeds, out, logits=["logits"])
    monkeypatch.setattr(np.lib.format, "open_memmap", real)
    assert any(p.suffix == ".npy" for p in out.iterdir())  # the first file was made
    manifest = write_targets(teacher, feeds, out, logits=["logits"])
    assert manifest["complete"] and manifest["done"] == 5
    targets = load_targets(out)
    for i, e in enumerate(expected_outputs([f["x"] for f in feeds])):
        np.testing.assert_allclose(targets["logits"][i], softmax(e["logits"][0]), rtol=1e-6)
        np.testing.assert_array_equal(targets["peak"][i], e["peak"][0])


def test_an_output_without_a_batch_axis_leaves_no_files(tmp_path):
    """The second output has no batch axis: refused before the first output's file is made,
    so a rerun storing only the first output works in the same folder."""
    model = classifier()
    model.graph.node.append(onnx.helper.make_node("Shape", ["h"], ["dims"]))
    model.graph.output.append(
        onnx.helper.make_tensor_value_info("dims", onnx.TensorProto.INT64, [2])
    )
    feeds = [{"x": np.ones((1, 4), np.float32)}]
    out = tmp_path / "t"
    with pytest.raises(DistillError, match="'dims' has shape"):
        write_targets(model, feeds, out, outputs=["logits", "dims"])
    assert list(out.iterdir()) == []
    assert write_targets(model, feeds, out, outputs=["logits"])["complete"]


@pytest.mark.parametrize("axis", [0, -2])
def test_softmax_over_the_batch_axis_is_refused(teacher, feeds, tmp_path, axis):
    out = tmp_path / "t"
    with pytest.raises(DistillError, match=f"axis {axis} .*batch axis"):
        write_targets(teacher, feeds, out, logits=["logits"], axis=axis)
    assert list(out.iterdir()) == []


def test_cli_refuses_axis_0_in_one_line(teacher, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    np.save(data / "a.npy", np.ones((1, 4), np.float32))
    argv = ["distill-targets", str(teacher), "--data", str(data), "-o", str(tmp_path / "t")]
    assert main([*argv, "--logits", "logits", "--axis", "0", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "batch axis" in err and len(err.splitlines()) == 1


def test_axis_0_without_logits_is_not_refused(teacher, feeds, tmp_path):
    assert write_targets(teacher, feeds, tmp_path / "t", axis=0)["complete"]
