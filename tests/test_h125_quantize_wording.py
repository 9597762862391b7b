"""quantize names its -o as the other commands do: "-o X: ...", not "output X: ..." (H125)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.cli import main


def _conv() -> onnx.ModelProto:
    w = np.random.default_rng(0).normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1] * 4)],
        "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])],
        [numpy_helper.from_array(w, "w")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


@pytest.mark.parametrize("where", ["missing", "is_folder"])
def test_quantize_names_a_bad_output_as_optimize_does(tmp_path, capsys, where: str) -> None:
    model = tmp_path / "m.onnx"
    onnx.save(_conv(), model)
    calib = tmp_path / "calib"
    calib.mkdir()  # empty: the -o check comes first
    (tmp_path / "folder").mkdir()
    out = tmp_path / "no" / "q.onnx" if where == "missing" else tmp_path / "folder"
    said = {}
    for command, extra in (("optimize", []), ("quantize", ["--calib", str(calib)])):
        assert main([command, str(model), "-o", str(out), *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        said[command] = err.split(": error: ", 1)[1]
    assert said["quantize"] == said["optimize"] and said["quantize"].startswith(f"-o {out}")


def test_quantize_names_a_cache_over_the_output_by_its_option(tmp_path, capsys) -> None:
    model = tmp_path / "m.onnx"
    onnx.save(_conv(), model)
    out = tmp_path / "q.onnx"
    argv = ["quantize", str(model), "-o", str(out), "--calib", str(tmp_path), "--cache", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"--cache {out} is the -o model's path; give another" in err, err
    assert not out.exists()
