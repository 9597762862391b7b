"""H186: what `merge` keeps of the source graphs' own fields.

The merged graph is made anew (`make_graph`): it had no doc string, no metadata props (IR 10)
and no quantization annotations, though the sources had them; a shared tensor whose
value_info two models declared with the same type lost its value_info when only one of them
gave it a doc string, and a merged input the later model's doc string. Now the graph's doc
string is the first model's that has one, its props merged as the model props are (a later
model's other value under prefix + key), each annotation follows its tensor (the weights it
names come along), and a doc string of a value goes with the type they agree on (the first
model's that gives one)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from graphopt.multitask import merge, split


def _model(tag: str, graph_doc: str | None = None) -> onnx.ModelProto:
    graph = helper.make_graph(
        [
            helper.make_node("Neg", ["x"], ["y"], name="neg"),
            helper.make_node("Relu", ["x"], ["z"], name="relu"),
        ],
        f"graph {tag}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3]),
            helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 3]),
        ],
    )
    graph.doc_string = f"graph doc {tag}" if graph_doc is None else graph_doc
    graph.metadata_props.add(key="graph key", value=f"graph value {tag}")
    graph.metadata_props.add(key="shared key", value="same")
    for name, scale in (("y", 0.5), ("z", 0.25)):  # scales no node reads
        note = graph.quantization_annotation.add(tensor_name=name)
        note.quant_parameter_tensor_names.add(key="SCALE_TENSOR", value=f"{name}_scale")
        graph.initializer.append(numpy_helper.from_array(np.float32(scale), f"{name}_scale"))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    return model


def _notes(graph: onnx.GraphProto) -> dict[str, dict[str, float]]:
    """tensor → {annotation key: the value of the weight it names}."""
    weights = {t.name: float(numpy_helper.to_array(t)) for t in graph.initializer}
    return {
        a.tensor_name: {q.key: weights[q.value] for q in a.quant_parameter_tensor_names}
        for a in graph.quantization_annotation
    }


def _props(graph: onnx.GraphProto) -> list[tuple[str, str]]:
    return [(p.key, p.value) for p in graph.metadata_props]


def test_the_merged_graph_keeps_doc_string_props_and_annotations() -> None:
    a, b = _model("a"), _model("b")
    merged = merge([a, b])
    assert merged.graph.doc_string == "graph doc a"  # the first model's
    assert _props(merged.graph) == [
        ("graph key", "graph value a"),
        ("shared key", "same"),
        ("m1_graph key", "graph value b"),
    ]
    scales = {"SCALE_TENSOR": 0.5}, {"SCALE_TENSOR": 0.25}
    names = {t.name for t in merged.graph.initializer} | {o.name for o in merged.graph.output}
    assert _notes(merged.graph) == dict(
        zip(["m0_y", "m0_z", "m1_y", "m1_z"], scales * 2, strict=True)
    )
    assert all(a.tensor_name in names for a in merged.graph.quantization_annotation)
    feeds = {"x": np.array([[1.0, -2.0, 3.0]], np.float32)}
    got = ort.InferenceSession(merged.SerializeToString()).run(["m1_y", "m0_z"], feeds)
    np.testing.assert_array_equal(got[0], -feeds["x"])
    np.testing.assert_array_equal(got[1], np.maximum(feeds["x"], 0))


def test_agreeing_graphs_merge_losslessly() -> None:
    a, b = _model("a"), _model("a", graph_doc="")  # b says nothing: no disagreement
    merged = merge([a, b])
    assert merged.graph.doc_string == "graph doc a"
    assert _props(merged.graph) == _props(a.graph)


def test_split_of_each_task_gives_back_its_own_annotations() -> None:
    a, b = _model("a"), _model("b")
    merged = merge([a, b])
    for task, source in (("m0_", a), ("m1_", b)):
        part = split(merged, task=task)
        assert _notes(part.graph) == _notes(source.graph)
        assert part.graph.doc_string == source.graph.doc_string
        assert _props(part.graph) == _props(source.graph)
        onnx.checker.check_model(part, full_check=True)


def _chain(doc: str, input_doc: str = "") -> onnx.ModelProto:
    model = onnx.parser.parse_model("""
<ir_version: 8, opset_import: ["" : 17]>
g (float[1, 4] x) => (float[1, 4] y) {
  h = Relu(x)
  y = Neg(h)
}""")
    h = helper.make_tensor_value_info("h", TensorProto.FLOAT, [1, 4], doc_string=doc)
    model.graph.value_info.append(h)
    model.graph.input[0].doc_string = input_doc
    return model


def test_a_shared_value_keeps_its_value_info_and_the_doc_string_given() -> None:
    merged = merge([_chain(""), _chain("hidden features")])
    (h,) = merged.graph.value_info
    assert h.name == "h" and h.doc_string == "hidden features"
    assert [d.dim_value for d in h.type.tensor_type.shape.dim] == [1, 4]


def test_two_doc_strings_of_one_value_the_first_wins() -> None:
    merged = merge([_chain("first", "image a"), _chain("second", "image b")])
    assert [vi.doc_string for vi in merged.graph.value_info] == ["first"]
    assert [i.doc_string for i in merged.graph.input] == ["image a"]


def test_a_merged_input_takes_a_later_models_doc_string() -> None:
    merged = merge([_chain("", ""), _chain("", "the image, RGB")])
    assert [i.doc_string for i in merged.graph.input] == ["the image, RGB"]
