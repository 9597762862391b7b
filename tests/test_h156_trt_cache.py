"""TensorRT calibration caches as TensorRT wrote them (public copies), read and written by
`graphopt.quant.cache`: the reader takes them, the writer gives byte-identical lines for the
same scales, and scales that are no quantization scale are refused when writing as they are
when reading.

The caches below are excerpts of files TensorRT wrote, as published:
- TRT-7000: the mnist `CalibrationTable` quoted in a translation of TensorRT's developer guide;
- TRT-7202: TensorRT's int8_caffe_cifar10 sample's cache, quoted in a blog post (ResNet-18,
  `(Unnamed Layer* N) [Kind]_output` names with spaces, brackets and an asterisk);
- TRT-8401: a SegFormer cache from a project's README, with TensorRT's `name: 0` lines (a
  Shuffle of a constant: no scale) among the scales.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest

from graphopt.errors import QuantizeError
from graphopt.quant import cache as cache_io

MNIST_7000 = """TRT-7000-EntropyCalibration2
data: 3c008912
conv1: 3c88edfc
pool1: 3c88edfc
conv2: 3ddc858b
pool2: 3ddc858b
ip1: 3db6bd6e
ip2: 3e691968
prob: 3c010a14
"""

CIFAR_7202 = """TRT-7202-EntropyCalibration2
data: 3f9839e4
(Unnamed Layer* 0) [Convolution]_output: 404efcc8
(Unnamed Layer* 1) [Scale]_output: 3dad1056
(Unnamed Layer* 2) [Scale]_output: 3c612a39
conv1: 3c35ea42
pool1: 3c35ea42
(Unnamed Layer* 5) [Convolution]_output: 3c44ec17
(Unnamed Layer* 6) [Scale]_output: 3d79ddee
res2a_branch1: 3c71cc22
(Unnamed Layer* 8) [Convolution]_output: 3cbea256
(Unnamed Layer* 85) [Scale]_output: 3ddd4245
res5b_branch2b: 3e07db30
(Unnamed Layer* 87) [ElementWise]_output: 3e04055e
res5b: 3e1b53d4
pool5: 3e1b53d4
fc1000: 3e1f8999
prob: 3acc1705
"""

SEGFORMER_8401 = """TRT-8401-EntropyCalibration2
input: 3caa54fc
371: 3caa54fc
376: 3caa54fc
380: 3cbe52af
(Unnamed Layer* 64) [Shuffle]_output: 0
366: 0
395: 3cbe52af
404: 3d5c11b5
(Unnamed Layer* 82) [Shuffle]_output: 3c56713e
405: 3c209a08
(Unnamed Layer* 85) [Shuffle]_output: 3b1d2336
406: 3c11f9d8
415: 3d58799c
(Unnamed Layer* 89) [Shuffle]_output: 3c722dc3
416: 3d8e949a
(Unnamed Layer* 92) [Shuffle]_output: 3c37c009
"""

CACHES = {"mnist": MNIST_7000, "cifar10": CIFAR_7202, "segformer": SEGFORMER_8401}


def _lines(text: str) -> list[tuple[str, str]]:
    return [tuple(line.rsplit(": ", 1)) for line in text.splitlines()[1:]]  # type: ignore[misc]


@pytest.mark.parametrize("which", list(CACHES))
def test_tensorrt_caches_read_and_write_back_byte_identical_lines(which: str) -> None:
    text = CACHES[which]
    head, scales = cache_io.loads(text)
    assert head == text.splitlines()[0]
    listed = _lines(text)
    # every line with a scale is read as the float32 whose big-endian bits the hex digits are
    with_scale = {name: digits for name, digits in listed if digits != "0"}
    assert set(scales) == set(with_scale)
    for name, digits in with_scale.items():
        assert struct.pack(">f", float(scales[name])).hex() == digits
    # written again: each tensor's line is TensorRT's line, byte for byte (sorted by name)
    written = cache_io.dumps(scales, head)
    assert written.splitlines()[0] == head
    assert sorted(written.splitlines()[1:]) == sorted(f"{n}: {d}" for n, d in listed if d != "0")
    # TensorRT's `name: 0` (no scale): dropped by loads, kept by retag, written back as "0"
    zero = [n for n, d in listed if d == "0"]
    assert cache_io.retag(text, head) == text
    if zero:
        with_zero = dict(scales) | {n: np.float32(0.0) for n in zero}
        assert sorted(cache_io.dumps(with_zero, head).splitlines()[1:]) == sorted(
            f"{n}: {d}" for n, d in listed
        )
        assert cache_io.loads(cache_io.dumps(with_zero, head))[1] == scales


def test_scale_is_amax_over_127_in_big_endian_hex() -> None:
    """TensorRT's definition: scale = amax / 127, a sigmoid (amax 1) at 1/127."""
    assert cache_io.format_scale(np.float32(1.0) / np.float32(127.0)) == "3c010204"
    assert cache_io.dumps({"sigmoid_out": np.float32(1 / 127)}).splitlines()[1] == (
        "sigmoid_out: 3c010204"
    )


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (float("nan"), "not finite"),
        (float("inf"), "not finite"),
        (-float("inf"), "not finite"),
        (-0.01, "not positive"),
        (-0.0, "not positive"),
        (1e-40, "subnormal"),
    ],
)
def test_writer_refuses_the_scales_the_reader_refuses(value: float, kind: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Written before, as `7fc00000`, `7f800000`, `bc23d70a`, `80000000`, `000116c2`: a cache
    that graphopt's reader (and TensorRT) refuse or misread. Now refused, naming the tensor,
    and no file is written."""
    scales = {"a": np.float32(0.02), "conv_out": np.float32(value)}
    with pytest.raises(QuantizeError, match=f"'conv_out': scale .* is {kind}"):
        cache_io.dumps(scales)
    path = tmp_path / "sub" / "calib.cache"
    with pytest.raises(QuantizeError, match="conv_out"):
        cache_io.write(path, scales)
    assert not path.exists() and not path.parent.exists()


def test_writer_writes_a_zero_scale_as_tensorrt_does() -> None:
    """+0: TensorRT's `name: 0` (no scale); written as `00000000` before."""
    text = cache_io.dumps({"const_shuffle": np.float32(0.0), "x": np.float32(0.5)})
    assert text.splitlines()[1:] == ["const_shuffle: 0", "x: 3f000000"]
    assert cache_io.loads(text)[1] == {"x": np.float32(0.5)}


@pytest.mark.parametrize("scale", [float(np.finfo(np.float32).tiny), 1e-12, 3.4e38])
def test_extreme_normal_scales_round_trip(scale: float) -> None:
    scales = {"t": np.float32(scale)}
    assert cache_io.loads(cache_io.dumps(scales))[1] == scales
