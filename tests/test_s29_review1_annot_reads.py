"""A rule run reads the graph's quantization annotations once, not once per rewrite: 783fc12
made each fold ask `Graph.annotated_names` (which constants may hold a computed one) and
`Graph.annotation_parameters` (which unread constants stay), each a walk over every
annotation, so fold-batchnorm over 1000 Conv+BN pairs with 3000 annotations took 17 s where
it took 0.3 s. A rewrite changes no annotation, so what they say holds for the whole run
(`RuleRunner._annotations`). The result is the same: the scales kept, no annotated constant
written over."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.ir import Graph
from tests.models_util import run

PAIRS = 12
READS = ("annotated_names", "annotation_parameters", "annotation_parameter_owners")


def _chain(pairs: int) -> onnx.ModelProto:
    """x → (Conv(W_i) → BN_i → Relu) × `pairs`; each Relu's output r_i is annotated with BN_i's
    own var_i as its scale (a [C] tensor the fold would take as storage for its bias), each
    W_i with w_s_i (a scale no node reads), and each Conv's output c_i (fused away) with
    c_s_i."""
    rng = np.random.default_rng(0)
    channels = 4
    inits, nodes = [], []
    notes: dict[str, tuple[str, str]] = {}
    prev = "x"
    for i in range(pairs):
        values = {
            f"W{i}": rng.standard_normal((channels, channels, 1, 1)),
            f"gamma{i}": rng.uniform(0.5, 2, channels),
            f"beta{i}": rng.standard_normal(channels),
            f"mean{i}": rng.standard_normal(channels),
            f"var{i}": rng.uniform(0.5, 2, channels),
            f"w_s{i}": np.full(channels, 0.01),
            f"c_s{i}": np.array(0.1),
        }
        inits += [numpy_helper.from_array(v.astype(np.float32), k) for k, v in values.items()]
        nodes += [
            helper.make_node("Conv", [prev, f"W{i}"], [f"c{i}"], name=f"conv{i}"),
            helper.make_node(
                "BatchNormalization",
                [f"c{i}", f"gamma{i}", f"beta{i}", f"mean{i}", f"var{i}"],
                [f"b{i}"],
                name=f"bn{i}",
            ),
            helper.make_node("Relu", [f"b{i}"], [f"r{i}"], name=f"relu{i}"),
        ]
        notes |= {
            f"r{i}": (f"var{i}", "zp"),
            f"W{i}": (f"w_s{i}", "zp"),
            f"c{i}": (f"c_s{i}", "zp"),
        }
        prev = f"r{i}"
    inits.append(numpy_helper.from_array(np.zeros(channels, np.uint8), "zp"))
    shape = [1, channels, 4, 4]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info(prev, TensorProto.FLOAT, shape)],
        inits,
    )
    for tensor, (scale, zero_point) in notes.items():
        note = graph.quantization_annotation.add()
        note.tensor_name = tensor
        for key, value in (("SCALE_TENSOR", scale), ("ZERO_POINT_TENSOR", zero_point)):
            entry = note.quant_parameter_tensor_names.add()
            entry.key, entry.value = key, value
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the Graph methods that walk the annotations, once per call."""
    calls: list[str] = []

    def counted(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(self: Graph, *args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            return method(self, *args, **kwargs)

        return wrapper

    for name in READS:
        method = getattr(Graph, name, None)
        if method is not None:
            monkeypatch.setattr(Graph, name, counted(name, method))
    return calls


def test_a_fold_run_reads_the_annotations_once(reads: list[str]) -> None:
    model = _chain(PAIRS)
    out = run(model, "fold-batchnorm")
    assert [n.op_type for n in out.graph.node] == ["Conv", "Relu"] * PAIRS
    # one read of each kind for the run (the parent: one of each per fold, 2 x PAIRS)
    assert len(reads) <= 2, reads


def test_the_folds_keep_the_annotated_scales_and_values() -> None:
    """What the annotations name after the run, read once: each r_i keeps var_i holding its
    values; W_i (written anew, not over) and c_i (fused away) go with their annotations, and
    so do the scales only those named."""
    model = _chain(PAIRS)
    out = run(model, "fold-batchnorm", "eliminate-dead-code")
    before = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    after = {t.name: numpy_helper.to_array(t) for t in out.graph.initializer}
    notes = {
        a.tensor_name: {e.key: e.value for e in a.quant_parameter_tensor_names}
        for a in out.graph.quantization_annotation
    }
    assert notes == {
        f"r{i}": {"SCALE_TENSOR": f"var{i}", "ZERO_POINT_TENSOR": "zp"} for i in range(PAIRS)
    }
    for i in range(PAIRS):
        np.testing.assert_array_equal(after[f"var{i}"], before[f"var{i}"])
        assert f"W{i}" not in after and f"w_s{i}" not in after and f"c_s{i}" not in after
    x = np.random.default_rng(1).standard_normal((1, 4, 4, 4)).astype(np.float32)
    want, got = (
        ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(
            None, {"x": x}
        )[0]
        for m in (model, out)
    )
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
