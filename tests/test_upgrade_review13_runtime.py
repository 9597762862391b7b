"""optimize(upgrade_opset=True) upgrades only to an opset the installed onnxruntime loads.

onnxruntime 1.23.2 (the newest for Python 3.10) stops at opset 23 / IR 11: upgrading an x·σ(x)
model to Swish's opset 24 (IR 12) made a model no session there loads (Python 3.10 suite:
test_pipeline_fuzz12's upgrade cases). Here onnxruntime is newer, so its refusal of opset 24 is
simulated."""

from __future__ import annotations

import logging

import numpy as np
import onnx
import onnxruntime
import pytest

import graphopt
from graphopt.passes import fuse_patterns

SILU = """<ir_version: 8, opset_import: ["" : 13]>
g (float[1, 4] x) => (float[1, 4] y) { s = Sigmoid(x)
                                       y = Mul(x, s) }"""


@pytest.fixture
def onnxruntime_up_to_opset_23(monkeypatch):
    real = onnxruntime.InferenceSession

    def session(model, *args, **kwargs):  # type: ignore[no-untyped-def]
        proto = onnx.load_from_string(model) if isinstance(model, bytes) else onnx.load(model)
        if any(o.domain in ("", "ai.onnx") and o.version > 23 for o in proto.opset_import):
            raise RuntimeError(
                "ONNX Runtime only *guarantees* support for models stamped with opset version 7 to 23"
            )
        return real(model, *args, **kwargs)

    monkeypatch.setattr(onnxruntime, "InferenceSession", session)
    loads = getattr(fuse_patterns, "_onnxruntime_loads", None)
    if loads is not None:
        loads.cache_clear()
        yield
        loads.cache_clear()
    else:
        yield


def test_no_upgrade_past_what_onnxruntime_loads(onnxruntime_up_to_opset_23, caplog):
    model = onnx.parser.parse_model(SILU)
    with caplog.at_level(logging.WARNING):
        result = graphopt.optimize(model, upgrade_opset=True)
    assert result.opset_import[0].version == 13
    assert [n.op_type for n in result.graph.node] == ["Sigmoid", "Mul"]
    assert "cannot load opset 24" in caplog.text
    x = np.linspace(-3, 3, 4, dtype=np.float32).reshape(1, 4)
    session = onnxruntime.InferenceSession(result.SerializeToString())
    np.testing.assert_allclose(session.run(None, {"x": x})[0], x / (1 + np.exp(-x)), 1e-6)


@pytest.mark.skipif(
    not fuse_patterns._onnxruntime_loads(24, 11), reason="this onnxruntime loads no opset 24"
)
def test_the_upgrade_still_happens_where_onnxruntime_loads_it():
    fuse_patterns._onnxruntime_loads.cache_clear()
    result = graphopt.optimize(onnx.parser.parse_model(SILU), upgrade_opset=True)
    assert result.opset_import[0].version == 24
    assert [n.op_type for n in result.graph.node] == ["Swish"]
