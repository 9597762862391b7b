"""A float32 (or float64) sample of a float16 teacher holding values beyond float16's range
(|x| > 65504) is refused naming the sample: the cast made them inf, the teacher's targets of
inf were stored (exit 0) and numpy's two-line overflow warning went to stderr. quantize refuses
such a feed the same way. Values within the range are cast as before."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest

from graphopt.cli import main
from graphopt.distill import DistillError, load_targets, write_targets


def _half_teacher() -> onnx.ModelProto:
    return onnx.parser.parse_model(
        """<ir_version: 8, opset_import: ["" : 17]>
        g (float16[N, 4] x) => (float16[N, 4] y) {
          y = Relu(x)
        }"""
    )


def test_values_beyond_float16_are_refused(tmp_path: Path) -> None:
    feeds = [
        {"x": np.array([[1.0, 2.0, -3.0, 4.0]], np.float32)},
        {"x": np.array([[1e5, 2.0, -3.0, 4.0]], np.float64)},
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (numpy's overflow warning was printed)
        with pytest.raises(DistillError) as caught:
            write_targets(_half_teacher(), feeds, tmp_path / "t")
    assert str(caught.value) == (
        "feed 1: holds values beyond float16's range for teacher input 'x' (|x| up to 1e+05), "
        "the type it reads"
    )


def test_values_within_float16_are_cast_and_infinities_kept(tmp_path: Path) -> None:
    x = np.array([[65504.0, np.inf, -3.0, 0.5]], np.float32)  # inf given is inf meant
    write_targets(_half_teacher(), [{"x": x}], tmp_path / "t")
    y = load_targets(tmp_path / "t")["y"]
    assert y.dtype == np.float16
    np.testing.assert_array_equal(y, [[65504.0, np.inf, 0.0, 0.5]])


def test_the_cli_says_it_in_one_line_and_writes_nothing(tmp_path: Path, capfd) -> None:
    teacher = tmp_path / "teacher.onnx"
    onnx.save(_half_teacher(), teacher)
    data = tmp_path / "data"
    data.mkdir()
    np.save(data / "s0.npy", np.array([[1.0, 2.0, 3.0, 4.0]], np.float32))
    np.save(data / "s1.npy", np.array([[7e4, 2.0, 3.0, 4.0]], np.float32))
    out = tmp_path / "targets"
    argv = ["distill-targets", str(teacher), "--data", str(data), "-o", str(out)]
    assert main([*argv, "--no-progress"]) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].endswith(
        "s1.npy: holds values beyond float16's range for teacher input 'x' "
        "(|x| up to 7e+04), the type it reads"
    )
    assert not out.exists()
