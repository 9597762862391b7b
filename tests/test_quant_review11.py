"""Adversarial review 11 of graphopt.quant: each case reproduced a defect on its parent commit."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser
import pytest
from onnx import numpy_helper

from graphopt.errors import QuantizeError
from graphopt.quant import cache as cache_io
from graphopt.quant.api import quantize

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
    "least: 800000\n"
)


def test_cache_reads_tensorrt_unpadded_hex() -> None:
    header, scales = cache_io.loads(TENSORRT_CACHE)
    assert header == "TRT-8401-EntropyCalibration2"
    # the zero scales are read as missing, as the docstring always said
    assert scales == {
        "input": _float32(0x3CAA54FC),
        "395": _float32(0x3CBE52AF),
        "least": _float32(0x00800000),  # the least normal float32 (a subnormal is refused)
    }
    assert cache_io.parse_scale("0") == 0.0
    assert cache_io.parse_scale("3f800000") == 1.0
    assert cache_io.parse_scale("800000") == _float32(0x00800000)  # the least normal float32
    for value in ("", "123456789", "0x1", "-1", "1 2", "+1"):  # still no hex number
        with pytest.raises(QuantizeError, match="line 2"):
            cache_io.loads(f"TRT-8601-EntropyCalibration2\nx: {value}\n")


# ------------------------------------------------------------------------ NaN in calibration data


def _conv_relu_conv() -> onnx.ModelProto:
    """x [1, 3, 8, 8] → Conv → Relu → Conv → y (opset 13)."""
    rng = np.random.default_rng(1)
    model = onnx.parser.parse_model(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,3,8,8] x) => (float[1,4,8,8] y) {
          c = Conv <pads = [1, 1, 1, 1]> (x, w1)
          r = Relu (c)
          y = Conv (r, w2)
        }"""
    )
    for name, shape in (("w1", (4, 3, 3, 3)), ("w2", (4, 4, 1, 1))):
        value = rng.normal(size=shape).astype(np.float32)
        model.graph.initializer.append(numpy_helper.from_array(value, name))
    return model


def test_nan_in_a_calibration_feed_is_refused_wherever_it_sits() -> None:
    # minmax (the default) measures ranges with onnxruntime's ReduceMin/ReduceMax, which skip
    # a NaN unless it is the first element: a NaN at element 0 was refused (as the histogram
    # methods refuse any), one at element 5 calibrated on the other values without a word
    rng = np.random.default_rng(0)
    feeds = [{"x": rng.normal(size=(1, 3, 8, 8)).astype(np.float32)} for _ in range(3)]
    feeds[1]["x"].reshape(-1)[5] = np.nan
    with pytest.raises(QuantizeError, match=r"calibration feed 1: input 'x' holds NaN"):
        quantize(_conv_relu_conv(), feeds, method="minmax", keep_stem=False)


def test_a_cache_rewritten_from_a_cache_keeps_its_tensorrt_version(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # scales from a TensorRT 8.4 cache were re-cached as TRT-8601 (or the installed version):
    # TensorRT 8.4, which wrote it, then refuses the rewritten cache and calibrates again
    source = tmp_path / "trt84.cache"
    source.write_text("TRT-8401-EntropyCalibration2\r\nx: 3caa54fc\r\nr: 3cbe52af\r\nextra: 0\r\n")
    out = tmp_path / "out.cache"
    quantize(_conv_relu_conv(), None, cache=out, from_cache=source, keep_stem=False, pipeline=False)
    # (every tensor the source lists kept, TensorRT's `extra: 0` too: tests/test_h215_*)
    assert out.read_text() == "TRT-8401-EntropyCalibration2\nextra: 0\nr: 3cbe52af\nx: 3caa54fc\n"
    # an explicit version still wins
    quantize(
        _conv_relu_conv(),
        None,
        cache=out,
        from_cache=source,
        keep_stem=False,
        pipeline=False,
        trt_version="10.3.0",
    )
    assert out.read_text().splitlines()[0] == "TRT-100300-EntropyCalibration2"
    assert cache_io.header_version("TRT-100300-MinMaxCalibration") == 100300
    assert cache_io.header_version("TRT-x-MinMaxCalibration") is None


# ------------------------------------------------------------------------ keep_nodes


def test_keep_nodes_naming_no_node_of_the_optimized_model_is_refused() -> None:
    # a name that matches no node of the optimized model (the BatchNormalization folded into
    # its Conv, a typo) was ignored and its node quantized without a word; the folded Conv
    # keeps its own name, so keep_nodes finds it
    rng = np.random.default_rng(0)
    model = onnx.parser.parse_model(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,3,8,8] x) => (float[1,4,8,8] y) {
          c = Conv <pads = [1, 1, 1, 1]> (x, w)
          b = BatchNormalization (c, s, bias, mean, var)
          r = Relu (b)
          y = Conv (r, w2)
        }"""
    )
    for node, name in zip(model.graph.node, ["conv", "bn", "relu", "conv2"], strict=True):
        node.name = name
    shapes = {"w": (4, 3, 3, 3), "s": (4,), "bias": (4,), "mean": (4,), "w2": (4, 4, 1, 1)}
    for name, shape in shapes.items():
        value = rng.normal(size=shape).astype(np.float32)
        model.graph.initializer.append(numpy_helper.from_array(value, name))
    model.graph.initializer.append(numpy_helper.from_array(np.ones(4, np.float32), "var"))
    feeds = [{"x": rng.normal(size=(1, 3, 8, 8)).astype(np.float32)} for _ in range(2)]
    options = {"keep_stem": False, "accuracy_target": None}
    for gone in ("bn", "cnov"):
        with pytest.raises(QuantizeError, match=f"keep_nodes: no node named '{gone}'"):
            quantize(model, feeds, keep_nodes=[gone], **options)
    # named as the optimized model names it (the Conv's own name), the folded Conv stays float
    out = quantize(model, feeds, keep_nodes=["conv"], **options)
    conv = next(n for n in out.graph.node if n.name == "conv")
    floats = {t.name for t in out.graph.initializer if t.data_type == onnx.TensorProto.FLOAT}
    assert conv.op_type == "Conv" and conv.input[0] == "x" and conv.input[1] in floats
    assert sum(n.op_type == "QuantizeLinear" for n in out.graph.node) == 1  # conv2's input only


def test_feed_digest_tells_float8_types_apart() -> None:
    # a float8 feed failed its digest ('cannot include dtype '4' in a buffer': a memoryview of
    # an ml_dtypes array cannot be cast), and numpy spells every ml_dtypes float8/int4 type
    # '<V1' in dtype.str, so two feeds of the same bytes as float8_e4m3fn and float8_e5m2 would
    # have had one digest, as merge's weight sharing had (multitask review 11, 495e8a0)
    import ml_dtypes

    from graphopt.quant.samples import feed_digest

    raw = np.arange(8, dtype=np.uint8)
    e4m3 = {"x": raw.view(ml_dtypes.float8_e4m3fn)}
    e5m2 = {"x": raw.view(ml_dtypes.float8_e5m2)}
    assert feed_digest(e4m3) != feed_digest(e5m2)
    assert feed_digest(e4m3) == feed_digest({"x": raw.copy().view(ml_dtypes.float8_e4m3fn)})
    # the common types keep the digests they had (the same bytes hashed; this one was computed
    # with the parent's feed_digest)
    common = {"x": np.ones((2, 3), np.float32), "n": np.arange(4)}
    assert feed_digest(common).hex().startswith("7ee5a1998f008f4c9b9a18bacaa3112f")


def test_a_report_of_scales_from_a_cache_names_the_cache_not_minmax(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # `--cache-in model.cache --report` said 'method minmax' (the default method, which chose
    # nothing here): the scales are the cache's, chosen by its calibrator
    from graphopt.quant.api import quantize_with_report

    source = tmp_path / "trt.cache"
    source.write_text("TRT-8601-EntropyCalibration2\nx: 3caa54fc\nr: 3cbe52af\n")
    _, report = quantize_with_report(
        _conv_relu_conv(), None, from_cache=source, keep_stem=False, pipeline=False
    )
    assert report.method == "from cache (EntropyCalibration2)"
    assert report.lines()[0].startswith("target tensorrt, method from cache (EntropyCalibration2)")


def test_keep_nodes_naming_a_node_inside_a_body_says_so(caplog) -> None:  # type: ignore[no-untyped-def]
    # a Conv inside an If branch named in keep_nodes was refused as 'no node named ...',
    # though it exists: bodies are never quantized, so it stays float as asked (with a warning)
    rng = np.random.default_rng(0)
    model = onnx.parser.parse_model(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,3,8,8] x, bool flag) => (float[1,4,8,8] y) {
          c = Conv <pads = [1, 1, 1, 1]> (x, w)
          y = If (flag) <
            then_branch = t () => (float[1,4,8,8] a) { a = Conv <pads = [1, 1, 1, 1]> (c, w2) },
            else_branch = e () => (float[1,4,8,8] b) { b = Relu (c) }
          >
        }"""
    )
    model.graph.node[1].attribute[0].g.node[0].name = "inner"
    model.graph.node[0].name = "outer"
    model.graph.initializer.append(
        numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "w")
    )
    model.graph.initializer.append(
        numpy_helper.from_array(rng.normal(size=(4, 4, 3, 3)).astype(np.float32), "w2")
    )
    feeds = [{"x": rng.normal(size=(1, 3, 8, 8)).astype(np.float32), "flag": np.array(True)}]
    options = {"keep_stem": False, "accuracy_target": None, "pipeline": False}
    with caplog.at_level("WARNING", logger="graphopt"):
        out = quantize(model, feeds, keep_nodes=["inner"], **options)
    assert "'inner' is a node inside an If/Loop/Scan body" in caplog.text
    branch = next(n for n in out.graph.node if n.op_type == "If").attribute[0].g
    inner = branch.node[0]
    assert inner.name == "inner" and inner.op_type == "Conv" and inner.input[1] == "w2"
    assert any(n.op_type == "QuantizeLinear" for n in out.graph.node)  # the outer Conv is
    with pytest.raises(QuantizeError, match="keep_nodes: no node named 'nowhere'"):
        quantize(model, feeds, keep_nodes=["inner", "nowhere"], **options)


@pytest.mark.parametrize("suffix", [".tif", ".webp"])
def test_quantize_reads_the_image_files_distill_reads(tmp_path, suffix) -> None:  # type: ignore[no-untyped-def]
    # distill-targets read .tif/.tiff/.webp photographs, quantize's calibration folders skipped
    # them ('no calibration files'): one list of image suffixes now (realmodels.IMAGE_SUFFIXES)
    from PIL import Image

    from graphopt.distill import DATA_SUFFIXES
    from graphopt.quant.data import folder_feeds

    pixels = np.random.default_rng(0).integers(0, 255, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / f"photo{suffix}")
    feeds = folder_feeds(tmp_path, _conv_relu_conv())
    assert [f.name for f in feeds.files] == [f"photo{suffix}"] and suffix in DATA_SUFFIXES
