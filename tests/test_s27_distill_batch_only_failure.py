"""distill-targets --batch-size N with a teacher that declares a dynamic batch but takes none
(a Reshape to a batch of 1 inside, as exported models often hold): every sample runs alone, the
batch fails. The error was onnxruntime's Reshape message for 'the teacher failed on s0.npy to
s1.npy', which reads as the samples' fault, and batch size 1 was never said."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from graphopt.cli import main
from graphopt.distill import DistillError, load_targets, write_targets


def _fixed_reshape() -> onnx.ModelProto:
    return onnx.parser.parse_model(
        """<ir_version: 8, opset_import: ["" : 17]>
        g (float[N, 4] x) => (float[N, 4] y) {
          s = Constant<value = int64[2] {1, 4}>()
          y = Reshape(x, s)
        }"""
    )


def _feeds(count: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    return [{"x": rng.standard_normal((1, 4)).astype(np.float32)} for _ in range(count)]


def test_a_batch_the_teacher_cannot_take_says_to_use_batch_size_1(tmp_path: Path) -> None:
    with pytest.raises(DistillError) as caught:
        write_targets(_fixed_reshape(), _feeds(3), tmp_path / "t", batch_size=2)
    said = str(caught.value)
    assert said.startswith(
        "the teacher failed on feed 0 to feed 1 as one batch of 2, though each of them runs alone:"
    )
    assert "use batch size 1: [ONNXRuntimeError]" in said  # onnxruntime's words still there
    assert "Reshape" in said
    # and batch size 1 runs, as the error says
    write_targets(_fixed_reshape(), _feeds(3), tmp_path / "one", batch_size=1)
    np.testing.assert_array_equal(
        load_targets(tmp_path / "one")["y"], np.concatenate([f["x"] for f in _feeds(3)])
    )


def test_the_cli_says_it_in_one_line_and_writes_nothing(tmp_path: Path, capsys) -> None:
    teacher = tmp_path / "teacher.onnx"
    onnx.save(_fixed_reshape(), teacher)
    data = tmp_path / "data"
    data.mkdir()
    for i, feed in enumerate(_feeds(4)):
        np.save(data / f"s{i}.npy", feed["x"])
    out = tmp_path / "targets"
    argv = ["distill-targets", str(teacher), "--data", str(data), "-o", str(out)]
    code = main([*argv, "--batch-size", "2", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "s0.npy to s1.npy as one batch of 2" in err[0] and "use batch size 1" in err[0]
    assert not out.exists()
