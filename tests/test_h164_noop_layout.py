"""Review H164 of eliminate-noops and merge-reshapes: each test failed before its fix."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

from graphopt.api import optimize
from graphopt.pipeline import make_pipeline

F = onnx.TensorProto.FLOAT


def _ort_runs(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> bool:
    """Whether onnxruntime (its optimizer off) loads and runs `model` on `feeds`."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 4
    try:
        sess = ort.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        sess.run(None, feeds)
    except Exception:  # (onnxruntime's own error types: Fail, InvalidArgument, RuntimeException)
        return False
    return True


def _dropout(ratio: np.ndarray | None, mode: np.ndarray | None) -> onnx.ModelProto:
    """x [2,3] → Dropout(x, ratio, training_mode) → Relu → z, opset 13; the two constants
    as initializers (None: input left out)."""
    inits, inputs = [], ["x", "", ""]
    for i, (name, value) in enumerate((("ratio", ratio), ("mode", mode)), start=1):
        if value is not None:
            inits.append(numpy_helper.from_array(value, name))
            inputs[i] = name
    while inputs[-1] == "":
        inputs.pop()
    graph = helper.make_graph(
        [helper.make_node("Dropout", inputs, ["d"]), helper.make_node("Relu", ["d"], ["z"])],
        "g",
        [helper.make_tensor_value_info("x", F, [2, 3])],
        [helper.make_tensor_value_info("z", F, [2, 3])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize(
    ("ratio", "mode"),
    [
        (np.array(0.5, np.float32), np.zeros((0,), np.bool_)),
        (np.array(0.5, np.float32), np.array([False])),
        (np.array(0.5, np.float32), np.array([False, True])),
        (np.array([0.5], np.float32), None),
        (np.zeros((0,), np.float32), np.array(False)),
        (np.array(1.5, np.float32), None),
    ],
    ids=["mode-empty", "mode-shape-1", "mode-two", "ratio-shape-1", "ratio-empty", "ratio-1.5"],
)
def test_dropout_whose_constants_onnxruntime_rejects_is_left_alone(ratio, mode) -> None:
    """An empty training_mode constant was a PassError (IndexError: index 0 is out of bounds);
    a training_mode or ratio of another shape than a scalar, or a ratio outside [0, 1), made
    a model onnxruntime rejects ("training_mode of Dropout must be a scalar", "ratio must be in
    the range [0, 1)") into one it runs. The Dropout now stays, and says why."""
    model = _dropout(ratio, mode)
    x = np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5
    assert not _ort_runs(model, {"x": x})
    out = optimize(model, make_pipeline("t", ["eliminate-noops"]))
    assert [n.op_type for n in out.graph.node] == ["Dropout", "Relu"]


@pytest.mark.parametrize(
    ("ratio", "mode"),
    [
        (np.array(0.5, np.float32), np.array(False)),
        (np.array(0.0, np.float32), None),
        (None, None),
    ],
    ids=["mode-false", "ratio-0", "no-inputs"],
)
def test_inference_dropout_still_goes(ratio, mode) -> None:
    model = _dropout(ratio, mode)
    onnx.checker.check_model(model, full_check=True)
    x = np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5
    assert _ort_runs(model, {"x": x})
    out = optimize(model, make_pipeline("t", ["eliminate-noops"]))
    assert [n.op_type for n in out.graph.node] == ["Relu"]


def _reshapes(
    x_dims: list,
    inner: list[int],
    outer: list[int],
    inner_allowzero: int = 0,
    outer_allowzero: int = 0,
) -> onnx.ModelProto:
    """x → Reshape(x, inner) → m → Reshape(m, outer) → Relu → z, opset 14."""
    graph = helper.make_graph(
        [
            helper.make_node("Reshape", ["x", "s1"], ["m"], allowzero=inner_allowzero),
            helper.make_node("Reshape", ["m", "s2"], ["y"], allowzero=outer_allowzero),
            helper.make_node("Relu", ["y"], ["z"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", F, x_dims)],
        [helper.make_tensor_value_info("z", F, [None] * len(outer))],
        initializer=[
            numpy_helper.from_array(np.array(inner, np.int64), "s1"),
            numpy_helper.from_array(np.array(outer, np.int64), "s2"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    return model


def _merge_reshapes(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """The model after merge-reshapes (it must check) and the reasons it refused."""
    from graphopt.api import optimize_with_report

    pipeline = make_pipeline("t", ["merge-reshapes", "eliminate-dead-code"])
    out, report = optimize_with_report(model, pipeline, explain=True)
    onnx.checker.check_model(out, full_check=True)
    refused = [why for rule, _, outcome, why in report.explain if outcome == "refused"]
    return out, refused


def _reads_x(model: onnx.ModelProto) -> bool:
    """Whether the Reshape writing y reads x directly (the chain was merged)."""
    return next(n for n in model.graph.node if n.output[0] == "y").input[0] == "x"


def _same_on(model: onnx.ModelProto, out: onnx.ModelProto, shape: tuple[int, ...]) -> None:
    from tests.fusion_models import run_at

    x = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape) - 3.5
    want, got = run_at(model, {"x": x}, "disable"), run_at(out, {"x": x}, "disable")
    assert want["z"].shape == got["z"].shape
    np.testing.assert_array_equal(got["z"], want["z"])


@pytest.mark.parametrize(
    ("x_dims", "inner", "outer", "inner_allowzero"),
    [
        ([2, 3, 4], [6, 4], [0, 2, 2, 1], 0),
        ([2, 3, 4], [6, 4], [0, 2, 2, 1], 1),
        ([2, 3, 4], [6, 4], [0, 0, 1, 1], 0),
        ([2, 3, 4], [6, 4], [0, -1, 1, 1], 1),
        ([2, 3, 4], [24], [0, 1, 1], 0),
        ([1, 3, 4], [3, 4], [0, 1, 4, 1], 0),
        ([1, 3, 4], [3, 4], [0, 1, 4, 1], 1),
        ([2, 3, 4], [0, 3, 4], [0, 3, 2, 2], 0),
        ([2, 3, 4], [0, -1], [0, 3, -1, 1, 1], 0),
    ],
)
def test_a_0_in_range_of_the_static_middle_rank_merges(x_dims, inner, outer, inner_allowzero):
    """Reshape(Reshape(x, s1), s2) with a 0 in s2 and s2 longer than the middle tensor's
    (static) rank: refused as "0 in the shape copies a dynamic dim" although every 0 copies a
    dim the middle tensor has. The 0s are now its dims, and the chain one Reshape of x."""
    model = _reshapes(x_dims, inner, outer, inner_allowzero)
    out, refused = _merge_reshapes(model)
    assert _reads_x(out) and not refused
    assert [n.op_type for n in out.graph.node] == ["Reshape", "Relu"]
    _same_on(model, out, tuple(x_dims))


@pytest.mark.parametrize(
    ("x_dims", "inner", "outer", "why"),
    [
        (["N", 3, 4], [0, 12], [0, 0, 1, 1], "dynamic"),  # s2's second 0 copies m's 12, x has 3
        (["N", 3, 4], [-1, 12], [0, 3, 2, 2], "dynamic"),  # m's N comes from a -1
        ([2, 3, 4], [6, 4], [1, 0, 0, 6], "past the rank"),  # (the original fails)
    ],
)
def test_a_0_not_proven_the_same_dim_is_still_refused(x_dims, inner, outer, why):
    from graphopt.api import optimize_with_report

    model = _reshapes(x_dims, inner, outer)
    out, report = optimize_with_report(model, make_pipeline("t", ["merge-reshapes"]), explain=True)
    refused = [w for _, _, outcome, w in report.explain if outcome == "refused"]
    assert not _reads_x(out)
    assert len(refused) == 1 and why in refused[0]


@pytest.mark.parametrize("outer_allowzero", [0, 1])
def test_an_empty_middle_tensor(outer_allowzero):
    """x [0, 3, 4] → m [0, 12] → Reshape(m, [0, 3, 4, 1]): with allowzero=1 the 0 is a size
    and the chain merges as it is; with allowzero=0 it copies m's 0, a zero-size dim the
    static rewrite leaves alone. Both give onnxruntime's (0, 3, 4, 1)."""
    model = _reshapes([0, 3, 4], [0, 12], [0, 3, 4, 1], outer_allowzero=outer_allowzero)
    out, refused = _merge_reshapes(model)
    assert _reads_x(out) == bool(outer_allowzero) and not refused
    _same_on(model, out, (0, 3, 4))


@pytest.mark.parametrize("op", ["Tile", "Expand", "Reshape"])
@pytest.mark.parametrize("pipeline", ["default", "simplify"])
def test_an_op_missing_its_required_second_input_is_left_alone(op, pipeline):
    """Tile / Expand / Reshape with only x (onnxruntime: 'This is an invalid model'; loading
    lets it pass) was a PassError out of eliminate-noops (IndexError: list index out of
    range) in every built-in pipeline. The rule now skips it; the model comes back as given."""
    graph = helper.make_graph(
        [helper.make_node(op, ["x"], ["y"]), helper.make_node("Relu", ["y"], ["z"])],
        "g",
        [helper.make_tensor_value_info("x", F, [2, 3])],
        [helper.make_tensor_value_info("z", F, [None, None])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    assert not _ort_runs(model, {"x": np.ones((2, 3), np.float32)})
    out = optimize(model, pipeline)
    assert [(n.op_type, list(n.input)) for n in out.graph.node] == [
        (op, ["x"]),
        ("Relu", ["y"]),
    ]
