"""Adversarial review 3 of graphopt.quant: each case reproduced a defect on its parent commit."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.inliner
import onnx.parser
import pytest
from onnx import numpy_helper

from graphopt.quant.api import quantize
from graphopt.quant.histogram import HistogramCalibrator


def _structured(k: int) -> np.ndarray:
    """A smooth 1×4×8×8 pattern (calibration feed k), values in about [-1.5, 1.5]."""
    idx = np.indices((1, 4, 8, 8)).astype(np.float32)
    value = np.sin(idx.sum(0) * (0.3 + 0.1 * k)) + 0.5 * np.cos(idx[-1] * 0.2 * (k + 1))
    return value.astype(np.float32)


@pytest.mark.parametrize("method", ["entropy", "percentile", "mse"])
def test_histogram_of_values_below_2_to_the_minus_117(method: str) -> None:
    # the bin width 2^k of max|x| < 2048·2^-128 has 2^-k beyond float32: the multiplier
    # overflowed to inf, |x|·inf (0·inf = NaN) cast to a negative bin index and np.bincount
    # raised ValueError
    values = np.array([0.0, 1e-45, -3e-39, 2e-38, 1e-36], np.float32)
    calibrator = HistogramCalibrator()
    calibrator.collect(values)
    calibrator.collect(values * 4)
    assert calibrator.counts.sum() == 2 * values.size
    amax = calibrator.compute_amax(method)
    assert 3e-36 <= amax <= 4.1e-36


def test_entropy_calibration_of_a_tiny_activation() -> None:
    # x·1e-37 read by a Conv: a histogram method crashed with a bare ValueError
    model = onnx.parser.parse_model(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,4,8,8] x) => (float[1,4,8,8] y) {
          k = Constant <value = float {1e-37}> ()
          t = Mul (x, k)
          y = Conv (t, w)
        }"""
    )
    rng = np.random.default_rng(0)
    model.graph.initializer.append(
        numpy_helper.from_array(rng.normal(size=(4, 4, 1, 1)).astype(np.float32), "w")
    )
    feeds = [{"x": _structured(k)} for k in range(4)]
    out = quantize(model, feeds, method="entropy", accuracy_target=None, pipeline=False)
    onnx.checker.check_model(out, full_check=True)
    assert any(n.op_type == "QuantizeLinear" for n in out.graph.node)


def _upsampling_model(opset: int, op: str, mode: str) -> onnx.ModelProto:
    """Conv → Relu → ×2 upsampling (`op` in `mode`) → Conv at `opset`."""
    rng = np.random.default_rng(1)
    nodes = [
        onnx.helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1] * 4, name="conv1"),
        onnx.helper.make_node("Relu", ["c1"], ["r1"], name="relu"),
        onnx.helper.make_node(op, ["r1", "sc"], ["u"], mode=mode, name="up"),
        onnx.helper.make_node("Conv", ["u", "w2", "b2"], ["y"], name="conv2"),
    ]
    weights = {
        "w1": rng.normal(size=(8, 4, 3, 3)) * 0.2,
        "b1": rng.normal(size=8),
        "sc": np.array([1, 1, 2, 2]),
        "w2": rng.normal(size=(4, 8, 1, 1)) * 0.2,
        "b2": rng.normal(size=4),
    }
    graph = onnx.helper.make_graph(
        nodes,
        "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4, 8, 8])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4, 16, 16])],
        [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in weights.items()],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)])
    model.ir_version = 5
    return model


@pytest.mark.parametrize(("opset", "op"), [(9, "Upsample"), (10, "Resize")])
def test_opset_upgrade_that_would_change_a_linear_upsample_is_refused(opset: int, op: str) -> None:
    # onnx.version_converter turns a linear Upsample / Resize-10 (asymmetric coordinates) into a
    # half_pixel Resize-13: the "quantized" model computed another function (its upsampled map
    # moved by up to 0.42 before any quantization; output error 0.17 of the range, not ~0.005)
    from graphopt.errors import QuantizeError

    model = _upsampling_model(opset, op, "linear")
    feeds = [{"x": _structured(k)} for k in range(4)]
    with pytest.raises(QuantizeError, match="would become a half_pixel Resize"):
        quantize(model, feeds, accuracy_target=None)


def test_opset_upgrade_of_a_nearest_upsample_still_quantizes() -> None:
    from graphopt.backends.onnxruntime import run

    model = _upsampling_model(9, "Upsample", "nearest")
    feeds = [{"x": _structured(k)} for k in range(4)]
    out = quantize(model, feeds, accuracy_target=None)
    ref, got = run(model, feeds[0])["y"], run(out, feeds[0])["y"]
    assert np.abs(ref - got).max() <= 0.05 * (ref.max() - ref.min())


@pytest.mark.parametrize(
    ("opset", "ir", "elem", "dtype"),
    [
        (11, 6, "float", np.float32),
        (12, 6, "float", np.float32),
        (17, 8, "float16", np.float16),
    ],
)
def test_upgraded_model_declares_the_ir_version_its_opset_needs(
    opset: int, ir: int, elem: str, dtype: type
) -> None:
    # onnx.version_converter keeps the IR version: an IR 6 model came back declaring opset 13
    # (IR 7 is the first with it) and an IR 8 float16 one opset 19 (IR 9)
    model = onnx.parser.parse_model(
        f"""<ir_version: {ir}, opset_import: ["" : {opset}]>
        g ({elem}[1,4,8,8] x) => ({elem}[1,4,8,8] y) {{
          c = Conv <pads=[1,1,1,1]> (x, w, b)
          r = Relu (c)
          y = Conv (r, w2)
        }}"""
    )
    rng = np.random.default_rng(2)
    for name, shape in (("w", (8, 4, 3, 3)), ("b", (8,)), ("w2", (4, 8, 1, 1))):
        value = (rng.normal(size=shape) * 0.3).astype(dtype)
        model.graph.initializer.append(numpy_helper.from_array(value, name))
    feeds = [{"x": _structured(k).astype(dtype)} for k in range(4)]
    out = quantize(model, feeds, accuracy_target=None)
    onnx.checker.check_model(out, full_check=True)
    needed = onnx.helper.find_min_ir_version_for(list(out.opset_import), True)
    assert out.ir_version >= needed > ir


_FUNCTION_MODEL = """<ir_version: 8, opset_import: ["" : OPSET, "local" : 1]>
g (float[1,4,8,8] x) => (float[1,4,8,8] y) {
  c1 = Conv <pads=[1,1,1,1]> (x, w1, b1)
  r1 = local.Act (c1)
  y = Conv (r1, w2)
}
<domain: "local", opset_import: ["" : OPSET]>
Act (a) => (b) {
  t = Relu (a)
  two = Constant <value = float {2.0}> ()
  b = Mul (t, two)
}"""


def _function_model(opset: int) -> onnx.ModelProto:
    model = onnx.parser.parse_model(_FUNCTION_MODEL.replace("OPSET", str(opset)))
    rng = np.random.default_rng(3)
    for name, shape in (("w1", (8, 4, 3, 3)), ("b1", (8,)), ("w2", (4, 8, 1, 1))):
        value = (rng.normal(size=shape) * 0.3).astype(np.float32)
        model.graph.initializer.append(numpy_helper.from_array(value, name))
    return model


def test_opset_upgrade_of_a_model_with_local_functions_inlines_them() -> None:
    # the converter dropped the local functions: calibration failed with onnxruntime's
    # "local:Act(-1) is not a registered function/op" (a BackendError about the model it made);
    # then it was refused ("drops its 1 local function"); since a7916a7 quantize inlines them
    feeds = [{"x": _structured(k)} for k in range(4)]
    upgraded = quantize(_function_model(12), feeds, accuracy_target=None)
    assert not upgraded.functions
    assert upgraded.opset_import[0].version >= 13
    assert any(n.op_type == "QuantizeLinear" for n in upgraded.graph.node)
    inlined = onnx.inliner.inline_local_functions(_function_model(12))
    assert any(n.op_type == "QuantizeLinear" for n in quantize(inlined, feeds).graph.node)
    # at opset 13 nothing is converted: the functions stay and the model quantizes
    out = quantize(_function_model(13), feeds, accuracy_target=None)
    assert len(out.functions) == 1


def test_opset_upgrade_keeps_what_the_converter_drops() -> None:
    """quantize's upgrade to opset 13 lost the graph's metadata_props and its nodes' (the
    converter drops them); it gives them back as optimize's upgrade does (restore_dropped)."""
    model = _upsampling_model(9, "Upsample", "nearest")
    onnx.helper.set_metadata_props(model.graph, {"classes": "text,table"})
    onnx.helper.set_metadata_props(model.graph.node[0], {"origin": "up"})
    feeds = [{"x": _structured(k)} for k in range(4)]
    out = quantize(model, feeds, accuracy_target=None)
    assert {p.key: p.value for p in out.graph.metadata_props} == {"classes": "text,table"}
    kept = [n for n in out.graph.node if n.name == model.graph.node[0].name]
    assert kept and {p.key: p.value for p in kept[0].metadata_props} == {"origin": "up"}
