"""H121: a TensorRT calibration cache's scale that is no scale is refused, naming the tensor.

`cache.loads` dropped a negative, infinite or NaN scale without a word (the tensor then read as
missing from the cache) and took a subnormal one (`x / s` overflows; the sidecar reader
already refused it). TensorRT's own `name: 0` (a tensor it has no scale for) still reads as
missing: real TensorRT caches hold such lines.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnx.numpy_helper
import onnx.parser
import pytest

from graphopt.cli import main
from graphopt.errors import QuantizeError
from graphopt.quant import cache as cache_io
from tests.models_util import one_conv_model

HEAD = "TRT-8601-EntropyCalibration2"


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("1", "scale 1.401298464324817e-45 is subnormal"),  # the least positive float32
        ("7fffff", "is subnormal"),  # the largest subnormal
        ("80000000", "scale -0.0 is not positive"),  # TensorRT writes 0, never -0
        ("bf800000", "scale -1.0 is not positive"),
        ("7f800000", "scale inf is not finite"),
        ("ff800000", "scale -inf is not finite"),
        ("7fc00000", "scale nan is not finite"),
    ],
)
def test_a_scale_that_is_no_scale_is_refused_naming_the_tensor(value: str, said: str) -> None:
    text = f"{HEAD}\ninput: 3caa54fc\n\nconv/out:0: {value}\n"
    with pytest.raises(QuantizeError) as e:
        cache_io.loads(text, "c.cache")
    message = str(e.value)
    assert message.startswith("c.cache: line 4: tensor 'conv/out:0': "), message
    assert said in message and "\n" not in message, message


def test_tensorrts_zero_and_the_least_normal_scale_still_read() -> None:
    text = f"{HEAD}\nnone: 0\npadded: 00000000\nleast: 800000\nbig: 7f7fffff\n"
    _, scales = cache_io.loads(text)
    assert scales == {
        "least": np.float32(np.finfo(np.float32).tiny),
        "big": np.float32(np.finfo(np.float32).max),
    }
    assert cache_io.entries(text)[1][:2] == [("none", "0"), ("padded", "00000000")]


def test_a_long_tensor_name_is_cut_in_the_message() -> None:
    with pytest.raises(QuantizeError) as e:
        cache_io.loads(f"{HEAD}\n{'t' * 5000}: 7fc00000\n")
    assert "(5000 characters)" in str(e.value) and len(str(e.value)) < 400


@pytest.mark.parametrize("value", ["1", "7f800000", "bf800000"])
def test_cli_cache_in_with_such_a_scale_is_one_line_exit_2_naming_the_tensor(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    # before: a subnormal scale was taken; inf and -1 read as "no scale for tensor 'x'"
    model = tmp_path / "m.onnx"
    onnx.save(one_conv_model(), model)
    cache = tmp_path / "c.cache"
    cache.write_text(f"{HEAD}\nx: {value}\n")
    out = tmp_path / "q.onnx"
    capsys.readouterr()
    argv = ["quantize", str(model), "-o", str(out), "--cache-in", str(cache), "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert f"{cache}: line 2: tensor 'x': scale " in err, err
    assert not out.exists()
