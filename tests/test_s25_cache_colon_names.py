"""A calibration cache naming a tensor with ':' (tf2onnx's 'input_1:0') is right for TensorRT
and for graphopt (a line's name runs to its last ':'), but onnxruntime's TensorRT execution
provider reads a name up to the first ':': that line gives 'input_1' a wrong scale and
'input_1:0' none, without a word. Writing such a cache now warns once, naming the first such
tensor and how many there are; the cache is written as before and reads back the same."""

from __future__ import annotations

import logging

import numpy as np
import onnx.parser
import pytest
from onnx import numpy_helper

from graphopt.errors import QuantizeError
from graphopt.quant import cache as cache_io
from graphopt.quant.api import quantize

MODEL = """<ir_version: 8, opset_import: ["" : 13]>
g (float[1, 3, 8, 8] %s) => (float[1, 4, 8, 8] y) { y = Conv(%s, w) }"""


def _model(input_name: str) -> onnx.ModelProto:
    model = onnx.parser.parse_model(MODEL % (input_name, input_name))
    w = np.random.default_rng(0).standard_normal((4, 3, 1, 1)).astype(np.float32)
    model.graph.initializer.append(numpy_helper.from_array(w, "w"))
    return model


def _feeds(name: str) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(1)
    return [{name: rng.standard_normal((1, 3, 8, 8)).astype(np.float32)} for _ in range(2)]


def _colon_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "execution provider" in r.getMessage()
    ]


def test_quantize_warns_of_a_name_with_a_colon(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "c.cache"
    with caplog.at_level(logging.WARNING, logger="graphopt"):
        quantize(_model('"x:0"'), _feeds("x:0"), cache=path, accuracy_target=None)
    said = _colon_warnings(caplog)
    assert said == [
        f"{path}: 1 tensor name holds ':' ('x:0'): TensorRT reads them, but onnxruntime's "
        "TensorRT execution provider takes a cache line's name up to its first ':' (its line "
        "for 'x:0' gives tensor 'x' a wrong scale, and 'x:0' none); rename them in the model "
        "for that runtime"
    ]
    assert list(cache_io.loads(path.read_text())[1]) == ["x:0"]  # written, read back, as before


def test_no_warning_without_a_colon(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    with caplog.at_level(logging.WARNING, logger="graphopt"):
        quantize(_model("x"), _feeds("x"), cache=tmp_path / "c.cache", accuracy_target=None)
    assert _colon_warnings(caplog) == []


def test_several_are_counted_once(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    scales = {n: np.float32(0.5) for n in ("b:1", "a:0", "c")}
    with caplog.at_level(logging.WARNING, logger="graphopt"):
        cache_io.write(tmp_path / "c.cache", scales)
    said = _colon_warnings(caplog)
    assert len(said) == 1
    assert ": 2 tensor names hold ':' ('a:0', ...): " in said[0]
    assert "\n" not in said[0]


def test_no_warning_for_a_cache_that_could_not_be_written(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "c.cache").mkdir()  # a folder where the cache goes: the write fails
    with (
        caplog.at_level(logging.WARNING, logger="graphopt"),
        pytest.raises(QuantizeError, match="cannot write calibration cache"),
    ):
        cache_io.write(tmp_path / "c.cache", {"a:0": np.float32(0.5)})
    assert _colon_warnings(caplog) == []
