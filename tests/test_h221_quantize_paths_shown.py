"""H221: quantize named --calib, --cache, its sidecar and --cache-in as given in its report and
in two of its errors, where every other path it names goes through `shown` (quoted and
escaped when it holds a character that is not printable). A newline in one of those paths
broke the one-line report in two, and made "--method ... calibrates --calib data; this run
takes its scales from --cache-in ..." (and --keep-float's refusal) a two-line error."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from graphopt.cli import main
from graphopt.realmodels import image_paths


def _conv_model(path: Path) -> None:
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(
        (rng.standard_normal((4, 3, 3, 3)) * 0.2).astype(np.float32), "W"
    )
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "W"], ["c"], name="conv", pads=[1] * 4),
            helper.make_node("Relu", ["c"], ["y"], name="relu"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 32, 32])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)


def test_report_is_one_line_with_a_newline_in_calib_and_cache(
    tmp_path, monkeypatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    _conv_model(tmp_path / "m.onnx")
    calib = tmp_path / "cal\nib"
    calib.mkdir()
    for image in image_paths()[:2]:  # real photographs, resized to 32x32
        shutil.copy(image, calib / image.name)
    (tmp_path / "c\nd").mkdir()
    argv = ["quantize", "m.onnx", "-o", "q.onnx", "--calib", "cal\nib", "--no-progress"]
    assert main([*argv, "--cache", "c\nd/e.cache"]) == 0
    out = capsys.readouterr().out
    assert out == (
        "m.onnx: quantized 1 node for tensorrt (minmax, 2 feeds from 'cal\\nib'); wrote q.onnx "
        "and 'c\\nd/e.cache' (float choices in 'c\\nd/e.cache.graphopt.json')\n"
    )
    assert (tmp_path / "c\nd" / "e.cache").read_text().startswith("TRT-")


def test_cache_in_refusals_are_one_line(tmp_path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    _conv_model(tmp_path / "m.onnx")
    base = ["quantize", "m.onnx", "-o", "q.onnx", "--cache-in", "c\nd.cache"]
    for extra, start in (
        (["--method", "percentile"], "--method percentile calibrates --calib data; "),
        (["--keep-float", "1"], "--keep-float 1 ranks the groups by their error on --calib data; "),
    ):
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        assert err.startswith(f"graphopt quantize: error: {start}")
        assert "--cache-in 'c\\nd.cache'" in err
    assert not (tmp_path / "q.onnx").exists()
