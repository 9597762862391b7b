"""`graphopt.optimize(..., input_shapes=...)` and `optimize --input-shape`: a model optimized for
fixed input shapes (onnxsim's --overwrite-input-shape), whose shape subgraphs then fold."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import graphopt
from graphopt.cli import main
from graphopt.errors import PipelineError
from tests.conftest import assert_same_outputs
from tests.models_util import ops, parse

DYNAMIC = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[N, 3, H, W] x) => (float[N, M] y) {
  s = Shape (x)
  zero = Constant <value = int64[1] {0}> ()
  n = Gather <axis = 0> (s, zero)
  minus_one = Constant <value = int64[1] {-1}> ()
  target = Concat <axis = 0> (n, minus_one)
  r = Relu (x)
  y = Reshape (r, target)
}
"""


def test_fixed_input_shapes_fold_the_shape_subgraph():
    model = parse(DYNAMIC)
    dynamic = graphopt.optimize(model)
    assert "Shape" in ops(dynamic)  # N is unknown: nothing to fold
    fixed = graphopt.optimize(model, input_shapes={"x": (2, 3, 4, 5)})
    onnx.checker.check_model(fixed, full_check=True)
    assert ops(fixed) == ["Relu", "Reshape"]
    dims = [d.dim_value for d in fixed.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [2, 3, 4, 5]
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"  # not mutated
    x = np.arange(120, dtype=np.float32).reshape(2, 3, 4, 5) - 60
    assert_same_outputs(model, fixed, {"x": x})


@pytest.mark.parametrize(
    ("shapes", "message"),
    [
        ({"images": (1, 3, 4, 5)}, "the model has no input 'images'; inputs: x"),
        ({"x": (1, 3, 4)}, "input 'x' has rank 4, got [1, 3, 4]"),
        ({"x": (1, 4, 4, 5)}, "input 'x' dim 1 is 3, got 4"),
        ({"x": (0, 3, 4, 5)}, "x dims must be 1 or more, got [0, 3, 4, 5]"),
    ],
)
def test_input_shapes_that_do_not_fit_the_model_are_refused(shapes, message):
    with pytest.raises(PipelineError) as e:
        graphopt.optimize(parse(DYNAMIC), input_shapes=shapes)
    assert str(e.value) == f"input_shapes: {message}"


def test_cli_input_shape_and_verify_feeds_it(tmp_path, capsys):
    src, dst = tmp_path / "m.onnx", tmp_path / "out.onnx"
    onnx.save(parse(DYNAMIC), str(src))
    argv = ["optimize", str(src), "-o", str(dst), "--input-shape", "x:2x3x4x5", "--verify"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "verify: y: max abs diff 0" in out and "7 -> 2 nodes" in out
    written = onnx.load(str(dst)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in written] == [2, 3, 4, 5]
    dst.unlink()
    bad = ["optimize", str(src), "-o", str(dst), "--input-shape", "x:1x3x4x5,2x3x4x5,4x3x4x5"]
    assert main(bad) == 2
    assert "one shape per input" in capsys.readouterr().err and not dst.exists()
