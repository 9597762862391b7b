"""distill-targets stopped by Ctrl-C (or SIGTERM) before its first checkpoint removes the target
files and the manifest it made, as it does when an error stops it: they were left (the
preallocated files, a data set's size of zeros with their disk blocks reserved: 147 MB for 40
photographs of ppocr_det at 960x960, and a manifest saying 0 done) while the message said 'the
targets up to the last checkpoint are kept: run the same command again to resume'; the rerun
then removed them and started over. After a checkpoint the targets are kept, as before."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from graphopt.cli import main
from graphopt.commands import distill as command
from graphopt.distill import load_targets


def _relu() -> onnx.ModelProto:
    return onnx.parser.parse_model(
        """<ir_version: 8, opset_import: ["" : 17]>
        g (float[N, 4] x) => (float[N, 4] y) { y = Relu(x) }"""
    )


@pytest.fixture
def argv(tmp_path: Path) -> list[str]:
    teacher = tmp_path / "teacher.onnx"
    onnx.save(_relu(), teacher)
    data = tmp_path / "data"
    data.mkdir()
    for i in range(4):
        np.save(data / f"s{i}.npy", np.full((1, 4), i, np.float32))
    return ["distill-targets", str(teacher), "--data", str(data), "-o", str(tmp_path / "t")]


@pytest.fixture
def interrupted_after_two(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Ctrl-C once the progress bar has drawn 2 samples done; the bar's own draw back."""
    draw = command._Bar.__call__

    def interrupted(self, done, total):  # type: ignore[no-untyped-def]
        draw(self, done, total)
        if done == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(command._Bar, "__call__", interrupted)
    return lambda: monkeypatch.setattr(command._Bar, "__call__", draw)


def test_ctrl_c_before_the_first_checkpoint_leaves_nothing(
    tmp_path: Path, argv: list[str], interrupted_after_two, capsys
) -> None:
    assert main(argv) == 130  # checkpoints every 64 samples: none yet
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        "graphopt distill-targets: interrupted; it stopped before its first checkpoint: nothing "
        "was kept (its files removed); run the same command again to start over"
    )
    assert not (tmp_path / "t").exists()  # (the folder it made too)
    interrupted_after_two()  # the rerun runs whole
    assert main(argv) == 0
    np.testing.assert_array_equal(load_targets(tmp_path / "t")["y"][:, 0], [0, 1, 2, 3])


def test_ctrl_c_after_a_checkpoint_keeps_it(
    tmp_path: Path, argv: list[str], interrupted_after_two, capsys
) -> None:
    assert main([*argv, "--checkpoint", "1"]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith(
        "the targets up to the last checkpoint are kept: run the same command again to resume"
    )
    np.testing.assert_array_equal(
        load_targets(tmp_path / "t", allow_partial=True)["y"][:, 0], [0, 1]
    )
