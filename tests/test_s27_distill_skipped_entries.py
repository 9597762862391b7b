"""distill-targets says which entries of its --data folder it skips, named as data files but
no regular file (a broken link of a data set half copied, a FIFO), as quantize --calib does:
they were left out without a word (and a folder of only those said 'no data files')."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.cli import main


def _teacher(path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs and symbolic links")
def test_skipped_entries_are_warned_of_and_named_when_nothing_is_left(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    teacher = tmp_path / "t.onnx"
    _teacher(teacher)
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "sub" / "broken.npy").symlink_to(tmp_path / "gone.npy")
    os.mkfifo(data / "f.npy")
    (data / "folder.png").mkdir()  # a folder so named holds samples: not skipped
    np.save(data / "folder.png" / "a.npy", np.ones((1, 4), np.float32))
    with caplog.at_level("WARNING", logger="graphopt"):
        assert (
            main(["distill-targets", str(teacher), "--data", str(data), "-o", str(tmp_path / "t1")])
            == 0
        )
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warned == [
        f"{data}: skipping f.npy (a FIFO), sub/broken.npy (a link to nothing): not a regular file"
    ]
    (data / "folder.png" / "a.npy").unlink()
    capsys.readouterr()
    assert (
        main(["distill-targets", str(teacher), "--data", str(data), "-o", str(tmp_path / "t2")])
        == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.rstrip().endswith(
        "found outside distillation targets folders; skipped f.npy (a FIFO), sub/broken.npy "
        "(a link to nothing): not a regular file"
    )
