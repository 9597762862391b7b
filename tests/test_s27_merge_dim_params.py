"""merge keeps each model's dim_params its own: a size two models name alike for unrelated
reasons is not one size in the merged model. x [N, 3] of one model and z [N, 5] of another
(N the other's sequence length) were both [N, ...] in the merged model, which then said the two
dims are equal (TensorRT's builder requires dims named alike equal at run time, and graphopt
check refused profiles where they differ). split --task gives the task its own names back."""

from __future__ import annotations

import onnx
from onnx import parser

import graphopt
from graphopt.multitask import task_table

A = parser.parse_model(
    """<ir_version: 8, opset_import: ["" : 17]>
    a (float[N, 3] x) => (float[N, 3] y) { y = Relu(x) }"""
)
# z's N is not a's N; x's K meets a's x, whose first dim a calls N
B = parser.parse_model(
    """<ir_version: 8, opset_import: ["" : 17]>
    b (float[N, 5] z, float[K, 3] x) => (float[N, 5] w, float[K, 3] v) {
      w = Sigmoid(z)
      v = Relu(x)
    }"""
)


def _dims(vi: onnx.ValueInfoProto) -> list[str | int]:
    return [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]


def test_an_unrelated_size_of_one_name_gets_the_prefix():
    merged = graphopt.merge([A, B], prefixes=["a_", "b_"])
    inputs = {vi.name: _dims(vi) for vi in merged.graph.input}
    outputs = {vi.name: _dims(vi) for vi in merged.graph.output}
    assert inputs == {"x": ["N", 3], "z": ["b_N", 5]}
    # b's K is the size of the input it shares with a: a's name for it
    assert outputs == {"a_y": ["N", 3], "b_w": ["b_N", 5], "b_v": ["N", 3]}
    assert task_table(merged)["b_"]["dim_params"] == {"N": "K", "b_N": "N"}
    onnx.checker.check_model(merged, full_check=True)


def test_split_gives_the_task_its_own_dim_params_back():
    merged = graphopt.merge([A, B], prefixes=["a_", "b_"])
    back = graphopt.split(merged, task="b_")
    assert [(vi.name, _dims(vi)) for vi in back.graph.input] == [("z", ["N", 5]), ("x", ["K", 3])]
    assert [(vi.name, _dims(vi)) for vi in back.graph.output] == [
        ("w", ["N", 5]),
        ("v", ["K", 3]),
    ]
    a = graphopt.split(merged, task="a_")
    assert [_dims(vi) for vi in (*a.graph.input, *a.graph.output)] == [["N", 3], ["N", 3]]


def test_shared_inputs_keep_one_name():
    merged = graphopt.merge([A, A], prefixes=["a_", "b_"])
    assert [_dims(vi) for vi in merged.graph.input] == [["N", 3]]
    assert {tuple(_dims(vi)) for vi in merged.graph.output} == {("N", 3)}
    assert "dim_params" not in task_table(merged)["b_"]


def test_the_named_dims_check_passes_on_the_merged_model():
    """graphopt check reads the merged model's names as TensorRT does: ranges of one name
    that do not overlap are an error."""
    from graphopt.backends.tensorrt import parse_shapes
    from graphopt.backends.trt_check import check_tensorrt

    merged = graphopt.merge([A, B], prefixes=["a_", "b_"])
    shapes = parse_shapes(["x:1x3,2x3,4x3", "z:8x5,16x5,32x5"])
    findings = check_tensorrt(merged, 10, shapes=shapes)
    assert not [f for f in findings if f.severity == "error"], findings


def test_two_own_names_met_by_one_keep_apart():
    """b's x [K, M] meets a's x [N, N]: K takes N, M keeps its own name (both taking N, the
    table could give only one back, and split said [M, M])."""
    a = parser.parse_model(
        """<ir_version: 8, opset_import: ["" : 17]>
        a (float[N, N] x) => (float[N, N] y) { y = Relu(x) }"""
    )
    b = parser.parse_model(
        """<ir_version: 8, opset_import: ["" : 17]>
        b (float[K, M] x) => (float[K, M] w) { w = Sigmoid(x) }"""
    )
    merged = graphopt.merge([a, b], prefixes=["a_", "b_"])
    assert [_dims(vi) for vi in merged.graph.input] == [["N", "N"]]
    back = graphopt.split(merged, task="b_")
    assert [_dims(vi) for vi in (*back.graph.input, *back.graph.output)] == [["K", "M"]] * 2
