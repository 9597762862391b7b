"""A Slice end of INT64_MAX or INT32_MAX with a negative step is "to the start of the axis" in
onnxruntime (Slice([2, 3, 4, 5], [-1], [INT64_MAX], [0], [-1]) = [5, 4, 3, 2]) and "stop before
the last index" in ONNX's definition, reference and shape inference ([]). Constant folding
leaves such a Slice to the runtime (8117a0f); three other readers derived ONNX's reading and
the optimized model computed something else than the original in onnxruntime:

* simplify-shape-subgraphs picked the dims a Slice of Shape(y) reads: [] (all static, so a
  constant), and Reshape(x, Concat(that, [2, 4])) became a Reshape to [2, 4];
* the pattern engine's rank of a Reshape counted that Slice's length as 0: the target
  Concat(Slice(Shape(y)), [2, 4]) "has rank 2", and MatMul + Add of a rank-3 tensor became a
  Gemm, which reads only rank 2;
* shape facts took ONNX inference's [0, 3] for Slice(x[4, 3]): Shape of it folded to [0, 3].

Now no dim, length or shape is derived from such a Slice (`disputed_slice_end`)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphopt
from tests.fusion_models import ops, run_at

ENDS = {"int64": (np.int64, 2**63 - 1), "int32": (np.int32, 2**31 - 1)}


def _const(name: str, value: object, dtype: type = np.int64) -> onnx.TensorProto:
    return numpy_helper.from_array(np.array(value, dtype), name)


def _slice_inits(ends: str) -> list[onnx.TensorProto]:
    """Slice(d, [-1], [INT_MAX], [0], [-1]) parameters, of `ends`'s integer type."""
    dtype, big = ENDS[ends]
    return [
        _const("st", [-1], dtype),
        _const("en", [big], dtype),
        _const("ax", [0], dtype),
        _const("sp", [-1], dtype),
    ]


def _model(nodes, inputs, output, inits) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, [output], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def _reshaped_by_reversed_shape(ends: str) -> onnx.ModelProto:
    """z = MatMul(Reshape(x, Concat(Slice(Shape(y), -1::-1), [2, 4])), W) + b, y of one
    element: a is [1, 2, 4] in onnxruntime."""
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Shape", ["y"], ["s"]),
        helper.make_node("Slice", ["s", "st", "en", "ax", "sp"], ["r"]),
        helper.make_node("Concat", ["r", "tail"], ["t"], axis=0),
        helper.make_node("Reshape", ["x", "t"], ["a"]),
        helper.make_node("MatMul", ["a", "W"], ["m"]),
        helper.make_node("Add", ["m", "b"], ["z"]),
    ]
    inits = [
        *_slice_inits(ends),
        # the Slice of an int64 shape takes int32 bounds; the Concat needs one dtype
        _const("tail", [2, 4]),
        _const("W", rng.uniform(-1, 1, (4, 3)), np.float32),
        _const("b", rng.uniform(-1, 1, 3), np.float32),
    ]
    inputs = [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4]),
        helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N"]),
    ]
    out = helper.make_tensor_value_info("z", TensorProto.FLOAT, None)
    out.type.tensor_type.shape.Clear()  # (declared of unknown shape: no fact comes from it)
    return _model(nodes, inputs, out, inits)


def _pipeline(tmp_path, *passes: str) -> str:
    path = tmp_path / "p.yaml"
    path.write_text("name: mine\npasses:\n" + "".join(f"  - {p}\n" for p in passes))
    return str(path)


def _assert_same_outputs(model: onnx.ModelProto, out: onnx.ModelProto, feeds: dict) -> None:
    want, got = run_at(model, feeds, "disable"), run_at(out, feeds, "disable")
    assert list(got) == list(want)
    for name in want:
        assert got[name].shape == want[name].shape, name
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6, err_msg=name)


FEEDS = {
    "x": np.arange(8, dtype=np.float32).reshape(2, 4),
    "y": np.ones(1, np.float32),
}


@pytest.mark.parametrize("ends", ENDS)
def test_shape_subgraphs_take_no_dims_from_the_slice(tmp_path, ends):
    model = _reshaped_by_reversed_shape(ends)
    assert run_at(model, FEEDS, "disable")["z"].shape == (1, 2, 3)
    out = graphopt.optimize(model, _pipeline(tmp_path, "simplify-shape-subgraphs"))
    _assert_same_outputs(model, out, FEEDS)
    assert "Shape" in ops(out)


@pytest.mark.parametrize("ends", ENDS)
def test_the_pattern_engine_takes_no_rank_from_the_slice(tmp_path, ends):
    model = _reshaped_by_reversed_shape(ends)
    out = graphopt.optimize(model, _pipeline(tmp_path, "fold-batchnorm"))
    _assert_same_outputs(model, out, FEEDS)
    assert "Gemm" not in ops(out)


@pytest.mark.parametrize("ends", ENDS)
def test_shape_facts_take_no_shape_from_the_slice(ends):
    """z = Concat(Shape(Slice(x[4, 3], -1::-1)), [7]): [4, 3, 7] in onnxruntime."""
    nodes = [
        helper.make_node("Slice", ["x", "st", "en", "ax", "sp"], ["y"]),
        helper.make_node("Shape", ["y"], ["s"]),
        helper.make_node("Concat", ["s", "tail"], ["z"], axis=0),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 3])
    z = helper.make_tensor_value_info("z", TensorProto.INT64, [None])
    model = _model(nodes, [x], z, [*_slice_inits(ends), _const("tail", [7])])
    feeds = {"x": np.arange(12, dtype=np.float32).reshape(4, 3)}
    np.testing.assert_array_equal(run_at(model, feeds, "disable")["z"], [4, 3, 7])
    out = graphopt.optimize(model)
    _assert_same_outputs(model, out, feeds)
    assert "Slice" in ops(out)


def test_the_whole_default_pipeline_keeps_the_model(tmp_path):
    model = _reshaped_by_reversed_shape("int64")
    _assert_same_outputs(model, graphopt.optimize(model), FEEDS)
