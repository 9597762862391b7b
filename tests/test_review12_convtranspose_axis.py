"""Review 12: the per-channel axis of ConvTranspose weights ([C_in, C_out/group, k...]) per target.

TensorRT's deconvolution kernels take per-input-channel weight scales, axis 0 (NVIDIA/TensorRT
#2380: "We don't support per-output-channel quant for ConvTranspose"; #1694: axis 1 gave wrong
results; #1519: no engine); `quantize --target tensorrt` wrote axis 1 (per tensor when grouped),
which `check --target tensorrt` warns about. onnxruntime's own quantizer writes axis 1 (QDQConv's
default_axis for ConvTranspose), and its int32 bias needs per-output-channel scales: that target
keeps axis 1. Each model is run in onnxruntime against the float model on real photographs.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from graphopt.backends.onnxruntime import run as ort_run
from graphopt.backends.trt_check import check_tensorrt
from graphopt.quant.api import quantize_with_report
from graphopt.realmodels import images, preprocess
from tests.conftest import onnxruntime_int8_level

C_IN, C_MID, C_OUT = 8, 6, 1  # deconv1: 8 → 6 channels, deconv2: 6 → 1 (a DBNet head's last)


def deconv_model(group: int = 1) -> onnx.ModelProto:
    """Conv(3 → 8, /2) → Relu → ConvTranspose(8 → 6, ×2, `group`) → Relu → ConvTranspose(6 → 1,
    ×2): y is 1x1x128x128 for a 64x64 image. Input channels of deconv1 get weights of very
    different sizes (scales 0.02 .. 1), so its per-input-channel scales differ."""
    rng = np.random.default_rng(3)

    def init(name: str, *shape: int, s: float = 0.2) -> onnx.TensorProto:
        return numpy_helper.from_array((rng.standard_normal(shape) * s).astype(np.float32), name)

    wt1 = (
        rng.standard_normal((C_IN, C_MID // group, 2, 2))
        * np.geomspace(0.02, 1, C_IN)[:, None, None, None]
    )
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1] * 4, strides=[2, 2]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node(
            "ConvTranspose",
            ["r", "wt1", "bt1"],
            ["t1"],
            name="deconv1",
            strides=[2, 2],
            group=group,
        ),
        helper.make_node("Relu", ["t1"], ["r1"], name="relu1"),
        helper.make_node(
            "ConvTranspose", ["r1", "wt2", "bt2"], ["y"], name="deconv2", strides=[2, 2]
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "deconvs",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, C_OUT, 128, 128])],
        [
            init("w", C_IN, 3, 3, 3),
            init("b", C_IN),
            numpy_helper.from_array(wt1.astype(np.float32), "wt1"),
            init("bt1", C_MID),
            init("wt2", C_MID, C_OUT, 2, 2, s=0.5),
            init("bt2", C_OUT),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    onnx.checker.check_model(model, full_check=True)
    return model


@pytest.fixture(scope="module")
def feeds() -> list[dict[str, np.ndarray]]:
    return [{"x": preprocess(im, (64, 64), scale=1 / 255)} for im in images(8)]


def deconv_weights(model: onnx.ModelProto) -> dict[str, tuple[int | None, int]]:
    """ConvTranspose name → (axis of the DequantizeLinear its weight comes from, None: per
    tensor; number of scales)."""
    producer = {o: n for n in model.graph.node for o in n.output}
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    out: dict[str, tuple[int | None, int]] = {}
    for node in model.graph.node:
        if node.op_type == "ConvTranspose":
            dq = producer[node.input[1]]
            assert dq.op_type == "DequantizeLinear", node.name
            axes = [a.i for a in dq.attribute if a.name == "axis"]
            out[node.name] = (axes[0] if axes else None, int(inits[dq.input[1]].size))
    return out


def quantized(model: onnx.ModelProto, feeds, target: str) -> onnx.ModelProto:  # type: ignore[no-untyped-def]
    q, report = quantize_with_report(
        model, feeds, "minmax", target=target, accuracy_target=None, keep_stem=False
    )
    assert report.kept_float == [] and set(report.quantized_nodes) >= {"deconv1", "deconv2"}
    onnx.checker.check_model(q, full_check=True)
    return q


def assert_close_on_photographs(model: onnx.ModelProto, q: onnx.ModelProto, feeds) -> float:  # type: ignore[no-untyped-def]
    """Largest |INT8 − FP32| over the photographs, relative to the float output's largest value;
    asserted within 5 %. Measured (minmax, 8 photographs): tensorrt 2.0 % (group 1), 3.4 %
    (group 2), onnxruntime 1.1 %, 2.2 %; the symmetric int8 activations dominate (the parent's
    axes: 2.0 %, 3.5 %). At onnxruntime's default level where its fused int8 kernels are right,
    else as written: on a CPU without VNNI they saturate on full-range weights (onnxruntime's
    layout: 8.8 %, 7.2 % at "all"). No 7-bit check here: onnxruntime's grouped deconv weight is
    per tensor, and at 7 bits its 0.02 .. 1 input channels err 5.9 % as written."""
    level = onnxruntime_int8_level()
    worst = 0.0
    for feed in feeds:
        want, got = ort_run(model, feed)["y"], ort_run(q, feed, level=level)["y"]
        worst = max(worst, float(np.abs(got - want).max() / np.abs(want).max()))
    assert worst <= 0.05, worst
    return worst


@pytest.mark.parametrize("group", [1, 2])
def test_tensorrt_quantizes_deconv_weights_per_input_channel(feeds, group: int) -> None:  # type: ignore[no-untyped-def]
    """Axis 0 with C_in scales, grouped too (each input channel belongs to one group). The
    parent wrote axis 1 (6 scales; deconv2's one output channel: 1 scale) and per tensor at
    group 2."""
    model = deconv_model(group)
    q = quantized(model, feeds, "tensorrt")
    assert deconv_weights(q) == {"deconv1": (0, C_IN), "deconv2": (0, C_MID)}
    assert_close_on_photographs(model, q, feeds)
    findings = check_tensorrt(q, 10)
    assert [f for f in findings if f.rule.startswith("qdq")] == [], findings
    assert all(f.severity != "error" for f in findings), findings


@pytest.mark.parametrize("group", [1, 2])
def test_onnxruntime_keeps_deconv_weights_per_output_channel(feeds, group: int) -> None:  # type: ignore[no-untyped-def]
    """onnxruntime's quantizer's choice (axis 1), per tensor when grouped; the int32 bias has
    one scale s_x·s_w per output channel."""
    model = deconv_model(group)
    q = quantized(model, feeds, "onnxruntime")
    want = {"deconv1": (1, C_MID) if group == 1 else (None, 1), "deconv2": (1, C_OUT)}
    assert deconv_weights(q) == want
    assert_close_on_photographs(model, q, feeds)


def test_tensorrt_axis_0_is_closer_than_axis_1_where_input_channels_differ(feeds) -> None:  # type: ignore[no-untyped-def]
    """deconv1's input channels span scales 0.02 .. 1: a scale per output channel (axis 1)
    is set by the largest input channel, and the smallest input channel's weights lose most
    of their bits; axis 0 fits each. Worst relative RMS error of an input channel's weights."""
    from graphopt.quant.qdq import quantize_weight

    w = numpy_helper.to_array(next(t for t in deconv_model().graph.initializer if t.name == "wt1"))
    errors = {}
    for axis in (0, 1):
        q, s = quantize_weight(w, axis)
        shape = [1] * w.ndim
        shape[axis] = -1
        err = q * s.reshape(shape) - w
        rms = np.sqrt((err**2).mean(axis=(1, 2, 3)) / (w**2).mean(axis=(1, 2, 3)))
        errors[axis] = float(rms.max())
    assert errors[0] < 0.01 < errors[1], errors


@pytest.mark.realmodel
def test_ppocr_det_for_tensorrt_checks_clean(
    real_model, real_feeds, tmp_path, capsys, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """`quantize --target tensorrt` of the real text detector (two ConvTranspose in its head,
    24 → 24 and 24 → 1 channels): `check --target tensorrt` finds 0 errors and no
    qdq-per-channel warning (the parent: axis 1 on 'p2o.ConvTranspose.0', a warning), and the
    INT8 text map agrees with FP32 on a photograph the calibration did not see as well as with
    the axis-1 weights (mask IoU 0.812 against 0.813: noise; the benchmark's split, default
    and bare minmax/entropy: 0.9527 / 0.8088 / 0.8311 against 0.9527 / 0.8091 / 0.8311)."""
    from graphopt.backends.onnxruntime import session
    from graphopt.cli import main
    from graphopt.quant import placement
    from graphopt.quant.evaluate import mask_iou

    path = str(real_model("ppocr_det"))
    feeds = real_feeds("ppocr_det", 16)
    q, _ = quantize_with_report(
        path, feeds[12:15], "minmax", target="tensorrt", accuracy_target=None
    )
    assert {axis for axis, _ in deconv_weights(q).values()} == {0}
    out = tmp_path / "ppocr_det_int8.onnx"
    onnx.save(q, str(out))
    capsys.readouterr()
    main(["check", "--target", "tensorrt", str(out), "--shapes", "x:1x3x640x640"])
    text = capsys.readouterr().out
    assert "qdq-per-channel" not in text, text
    assert text.strip().splitlines()[-1].endswith(": 0 errors, 0 warnings"), text

    monkeypatch.setattr(placement, "convtranspose_weight_axis", lambda target, group: 1)
    q1, _ = quantize_with_report(
        path, feeds[12:15], "minmax", target="tensorrt", accuracy_target=None
    )
    assert {axis for axis, _ in deconv_weights(q1).values()} == {1}
    want = [session(path).run(None, feeds[15])[0]]
    iou = {k: mask_iou(want, [session(m).run(None, feeds[15])[0]]) for k, m in ((0, q), (1, q1))}
    assert iou[0] >= 0.78 and iou[0] >= iou[1] - 0.01, iou
