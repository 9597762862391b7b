"""Command-line values that made graphopt check nothing, or fail with a traceback."""

from __future__ import annotations

import onnx
import onnx.helper as oh
import pytest

import graphopt
from graphopt.cli import main
from graphopt.errors import PipelineError


def _dynamic_relu(path) -> str:  # type: ignore[no-untyped-def]
    graph = oh.make_graph(
        [oh.make_node("Relu", ["x"], ["y"], name="r")],
        "g",
        [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 4])],
        [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", 4])],
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)], ir_version=8)
    onnx.save(model, str(path))
    return str(path)


@pytest.mark.parametrize("flag", ["--tolerance", "--atol"])
def test_verify_with_a_nan_bound_is_refused(tmp_path, capsys, flag):
    """--verify fails where a difference exceeds atol + tolerance × scale: with NaN in that
    bound no difference ever does, so verification passed whatever the outputs were."""
    src = _dynamic_relu(tmp_path / "m.onnx")
    out = tmp_path / "out.onnx"
    assert main(["optimize", src, "-o", str(out), "--verify", flag, "nan"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--tolerance and --atol must be 0 or more" in err
    assert not out.exists()


def test_an_input_shape_beyond_int64_is_a_one_line_error(tmp_path, capsys):
    src = _dynamic_relu(tmp_path / "m.onnx")
    out = tmp_path / "out.onnx"
    assert main(["optimize", src, "-o", str(out), "--input-shape", f"x:{2**64}x4"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "below 2**63" in err
    assert not out.exists()


def test_api_input_shapes_beyond_int64_is_a_pipeline_error(tmp_path):
    model = onnx.load(_dynamic_relu(tmp_path / "m.onnx"))
    with pytest.raises(PipelineError, match="below 2"):
        graphopt.optimize(model, input_shapes={"x": [2**63, 4]})
    # the largest int64 is a dim protobuf stores
    out = graphopt.optimize(model, input_shapes={"x": [2**63 - 1, 4]})
    assert out.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 2**63 - 1


@pytest.mark.parametrize("count", ["0", "-1"])
def test_demo_refuses_to_verify_on_no_images(monkeypatch, capsys, count):
    """--images 0 verified on nothing and said the outputs agree; -1 took every image but one
    (images[:-1]) and printed 'over -1 real images'."""
    import graphopt.realmodels

    def no_fetch(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("demo fetched a model before checking its arguments")

    monkeypatch.setattr(graphopt.realmodels, "fetch_model", no_fetch)
    assert main(["demo", "--images", count]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--images must be at least 1" in err
