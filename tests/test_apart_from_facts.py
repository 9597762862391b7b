"""`noop.dims_inference_counts_apart` (b74cde3) ran an ONNX inference of its own every time
a pass had changed the graph: yolov8_nudenet's default run inferred 4 times instead of once
(slanet 9 instead of 6, captcha_crnn 7 instead of 3). The places it finds are the nodes the
shape facts' own first inference already corrects; the facts now keep them
(`ShapeFacts.apart_roots`), and live as long as the facts do. Oracle: the earlier
computation (a fresh inference over the graph as it is), written out here."""

from __future__ import annotations

import onnx
import pytest

import graphopt
from graphopt.analysis.runtime_shapes import inference_cuts, is_suspect
from graphopt.analysis.shapes import ShapeFacts, light_model
from graphopt.ir import Graph
from graphopt.passes.base import PassContext
from graphopt.passes.noop import dims_inference_counts_apart


def _fresh(graph: Graph) -> frozenset[str]:
    apart: set[str] = set()
    if any(is_suspect(n) for n in graph.nodes.values()):
        light = light_model(graph, ShapeFacts())
        inferred = onnx.shape_inference.infer_shapes(
            light, check_type=False, strict_mode=False, data_prop=True
        )
        stack = [o for k in inference_cuts(light, inferred) for o in light.graph.node[k].output]
        while stack:
            tensor = stack.pop()
            if tensor and tensor not in apart:
                apart.add(tensor)
                for user in graph.consumer_nodes(tensor):
                    stack.extend(user.output)
    return frozenset(apart)


POOLED = onnx.parser.parse_model(
    """<ir_version: 8, opset_import: ["" : 13]>
    g (float[1,1,4,4] x) => (float[a,b,c,d] z) <int64[4] t = {1,1,2,2}> {
        y = MaxPool<kernel_shape=[1,1], strides=[2,2], ceil_mode=1>(x)
        u = Relu(y)
        v = Reshape(u, t)
        w = MaxPool<kernel_shape=[1,1], strides=[1,1]>(x)
        z = Add(v, w) }"""
)


def test_the_apart_set_is_what_a_fresh_inference_finds() -> None:
    graph = Graph(POOLED)
    found = dims_inference_counts_apart(graph, PassContext())
    assert found == _fresh(graph) == {"y", "u", "v", "z"}


@pytest.mark.realmodel
@pytest.mark.parametrize(("name", "inferences"), [("yolov8_nudenet", 1), ("captcha_crnn", 3)])
def test_no_inference_of_its_own_after_each_change(name, inferences, real_model, monkeypatch):
    model = onnx.load(str(real_model(name)))
    graph = Graph(model)
    assert dims_inference_counts_apart(graph, PassContext()) == _fresh(graph)
    real = onnx.shape_inference.infer_shapes
    calls = []

    def counted(model, *args, **kwargs):
        calls.append(model.graph.name)
        return real(model, *args, **kwargs)

    monkeypatch.setattr(onnx.shape_inference, "infer_shapes", counted)
    graphopt.optimize(model)
    # (captcha_crnn's unpadded 3×3 pool could make a negative dim before its Slices: each
    # inference first infers that pool's stem alone, `inference_aborts._risk_settles_alone`)
    whole = [called for called in calls if called != "stem"]
    assert len(whole) == inferences  # the parent: 4 and 7
    assert len(calls) - len(whole) == (inferences if name == "captcha_crnn" else 0)
