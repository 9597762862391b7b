"""Adversarial review of Q/DQ emission (`graphopt.quant.qdq`, `graphopt.quant.placement`).

Each test pins a defect found by the review: it fails on the commit before its fix. Models are
built in code; calibration uses the scikit-image photographs (`graphopt.realmodels`).
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt import realmodels
from graphopt.backends.onnxruntime import run, session
from graphopt.errors import QuantizeError
from graphopt.ir import Graph
from graphopt.quant.api import quantize_with_report
from graphopt.quant.placement import plan
from graphopt.quant.qdq import scale_as

PHOTOS = ("astronaut.png", "motorcycle_left.png")


def _photos(size: int, dtype: type) -> list[dict[str, np.ndarray]]:
    return [
        {"x": realmodels.preprocess(im, (size, size), scale=1 / 255.0).astype(dtype)}
        for im in realmodels.images(names=PHOTOS)
    ]


def _float16_model() -> onnx.ModelProto:
    """x (float16) → Conv → Relu (r1) → Conv → y, opset 19 (float16 Q/DQ)."""
    rng = np.random.default_rng(0)
    w1 = (rng.standard_normal((8, 3, 3, 3)) * 0.3).astype(np.float16)
    w2 = (rng.standard_normal((4, 8, 3, 3)) * 0.15).astype(np.float16)
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2"], ["y"], name="conv2", pads=[1, 1, 1, 1]),
    ]
    graph = helper.make_graph(
        nodes,
        "fp16",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [1, 4, 16, 16])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 9
    onnx.checker.check_model(model, full_check=True)
    return model


def _cache(path: Path, scales: dict[str, float]) -> Path:
    lines = ["TRT-8601-EntropyCalibration2"]
    lines += [f"{t}: {struct.pack('>f', s).hex()}" for t, s in scales.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_float16_scale_past_float16_range_is_a_scale_error() -> None:
    """A float32 scale above 65504 has no float16 form: rounded up it was inf (a Q/DQ at scale
    inf reads 0·inf = NaN); now a QuantizeError. 65504 itself is kept."""
    assert float(scale_as(np.float32(65504.0), np.float16)) == 65504.0
    for scale in (65510.0, 1e6):
        with pytest.raises(QuantizeError, match="beyond float16's largest value"):
            scale_as(np.float32(scale), np.float16)


@pytest.mark.parametrize("target", ["tensorrt", "onnxruntime"])
def test_float16_cache_scale_past_float16_range_is_refused(target: str, tmp_path: Path) -> None:
    """A calibration cache whose scale for a float16 activation passes float16's range (one
    written for another model): quantize emitted a Q/DQ at scale inf and the model computed
    NaN where the float model did not; now a one-line QuantizeError naming the tensor."""
    model = _float16_model()
    feeds = _photos(16, np.float16)
    options = {"accuracy_target": None, "keep_stem": False}
    _, report = quantize_with_report(model, feeds, target=target, **options)
    scales = {t: float(s) for t, s in report.scales.items()}
    assert "r1" in scales
    good = _cache(tmp_path / "good.cache", scales)
    quantize_with_report(model, None, target=target, from_cache=good, **options)  # as written
    bad = _cache(tmp_path / "bad.cache", {**scales, "r1": 1e6})
    with pytest.raises(QuantizeError, match=r"activation 'r1' is float16") as caught:
        quantize_with_report(model, None, target=target, from_cache=bad, **options)
    assert "\n" not in str(caught.value)


def _sigmoid_head(
    head: list[onnx.NodeProto],
    size: int = 16,
    y_shape: tuple[int, ...] = (1, 4, 16, 16),
    constants: dict[str, np.ndarray] | None = None,
) -> onnx.ModelProto:
    """x [1, 3, size, size] → Conv → Relu → Conv (c2, channels biased to -14, -6, 0, 12) →
    Sigmoid (s) → `head` → y, opset 13."""
    rng = np.random.default_rng(1)
    w1 = (rng.standard_normal((8, 3, 3, 3)) * 0.4).astype(np.float32)
    w2 = (rng.standard_normal((4, 8, 3, 3)) * 0.15).astype(np.float32)
    b2 = np.array([-14.0, -6.0, 0.0, 12.0], np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Sigmoid", ["c2"], ["s"], name="sigmoid"),
        *head,
    ]
    inits = [numpy_helper.from_array(v, k) for k, v in (("w1", w1), ("w2", w2), ("b2", b2))]
    inits.append(numpy_helper.from_array(np.array(2.0, np.float32), "two"))
    inits += [numpy_helper.from_array(v, k) for k, v in (constants or {}).items()]
    graph = helper.make_graph(
        nodes,
        "sigmoid_head",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(y_shape))],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


LOG_HEAD = [helper.make_node("Log", ["s"], ["y"], name="log")]
LINEAR_HEAD = [
    helper.make_node("Mul", ["s", "two"], ["s2"], name="mul"),
    helper.make_node("Sub", ["s2", "two"], ["y"], name="sub"),
]
OUTPUT_HEAD = [helper.make_node("Identity", ["s"], ["y"], name="out")]


@pytest.mark.parametrize(
    ("head", "clipped"), [(LOG_HEAD, False), (LINEAR_HEAD, True), (OUTPUT_HEAD, True)]
)
def test_sigmoid_input_clip_only_where_sigmoid_output_is_used_linearly(
    head: list[onnx.NodeProto], clipped: bool
) -> None:
    """Target onnxruntime clipped a tensor read only by Sigmoid to ±9.25 (σ is within 1e-4 of
    0 or 1 beyond). That holds for σ itself, not for what reads it: log σ(x) of the last Conv's
    channel biased to -14 read -9.25, 5.0 off (12.5 % RMS of the output's range). The clip
    now applies only where σ's output reaches graph outputs or quantized nodes through
    moves and (piecewise) linear ops (Mul, Sub, Identity...)."""
    model = _sigmoid_head(head)
    feeds = _photos(16, np.float32)
    q, _ = quantize_with_report(
        model, feeds, target="onnxruntime", accuracy_target=None, pipeline=False
    )
    ref, got = session(model, level="disable"), session(q, level="disable")
    for feed in feeds:
        want, have = run(ref, feed)["y"], run(got, feed)["y"]
        span = float(want.max() - want.min())
        # the quantization error of c2 (uint8, ~26 / 255 a step), not the clip's
        assert float(np.abs(have - want).max()) < 0.05 * span
    assert ("c2" in plan(model, "onnxruntime", Graph(model)).bounds) is clipped


def _float16_from_if_body() -> onnx.ModelProto:
    """x (float32) → If (both branches scale x and Cast it to float16) → Reshape → MatMul of
    it by its own transpose → Cast to float32 → y, opset 13: the main graph's float16 tensors
    come from the If, and nothing in the main graph declares or casts to float16."""

    def branch(name: str, factor: str) -> onnx.GraphProto:
        nodes = [
            helper.make_node("Mul", ["x", factor], [f"{name}_m"], name=f"{name}_mul"),
            helper.make_node("Cast", [f"{name}_m"], [name], name=f"{name}_cast", to=10),
        ]
        out = helper.make_tensor_value_info(name, TensorProto.FLOAT16, [1, 3, 16, 16])
        return helper.make_graph(nodes, name, [], [out])

    nodes = [
        helper.make_node("ReduceMean", ["x"], ["m"], name="mean", keepdims=0),
        helper.make_node("Greater", ["m", "half"], ["cond"], name="greater"),
        helper.make_node(
            "If",
            ["cond"],
            ["f16"],
            name="if",
            then_branch=branch("then_out", "one"),
            else_branch=branch("else_out", "two"),
        ),
        helper.make_node("Reshape", ["f16", "shape"], ["r"], name="reshape"),
        helper.make_node("Transpose", ["r"], ["rt"], name="transpose", perm=[0, 2, 1]),
        helper.make_node("MatMul", ["r", "rt"], ["mm"], name="matmul"),
        helper.make_node("Cast", ["mm"], ["y"], name="to_float", to=TensorProto.FLOAT),
    ]
    inits = {
        "half": np.array(0.45, np.float32),
        "one": np.array(1.0, np.float32),
        "two": np.array(2.0, np.float32),
        "shape": np.array([1, 48, 16], np.int64),
    }
    graph = helper.make_graph(
        nodes,
        "f16_if",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 48, 48])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


@pytest.mark.parametrize("target", ["tensorrt", "onnxruntime"])
def test_float16_made_in_an_if_body_gets_float16_qdq(target: str) -> None:
    """float16 only inside If branches: has_float16 looked at the main graph alone, so the
    model stayed at opset 13 and the If's float16 outputs got float32-scale Q/DQ, which onnx
    rejects ("the quantized model fails onnx.checker: ... unsupported type: tensor(float16)").
    Bodies are looked at now: the model is raised to opset 19 and quantized."""
    model = _float16_from_if_body()
    feeds = _photos(16, np.float32)
    q, report = quantize_with_report(model, feeds, target=target, accuracy_target=None)
    assert "matmul" in report.quantized_nodes
    assert next(o.version for o in q.opset_import if o.domain in ("", "ai.onnx")) >= 19
    onnx.checker.check_model(q, full_check=True)
    ref, got = session(model, level="disable"), session(q, level="disable")
    for feed in feeds:
        want, have = run(ref, feed)["y"], run(got, feed)["y"]
        assert float(np.abs(have - want).max()) < 0.03 * float(np.abs(want).max())


def test_sigmoid_input_clip_not_under_a_reduce_sum() -> None:
    """A ReduceSum adds σ's change from the ±9.25 clip (up to 9.6e-5) once per element: the
    soft count of channel 0 (biased to -14, σ ≈ 1e-6 everywhere) over a 64x64 map read 0.39
    instead of ~0.004. ReduceSum no longer counts as a linear reader of σ."""
    head = [helper.make_node("ReduceSum", ["s", "axes"], ["y"], name="count", keepdims=0)]
    model = _sigmoid_head(head, 64, (1, 4), {"axes": np.array([2, 3], np.int64)})
    feeds = _photos(64, np.float32)
    q, _ = quantize_with_report(
        model, feeds, target="onnxruntime", accuracy_target=None, pipeline=False
    )
    ref, got = session(model, level="disable"), session(q, level="disable")
    for feed in feeds:
        want, have = run(ref, feed)["y"], run(got, feed)["y"]
        assert abs(float(have[0, 0] - want[0, 0])) < 0.05
    assert "c2" not in plan(model, "onnxruntime", Graph(model)).bounds


def test_output_read_only_by_a_body_gets_no_dangling_dequantize() -> None:
    """Target onnxruntime quantizes a planned node's output for its readers; a Conv output read
    only inside If branches (an outer-scope read) got a Q → DQ pair whose DQ nothing read (the
    If's inputs do not name it). Now no DQ is made for such a reader."""
    rng = np.random.default_rng(2)

    def branch(name: str, op: str) -> onnx.GraphProto:
        out = helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, 8, 16, 16])
        return helper.make_graph([helper.make_node(op, ["c2"], [name])], name, [], [out])

    weights = {
        "w1": (rng.standard_normal((8, 3, 3, 3)) * 0.4).astype(np.float32),
        "w2": (rng.standard_normal((8, 8, 3, 3)) * 0.15).astype(np.float32),
        "w3": (rng.standard_normal((4, 8, 1, 1)) * 0.3).astype(np.float32),
        "half": np.array(0.45, np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("ReduceMean", ["x"], ["m"], name="mean", keepdims=0),
        helper.make_node("Greater", ["m", "half"], ["cond"], name="greater"),
        helper.make_node(
            "If",
            ["cond"],
            ["branch"],
            name="if",
            then_branch=branch("then_out", "Relu"),
            else_branch=branch("else_out", "Neg"),
        ),
        helper.make_node("Conv", ["branch", "w3"], ["y"], name="conv3"),
    ]
    graph = helper.make_graph(
        nodes,
        "body_reader",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 16, 16])],
        [numpy_helper.from_array(v, k) for k, v in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    feeds = _photos(16, np.float32)
    q, report = quantize_with_report(
        model, feeds, target="onnxruntime", accuracy_target=None, pipeline=False
    )
    assert "conv2" in report.quantized_nodes
    read = {t for n in q.graph.node for t in n.input} | {o.name for o in q.graph.output}
    for n in q.graph.node:
        for a in n.attribute:  # what the If's branches read from the main graph
            for g in [a.g] if a.type == onnx.AttributeProto.GRAPH else []:
                read |= {t for b in g.node for t in b.input}
    unread = [n.name for n in q.graph.node if not any(o in read for o in n.output)]
    assert unread == []
    ref, got = session(model, level="disable"), session(q, level="disable")
    for feed in feeds:
        want, have = run(ref, feed)["y"], run(got, feed)["y"]
        assert float(np.abs(have - want).max()) < 0.05 * float(np.abs(want).max())
