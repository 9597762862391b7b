"""Review 12: TensorRT calibration caches keep TensorRT's own `name: 0` lines through a retag,
and reading names each bad line by its number in the file.

TensorRT writes `tensor: 0` for a tensor it has no scale for. `retag_calibration_cache` read
the cache with `loads` (which leaves zero scales out, as a scale graphopt can use) and wrote
it back with `dumps`: the `: 0` lines were gone from what TensorRT was handed, and the lines
came back sorted and zero-padded.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest

from graphopt.backends.tensorrt import retag_calibration_cache
from graphopt.errors import QuantizeError
from graphopt.quant import cache

# as TensorRT writes a cache: its own order, unpadded hex, `0` for a tensor without a scale
TENSORRT_TEXT = (
    "TRT-8601-EntropyCalibration2\n"
    "images: 3c010a14\n"
    "(Unnamed Layer* 3) [Shuffle]_output: 0\n"
    "conv1_out: 3d4ccccd\n"
    "least: 800000\n"
)
TAG = "TRT-101601-EntropyCalibration2"


def test_retag_keeps_tensorrts_zero_lines_in_order() -> None:
    out = retag_calibration_cache(TENSORRT_TEXT.encode(), TAG).decode()
    assert out.splitlines() == [TAG, *TENSORRT_TEXT.splitlines()[1:]]


def test_reading_leaves_zero_out_but_entries_keep_it() -> None:
    header, scales = cache.loads(TENSORRT_TEXT)
    assert header == "TRT-8601-EntropyCalibration2"
    assert list(scales) == ["images", "conv1_out", "least"]  # 0 is no usable scale
    assert scales["images"] == np.float32(struct.unpack(">f", bytes.fromhex("3c010a14"))[0])
    assert scales["least"] == np.float32(np.finfo(np.float32).tiny)  # (a subnormal is refused)
    _, items = cache.entries(TENSORRT_TEXT)
    assert ("(Unnamed Layer* 3) [Shuffle]_output", "0") in items
    # a retagged cache reads back to the same scales
    assert cache.loads(cache.retag(TENSORRT_TEXT, TAG))[1] == scales


def test_graphopt_cache_round_trip_is_big_endian_float32_bits(tmp_path) -> None:  # type: ignore[no-untyped-def]
    scales = {"a": np.float32(0.0123), "b": np.float32(3.5 / 127), "c": np.float32(1e-12)}
    path = tmp_path / "c.cache"
    cache.write(path, scales, header="TRT-8601-MinMaxCalibration")
    text = path.read_text()
    assert "a: " + struct.pack(">f", 0.0123).hex() in text.splitlines()
    assert cache.read(path) == ("TRT-8601-MinMaxCalibration", scales)
    assert cache.retag(text, TAG) == text.replace("TRT-8601-MinMaxCalibration", TAG)


def test_a_bad_line_is_named_by_its_number_in_the_file() -> None:
    text = "TRT-8601-EntropyCalibration2\n\nimages: 3c010a14\n\nbad line\n"
    with pytest.raises(QuantizeError, match="line 5:"):
        cache.loads(text)


def test_from_cache_names_a_tensor_tensorrt_left_at_zero(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A cache that lists a quantized tensor with TensorRT's `0` is refused with that reason
    (it read as if the tensor were missing from the cache)."""
    from graphopt.quant.api import quantize_with_report
    from tests.test_review12_quant_placement import residual_model

    rng = np.random.default_rng(0)
    feeds = [{"x": rng.standard_normal((1, 3, 16, 16)).astype(np.float32)} for _ in range(2)]
    good = tmp_path / "good.cache"
    quantize_with_report(residual_model(), feeds, cache=good, accuracy_target=None)
    header, scales = cache.read(good)
    zeroed = sorted(scales)[0]
    lines = [header] + [
        f"{n}: {'0' if n == zeroed else cache.format_scale(s)}" for n, s in scales.items()
    ]
    bad = tmp_path / "bad.cache"
    bad.write_text("\n".join(lines) + "\n")
    assert cache.listed_without_scale(bad) == {zeroed}
    with pytest.raises(QuantizeError, match=rf"e.g. '{zeroed}' \(1 of them listed with scale 0"):
        quantize_with_report(residual_model(), from_cache=bad, accuracy_target=None)


def test_from_cache_needs_no_scale_for_what_stays_float(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Scales were demanded for every planned tensor, those only nodes kept float read too
    (keep_nodes', the stem's): a cache without them was refused, though the model needs none."""
    from graphopt.quant.api import quantize_with_report
    from tests.test_review12_quant_placement import residual_model

    rng = np.random.default_rng(0)
    feeds = [{"x": rng.standard_normal((1, 3, 16, 16)).astype(np.float32)} for _ in range(2)]
    full = tmp_path / "full.cache"
    reference, _ = quantize_with_report(
        residual_model(), feeds, cache=full, accuracy_target=None, keep_nodes=["conv1", "conv3"]
    )
    header, scales = cache.read(full)
    assert {"x", "a"} <= set(scales)
    partial = tmp_path / "partial.cache"
    # 'a' is read only by conv3, 'x' only by conv1, both kept float
    cache.write(partial, {t: s for t, s in scales.items() if t not in ("x", "a")}, header)
    q, report = quantize_with_report(
        residual_model(), from_cache=partial, accuracy_target=None, keep_nodes=["conv1", "conv3"]
    )
    assert report.quantized_nodes == ["conv2", "residual"]
    assert q.SerializeToString() == reference.SerializeToString()
