"""distill-targets', merge's and optimize's (--dump-dir) errors show a path (or a value) the
user gave on one line.

A folder or file name with a newline in it (a space too, which stays as it is) made the
error two lines: distill and merge interpolated paths raw where the other commands use
`graphopt.commands._common.shown`. merge's errors also named merge_with_report's arguments
(`macs_input_shapes`, `input_map`, `tolerance`) where the user gave the flags. Every test here
failed before the fix.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from graphopt.cli import main
from graphopt.distill import DistillError, load_targets
from tests.test_cli_build_bench import conv_model
from tests.test_cli_review3 import one_line_error, typed_conv_model

ODD = "a b\nc"  # a space and a newline


@pytest.fixture
def model(tmp_path):  # type: ignore[no-untyped-def]
    path = tmp_path / "m.onnx"
    onnx.save(conv_model(), str(path))  # x: 1x3x16x16
    return str(path)


@pytest.fixture
def typed_model(tmp_path):  # type: ignore[no-untyped-def]
    path = tmp_path / "typed.onnx"
    onnx.save(typed_conv_model(), str(path))  # (onnx.checker's full check wants y's shape)
    return str(path)


@pytest.fixture
def odd_data(tmp_path):  # type: ignore[no-untyped-def]
    """A data folder named with a space and a newline, holding one sample of the wrong size
    whose own name has a newline and a space."""
    data = tmp_path / ODD
    data.mkdir()
    np.save(data / "s 1\n.npy", np.ones((1, 3, 8, 8), np.float32))
    return data


def distill(model: str, data, out, *extra: str) -> int:  # type: ignore[no-untyped-def]
    return main(
        ["distill-targets", model, "--data", str(data), "-o", str(out), "--no-progress", *extra]
    )


def test_distill_missing_data_path(tmp_path, capsys, model):
    missing = tmp_path / ODD
    assert distill(model, missing, tmp_path / "t") == 2
    one_line_error(capsys, f"--data {str(missing)!r}: no such file or folder")


def test_distill_targets_folder_is_the_data_folder(tmp_path, capsys, model, odd_data):
    assert distill(model, odd_data, odd_data) == 2
    one_line_error(capsys, f"-o {str(odd_data)!r} is the --data folder")


def test_distill_image_option_without_images(tmp_path, capsys, model, odd_data):
    assert distill(model, odd_data, tmp_path / "t", "--size", "16x16") == 2
    one_line_error(capsys, f"but --data {str(odd_data)!r} holds only .npy/.npz feeds")


def test_distill_teacher_failure_names_the_sample(tmp_path, capsys, model, odd_data):
    assert distill(model, odd_data, tmp_path / "t") == 2
    one_line_error(capsys, "the teacher failed on 's 1\\n.npy': ")
    assert not (tmp_path / "t").exists()


def test_distill_bad_hints_value(tmp_path, capsys, model):
    data = tmp_path / "data"
    data.mkdir()
    np.save(data / "a.npy", np.ones((1, 3, 16, 16), np.float32))
    assert distill(model, data, tmp_path / "t", "--hints", ODD) == 2
    one_line_error(capsys, f"--hints {ODD!r}: ")


def test_distill_unreadable_sample(tmp_path, capsys, model):
    data = tmp_path / "data"
    data.mkdir()
    (data / f"{ODD}.npz").write_bytes(b"not a zip")
    assert distill(model, data, tmp_path / "t") == 2
    one_line_error(capsys, f"{str(data / (ODD + '.npz'))!r}: cannot read: ")


def test_load_targets_names_a_damaged_manifest_on_one_line(tmp_path):
    folder = tmp_path / ODD
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps({"format": "wrong"}))
    with pytest.raises(DistillError) as e:
        load_targets(folder)
    assert "\n" not in str(e.value), str(e.value)
    assert str(e.value).startswith(repr(str(folder / "manifest.json")) + ": not a graphopt")


def test_merge_report_write_failure(tmp_path, capsys, typed_model, monkeypatch):
    import graphopt.backends.tensorrt as trt

    def refuse(path, data):  # type: ignore[no-untyped-def]
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(trt, "write_atomic", refuse)
    report = tmp_path / f"{ODD}.json"
    argv = ["merge", typed_model, typed_model, "--prefix", "a_,b_", "-o", str(tmp_path / "mm.onnx")]
    assert main([*argv, "--report", str(report)]) == 2
    one_line_error(capsys, f"--report {str(report)!r}: cannot write the report: Permission denied")


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--macs-shape", f"{ODD}=1,3"], "--macs-shape names ['a b\\nc'], not merged inputs"),
        (["--macs-shape", "x=1,3,16"], "--macs-shape x=1,3,16: input 'x' has rank 4, not 3"),
        (["--input-map", f"0:{ODD}=x"], "--input-map for 'a_' names ['a b\\nc'], which are not"),
        (["--tolerance", "nan"], "--tolerance must be >= 0 and finite, got nan"),
    ],
)
def test_merge_errors_name_the_flags(tmp_path, capsys, typed_model, extra, needle):
    out = tmp_path / "mm.onnx"
    assert (
        main(["merge", typed_model, typed_model, "--prefix", "a_,b_", "-o", str(out), *extra]) == 2
    )
    one_line_error(capsys, needle)
    assert not out.exists()


def test_optimize_dump_dir_that_is_the_output_path(tmp_path, capsys, model):
    odd = str(tmp_path / ODD)
    assert main(["optimize", model, "-o", odd, "--dump-dir", odd]) == 2
    one_line_error(capsys, f"--dump-dir {odd!r} is the -o path")


def test_optimize_dump_dir_holding_earlier_dumps(tmp_path, capsys, model):
    dumps = tmp_path / ODD
    dumps.mkdir()
    (dumps / "01-fold-batchnorm.onnx").write_bytes(b"")
    argv = ["optimize", model, "-o", str(tmp_path / "o.onnx"), "--dump-dir", str(dumps)]
    assert main(argv) == 2
    one_line_error(capsys, f"--dump-dir {str(dumps)!r}: holds the dumps of an earlier run")


def test_optimize_verify_failure_names_the_dump_folder(tmp_path, capsys):
    """The real detector's optimized outputs differ by ~2e-6: a zero bound fails --verify,
    after the dumps were written."""
    from graphopt.realmodels import fetch_model

    dumps, out = tmp_path / ODD, tmp_path / "o.onnx"
    argv = ["optimize", str(fetch_model("common_det")), "-o", str(out), "--verify"]
    argv += ["--tolerance", "0", "--atol", "0", "--dump-dir", str(dumps)]
    assert main(argv) == 2
    one_line_error(capsys, f"the output was not written ({str(dumps)!r} holds the dumps)")
    assert not out.exists() and any(dumps.iterdir())
