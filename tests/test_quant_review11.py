"""Adversarial review 11 of graphopt.quant: each case reproduced a defect on its parent commit."""

from __future__ import annotations

import numpy as np
import pytest

from graphopt.errors import QuantizeError
from graphopt.quant import cache as cache_io

# ------------------------------------------------------------------------ calibration cache


def _float32(bits: int) -> np.float32:
    return np.frombuffer(np.uint32(bits).tobytes(), np.float32)[0]


# as TensorRT 8.4 wrote it for a SegFormer: its hex is unpadded, and a tensor it could not
# calibrate (a Shuffle of a constant) gets `0`
TENSORRT_CACHE = (
    "TRT-8401-EntropyCalibration2\n"
    "input: 3caa54fc\n"
    "(Unnamed Layer* 64) [Shuffle]_output: 0\n"
    "366: 0\n"
    "395: 3cbe52af\n"
    "tiny: 1\n"
)


def test_cache_reads_tensorrt_unpadded_hex() -> None:
    header, scales = cache_io.loads(TENSORRT_CACHE)
    assert header == "TRT-8401-EntropyCalibration2"
    # the zero scales are read as missing, as the docstring always said
    assert scales == {
        "input": _float32(0x3CAA54FC),
        "395": _float32(0x3CBE52AF),
        "tiny": _float32(1),  # the least positive float32 (a subnormal)
    }
    assert scales["tiny"] > 0
    assert cache_io.parse_scale("0") == 0.0
    assert cache_io.parse_scale("3f800000") == 1.0
    assert cache_io.parse_scale("800000") == _float32(0x00800000)  # the least normal float32
    for value in ("", "123456789", "0x1", "-1", "1 2", "+1"):  # still no hex number
        with pytest.raises(QuantizeError, match="line 2"):
            cache_io.loads(f"TRT-8601-EntropyCalibration2\nx: {value}\n")
