"""A run stopped after a checkpoint by a bad sample resumes once that sample is fixed: the
samples after the last checkpoint are not stored yet, so replacing one changes no stored row.
The rerun was refused ('holds targets of data files that changed since (s4.npy)'), and the
targets of every sample before it were lost with the folder. A change to a sample already
stored, or another number of samples, is still refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from graphopt.cli import main
from graphopt.distill import DistillError, load_targets, write_targets


def _relu() -> onnx.ModelProto:
    return onnx.parser.parse_model(
        """<ir_version: 8, opset_import: ["" : 17]>
        g (float[N, 4] x) => (float[N, 4] y) { y = Relu(x) }"""
    )


def _sample(i: int) -> np.ndarray:
    return np.array([[i, -i, 2 * i, -2 * i]], np.float32)


@pytest.fixture
def stopped(tmp_path: Path) -> tuple[list[str], Path, Path]:
    """distill-targets stopped at s4.npy (int32 for a float input), 4 of 6 stored."""
    teacher = tmp_path / "teacher.onnx"
    onnx.save(_relu(), teacher)
    data = tmp_path / "data"
    data.mkdir()
    for i in range(6):
        np.save(data / f"s{i}.npy", _sample(i).astype(np.int32 if i == 4 else np.float32))
    out = tmp_path / "t"
    argv = ["distill-targets", str(teacher), "--data", str(data), "-o", str(out)]
    argv += ["--checkpoint", "2", "--no-progress"]
    assert main(argv) == 2
    assert json.loads((out / "manifest.json").read_text())["done"] == 4
    return argv, data, out


def test_the_bad_sample_fixed_the_run_resumes(stopped, capsys) -> None:
    argv, data, out = stopped
    np.save(data / "s4.npy", _sample(4))
    capsys.readouterr()
    assert main(argv) == 0, capsys.readouterr().err
    y = load_targets(out)["y"]
    np.testing.assert_array_equal(y, np.maximum(np.concatenate([_sample(i) for i in range(6)]), 0))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source_stats"][4][0] == (data / "s4.npy").stat().st_size  # the new file


def test_a_stored_sample_changed_or_another_count_is_refused(stopped, tmp_path) -> None:
    argv, data, out = stopped
    teacher = argv[1]
    np.save(data / "s4.npy", _sample(4))
    np.save(data / "s1.npy", _sample(7))  # stored already
    with pytest.raises(DistillError, match=r"data files that changed since \(s1\.npy, s4"):
        write_targets(teacher, data, out, checkpoint=2)
    np.save(data / "s6.npy", _sample(6))  # one more sample
    with pytest.raises(DistillError, match="of other samples than this run's"):
        write_targets(teacher, data, out, checkpoint=2)
