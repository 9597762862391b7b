"""`graphopt optimize --verify`: feeds the model refuses are said before optimizing.

A --shapes (or an --inputs array) that contradicts an input's fixed dim or rank ran the whole
optimization, and only then failed with onnxruntime's "Got invalid dimensions for input ...
index: 2 Got: 8 Expected: 16"; an --shapes naming no input was said after the run too. The
first five tests failed before the fix (the message differed, the dump folder the passes make
existed); the last two guard what must still pass or keep its error.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.cli import main
from graphopt.realmodels import fetch_model


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    assert err.count("\n") == 1, err
    return err


@pytest.fixture(scope="module")
def detector() -> str:
    return str(fetch_model("common_det"))  # input images: 1x3x416x416, every dim fixed


def shared_batch_model() -> onnx.ModelProto:
    """x: [N, 3], y: [N, 3], z = x + y."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "y"], ["z"], name="add")],
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3]),
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3]),
        ],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 3])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def run_optimize(tmp_path, model: str, *extra: str) -> int:  # type: ignore[no-untyped-def]
    argv = ["optimize", model, "-o", str(tmp_path / "o.onnx"), "--verify"]
    return main([*argv, "--dump-dir", str(tmp_path / "dumps"), *extra])


def nothing_ran(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert not (tmp_path / "o.onnx").exists()
    assert not (tmp_path / "dumps").exists()  # made when the passes start


def test_shapes_with_another_fixed_dim_is_refused_before_optimizing(tmp_path, capsys, detector):
    assert run_optimize(tmp_path, detector, "--shapes", "images:1x3x320x416") == 2
    err = one_line_error(capsys)
    assert (
        "--shapes images:1x3x320x416 does not fit input images, declared [1, 3, 416, 416]: "
        "index 2 is fixed at 416 (Got: 320 Expected: 416); give images:1x3x416x416"
    ) in err, err
    assert "index 3" not in err, err
    nothing_ran(tmp_path)


def test_shapes_with_another_rank_is_refused_before_optimizing(tmp_path, capsys, detector):
    assert run_optimize(tmp_path, detector, "--shapes", "images:1x3x416") == 2
    err = one_line_error(capsys)
    assert "--shapes images:1x3x416 does not fit input images" in err, err
    assert "rank 3, not 4 (Got: 3 Expected: 4)" in err, err
    nothing_ran(tmp_path)


def test_inputs_array_with_another_fixed_dim_is_refused_before_optimizing(
    tmp_path, capsys, detector
):
    npz = tmp_path / "feeds.npz"
    np.savez(npz, images=np.zeros((1, 3, 416, 320), np.float32))
    assert run_optimize(tmp_path, detector, "--inputs", str(npz)) == 2
    err = one_line_error(capsys)
    assert (
        f"--inputs {npz}: images is 1x3x416x320, which does not fit input images, declared "
        "[1, 3, 416, 416]: index 3 is fixed at 416 (Got: 320 Expected: 416)"
    ) in err, err
    nothing_ran(tmp_path)


def test_shapes_naming_no_input_is_refused_before_optimizing(tmp_path, capsys, detector):
    assert run_optimize(tmp_path, detector, "--shapes", "image:1x3x416x416") == 2
    err = one_line_error(capsys)
    assert "--shapes names image, which are not model inputs" in err, err
    nothing_ran(tmp_path)


def test_shapes_must_agree_with_a_symbol_input_shape_fixes(tmp_path, capsys):
    """--input-shape x:4x3 fixes N, which y shares: y:2x3 does not fit the model then."""
    path = tmp_path / "m.onnx"
    onnx.save(shared_batch_model(), str(path))
    argv = ["--input-shape", "x:4x3", "--shapes", "y:2x3"]
    assert run_optimize(tmp_path, str(path), *argv) == 2
    err = one_line_error(capsys)
    assert (
        "--shapes y:2x3 does not fit input y, declared [N, 3]: index 0 is N, which "
        "--input-shape fixes at 4 (Got: 2 Expected: 4); give y:4x3"
    ) in err, err
    nothing_ran(tmp_path)


def test_symbolic_dims_stay_free(tmp_path, capsys):
    """The check refuses only what the model declares: a symbolic N takes any size, the
    same in both inputs, and --input-shape's own input is its flag's business."""
    path = tmp_path / "m.onnx"
    onnx.save(shared_batch_model(), str(path))
    assert run_optimize(tmp_path, str(path), "--shapes", "x:2x3", "y:2x3") == 0
    assert "verify: z: max abs diff 0" in capsys.readouterr().out
    (tmp_path / "o.onnx").unlink()
    extra = ["--input-shape", "x:5x3", "--shapes", "x:5x3", "y:5x3"]
    assert run_optimize(tmp_path, str(path), *extra) == 0
    out = onnx.load(str(tmp_path / "o.onnx"))
    assert [d.dim_value for d in out.graph.input[0].type.tensor_type.shape.dim] == [5, 3]


def test_an_input_shape_that_contradicts_the_model_keeps_its_own_error(tmp_path, capsys, detector):
    """With --shapes equal to it, the --input-shape is what is wrong: its error, as before."""
    extra = ["--input-shape", "images:1x3x320x320", "--shapes", "images:1x3x320x320"]
    assert run_optimize(tmp_path, detector, *extra) == 2
    err = one_line_error(capsys)
    assert "--input-shape: input 'images' dim 2 is 416, got 320" in err, err
