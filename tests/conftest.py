"""Shared fixtures: tiny models built in code, and the real detectors (cached, marked)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from graphopt.backends.onnxruntime import run as ort_run


def _newest_ir_onnxruntime_reads() -> int:
    """The newest IR version the installed onnxruntime loads: onnx can be newer than it (onnx
    1.23 stamps IR 14, onnxruntime 1.30 reads up to 13)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    for ir in range(onnx.IR_VERSION, 8, -1):
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=ir)
        try:
            ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        except Exception:  # "Unsupported model IR version": try the one before
            continue
        return ir
    return 8


def _cap_test_models_ir_version() -> None:
    """Models the tests build with onnx.helper.make_model (no ir_version given) get the newest
    IR the installed onnxruntime reads, so the suite runs where onnx is ahead of onnxruntime.
    graphopt's own make_model calls always name an IR version (test_ort_probes checks that), so
    this cannot hide a library model an older onnxruntime refuses."""
    readable = _newest_ir_onnxruntime_reads()
    if readable >= onnx.IR_VERSION:
        return
    make_model = onnx.helper.make_model

    def capped(graph: onnx.GraphProto, **kwargs: object) -> onnx.ModelProto:
        model = make_model(graph, **kwargs)
        if "ir_version" not in kwargs:
            model.ir_version = readable
        return model

    onnx.helper.make_model = capped


_cap_test_models_ir_version()


def onnxruntime_loads_opset(opset: int) -> bool:
    """Whether the installed onnxruntime loads a model at default-domain `opset` (1.23.2, the
    newest for Python 3.10, stops at 23)."""
    from graphopt.passes.fuse_patterns import _onnxruntime_loads

    return _onnxruntime_loads(opset, 11)


# a test whose subject is an opset-24 op (Swish) running in onnxruntime
needs_onnxruntime_opset_24 = pytest.mark.skipif(
    not onnxruntime_loads_opset(24), reason="the installed onnxruntime loads no opset 24"
)


def assert_same_outputs(
    original: onnx.ModelProto,
    rewritten: onnx.ModelProto,
    feeds: dict[str, np.ndarray],
    rtol: float = 1e-4,
    atol: float = 1e-5,
) -> None:
    """Run both models in onnxruntime on `feeds` and compare every output (fp32 tolerances)."""
    a = ort_run(original, feeds)
    b = ort_run(rewritten, feeds)
    assert list(a) == list(b), "output names or order changed"
    for name in a:
        assert a[name].dtype == b[name].dtype, name
        assert a[name].shape == b[name].shape, name
        np.testing.assert_allclose(b[name], a[name], rtol=rtol, atol=atol, err_msg=name)


@pytest.fixture(scope="session")
def real_model():
    """`real_model("common_det")` → path of the cached real detector."""
    from graphopt.realmodels import fetch_model

    return fetch_model


@pytest.fixture(scope="session")
def real_feeds():
    """`real_feeds("layout_cdla", n)` → n feeds preprocessed from real photographs."""
    from graphopt.realmodels import model_inputs

    cache: dict = {}

    def get(name: str, count: int = 2):
        key = (name, count)
        if key not in cache:
            cache[key] = model_inputs(name, count)
        return cache[key]

    return get
