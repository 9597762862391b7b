"""`bench` times feeds onnxruntime runs for an input declared with no dims (rank 0).

0bab61a made `bench --inputs` (and `--shapes`) refuse, before the session runs, a feed of
another rank than its input declares, with optimize --verify's check. onnxruntime checks the
rank only of an input that declares dims: one declared with an empty shape (a scalar, as
exporters write a threshold input, or a shape left empty) takes a feed of any shape, and bench
timed such a model with a (1,) array before 0bab61a; it then said "--inputs feeds.npz: s is 1,
which does not fit input s, declared []: rank 1, not 0", exit 2. bench runs the model as it is,
so it refuses what onnxruntime refuses, no more. (optimize --verify keeps the stricter check:
the optimized model may rely on the declared scalar.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.cli import main


def _scaled(tmp_path: Path) -> Path:
    """y = x * s, s declared a scalar."""
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "s"], ["y"])],
        "scaled",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4]),
            helper.make_tensor_value_info("s", TensorProto.FLOAT, []),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    path = tmp_path / "scaled.onnx"
    onnx.save(model, path)
    return path


@pytest.mark.parametrize("s", [(1,), (1, 1)])
def test_a_scalar_input_fed_an_array_onnxruntime_runs_is_timed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], s: tuple[int, ...]
) -> None:
    path = _scaled(tmp_path)
    feeds = tmp_path / "feeds.npz"
    # (keys in another order than the model's inputs)
    np.savez(feeds, s=np.full(s, 0.5, np.float32), x=np.ones((1, 4), np.float32))
    argv = ["bench", str(path), "--inputs", str(feeds), "--runs", "2", "--no-progress"]
    assert main(argv) == 0, capsys.readouterr().err
    assert "2 runs" in capsys.readouterr().out


def test_shapes_for_a_scalar_input_is_timed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _scaled(tmp_path)
    argv = ["bench", str(path), "--shapes", "s:1", "--runs", "2", "--no-progress"]
    assert main(argv) == 0, capsys.readouterr().err
    assert "2 runs" in capsys.readouterr().out


def test_an_input_with_dims_is_still_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _scaled(tmp_path)
    feeds = tmp_path / "feeds.npz"
    np.savez(feeds, s=np.float32(0.5), x=np.ones((4,), np.float32))
    argv = ["bench", str(path), "--inputs", str(feeds), "--runs", "1", "--no-progress"]
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == (
        f"graphopt bench: error: --inputs {feeds}: x is 4, which does not fit input x, "
        "declared [1, 4]: rank 1, not 2 (Got: 1 Expected: 2)"
    )
