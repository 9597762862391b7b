"""inference_aborts and calls of default-domain local functions: a call of a FunctionProto of
domain "" whose Pad makes a negative dim, then a Slice of its output in the graph. The call
was taken for an ordinary default-domain op that makes no negative dim, so the Slice was not
hidden from graphopt's own inference (onnx's infers the function at its call), which aborted
the process (SIGABRT) in graphopt inspect, check and optimize. Every load runs in a child
process.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.analysis.inference_aborts import inference_abort
from tests.child_process import one_line_refusal, run_cli, run_code


def _int64(name: str, values: list[int]) -> onnx.TensorProto:
    return numpy_helper.from_array(np.array(values, np.int64), name)


def _called(h: int) -> onnx.ModelProto:
    """p = PadRows(x), a default-domain local function padding x [1, 3, 4, 4] by h rows at
    both ends; a Slice 'cut' of p on axis 2."""
    function = helper.make_function(
        "",
        "PadRows",
        ["a"],
        ["b"],
        [
            helper.make_node("Constant", [], ["pp"], value=_int64("v", [0, 0, h, 0] * 2)),
            helper.make_node("Pad", ["a", "pp"], ["b"], name="pad"),
        ],
        [helper.make_opsetid("", 18)],
    )
    graph = helper.make_graph(
        [
            helper.make_node("PadRows", ["x"], ["p"], name="call"),
            helper.make_node("Slice", ["p", "st", "en", "ax"], ["y"], name="cut"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [_int64("st", [0]), _int64("en", [1]), _int64("ax", [2])],
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 18)], functions=[function]
    )


_FACTS = (
    "import sys, onnx\n"
    "from graphopt.analysis.shapes import shape_facts\n"
    "facts = shape_facts(onnx.load(sys.argv[1]))\n"
    "print('p', facts.shape('p'))\n"
)


def test_shape_facts_of_a_slice_after_such_a_call_do_not_abort(tmp_path) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(_called(-5), path)
    done = run_code(_FACTS, str(path))
    assert done.returncode == 0, (done.returncode, done.stderr[-300:])
    assert "-" not in done.stdout, done.stdout


@pytest.mark.parametrize("command", ["inspect", "optimize"])
def test_inspect_and_optimize_do_not_abort(tmp_path, command: str) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(_called(-5), path)
    args = [command, str(path)] + (
        ["-o", str(tmp_path / "o.onnx")] if command == "optimize" else []
    )
    done = run_cli(*args)
    assert done.returncode in (0, 2), (done.returncode, done.stderr[-300:])


def test_check_refuses_it_in_one_line(tmp_path) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(_called(-5), path)
    line = one_line_refusal(run_cli("check", str(path)))
    assert "Slice 'cut' reads 'p' of shape [1, 3, -6, 4], a negative dimension" in line
    assert inference_abort(_called(-5)).startswith("Slice 'cut' reads 'p' of shape [1, 3, -6, 4]")


def test_a_call_whose_pads_fit_is_not_refused() -> None:
    assert inference_abort(_called(-1)) == ""  # [1, 3, 2, 4]
