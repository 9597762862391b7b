"""H180: what `split` keeps of the source model (the project promises lossless model I/O).

The model's doc string, model_version, producer name and version, domain, graph name and graph
doc string were kept already (H164; guarded here). Lost were the graph's own metadata props
(GraphProto.metadata_props, IR 10) and the quantization annotations of the tensors kept: the
split graph is made anew, and `make_graph` takes neither; and `merge` recorded no graph props
in its task table, so `split(task=...)` could not give them back."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from graphopt.multitask import merge, split


def _model(tag: str) -> onnx.ModelProto:
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
    graph.doc_string = f"graph doc {tag}"
    graph.metadata_props.add(key="graph key", value=f"graph value {tag}")
    for name in ("y", "z"):  # their scales are weights no node reads
        note = graph.quantization_annotation.add(tensor_name=name)
        note.quant_parameter_tensor_names.add(key="SCALE_TENSOR", value=f"{name}_scale")
        graph.initializer.append(numpy_helper.from_array(np.float32(0.5), f"{name}_scale"))
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17)],
        producer_name=f"producer {tag}",
        producer_version="1.2",
        doc_string=f"model doc {tag}",
        model_version=7,
        domain="com.example",
    )
    model.ir_version = 10
    return model


def _fields(model: onnx.ModelProto) -> tuple[object, ...]:
    return (
        model.doc_string,
        model.model_version,
        model.producer_name,
        model.producer_version,
        model.domain,
        model.graph.name,
        model.graph.doc_string,
    )


def test_split_keeps_the_graphs_metadata_props_and_the_kept_tensors_annotations() -> None:
    source = _model("a")
    part = split(source, ["y"])
    assert _fields(part) == _fields(source)
    assert [(p.key, p.value) for p in part.graph.metadata_props] == [("graph key", "graph value a")]
    assert [a.tensor_name for a in part.graph.quantization_annotation] == ["y"]
    assert part.graph.quantization_annotation[0] == source.graph.quantization_annotation[0]
    assert [t.name for t in part.graph.initializer] == ["y_scale"]  # what it names, kept


def test_an_annotation_follows_its_renamed_output() -> None:
    source = _model("a")
    for node, output in zip(source.graph.node, source.graph.output, strict=True):
        old = output.name
        node.output[0] = output.name = "t_" + old
        for note in source.graph.quantization_annotation:
            if note.tensor_name == old:
                note.tensor_name = output.name
    part = split(source, ["t_z"], strip_prefix="t_")
    assert [o.name for o in part.graph.output] == ["z"]
    assert [a.tensor_name for a in part.graph.quantization_annotation] == ["z"]
    assert [t.name for t in part.graph.initializer] == ["z_scale"]


def test_a_scale_renamed_out_of_the_way_is_renamed_in_its_annotation() -> None:
    """An output renamed back to a name a kept weight has moves the weight to a fresh name:
    the annotation naming it follows."""
    source = _model("a")
    source.graph.node[0].output[0] = source.graph.output[0].name = "t_y_scale"
    source.graph.quantization_annotation[0].tensor_name = "t_y_scale"
    part = split(source, ["t_y_scale"], strip_prefix="t_")
    assert [o.name for o in part.graph.output] == ["y_scale"]
    (note,) = part.graph.quantization_annotation
    assert note.tensor_name == "y_scale"
    assert [t.name for t in part.graph.initializer] == ["y_scale_1"]
    assert note.quant_parameter_tensor_names[0].value == "y_scale_1"


def test_split_of_a_merge_task_gives_back_its_graphs_metadata_props() -> None:
    a, b = _model("a"), _model("b")
    del a.graph.metadata_props[:]  # a task without graph props gets none back
    merged = merge([a, b])
    back_a, back_b = split(merged, task="m0_"), split(merged, task="m1_")
    assert _fields(back_a) == _fields(a) and _fields(back_b) == _fields(b)
    assert list(back_a.graph.metadata_props) == []
    assert [(p.key, p.value) for p in back_b.graph.metadata_props] == [
        ("graph key", "graph value b")
    ]
