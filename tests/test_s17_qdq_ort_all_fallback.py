"""The accuracy search runs each candidate Q/DQ model in onnxruntime; at ORT_ENABLE_ALL
onnxruntime 1.32 cannot load a tensorrt-target model at opset 21+ whose MatMul of a 3-D
activation is followed by a bias Add (its MatMulAddFusion, QDQ propagation and S8→U8 rewrites
together: "output_dtype INT8 does not match y_zero_point type UINT8", onnxruntime#25526), so
`quantize` exited 2 on such models. The search now runs them at ORT_ENABLE_BASIC (the Q/DQ
model's own error, as where the fused int8 kernels are wrong) and says so once. (H152's find.)

The feeds are smooth deterministic patterns: the test checks that quantize runs and what it
says, not accuracy."""

from __future__ import annotations

import logging

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

import graphopt
from graphopt.backends.onnxruntime import session
from graphopt.errors import BackendError
from graphopt.quant import collect


def _head(opset: int) -> onnx.ModelProto:
    """x → Conv → Reshape [1, 8, 256] → Transpose → MatMul(W 8×16) → Add(b) → y."""
    w = np.linspace(-1, 1, 8 * 3 * 3 * 3, dtype=np.float32).reshape(8, 3, 3, 3)
    big_w = np.linspace(-0.5, 0.5, 8 * 16, dtype=np.float32).reshape(8, 16)
    b = np.linspace(-0.1, 0.1, 16, dtype=np.float32)
    nodes = [
        h.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        h.make_node("Reshape", ["c", "shape"], ["r"]),
        h.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 1]),
        h.make_node("MatMul", ["t", "W"], ["m"]),
        h.make_node("Add", ["m", "b"], ["y"]),
    ]
    inits = [
        nh.from_array(w, "w"),
        nh.from_array(big_w, "W"),
        nh.from_array(b, "b"),
        nh.from_array(np.array([1, 8, 256], np.int64), "shape"),
    ]
    graph = h.make_graph(
        nodes,
        "head",
        [h.make_tensor_value_info("x", T.FLOAT, [1, 3, 16, 16])],
        [h.make_tensor_value_info("y", T.FLOAT, [1, 256, 16])],
        initializer=inits,
    )
    return h.make_model(graph, opset_imports=[h.make_opsetid("", opset)])


def _feeds(n: int = 4) -> list[dict[str, np.ndarray]]:
    yy, xx = np.meshgrid(np.linspace(-1, 1, 16), np.linspace(-1, 1, 16), indexing="ij")
    feeds = []
    for k in range(n):
        planes = [np.sin(3 * xx + k) * np.cos(2 * yy), xx * yy + 0.1 * k, np.cos(xx - yy * k)]
        feeds.append({"x": np.stack(planes).astype(np.float32)[None]})
    return feeds


def _loads_at_all(model: onnx.ModelProto) -> bool:
    try:
        session(model, level="all")
    except BackendError:
        return False
    return True


def test_quantize_runs_where_onnxruntime_cannot_load_the_qdq_model_at_enable_all(
    caplog, monkeypatch
):
    monkeypatch.setattr(collect, "_WARNED_LEVELS", set())  # said once per process
    # the search tries ORT_ENABLE_ALL first where the fused int8 kernels are right; where they
    # are not (this CPU without VNNI) it starts at ORT_ENABLE_BASIC and has nothing to fall back
    # from: taken as right, so that the fallback is tested on every CPU
    monkeypatch.setattr(collect, "fused_int8_conv_problem", lambda weight_max=127: None)
    with caplog.at_level(logging.WARNING, logger="graphopt.quant"):
        quantized = graphopt.quantize(_head(21), _feeds(), target="tensorrt")
    onnx.checker.check_model(quantized, full_check=True)
    assert {"QuantizeLinear", "DequantizeLinear", "MatMul"} <= {
        n.op_type for n in quantized.graph.node
    }
    said = [r.getMessage() for r in caplog.records if "ORT_ENABLE_BASIC" in r.getMessage()]
    if _loads_at_all(quantized):  # an onnxruntime without the bug: nothing to fall back from
        assert not said
    else:
        assert len(said) == 1 and "y_zero_point type UINT8" in said[0], said
    x = _feeds(1)[0]
    (want,) = session(_head(21), level="disable").run(None, x)
    (got,) = session(quantized, level="basic").run(None, x)
    assert np.abs(got - want).max() <= 0.05 * np.abs(want).max()


@pytest.mark.parametrize("opset", [17, 20])
def test_below_opset_21_the_search_runs_at_enable_all_as_before(opset, caplog):
    with caplog.at_level(logging.WARNING, logger="graphopt.quant"):
        quantized = graphopt.quantize(_head(opset), _feeds(), target="tensorrt")
    assert _loads_at_all(quantized)
    assert not [r for r in caplog.records if "ORT_ENABLE_BASIC" in r.getMessage()]
