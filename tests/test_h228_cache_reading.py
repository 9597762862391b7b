"""Reading a TensorRT calibration cache (H228).

A million-line cache took 8.8 s to read: `_numbered_entries` and `loads` called `parse_scale`
(a generator over the digits, struct, int) and `scale_problem` per line in Python, twice per
line. The reader now works column by column: each string method mapped over all the lines,
all the digits checked by one regular expression and read by one `bytes.fromhex`, the scales
checked as one numpy array; a cache with a wrong line is read again line by line for the
error, as before. Tests do not time it: they count the Python function calls a read makes,
which no longer grow with its lines, and pin results and errors (names, line numbers past
blank lines, duplicates, a cut last line, bad scales) as they were.

And a tensor name with ':' (tf2onnx's 'input_1:0'; DeepStream's TrafficCamNet cal_trt.bin,
which TensorRT builds from, lists `input_1:0: 3c010a14`) is all before the line's last ':', as
TensorRT writes it: it round-trips through `write` and `read` (onnxruntime's TensorRT provider
reads such a line otherwise; see graphopt/quant/cache.py)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from graphopt.errors import QuantizeError
from graphopt.quant import cache


def _python_calls(run: Callable[[], object]) -> int:
    """How many Python functions `run` calls (C functions not counted)."""
    calls = 0

    def profile(frame: object, event: str, arg: object) -> None:
        nonlocal calls
        if event == "call":
            calls += 1

    sys.setprofile(profile)
    try:
        run()
    finally:
        sys.setprofile(None)
    return calls


def _text(lines: int) -> str:
    scales = np.linspace(0.001, 1.0, lines, dtype=np.float32)
    body = (f"model/conv_{i}/Relu:0: {cache.format_scale(s)}" for i, s in enumerate(scales))
    return "\n".join(["TRT-8601-EntropyCalibration2", *body]) + "\n"


def test_a_read_calls_no_python_function_per_line() -> None:
    small, large = _text(200), _text(20_000)
    assert len(cache.loads(large)[1]) == 20_000
    calls = {len(text): _python_calls(lambda t=text: cache.loads(t)) for text in (small, large)}
    # (was about 5 calls a line: parse_scale twice, its generator, scale_problem, _no_scale)
    assert calls[len(small)] == calls[len(large)] < 50, calls
    entries = _python_calls(lambda: cache.entries(large))
    assert entries < 50, entries


def test_results_are_as_they_were() -> None:
    text = (
        "\n  \nTRT-8601-EntropyCalibration2  \n"
        "a: 3f800000\n\n"
        "x : 3c010a14\n"  # tensor 'x ' (TensorRT writes a tensor 'x ' so)
        "  y: 3F800000\n"  # tensor '  y', upper-case digits
        "z: 0\n"  # TensorRT's no-scale line: listed, no scale
        "a: 3F800000\r\n"  # the same tensor again with the same scale: fine
        "w: 800000"  # the least normal float32 in 6 digits, and no line break after it
    )
    with pytest.raises(QuantizeError, match=r"line 10: tensor 'w': the file ends inside"):
        cache.loads(text)
    text += "\n"
    head, scales = cache.loads(text)
    assert head == "TRT-8601-EntropyCalibration2"
    assert list(scales) == ["a", "x ", "  y", "w"]
    assert all(type(s) is np.float32 for s in scales.values())
    assert scales == {
        "a": 1.0,
        "x ": cache.parse_scale("3c010a14"),
        "  y": 1.0,
        "w": np.finfo(np.float32).tiny,
    }
    assert cache.entries(text)[1] == [
        ("a", "3f800000"),
        ("x ", "3c010a14"),
        ("  y", "3F800000"),
        ("z", "0"),
        ("a", "3F800000"),
        ("w", "800000"),
    ]
    assert cache.with_listed(text, {"q": np.float32(2)}) == {
        "a": 1.0,
        "x ": cache.parse_scale("3c010a14"),
        "  y": 1.0,
        "z": 0.0,
        "w": cache.parse_scale("800000"),
        "q": 2.0,
    }


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("a: 3f800000\n\nb 3f800000\n", "line 4: expected 'tensor: <1 to 8 hex digits>'"),
        ("a: 3f800000\n: 3f800000\n", "line 3: expected 'tensor: <1 to 8 hex digits>'"),
        ("a:\n", "line 2: expected 'tensor: <1 to 8 hex digits>'"),
        ("a: 3f8000000\n", "line 2: expected 'tensor: <1 to 8 hex digits>'"),
        ("a: 3f80 000\n", r"line 2: '3f80 000' is not 1 to 8 hex digits"),
        ("a: +3f80000\n", r"line 2: '\+3f80000' is not 1 to 8 hex digits"),
        ("a: ３f800000\n", "line 2: '３f800000' is not 1 to 8 hex digits"),
        (
            "a: 3f800000\n\nb: 0\na: 3f800001\n",
            r"line 5: tensor 'a' is listed again with another scale \(3f800001; line 2: 3f800000\)",
        ),
        ("a: 3f800000\n\n\nb: 7fc00000\n", "line 5: tensor 'b': scale nan is not finite"),
        ("b: 0\nb: 80000000\n", "line 3: tensor 'b': scale -0.0 is not positive"),
        ("a: 1\n", r"line 2: tensor 'a': scale 1\.4\d*e-45 is subnormal"),
    ],
)
def test_errors_are_as_they_were(body: str, error: str) -> None:
    with pytest.raises(QuantizeError, match=f"^calibration cache: {error}"):
        cache.loads("TRT-8601-EntropyCalibration2\n" + body)


def test_spaced_names_and_lines_without_scale(tmp_path: Path) -> None:
    path = tmp_path / "c.cache"
    path.write_text("TRT-1-X\n\nb: 0\n\n  x: 3c010a14\nc: 80000000\n")
    assert cache.spaced_name(path, {"x"}) == (
        f"{path}: line 5: tensor name '  x' has spaces before or after it, which a cache "
        "reader keeps as part of the name, so it names no tensor 'x'; remove them"
    )
    assert cache.listed_without_scale(path) == {"b", "c"}


def test_a_name_with_colons_round_trips(tmp_path: Path) -> None:
    names = ["input_1:0", "conv1/convolution:0", "b::", ":c", "a: 3f800000", "x :y "]
    scales = {name: np.float32(0.5 + i) for i, name in enumerate(names)}
    path = tmp_path / "c.cache"
    cache.write(path, scales)
    text = path.read_text()
    assert "\ninput_1:0: 3f000000\n" in text  # as TensorRT writes it
    assert cache.read(path)[1] == scales
    assert cache.entries(text)[1] == [(n, cache.format_scale(scales[n])) for n in sorted(names)]
    assert cache.loads(cache.retag(text, "TRT-100300-EntropyCalibration2"))[1] == scales
    # a cache as TensorRT wrote it (DeepStream's TrafficCamNet cal_trt.bin), unpadded digits
    deepstream = "TRT-100300-EntropyCalibration2\ninput_1:0: 3c010a14\nconv1/convolution:0: 0\n"
    assert cache.loads(deepstream)[1] == {"input_1:0": cache.parse_scale("3c010a14")}
