"""H129, `graphopt quantize` as a fresh user met it (H128's walkthrough):

- a value out of range was said with the Python API's argument name (`keep_float must be 0 or
  more`), not the flag the user typed (`--keep-float`); `--batch-size 0` said "batch size";
- a missing `--calib` folder said "nope: calibration folder does not exist", naming no flag
  (build says "--calib nope: no such folder");
- the accuracy search counted "1 models measured"; `--batch-size`'s help gave no default.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest

from graphopt.cli import build_parser, main
from graphopt.errors import QuantizeError
from graphopt.realmodels import IMAGE_NAMES, image_paths

pytestmark = pytest.mark.realmodel


@pytest.fixture
def argv(tmp_path: Path, real_model) -> list[str]:  # type: ignore[no-untyped-def]
    folder = tmp_path / "calib"
    folder.mkdir()
    for path in image_paths(IMAGE_NAMES[:2]):  # astronaut.png, chelsea.png
        shutil.copy(path, folder)
    model = str(real_model("common_det"))
    return ["quantize", model, "-o", str(tmp_path / "q.onnx"), "--calib", str(folder)]


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    return err.removeprefix("graphopt quantize: error: ").rstrip("\n")


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (["--keep-float", "-1"], "--keep-float must be 0 or more, got -1"),
        (["--accuracy-target", "-1"], "--accuracy-target must be 0 or more, got -1.0"),
        (["--accuracy-target", "nan"], "--accuracy-target must be 0 or more, got nan"),
        (["--parallel-feeds", "0"], "--parallel-feeds must be 1 or more, got 0"),
        (
            ["--method", "entropy", "--histogram-sample", "-1"],
            "--histogram-sample must be 0 or more, got -1",
        ),
        (
            ["--method", "percentile", "--percentile", "0"],
            "--percentile must be in (0, 100], got 0.0",
        ),
        (
            ["--method", "entropy", "--entropy-floor", "200"],
            "--entropy-floor must be in (0, 100] (or 0: TensorRT's plain threshold), got 200.0",
        ),
        (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
    ],
)
def test_a_value_out_of_range_is_said_with_its_flag(argv, capsys, extra, said) -> None:  # type: ignore[no-untyped-def]
    assert main([*argv, "--no-progress", *extra]) == 2
    assert _one_line(capsys) == said
    assert not Path(argv[3]).exists()


def test_the_python_api_keeps_its_argument_names(real_model, real_feeds) -> None:  # type: ignore[no-untyped-def]
    from graphopt.quant.api import quantize_with_report

    model = str(real_model("common_det"))
    feeds = real_feeds("common_det", 1)
    for kwargs, said in (
        ({"keep_float": -1}, "keep_float must be 0 or more, got -1"),
        ({"parallel_feeds": 0}, "parallel_feeds must be 1 or more, got 0"),
        ({"method": "entropy", "entropy_floor": 200.0}, r"entropy_floor must be in \(0, 100\], "),
    ):
        with pytest.raises(QuantizeError, match=f"^{said}"):
            quantize_with_report(model, feeds, **kwargs)


@pytest.mark.parametrize(
    ("where", "said"),
    [
        ("missing", "no such folder"),
        ("file", "is a file, not a folder"),
        ("empty", "no calibration files (.npy, .npz, "),
    ],
)
def test_a_bad_calib_folder_names_the_flag(argv, capsys, tmp_path, where, said) -> None:  # type: ignore[no-untyped-def]
    folder = {"missing": tmp_path / "nope", "file": Path(argv[1]), "empty": tmp_path / "none"}
    if where == "empty":
        folder[where].mkdir()
    argv[-1] = str(folder[where])
    assert main([*argv, "--no-progress"]) == 2
    assert _one_line(capsys).startswith(f"--calib {folder[where]}: {said}")


def test_batch_size_help_gives_its_default() -> None:
    text = build_parser().commands["quantize"].format_help()  # type: ignore[attr-defined]
    flat = " ".join(text.split())
    assert "--batch-size N files stacked per calibration batch (default 1;" in flat
    assert "--keep-float N keep the N most sensitive groups float (default 0)" in flat


def test_the_search_counts_one_model_in_the_singular() -> None:
    from graphopt.commands import quantize

    stream = io.StringIO()
    search = quantize._search_count(stream)  # as run() makes it
    search.update(0)
    assert search.line(search.start).startswith("accuracy search: 0 models measured, ")
    search.done = 1
    assert search.line(search.start).startswith("accuracy search: 1 model measured, ")
    search.done = 2
    assert search.line(search.start).startswith("accuracy search: 2 models measured, ")


def test_one_calibration_file_is_one_feed(argv, capsys) -> None:  # type: ignore[no-untyped-def]
    folder = Path(argv[-1])
    (folder / "chelsea.png").unlink()  # astronaut.png alone
    assert main([*argv, "--no-progress", "--report", "--accuracy-target", "0"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith(f"(minmax, 1 feed from {folder}); wrote {argv[3]}"), out[0]
    assert out[1].startswith("target tensorrt, method minmax, 1 calibration feed, "), out[1]
    assert " quantized nodes, " in out[1] and " calibrated tensors" in out[1]
