"""inference_aborts and sizes computed by Tile or Expand of constants: onnxruntime's constant
folding makes pads = Tile([0, 0, −5, 0], [2]) (or an Expand of it) an initializer before its
inference aborts (SIGABRT, `graphopt bench`) on the Slice of the negative dim the Pad makes;
the fold of inference_aborts evaluated neither op, so it said nothing. They are evaluated now
where they make at most a few thousand values. Every load runs in a child process.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.analysis.inference_aborts import inference_abort
from tests.child_process import bench_once, one_line_refusal


def _int64(name: str, values: list[int] | list[list[int]]) -> onnx.TensorProto:
    return numpy_helper.from_array(np.array(values, np.int64), name)


def _padded(how: str, repeats: int = 2) -> onnx.ModelProto:
    """pads made by `how` from [0, 0, −5, 0]; a Pad 'pad' of x [1, 3, 4, 4], then a Slice 'cut'
    of it on axis 2."""
    if how == "tile":
        made = [helper.make_node("Tile", ["half", "times"], ["pads"])]
        inits = [_int64("half", [0, 0, -5, 0]), _int64("times", [repeats])]
    else:
        made = [
            helper.make_node("Expand", ["row", "shape"], ["rows"]),
            helper.make_node("Reshape", ["rows", "flat"], ["pads"]),
        ]
        inits = [_int64("row", [[0, 0, -5, 0]]), _int64("shape", [2, 1]), _int64("flat", [-1])]
    nodes = [
        *made,
        helper.make_node("Pad", ["x", "pads"], ["p"], name="pad"),
        helper.make_node("Slice", ["p", "st", "en", "ax"], ["y"], name="cut"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [*inits, _int64("st", [0]), _int64("en", [1]), _int64("ax", [2])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


@pytest.mark.parametrize("how", ["tile", "expand"])
def test_pads_tiled_or_expanded_from_constants_are_foreseen(how: str) -> None:
    reason = inference_abort(_padded(how))
    assert reason.startswith(
        "Slice 'cut' reads 'p' of shape [1, 3, -6, 4], a negative dimension (Pad 'pad' makes it)"
    ), reason


def test_bench_refuses_it_in_one_line_not_an_abort(tmp_path) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(_padded("tile"), path)
    line = one_line_refusal(bench_once(path))
    assert "Slice 'cut' reads 'p' of shape [1, 3, -6, 4]" in line, line


def test_a_tile_of_too_many_values_is_not_evaluated() -> None:
    # 4·10⁹ values: not made (no pads of that length could be right anyway)
    assert inference_abort(_padded("tile", repeats=10**9)) == ""
