"""split(merge([a, b]), task=...) gives the task's tensors and nodes their own names back.

A shared tensor or node keeps the first model's name in the merged model, and a tensor or node
of a later model whose name another model took gets the task's prefix: split --task gave the
task those merged names, so PP-OCRv5 det split back from a merge with PP-OCRv4 det had
'b_batch_norm2d_0.w_0' for its 'batch_norm2d_0.w_0' (79 tensors), and a hint, a quantization
setting or a node exclusion naming the model's own tensors or nodes found none. merge records
the names ("tensor_names", "node_names" in the task table) and split gives them back, all at
once (a swap of two names too); a name that would be taken twice stays merged.
What stays merged: constants of one value a model held under two names (merge keeps one).
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
from onnx import parser

from graphopt.ir.graph import scope_names
from graphopt.multitask import merge, split
from graphopt.multitask.merge import METADATA_KEY
from graphopt.realmodels import fetch_model, model_inputs


def _run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def _groups(model: onnx.ModelProto) -> list[set[str]]:
    """The tensors the model computes or holds, one group per tensor merge keeps: a node's
    output, or the names of the constants of one value (dtype, shape and bytes: merge keeps
    one of them, under one of their names)."""
    from graphopt.ir import constant_node_value
    from graphopt.multitask.hashing import value_digest

    groups = [{o} for n in model.graph.node if n.op_type != "Constant" for o in n.output]
    by_value: dict[str, set[str]] = {}
    for t in model.graph.initializer:
        by_value.setdefault(value_digest(onnx.numpy_helper.to_array(t)), set()).add(t.name)
    for n in model.graph.node:
        if n.op_type == "Constant":
            value = np.asarray(constant_node_value(n))
            by_value.setdefault(value_digest(value), set()).add(n.output[0])
    return groups + list(by_value.values())


def test_real_task_gets_its_tensor_names_back() -> None:
    paths = [str(fetch_model("ppocr_det")), str(fetch_model("ppocrv5_det"))]
    merged = merge(paths, prefixes=["a_", "b_"])
    own = onnx.load(paths[1])
    back = split(merged, task="b_")
    got = {o for n in back.graph.node for o in n.output} | {t.name for t in back.graph.initializer}
    lost = [g for g in _groups(own) if not g & got]
    assert not lost, lost[:5]
    assert "batch_norm2d_0.w_0" in got  # a weight (a Constant) ppocr_det names alike
    for feeds in model_inputs("ppocrv5_det", 2):
        for a, b in zip(_run(own, feeds), _run(back, feeds), strict=True):
            assert np.array_equal(a, b)


A = parser.parse_model(
    '<ir_version: 8, opset_import: ["" : 17]>\n'
    "g (float[2,3] x) => (float[2,3] y) { t = Relu(x) \n y = Neg(t) }"
)
B = parser.parse_model(
    '<ir_version: 8, opset_import: ["" : 17]>\n'
    "g (float[2,3] x) => (float[2,3] y) { u = Relu(x) \n t = Sigmoid(u) \n y = Abs(t) }"
)
for n, name in zip(A.graph.node, ["relu", "neg"], strict=True):
    n.name = name
for n, name in zip(B.graph.node, ["first", "relu", "abs"], strict=True):
    n.name = name


def test_names_swap_back() -> None:
    # B's u is A's t (shared, merged "t"); B's own t is merged "m1_t": t and u swap back
    merged = merge([A, B])
    back = split(merged, task="m1_")
    assert [(n.name, list(n.input), list(n.output)) for n in back.graph.node] == [
        (n.name, list(n.input), list(n.output)) for n in B.graph.node
    ]
    x = np.array([[1, -2, 3], [-4, 5, -6]], np.float32)
    assert np.array_equal(_run(back, {"x": x})[0], _run(B, {"x": x})[0])
    onnx.checker.check_model(back, full_check=True)
    # the merged names are kept with strip_prefix, as the inputs' are
    kept = split(merged, task="m1_", strip_prefix="")
    assert {o for n in kept.graph.node for o in n.output} >= {"t", "m1_t"}


def test_a_tensor_moved_out_of_an_outputs_way_gets_its_name() -> None:
    # C's output t is merged m1_t, and its u is A's t (shared): split renamed that t out of the
    # output's way (t_1) before the names came back
    c = parser.parse_model(
        '<ir_version: 8, opset_import: ["" : 17]>\n'
        "g (float[2,3] x) => (float[2,3] t) { u = Relu(x) \n t = Sigmoid(u) }"
    )
    back = split(merge([A, c]), task="m1_")
    assert [(list(n.input), list(n.output)) for n in back.graph.node] == [
        (list(n.input), list(n.output)) for n in c.graph.node
    ]
    onnx.checker.check_model(back, full_check=True)


def test_a_clash_keeps_the_merged_names() -> None:
    merged = merge([A, B])
    for p in merged.metadata_props:
        if p.key == METADATA_KEY:
            table = json.loads(p.value)
            table["m1_"]["tensor_names"]["m1_t"] = "u"  # both would be u
            table["m1_"]["node_names"]["abs"] = "first"
            p.value = json.dumps(table)
    back = split(merged, task="m1_")
    assert {o for n in back.graph.node for o in n.output} == {"t", "m1_t", "y"}
    assert [n.name for n in back.graph.node] == ["relu", "m1_relu", "abs"]
    onnx.checker.check_model(back, full_check=True)


def test_a_name_sibling_bodies_share_stays_merged_there() -> None:
    # silero_vad's If branches both define _v_118: merge named one a__v_118, which cannot be
    # _v_118 again beside the other branch's (every other name comes back)
    path = str(fetch_model("silero_vad"))
    merged = merge([path, str(fetch_model("silero_vad_v6"))], prefixes=["a_", "b_"])
    back = split(merged, task="a_")
    onnx.checker.check_model(back, full_check=True)
    own = scope_names(onnx.load(path).graph)
    mine = scope_names(back.graph)
    assert own - mine == {"_v_118"} or own <= mine, sorted(own - mine)[:5]
    for feeds in model_inputs("silero_vad", 2):
        for a, b in zip(_run(onnx.load(path), feeds), _run(back, feeds), strict=True):
            assert np.array_equal(a, b)
