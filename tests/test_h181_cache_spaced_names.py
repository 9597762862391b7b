"""A TensorRT calibration cache for a model whose tensor name has spaces around it is read.

9a3250e refused, while parsing, every cache line whose tensor name has spaces before or after
it, to name an indented line ('  x: 3cc85ef7', read as tensor '  x') that quantize --cache-in
then reported as 'no scale for x'. But such a name is a valid ONNX name (onnx.checker full
passes a model whose input is 'x '), and TensorRT writes its line as 'x : <hex>' (all before
the ':' is the name, as its samples and onnxruntime's TensorRT provider read it): quantize
--cache-in with that cache, which its parent quantized, said "tensor name 'x ' has spaces
before or after it, ... so it names no tensor 'x'; remove them" (false: the model's tensor is
'x '), exit 2, and build's re-heading of a given cache refused it too. Now names are read as
written and the refusal is made where the model is known: only for a tensor the model lacks
with the spaces and has without them (test_h178_cache_spaces, unchanged message)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from graphopt.backends.tensorrt import retag_calibration_cache
from graphopt.cli import main
from graphopt.quant import cache
from tests.test_input_fuzz12 import seed_conv
from tests.test_input_fuzz13 import _save

TRT_LINE = "x : 3c010204"  # TensorRT's line for tensor 'x ' (scale 0.0078754, 1/127-ish)


def _spaced_input() -> onnx.ModelProto:
    """seed_conv with its input named 'x ' (a valid ONNX name)."""
    model = seed_conv()
    model.graph.input[0].name = "x "
    for node in model.graph.node:
        node.input[:] = ["x " if name == "x" else name for name in node.input]
    onnx.checker.check_model(model, full_check=True)
    return model


@pytest.mark.parametrize("line", [TRT_LINE, "  x: 3c010204", "\tx:3c010204"])
def test_a_name_is_read_as_written(line: str) -> None:
    name = line.rpartition(":")[0]
    _, scales = cache.loads(f"TRT-8601-EntropyCalibration2\n{line}\n")
    assert scales == {name: cache.parse_scale("3c010204")}


def test_quantize_cache_in_uses_the_scale_of_a_tensor_named_with_a_space(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _save(_spaced_input(), tmp_path)
    given = tmp_path / "trt.cache"
    given.write_text(f"TRT-8601-EntropyCalibration2\n{TRT_LINE}\n")
    out = tmp_path / "q.onnx"
    assert main(["quantize", str(model), "-o", str(out), "--cache-in", str(given)]) == 0, (
        capsys.readouterr().err
    )
    quantized = onnx.load(out)
    inits = {t.name: numpy_helper.to_array(t) for t in quantized.graph.initializer}
    scales = [
        float(inits[n.input[1]])
        for n in quantized.graph.node
        if n.op_type == "QuantizeLinear" and n.input[0] == "x "
    ]
    assert scales == [float(cache.parse_scale("3c010204"))]


def test_build_re_heads_such_a_cache_keeping_the_line() -> None:
    data = f"TRT-8601-MinMaxCalibration\n{TRT_LINE}\ny: 0\n".encode()
    assert retag_calibration_cache(data, "TRT-100100-EntropyCalibration2") == (
        f"TRT-100100-EntropyCalibration2\n{TRT_LINE}\ny: 0\n".encode()
    )


def test_a_spaced_name_the_model_has_is_no_problem(tmp_path: Path) -> None:
    path = tmp_path / "c.cache"
    path.write_text(f"TRT-8601-EntropyCalibration2\n{TRT_LINE}\n")
    assert cache.spaced_name(path, {"y"}) is None  # (the model lacks x too: another error)
    assert cache.spaced_name(path, {"x"}) is not None
    assert np.float32(cache.loads(path.read_text())[1]["x "]) > 0
