"""ort-cpu's NCHWc guard moves the graph's tensors into the If's branches: the quantization
annotations and value infos that name them follow them there, and the ones naming what stays in
the outer scope (graph inputs, initializers, the If's outputs) stay.

On the parent the top-level graph kept an annotation naming a tensor only a branch computes
(an annotation must name a tensor of its graph), and dropped the value info of a graph output
(the If still computes it there: the other pipelines keep it)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

import graphopt
from graphopt.backends.onnxruntime import session
from graphopt.passes.nchwc_fallback import branches, with_block_size
from graphopt.passes.ort_nchwc import OrtNchwcLayout
from graphopt.pipeline import make_pipeline
from tests.test_pass_ort_nchwc import BLOCK, needs_nchwc

RNG = np.random.default_rng(27)
F = onnx.TensorProto.FLOAT


def annotated() -> onnx.ModelProto:
    """x → Conv → h → Relu → r → Conv → y, every tensor annotated with scale tensor S."""
    nodes = [
        helper.make_node("Conv", ["x", "W0", "B0"], ["h"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Conv", ["r", "W1"], ["y"], pads=[1, 1, 1, 1]),
    ]
    inits = {
        "W0": RNG.standard_normal((16, 16, 3, 3)).astype(np.float32) / 12,
        "B0": RNG.standard_normal(16).astype(np.float32),
        "W1": RNG.standard_normal((16, 16, 3, 3)).astype(np.float32) / 12,
        "S": np.array(0.5, np.float32),
    }
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", F, [1, 16, 8, 8])],
        [helper.make_tensor_value_info("y", F, [1, 16, "h", "w"])],  # value_info says more
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
        value_info=[helper.make_tensor_value_info(n, F, [1, 16, 8, 8]) for n in ("r", "y")],
    )
    for tensor in ("x", "r", "y", "W0"):
        note = graph.quantization_annotation.add()
        note.tensor_name = tensor
        entry = note.quant_parameter_tensor_names.add()
        entry.key, entry.value = "SCALE_TENSOR", "S"
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m


def guarded(m: onnx.ModelProto) -> onnx.ModelProto:
    pipe = make_pipeline("t", [OrtNchwcLayout(fallback=True, block_size=8)])
    return graphopt.optimize(m, pipe)


def defined(graph: onnx.GraphProto) -> set[str]:
    names = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    return names | {o for n in graph.node for o in n.output}


def test_annotations_name_tensors_of_their_graph():
    out = guarded(annotated())
    onnx.checker.check_model(out, full_check=True)
    parts = branches(out)
    assert parts is not None
    blocked, portable = parts
    top = [a.tensor_name for a in out.graph.quantization_annotation]
    assert top == ["x", "y", "W0"]  # what the outer scope still holds, in the model's order
    assert set(top) <= defined(out.graph)
    # r is computed in the NCHW branch only (renamed there): its annotation went with it
    (note,) = portable.quantization_annotation
    assert note.tensor_name in defined(portable) and note.tensor_name.startswith("r")
    assert [(e.key, e.value) for e in note.quant_parameter_tensor_names] == [("SCALE_TENSOR", "S")]
    assert list(blocked.quantization_annotation) == []  # its r is blocked, under another name


def test_value_info_of_a_graph_output_stays():
    out = guarded(annotated())
    parts = branches(out)
    assert parts is not None
    infos = {v.name: v for v in out.graph.value_info}
    assert list(infos) == ["y"]  # r is described in the branch that computes it
    assert [d.dim_value for d in infos["y"].type.tensor_type.shape.dim] == [1, 16, 8, 8]
    portable = parts[1]  # its Relu's and last Conv's outputs: r and y renamed
    assert [v.name for v in portable.value_info] == [n.output[0] for n in portable.node[1:]]


@needs_nchwc
def test_guarded_annotated_model_runs_on_both_branches():
    original = annotated()
    pipe = make_pipeline("t", [OrtNchwcLayout(fallback=True)])
    out = graphopt.optimize(original, pipe)
    feeds = {"x": RNG.standard_normal((1, 16, 8, 8)).astype(np.float32)}
    expected = session(original, threads=1, level="disable").run(None, feeds)[0]
    for block in (BLOCK, BLOCK + 1):
        got = session(with_block_size(out, block), threads=1, level="disable").run(None, feeds)
        np.testing.assert_allclose(got[0], expected, rtol=1e-4, atol=1e-5)
