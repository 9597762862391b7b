"""Typing a body's outer reads leaves the whole graph's shape inference deferred (H197).

`graphopt.subgraphs` infers, for typing the outer values a body reads, only the nodes they
depend on, and defers the whole graph's inference until a pass asks (session 13). Since
33237ba, deciding which outer dims to withhold from a body (those ONNX inference counts
otherwise than onnxruntime: `dims_inference_counts_apart`) asked for the whole graph's
facts once a graph held a suspect node (Resize, a ceil_mode pool): one more inference of
the whole graph where no pass asked for one (layout_cdla with an If reading its input: 2
inferences over 618 nodes, was 1 over 0). The places now come from the facts the bodies are
typed from; the dims withheld are the same.
"""

from __future__ import annotations

import itertools

import numpy as np
import onnx
import onnx.helper as oh
import pytest

import graphopt
from graphopt.ir.graph import node_count
from tests.conftest import assert_same_outputs
from tests.test_inference_apart_fold_body import X, _body_model

F, B = onnx.TensorProto.FLOAT, onnx.TensorProto.BOOL
vi = oh.make_tensor_value_info


def _inferred(monkeypatch: pytest.MonkeyPatch, model: onnx.ModelProto, pipeline: str):
    """optimize(model, pipeline), and the node counts ONNX shape inference was run over."""
    real = onnx.shape_inference.infer_shapes
    seen: list[int] = []

    def counting(m: onnx.ModelProto, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(node_count(m.graph))
        return real(m, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(onnx.shape_inference, "infer_shapes", counting)
        return graphopt.optimize(model, pipeline), seen


def _with_side_if(model: onnx.ModelProto, reads: str) -> onnx.ModelProto:
    """`model` and side_z = If(side_cond) {Relu(reads)} else {Identity(reads)}, an output."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    then = oh.make_graph([oh.make_node("Relu", [reads], ["t"])], "then", [], [vi("t", F, None)])
    other = oh.make_graph(
        [oh.make_node("Identity", [reads], ["e"])], "else", [], [vi("e", F, None)]
    )
    out.graph.node.append(
        oh.make_node(
            "If", ["side_cond"], ["side_z"], "side_if", then_branch=then, else_branch=other
        )
    )
    out.graph.input.append(vi("side_cond", B, []))
    out.graph.output.append(vi("side_z", F, None))
    return out


@pytest.mark.realmodel
def test_an_if_reading_a_detectors_input_costs_no_inference_of_the_detector(
    real_model, real_feeds, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    detector = onnx.load(real_model("layout_cdla"))  # (two Resize: suspects)
    model = _with_side_if(detector, detector.graph.input[0].name)
    optimized, seen = _inferred(monkeypatch, model, "default")
    assert seen == [0]  # the body's one outer read is a graph input: nothing to infer
    body = next(a.g for a in optimized.graph.node[-1].attribute if a.name == "then_branch")
    assert [n.op_type for n in body.node] == ["Relu"]
    # the detector is optimized as it is alone (the default pipeline asks for no facts there)
    assert len(optimized.graph.node) == len(graphopt.optimize(detector).graph.node) + 1
    for feeds in real_feeds("layout_cdla", 1):
        for cond in (True, False):
            assert_same_outputs(model, optimized, {**feeds, "side_cond": np.array(cond)})


def _body_model_and_more() -> onnx.ModelProto:
    """test_inference_apart_fold_body's: y = ceil_mode MaxPool(x) (onnxruntime [1, 1, 2, 2],
    inference [1, 1, 3, 3]), an If whose branches Reshape y to [1, 1, 2, 2]; and a chain of
    Relu over another input, so that y's own nodes are fewer than half the graph's."""
    model = _body_model()
    g = model.graph
    g.input.append(vi("v", F, [2, 3]))
    names = ["v", *(f"r{k}" for k in range(4))]
    g.node.extend(oh.make_node("Relu", [a], [b]) for a, b in itertools.pairwise(names))
    g.output.append(vi(names[-1], F, [2, 3]))
    return model


@pytest.mark.parametrize("pipeline", ["default", "tensorrt"])
def test_a_body_reading_a_ceil_mode_pool_is_still_told_nothing_of_its_dims(
    pipeline: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _body_model_and_more()
    optimized, seen = _inferred(monkeypatch, model, pipeline)
    # the pool alone (and the bodies' own runs), not the whole graph once more
    assert max(seen) < len(model.graph.node), seen
    onnx.checker.check_model(optimized, full_check=True)
    for node in optimized.graph.node:
        if node.op_type == "If":
            for a in node.attribute:
                assert "Reshape" in [n.op_type for n in a.g.node]  # y's dims were withheld
    v = np.arange(6, dtype=np.float32).reshape(2, 3) - 2
    for c in (True, False):
        assert_same_outputs(model, optimized, {"x": X, "c": np.array(c), "v": v})
