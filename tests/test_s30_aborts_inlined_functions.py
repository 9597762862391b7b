"""inference_aborts and Slices inside local functions: onnxruntime inlines a model's local
functions before its inference runs, so a Slice inside one of a negative dim that the
function's Pad makes aborts its loader (SIGABRT), while `inference_abort` judged the main
graph's Slices only and said nothing: `graphopt bench` died. It now judges the model's
functions inlined, the nodes named "<function>/<name>". Every load runs in a child process.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.analysis.inference_aborts import inference_abort
from tests.child_process import bench_once, one_line_refusal


def _int64(name: str, values: list[int]) -> onnx.TensorProto:
    return numpy_helper.from_array(np.array(values, np.int64), name)


def _const(name: str, values: list[int]) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=_int64(name, values))


def _called(h: int, domain: str = "local", nested: bool = False) -> onnx.ModelProto:
    """y = PadCut(x), a local function of `domain` that pads x [1, 3, 4, 4] by h rows at both
    ends ('pad') and slices the first row ('inner'); `nested`: PadCut only calls Inner, which
    does that."""
    body = [
        _const("pp", [0, 0, h, 0] * 2),
        helper.make_node("Pad", ["a", "pp"], ["q"], name="pad"),
        _const("s0", [0]),
        _const("s1", [1]),
        _const("s2", [2]),
        helper.make_node("Slice", ["q", "s0", "s1", "s2"], ["b"], name="inner"),
    ]
    opsets = [helper.make_opsetid("", 18), helper.make_opsetid("local", 1)]
    functions = [helper.make_function(domain, "PadCut", ["a"], ["b"], body, opsets)]
    if nested:
        functions = [
            helper.make_function(domain, "Inner", ["a"], ["b"], body, opsets),
            helper.make_function(
                domain,
                "PadCut",
                ["a"],
                ["b"],
                [helper.make_node("Inner", ["a"], ["b"], domain=domain, name="sub")],
                opsets,
            ),
        ]
    graph = helper.make_graph(
        [helper.make_node("PadCut", ["x"], ["y"], domain=domain, name="call")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    return helper.make_model(graph, opset_imports=opsets, functions=functions)


@pytest.mark.parametrize("nested", [False, True])
def test_a_slice_in_a_function_of_a_negative_dim_is_named(nested: bool) -> None:
    model = _called(-5, nested=nested)
    before = model.SerializeToString()
    reason = inference_abort(model)
    function = "Inner" if nested else "PadCut"
    assert reason.startswith(f"Slice '{function}/inner' reads "), reason
    assert "of shape [1, 3, -6, 4], a negative dimension" in reason
    assert f"(Pad '{function}/pad' makes it)" in reason
    assert model.SerializeToString() == before  # (judged on a copy)


def test_a_default_domain_function_is_judged_too() -> None:
    reason = inference_abort(_called(-5, domain=""))
    assert reason.startswith("Slice 'PadCut/inner' reads "), reason


@pytest.mark.parametrize("nested", [False, True])
def test_bench_of_such_a_model_is_refused_not_an_abort(tmp_path, nested: bool) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(_called(-5, nested=nested), path)
    line = one_line_refusal(bench_once(path))
    assert "/inner' reads " in line, line


def test_a_function_whose_pads_fit_is_not_refused(tmp_path) -> None:
    model = _called(-1)  # [1, 3, 2, 4]
    assert inference_abort(model) == ""
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    done = bench_once(path)
    assert done.returncode == 0, done.stderr[-300:]
