"""materialize-fusion-groups keeps a tensor whose value_info states its shape out of the
function body (a function output): onnxruntime inlines a model-local function under fresh names
and keeps none of the function's value_info, so a shape stated only there is lost to its
optimizer, whose fusions read shapes (khmer_seg at ORT_ENABLE_ALL: 2 of 5
SkipLayerNormalizations were not made, outputs 1.4e-6 apart)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from graphopt.ir import Graph, load_model
from graphopt.passes.base import PassContext
from graphopt.passes.fusion_functions import MaterializeFusionGroups

from .fusion_models import build, run_at


def _materialize(model: onnx.ModelProto) -> onnx.ModelProto:
    graph = Graph(load_model(model))
    assert MaterializeFusionGroups().run(graph, PassContext()).changed
    out = graph.commit()
    onnx.checker.check_model(out, full_check=True)
    return out


def test_a_stated_shape_stays_on_a_graph_tensor():
    # r's shape comes from a run-time input: only its value_info knows it is [1, N, 4].
    model = build(
        """
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[1,N,4] x, int64[3] shp) => (float[1,N,4] y) {
          a = Relu(x)
          r = Reshape(a, shp)
          y = Sigmoid(r)
        }
        """
    )
    model.graph.value_info.extend(
        [
            onnx.helper.make_tensor_value_info("r", onnx.TensorProto.FLOAT, [1, "N", 4]),
            onnx.helper.make_tensor_value_info("a", onnx.TensorProto.FLOAT, None),
        ]
    )
    out = _materialize(model)
    (function,) = out.functions
    assert [n.op_type for n in function.node] == ["Relu", "Reshape", "Sigmoid"]
    assert list(function.output) == ["r", "y"]  # r stays visible, with its stated shape
    assert [v.name for v in function.value_info] == ["a"]  # a states no shape: inside
    stated = {v.name: v for v in out.graph.value_info}
    assert stated["r"] == model.graph.value_info[0]
    feeds = {
        "x": np.linspace(-2, 2, 12, dtype=np.float32).reshape(1, 3, 4),
        "shp": np.array([1, 3, 4], np.int64),
    }
    for level in ("disable", "all"):
        assert (
            run_at(out, feeds, level)["y"].tobytes() == run_at(model, feeds, level)["y"].tobytes()
        )


@pytest.mark.realmodel
def test_khmer_seg_runs_identically_at_ort_enable_all(real_model, real_feeds):
    # khmer_seg's value_info states (1, seq, 192) where inference finds other symbols.
    model = onnx.load(str(real_model("khmer_seg")))
    out = _materialize(model)
    assert len(out.functions) >= 30
    for feeds in real_feeds("khmer_seg", 2):
        for level in ("disable", "all"):
            want, got = run_at(model, feeds, level), run_at(out, feeds, level)
            assert list(got) == list(want)
            for name, value in want.items():
                assert got[name].tobytes() == value.tobytes(), (level, name)
