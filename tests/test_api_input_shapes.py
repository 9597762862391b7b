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


TWO_INPUTS = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[N, 3, H, W] x, float[N, 1, H, W] m) => (float[N, 4, H, W] y) {
  y = Concat <axis = 1> (x, m)
}
"""


@pytest.mark.parametrize(
    "extra",
    [
        [],  # m's N, H, W are x's: fed 2, 4, 5, not the defaults 1, 224, 224
        ["--shapes", "m:2x1x4x5"],  # --shapes of another input adds to the fixed ones
    ],
)
def test_cli_verify_feeds_the_fixed_dims_to_the_other_inputs(tmp_path, capsys, extra):
    """`--input-shape x:2x3x4x5 --verify` fed m 1×1×224×224 (its N, H, W are x's, fixed at 2,
    4, 5: the original's Concat failed), and `--shapes m:...` replaced the fixed shapes instead
    of adding to them (x got 1×3×224×224, which the optimized model refuses): spurious verify
    failures on a right result."""
    src, dst = tmp_path / "m.onnx", tmp_path / "out.onnx"
    onnx.save(parse(TWO_INPUTS), str(src))
    argv = ["optimize", str(src), "-o", str(dst), "--input-shape", "x:2x3x4x5", "--verify"]
    assert main(argv + extra) == 0, capsys.readouterr().err
    assert "verify: y: max abs diff 0" in capsys.readouterr().out and dst.exists()


def test_cli_verify_inputs_that_contradict_the_fixed_shape_are_named(tmp_path, capsys):
    src, dst = tmp_path / "m.onnx", tmp_path / "out.onnx"
    onnx.save(parse(TWO_INPUTS), str(src))
    base = ["optimize", str(src), "-o", str(dst), "--input-shape", "x:2x3x4x5", "--verify"]
    assert main([*base, "--shapes", "x:1x3x4x5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "graphopt optimize: error: --shapes x:1x3x4x5 differs from --input-shape x:2x3x4x5: "
        "the optimized model takes only the latter"
    ]
    npz = tmp_path / "feeds.npz"
    np.savez(npz, x=np.ones((1, 3, 5, 5), np.float32), m=np.ones((1, 1, 5, 5), np.float32))
    assert main([*base, "--inputs", str(npz)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "x is 1x3x5x5, but --input-shape fixes it at 2x3x4x5" in err[0]
    assert not dst.exists()


@pytest.mark.parametrize(
    ("text", "where"),
    [
        # the graph output is declared with batch 1
        ("g (float[N, 3] x) => (float[1, 3] y) { y = Relu (x) }", "(op_type:Relu"),
        # an Expand whose target holds only for a batch of 1 (or 5)
        (
            "g (float[N, 3] x) => (float[5, 3] y) {"
            "  s = Constant <value = int64[2] {5, 3}> ()  y = Expand (x, s) }",
            "(op_type:Expand",
        ),
    ],
)
def test_input_shapes_that_contradict_a_declared_shape_are_refused(text, where):
    """x fixed at 2×3 where the model states a batch of 1 (or 5) further on: the result failed
    onnx.checker's full check (Inferred shape and existing shape differ) though optimize says
    it passes; now the contradiction is a PipelineError naming the node."""
    model = parse(f'<ir_version: 8, opset_import: ["" : 17]>\n{text}')
    with pytest.raises(PipelineError) as e:
        graphopt.optimize(model, input_shapes={"x": (2, 3)})
    assert str(e.value).startswith("input_shapes: the shapes of x contradict the model: ")
    assert where in str(e.value) and "\n" not in str(e.value)
    fits = graphopt.optimize(model, input_shapes={"x": (1, 3) if "Relu" in text else (5, 3)})
    onnx.checker.check_model(fits, full_check=True)


def test_input_shapes_keep_a_value_info_they_agree_with_and_pass_the_full_check():
    model = parse(
        """<ir_version: 8, opset_import: ["" : 17]>
        g (float[N, 3] x) => (float[N, 3] y) { r = Relu (x)  y = Neg (r) }"""
    )
    model.graph.value_info.append(onnx.helper.make_tensor_value_info("r", 1, ["N", 3]))
    out = graphopt.optimize(model, input_shapes={"x": (2, 3)})
    onnx.checker.check_model(out, full_check=True)
    x = np.arange(6, dtype=np.float32).reshape(2, 3) - 3
    assert_same_outputs(model, out, {"x": x})
    stale = onnx.helper.make_tensor_value_info("r", 1, [1, 3])
    del model.graph.value_info[:]
    model.graph.value_info.append(stale)
    with pytest.raises(PipelineError, match="contradict the model"):
        graphopt.optimize(model, input_shapes={"x": (2, 3)})


@pytest.mark.parametrize("dims", [(2.5, 3), "23", (2.0, 3), (True, 3)])
def test_input_shapes_dims_that_are_no_integers_are_refused(dims):
    """int() truncated 2.5 to 2 and read "23" as dims 2, 3; operator.index took True as 1."""
    with pytest.raises(PipelineError, match="x dims must be integers"):
        graphopt.optimize(parse(DYNAMIC), input_shapes={"x": dims})


def test_input_shapes_that_are_no_mapping_are_refused():
    """A list of (name, dims) pairs raised AttributeError ('list' object has no attribute
    'items') from inside fix_input_shapes."""
    with pytest.raises(PipelineError, match="input_shapes: must map"):
        graphopt.optimize(parse(DYNAMIC), input_shapes=[("x", (2, 3, 4, 5))])


def test_a_dim_declared_as_minus_one_is_no_contradiction():
    """Older paddle2onnx declares a dynamic dim as dim_value -1 (PP-OCRv2 rec's output
    [-1, 25, 6625]); fixing the batch at 1 was refused as '1 vs -1'."""
    model = parse(DYNAMIC)
    model.graph.output[0].type.tensor_type.shape.dim[0].dim_value = -1
    fixed = graphopt.optimize(model, input_shapes={"x": (2, 3, 4, 5)})
    assert ops(fixed) == ["Relu", "Reshape"]
    x = np.arange(120, dtype=np.float32).reshape(2, 3, 4, 5) - 60
    assert_same_outputs(model, fixed, {"x": x})
