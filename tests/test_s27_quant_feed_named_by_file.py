"""A calibration feed that onnxruntime refuses is named by its file (or its batch's files),
as check_feed's errors name it: a .npy of shape [1, 3, 0, 64] was 'calibration feed 1:
onnxruntime failed: ...', which file not said."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.cli import main


def _conv(path: Path) -> None:
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node("Relu", ["c"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4, "h2", "w2"])],
        initializer=[w],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


@pytest.mark.parametrize(
    ("batch", "named"), [(1, "c_short.npy"), (2, "feeds c_short.npy..d_short.npy")]
)
def test_a_feed_onnxruntime_refuses_is_named_by_its_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], batch: int, named: str
) -> None:
    model = tmp_path / "m.onnx"
    _conv(model)
    calib = tmp_path / "calib"
    calib.mkdir()
    rng = np.random.default_rng(1)
    for name in ("a_ok", "b_ok"):
        np.save(calib / f"{name}.npy", rng.random((1, 3, 8, 8), dtype=np.float32))
    for name in ("c_short", "d_short"):  # under the 3x3 kernel: onnxruntime refuses them
        np.save(calib / f"{name}.npy", rng.random((1, 3, 2, 8), dtype=np.float32))
    out = tmp_path / "q.onnx"
    argv = ["quantize", str(model), "-o", str(out), "--calib", str(calib)]
    assert main([*argv, "--batch-size", str(batch)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "onnxruntime failed" in err
    assert f"{calib if batch == 1 else calib.name}" in err and named in err, err
    assert "calibration feed" not in err
    assert not out.exists()
