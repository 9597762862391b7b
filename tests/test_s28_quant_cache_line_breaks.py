"""A calibration cache's lines end at '\\n' alone, as TensorRT reads them: a tensor name holding
'\\r', '\\v', '\\f', '\\x1c'-'\\x1e', '\\x85', U+2028 or U+2029 (a valid ONNX name) was refused on
write and split into two lines on read (str.splitlines()), where TensorRT reads one line."""

from __future__ import annotations

import numpy as np
import pytest

from graphopt.errors import QuantizeError
from graphopt.quant import cache as cache_io

BREAKS = ["\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


@pytest.mark.parametrize("brk", BREAKS)
def test_a_name_with_a_break_other_than_newline_round_trips(brk: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    scales = {
        f"a{brk}b": np.float32(0.25),
        f"{brk}lead": np.float32(1e-3),
        f"trail{brk}": np.float32(3.5),
        "plain": np.float32(0.5),
    }
    assert all(cache_io.writable_name(name) for name in scales)
    text = cache_io.dumps(scales)
    # one line per tensor, as TensorRT splits the file (at '\n')
    assert len(text.split("\n")) == 1 + len(scales) + 1
    assert cache_io.loads(text)[1] == scales
    path = tmp_path / "c.cache"
    cache_io.write(path, scales)
    assert cache_io.read(path) == (cache_io.DEFAULT_HEADER, scales)
    # a cache TensorRT wrote with such a name (unpadded digits, a no-scale line) reads so too
    trt = f"TRT-8601-EntropyCalibration2\nx{brk}y: 3c010a14\nz{brk}: 0\n"
    assert cache_io.entries(trt)[1] == [(f"x{brk}y", "3c010a14"), (f"z{brk}", "0")]
    assert cache_io.retag(trt, "TRT-100300-EntropyCalibration2").split("\n")[1:] == [
        f"x{brk}y: 3c010a14",
        f"z{brk}: 0",
        "",
    ]


def test_a_bad_line_after_such_a_name_is_numbered_by_newlines() -> None:
    text = "TRT-8601-EntropyCalibration2\na\u2028b: 3c010a14\nc\x85d: 3c010a14\nbad line\n"
    with pytest.raises(QuantizeError, match="line 4:"):
        cache_io.loads(text)


@pytest.mark.parametrize("name", ["", "\n", "a\nb", "a\r\nb", "x\n"])
def test_a_name_holding_a_newline_is_still_refused(name: str) -> None:
    assert not cache_io.writable_name(name)
    with pytest.raises(QuantizeError, match="cannot be written"):
        cache_io.dumps({name: np.float32(0.1)})


def test_crlf_lines_still_read() -> None:
    text = "TRT-8601-EntropyCalibration2\r\nx: 3c010a14\r\n\r\ny\x85: 3f800000\r\n"
    head, scales = cache_io.loads(text)
    assert head == "TRT-8601-EntropyCalibration2"
    assert scales == {"x": cache_io.parse_scale("3c010a14"), "y\x85": np.float32(1.0)}


def test_lines_ending_in_a_carriage_return_alone_are_refused() -> None:
    """One line to TensorRT (it skips such a cache): read as lines before, now refused
    rather than read as a header with no scales."""
    text = "TRT-8601-EntropyCalibration2\rx: 3c010a14\r"
    with pytest.raises(QuantizeError, match="carriage return"):
        cache_io.loads(text)


def _model(name: str):  # type: ignore[no-untyped-def]
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array((rng.standard_normal((8, 3, 3, 3)) * 0.2).astype(np.float32), "W1")
    w2 = numpy_helper.from_array((rng.standard_normal((4, 8, 1, 1)) * 0.2).astype(np.float32), "W2")
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "W1"], ["c1"], name="conv1", pads=[1] * 4),
            helper.make_node("Relu", ["c1"], [name], name="relu1"),
            helper.make_node("Conv", [name, "W2"], ["y"], name="conv2"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 16, 16])],
        [w1, w2],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def test_quantize_writes_and_reads_back_a_cache_naming_such_a_tensor(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`quantize(cache=)` refused such a model before calibrating ("cannot be named in a
    calibration cache"); now its cache names the tensor and gives the same model back."""
    import graphopt

    name = "r\u20281"
    rng = np.random.default_rng(1)
    feeds = [{"x": rng.uniform(0, 1, (1, 3, 16, 16)).astype(np.float32)} for _ in range(4)]
    cache = tmp_path / "c.cache"
    made = graphopt.quantize(_model(name), feeds, cache=cache, accuracy_target=None)
    header, scales = cache_io.read(cache)
    assert name in scales and header.startswith("TRT-")
    assert f"{name}: {cache_io.format_scale(scales[name])}" in cache.read_text().split("\n")
    again = graphopt.quantize(_model(name), None, from_cache=cache, accuracy_target=None)
    assert again.SerializeToString() == made.SerializeToString()
