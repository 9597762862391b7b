"""inference_aborts and sizes computed from Shapes of tensors whose dims are known:
onnxruntime's constant folding makes Shape(r) a constant where its inference knows r's dims,
then the arithmetic on it (here pads = [0, 0, −h, −w, 0, 0, −h, −w] from Shape(Relu(x))), and
its inference aborts (SIGABRT) on the Slice of the negative dim the Pad then makes, where
onnx's inference of the model knows no pads: `graphopt bench` died, and `graphopt optimize
--input-shape` wrote such a model. `negative_slice` now folds those Shapes with the dims its
inference found. Every load runs in a child process.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.analysis.inference_aborts import inference_abort
from tests.child_process import bench_once, one_line_refusal, run_cli


def _int64(name: str, values: list[int]) -> onnx.TensorProto:
    return numpy_helper.from_array(np.array(values, np.int64), name)


def _shape_padded(x: list[int | str], less: int = 0, measure: str = "Shape") -> onnx.ModelProto:
    """pads [0, 0, −h + less, −w + less] twice, from Shape(Relu(x), start=2) (or, `measure`
    "Size", from Size(Relu(x)) / 3 of a [1, 3, h, w] x); a Pad 'pad' of x by them, then a
    Slice 'cut' of its output on axis 2."""
    if measure == "Shape":
        dims = [helper.make_node("Shape", ["r"], ["hw"], start=2)]
    else:
        dims = [
            helper.make_node("Size", ["r"], ["n"]),
            helper.make_node("Div", ["n", "three"], ["each"]),
            helper.make_node("Concat", ["one", "each"], ["both"], axis=0),
            helper.make_node("Div", ["both", "four"], ["hw"]),
        ]
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        *dims,
        helper.make_node("Sub", ["less", "hw"], ["n_hw"]),
        helper.make_node("Concat", ["z", "n_hw", "z", "n_hw"], ["pads"], axis=0),
        helper.make_node("Pad", ["x", "pads"], ["p"], name="pad"),
        helper.make_node("Slice", ["p", "st", "en", "ax"], ["y"], name="cut"),
    ]
    inits = [
        _int64("z", [0, 0]),
        _int64("less", [less, less]),
        _int64("three", [3]),
        _int64("one", [16]),
        _int64("four", [4]),
        _int64("st", [0]),
        _int64("en", [1]),
        _int64("ax", [2]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_pads_from_a_shape_of_known_dims_are_foreseen() -> None:
    # x [1, 3, 4, 4]: pads [0, 0, −4, −4] twice: 4 − 8 = −4
    reason = inference_abort(_shape_padded([1, 3, 4, 4]))
    assert reason.startswith(
        "Slice 'cut' reads 'p' of shape [1, 3, -4, -4], a negative dimension (Pad 'pad' makes it)"
    ), reason


def test_pads_from_a_size_of_known_dims_are_foreseen() -> None:
    # Size 48 / 3 = 16; [16, 16] / 4 = [4, 4]: the same pads
    reason = inference_abort(_shape_padded([1, 3, 4, 4], measure="Size"))
    assert reason.startswith("Slice 'cut' reads 'p' of shape [1, 3, -4, -4]"), reason


def test_bench_of_such_a_model_is_refused_not_an_abort(tmp_path) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(_shape_padded([1, 3, 4, 4]), path)
    line = one_line_refusal(bench_once(path))
    assert "Slice 'cut' reads 'p' of shape [1, 3, -4, -4]" in line, line


def test_optimize_input_shape_that_makes_it_is_refused(tmp_path) -> None:
    path, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(_shape_padded([1, 3, "h", "w"]), path)
    done = run_cli("optimize", str(path), "-o", str(out), "--input-shape", "x:1x3x4x4")
    line = one_line_refusal(done)
    assert "--input-shape" in line and "[1, 3, -4, -4]" in line, line
    assert not out.exists()


@pytest.mark.parametrize(
    "x, less",
    [
        ([1, 3, "h", "w"], 0),  # dims unknown: nothing folds
        ([1, 3, 4, 4], 3),  # pads [0, 0, −1, −1] twice: [1, 3, 2, 2]
    ],
)
def test_pads_that_fit_or_are_unknown_are_not_refused(
    tmp_path, x: list[int | str], less: int
) -> None:
    model = _shape_padded(x, less)
    assert inference_abort(model) == ""
    if isinstance(x[2], int):
        path = tmp_path / "m.onnx"
        onnx.save(model, path)
        done = bench_once(path)
        assert done.returncode == 0, done.stderr[-300:]
