"""A tensor whose data does not make its dims and element type (raw data of another length, a
typed field of another count or the wrong field, no data, no element type, a negative dim):
onnxruntime refuses such a model ("Deserialize tensor w failed", "Out of bounds dimensions").
graphopt's folds read it with `tensor_value`: a PassError quoting numpy ("cannot reshape array
of size 2 into shape (2,3)"), or, for a negative dim, a value numpy made up (it reads any
negative dim as "the rest": a [2, -3] tensor was read as [2, 3]) folded into a valid
initializer, a model onnxruntime runs. `tensor_value` now refuses a negative dim (a
ValueError, as numpy_helper raises for the others), and `Graph.constant` turns each into a
one-line `LoadError` naming the tensor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphopt
from graphopt.cli import main
from graphopt.errors import LoadError
from graphopt.ir.graph import tensor_value
from tests.fusion_models import run_at
from tests.test_cli_review3 import one_line_error


def _tensor(dims: list[int], data_type: int = TensorProto.FLOAT, **fields: object) -> TensorProto:
    t = TensorProto(name="w", data_type=data_type, dims=dims)
    for field, value in fields.items():
        if field == "raw_data":
            t.raw_data = value  # type: ignore[assignment]
        else:
            getattr(t, field).extend(value)
    return t


def _model(w: TensorProto, as_constant: bool = False) -> onnx.ModelProto:
    """y = x + w * 2 (w * 2 folds)."""
    nodes = [
        helper.make_node("Mul", ["w", "two"], ["w2"], name="fold"),
        helper.make_node("Add", ["x", "w2"], ["y"], name="use"),
    ]
    initializers = [numpy_helper.from_array(np.float32(2), "two")]
    if as_constant:
        nodes.insert(0, helper.make_node("Constant", [], ["w"], name="w_const", value=w))
    else:
        initializers.append(w)
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


SIX = np.arange(6, dtype=np.float32)
DAMAGED = {
    "raw data short": (_tensor([2, 3], raw_data=SIX[:2].tobytes()), "array of size 2 into"),
    "raw data long": (_tensor([2, 3], raw_data=np.zeros(10, np.float32).tobytes()), "size 10"),
    "negative dim": (_tensor([2, -3], raw_data=SIX.tobytes()), "negative dim"),  # (load: H237)
    "float_data short": (_tensor([2, 3], float_data=[1.0, 2.0, 3.0]), "array of size 3 into"),
    "float in int32_data": (_tensor([2, 3], int32_data=range(6)), "array of size 0 into"),
    "no data": (_tensor([2, 3]), "array of size 0 into"),
    "no element type": (_tensor([2, 3], TensorProto.UNDEFINED, raw_data=SIX.tobytes()), "UNDEF"),
}


@pytest.mark.parametrize("as_constant", [False, True], ids=["initializer", "Constant"])
@pytest.mark.parametrize("case", sorted(DAMAGED))
def test_refused_in_one_line(case: str, as_constant: bool) -> None:
    import onnxruntime as ort

    tensor, needle = DAMAGED[case]
    model = _model(tensor, as_constant)
    with pytest.raises(Exception):  # noqa: B017 (onnxruntime raises its own untyped errors)
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for pipeline in ("default", "tensorrt"):
        # (no element type: refused before any pass by refuse_undefined_element_types, which
        # names where the tensor is stored; a Constant's was kept as it was, a model onnxruntime
        # refuses, until test_s31_check_optimize_undefined_stored_type)
        named = "tensor 'w'" if tensor.data_type else "element type 0 (UNDEFINED)"
        with pytest.raises(LoadError, match=needle) as caught:
            graphopt.optimize(model, pipeline=pipeline)
        assert named in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises((ValueError, TypeError), match=needle):  # as numpy_helper.to_array
        tensor_value(tensor)


def test_cli_refuses_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source, out = tmp_path / "m.onnx", tmp_path / "out.onnx"
    source.write_bytes(_model(DAMAGED["negative dim"][0]).SerializeToString())
    assert main(["optimize", str(source), "-o", str(out)]) == 2
    one_line_error(capsys, f"{source}: tensor 'w' (float 2x-3) has a negative dim, which no")
    assert not out.exists()


@pytest.mark.parametrize(
    "tensor",
    [
        _tensor([2, 3], raw_data=SIX.tobytes()),
        _tensor([2, 3], float_data=SIX.tolist()),
        _tensor([0, 3], raw_data=b""),
        _tensor([], raw_data=np.float32(1.5).tobytes()),
    ],
    ids=["raw", "float_data", "empty", "scalar"],
)
def test_well_formed_tensors_still_fold(tensor: TensorProto) -> None:
    expected = numpy_helper.to_array(tensor)
    np.testing.assert_array_equal(tensor_value(tensor), expected)
    if expected.size:
        model = _model(tensor)
        out = graphopt.optimize(model)
        assert [n.op_type for n in out.graph.node] == ["Add"]
        x = {"x": np.ones((2, 3), np.float32)}
        np.testing.assert_array_equal(run_at(out, x, "disable")["y"], 1 + 2 * expected)
