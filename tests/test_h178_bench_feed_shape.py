"""`bench --inputs` (and `--shapes`) feeds that do not fit an input name the flag and input.

Found by H176's review of feed reading (H178 confirmed it): an .npz array of another rank, or
another size than a fixed dim, was one line and exit 2, but in onnxruntime's words ("onnxruntime
failed to run m.onnx: ... Invalid rank for input: x Got: 3 Expected: 4"), which named neither
the --inputs file nor that the array came from it. Now the message optimize --verify gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from graphopt.cli import main
from tests.test_input_fuzz12 import seed_conv
from tests.test_input_fuzz13 import _save


@pytest.mark.parametrize(
    ("shape", "why"),
    [
        ((3, 8, 8), "rank 3, not 4 (Got: 3 Expected: 4)"),
        ((1, 3, 8, 9), "index 3 is fixed at 8 (Got: 9 Expected: 8)"),
    ],
)
def test_an_inputs_array_that_does_not_fit_names_the_file_and_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], shape: tuple[int, ...], why: str
) -> None:
    model = _save(seed_conv(), tmp_path)
    feeds = tmp_path / "feeds.npz"
    np.savez(feeds, x=np.ones(shape, np.float32))
    argv = ["bench", str(model), "--inputs", str(feeds), "--runs", "1", "--no-progress"]
    assert main(argv) == 2
    dims = "x".join(map(str, shape))
    assert capsys.readouterr().err.strip() == (
        f"graphopt bench: error: --inputs {feeds}: x is {dims}, which does not fit input x, "
        f"declared [1, 3, 8, 8]: {why}"
    )


def test_shapes_of_another_rank_name_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = seed_conv()
    for value in (*model.graph.input, *model.graph.output):
        dims = value.type.tensor_type.shape.dim
        dims[2].dim_param, dims[3].dim_param = "H", "W"
    path = _save(model, tmp_path)
    argv = ["bench", str(path), "--shapes", "x:3x8x8", "--runs", "1", "--no-progress"]
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == (
        "graphopt bench: error: --shapes x:3x8x8 does not fit input x, declared "
        "[1, 3, H, W]: rank 3, not 4 (Got: 3 Expected: 4)"
    )


def test_fitting_feeds_are_timed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = _save(seed_conv(), tmp_path)
    feeds = tmp_path / "feeds.npz"
    np.savez(feeds, x=np.ones((1, 3, 8, 8), np.float32))
    argv = ["bench", str(model), "--inputs", str(feeds), "--runs", "2", "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "2 runs" in out and "inputs x 1x3x8x8" in out
