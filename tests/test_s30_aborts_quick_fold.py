"""inference_aborts evaluates sizes computed from constants (`_computed_sizes`) with numpy
kernels for the ops exporters compute them with (`_quick`), onnx's reference evaluator for the
rest: the evaluator costs a few ms a node, ~15 ms per PyTorch F.pad on every load and session
of such a model. The kernels must give what the evaluator gives (ONNX's definition).
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.analysis import inference_aborts
from graphopt.analysis.inference_aborts import _quick, _reference
from tests.test_s30_aborts_computed_sizes import _padded, _torch_pads

_MIN = np.iinfo(np.int64).min


def _i(*values: int) -> np.ndarray:
    return np.array(values, np.int64)


_X = np.arange(24, dtype=np.int64).reshape(2, 3, 4) - 7
CASES = {
    "identity": ("Identity", [_X], {}, 18),
    "concat": ("Concat", [_i(1, 2), _i(-3)], {"axis": 0}, 18),
    "concat-last-axis": ("Concat", [_X, _X[:, :, :1]], {"axis": -1}, 18),
    "add": ("Add", [_X, _i(5, -5, 9, 0)], {}, 18),
    "sub": ("Sub", [_i(1), _X], {}, 18),
    "mul": ("Mul", [_X, _i(-2)], {}, 18),
    "neg": ("Neg", [_X], {}, 18),
    "transpose": ("Transpose", [_X], {}, 18),
    "transpose-perm": ("Transpose", [_X], {"perm": [1, 0, 2]}, 18),
    "cast-float": ("Cast", [_X], {"to": TensorProto.FLOAT}, 18),
    "cast-int32": ("Cast", [_X], {"to": TensorProto.INT32}, 18),
    "unsqueeze-11": ("Unsqueeze", [_i(4, 5)], {"axes": [0, -1]}, 11),
    "unsqueeze-13": ("Unsqueeze", [_i(4, 5), _i(-1, 1)], {}, 13),
    "reshape": ("Reshape", [_X, _i(0, -1)], {}, 18),
    "reshape-allowzero": ("Reshape", [_X[:0], _i(0, 5)], {"allowzero": 1}, 18),
    "gather": ("Gather", [_X, _i(-1, 0)], {"axis": 1}, 18),
    "slice": ("Slice", [_X, _i(1), _i(100), _i(2), _i(2)], {}, 18),
    "slice-reversed": ("Slice", [_X, _i(-1), _i(_MIN + 1), _i(0), _i(-1)], {}, 18),
    "slice-negative": ("Slice", [_X, _i(-3, 0), _i(-1, 1)], {}, 18),
    "slice-back-by-2": ("Slice", [_X, _i(3), _i(-10), _i(-1), _i(-2)], {}, 18),
    "constant-of-shape": ("ConstantOfShape", [_i(2, 3)], {}, 18),
    "constant-of-shape-int": (
        "ConstantOfShape",
        [_i(4)],
        {"value": helper.make_tensor("v", TensorProto.INT64, [1], [7])},
        18,
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_numpy_kernel_gives_what_the_reference_evaluator_gives(case: str) -> None:
    op, inputs, attrs, version = CASES[case]
    names = [f"i{k}" for k in range(len(inputs))]
    node = helper.make_node(op, names, ["out"], **attrs)
    opsets = [helper.make_opsetid("", version)]
    quick = _quick(node, list(inputs), opsets)
    assert quick is not None, case
    want = _reference(node, dict(zip(names, inputs, strict=True)), opsets)
    assert want is not None, case
    assert quick[0].dtype == np.asarray(want[0]).dtype, case
    np.testing.assert_array_equal(quick[0], want[0])


def test_a_slice_end_past_the_axis_with_a_negative_step_is_left_to_the_evaluator() -> None:
    # (onnxruntime and ONNX differ on it)
    node = helper.make_node("Slice", ["x", "s", "e", "a", "t"], ["out"])
    inputs = [_X, _i(2), _i(2**62), _i(2), _i(-1)]
    assert _quick(node, inputs, [helper.make_opsetid("", 18)]) is None


def test_pytorch_pads_are_evaluated_without_the_reference_evaluator(monkeypatch) -> None:
    calls: list[str] = []

    def counted(node: onnx.NodeProto, *args: object) -> object:
        calls.append(node.op_type)
        return None

    monkeypatch.setattr(inference_aborts, "_reference", counted)
    reason = inference_aborts.inference_abort(_padded(_torch_pads(-5), []))
    assert reason.startswith("Slice 'cut' reads 'p' of shape [1, 3, -6, 4]"), reason
    assert calls == []


def test_concat_1_without_an_axis_joins_on_axis_1() -> None:
    # Concat-1's axis was optional, default 1 (the reference evaluator refuses it)
    node = helper.make_node("Concat", ["a", "b"], ["out"])
    x = np.arange(6, dtype=np.int64).reshape(2, 3)
    quick = _quick(node, [x, x], [helper.make_opsetid("", 1)])
    assert quick is not None
    np.testing.assert_array_equal(quick[0], np.concatenate([x, x], axis=1))
