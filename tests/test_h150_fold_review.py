"""Adversarial review of constant folding and shape-subgraph simplification (H150).

Each model here was optimized into one whose outputs differ from the original's in
onnxruntime (or that evaluated a blow-up before refusing it); every built-in pipeline is
checked against the original.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser
import pytest

import graphopt
from graphopt.backends.onnxruntime import run as ort_run
from tests.conftest import assert_same_outputs
from tests.test_fold_review3 import assert_refused_before_evaluating, blow_up_model

PIPELINES = ("default", "ort-cpu", "ort-cpu-native", "tensorrt", "simplify")

# Range(0.5, -0.7, -0.1) of float32 has 12 elements in onnxruntime 1.32 (and onnx's
# reference), 13 in 1.23.2; ONNX shape inference counts as 1.23.2 does, so Shape(r) folded to
# [13] where onnxruntime 1.32 computes [12] (the Range itself is left to the runtime).
DISPUTED_RANGE = {
    "shape": "s = Shape (r)",
    "size-of-derived": "e = Add (r, r)\n  n = Size (e)\n  s = Unsqueeze (n, zero)",
    "gather-of-shape": "h = Shape (r)\n  g = Gather (h, zero)",
    "slice-of-shape": "h = Shape (r)\n  s = Slice (h, zero, one)",
}


def _disputed_range_model(reads: str, limit: float = -0.7) -> onnx.ModelProto:
    out = "g" if "g = Gather" in reads else "s"
    model = onnx.parser.parse_model(
        f"""
        <ir_version: 8, opset_import: ["" : 13]>
        g (int64[1] x) => (int64[?] y) {{
          a = Constant <value = float {{0.5}}> ()
          b = Constant <value = float {{{limit}}}> ()
          d = Constant <value = float {{-0.1}}> ()
          zero = Constant <value = int64[1] {{0}}> ()
          one = Constant <value = int64[1] {{1}}> ()
          r = Range (a, b, d)
          {reads}
          y = Add ({out}, x)
        }}
        """
    )
    onnx.checker.check_model(model, full_check=True)
    return model


@pytest.mark.parametrize("pipeline", PIPELINES)
@pytest.mark.parametrize("reads", sorted(DISPUTED_RANGE))
def test_shape_of_a_range_onnxruntime_versions_count_differently_is_not_folded(pipeline, reads):
    model = _disputed_range_model(DISPUTED_RANGE[reads])
    out = graphopt.optimize(model, pipeline)
    x = np.zeros(1, np.int64)
    assert_same_outputs(model, out, {"x": x})
    kinds = [n.op_type for n in out.graph.node]
    assert "Range" in kinds  # left to the runtime, and so is what reads its length
    assert "Shape" in kinds or "Size" in kinds


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_shape_of_a_range_both_versions_count_alike_still_folds(pipeline):
    # Range(0.5, -0.5, -0.1): 10 elements in onnxruntime 1.23.2, 1.32.0 and inference
    model = _disputed_range_model(DISPUTED_RANGE["shape"], limit=-0.5)
    out = graphopt.optimize(model, pipeline)
    assert_same_outputs(model, out, {"x": np.zeros(1, np.int64)})
    assert "Shape" not in [n.op_type for n in out.graph.node]


# Ops output_elements_bound did not size: evaluated in full (n = 100000: a 40 GB Gemm or
# Einsum outer product, a 3-index Gather of a [1, n] row by n repeated indices, a window of
# 4e9 elements from one scalar) before the size limit refused the result.
GROWING = {
    "gemm": ("y = Gemm (a, b)", ""),
    "gemm-transposed": ("y = Gemm <transA = 1, transB = 1> (b, a)", ""),
    "gather": (
        "y = Gather (b, i)",
        "i = Constant <value = int64[2000] {" + ", ".join(["0"] * 2000) + "}> ()",
    ),
    "einsum": ('y = Einsum <equation = "ik,kj->ij"> (a, b)', ""),
    "hann-window": ("y = HannWindow (w)", "w = Constant <value = int64 {4000000}> ()"),
    "conv-transpose": ("y = ConvTranspose <strides = [1, 1000]> (a4, w4)", ""),
}


@pytest.mark.parametrize("case", sorted(GROWING))
def test_size_limit_refuses_a_growing_op_before_evaluating_it(case, monkeypatch):
    node, extra = GROWING[case]
    model = blow_up_model(node, extra, opset=17)
    model.graph.initializer.extend(
        [
            onnx.numpy_helper.from_array(np.ones((1, 1, 2, 2), np.float32), "a4"),
            onnx.numpy_helper.from_array(np.ones((1, 1, 1, 1), np.float32), "w4"),
        ]
    )
    assert_refused_before_evaluating(model, monkeypatch)


@pytest.mark.parametrize("case", ["gemm", "gather"])
def test_a_small_gemm_or_gather_of_constants_still_folds(case):
    from graphopt.passes.constant_folding import ConstantFolding
    from graphopt.pipeline import make_pipeline

    node = {"gemm": "y = Gemm <transB = 1> (a, a)", "gather": "y = Gather <axis = 1> (a, i)"}[case]
    model = onnx.parser.parse_model(
        f"""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[1] x) => (float[?, ?] z) {{
          a = Constant <value = float[2, 3] {{1, 2, 3, 4, 5, 6}}> ()
          i = Constant <value = int64[2] {{2, -3}}> ()
          {node}
          z = Add (y, x)
        }}
        """
    )
    out = graphopt.optimize(model, make_pipeline("t", [ConstantFolding(size_limit=4)]))
    assert [n.op_type for n in out.graph.node if n.op_type != "Constant"] == ["Add"]
    assert_same_outputs(model, out, {"x": np.ones(1, np.float32)})


# onnxruntime picks a -0.0 out of a broadcast Y as +0.0 (Where(False, [3], [1]) took the
# kernel's other path), so 1 / Where(...) is +inf there; the fold kept numpy's -0.0: -inf
WHERE_ZEROS = {
    "y-broadcast": ("c = Constant <value = bool {0}> ()", "float[3] {1, 2, 3}", "float[1] {-0.0}"),
    "y-broadcast-rows": (
        "c = Constant <value = bool[2, 1] {1, 0}> ()",
        "float[3] {1, 2, 3}",
        "float[1] {-0.0}",
    ),
    "x-picked": (
        "c = Constant <value = bool[3] {1, 1, 0}> ()",
        "float[3] {-0.0, 2, 3}",
        "float[3] {4, 5, 6}",
    ),
}


@pytest.mark.parametrize("pipeline", PIPELINES)
@pytest.mark.parametrize("case", sorted(WHERE_ZEROS))
def test_where_gives_onnxruntimes_sign_of_a_picked_zero(pipeline, case):
    cond, x_value, y_value = WHERE_ZEROS[case]
    rank = "?, ?" if "[2, 1]" in cond else "?"
    model = onnx.parser.parse_model(
        f"""
        <ir_version: 8, opset_import: ["" : 16]>
        g (float[1] x) => (float[{rank}] z) {{
          {cond}
          a = Constant <value = {x_value}> ()
          b = Constant <value = {y_value}> ()
          w = Where (c, a, b)
          z = Div (x, w)
        }}
        """
    )
    out = graphopt.optimize(model, pipeline)
    feeds = {"x": np.ones(1, np.float32)}
    assert_same_outputs(model, out, feeds)
    assert np.isinf(ort_run(model, feeds)["z"]).any()  # the zero's sign shows


# Ops onnxruntime evaluates for the folder whose value 1.23.2 (the newest for Python 3.10)
# and 1.32.0 give differently (measured; 1.23.2 value, 1.32.0 value): folded, the model had
# 1.32's answer baked in. They are left to the runtime. (op, attrs, inputs, input type)
I32, I64, U32, F32 = np.int32, np.int64, np.uint32, np.float32
VERSIONS_DIFFER = {
    # integers accumulated in the type and wrapped (1.23) or in double and saturated (1.32);
    # a negative LogSumExp rounded down (1.23: -1) or toward zero (1.32: 0)
    "l1-int32": ("ReduceL1", "keepdims = 0", [np.array([[2**31 - 1, 2**31 - 1, 1]], I32)]),
    "l2-int32": ("ReduceL2", "keepdims = 0", [np.array([[46341, 2]], I32)]),  # -2^31, 46341
    "sum-square-int64": ("ReduceSumSquare", "keepdims = 0", [np.array([[3037000500, 2]], I64)]),
    "mean-int32": ("ReduceMean", "keepdims = 0", [np.array([[2**30, 2**30]], I32)]),
    "log-sum-int64": ("ReduceLogSum", "keepdims = 0", [np.array([[2**62, 2**62]], I64)]),
    "log-sum-exp-int64": ("ReduceLogSumExp", "keepdims = 0", [np.array([[-1, -1, -3, -2]], I64)]),
    # 1.23's float32 kernel (16 elements: its vectorized path): NaN (1.32: inf, 0)
    "prelu-inf": ("PRelu", "", [np.full(16, -np.inf, F32), np.array([-1.0], F32)]),
    "prelu-inf-slope": ("PRelu", "", [np.array([0.0, 2.0], F32), np.array([np.inf], F32)]),
    # by the bit width: 1.23 shifts by 33 mod 32 (2), 1.32 gives 0
    "bitshift-width": ("BitShift", 'direction = "LEFT"', [np.array([1], U32), np.array([33], U32)]),
}
_SEQUENCES = np.arange(30, dtype=F32).reshape(6, 5)
VERSIONS_DIFFER["reverse-sequence-empty"] = (  # 1.23 zeroes the empty sequence, 1.32 copies
    "ReverseSequence",
    "batch_axis = 1, time_axis = 0",
    [_SEQUENCES, np.array([1, 3, 0, 6, 2], I64)],
)
VERSIONS_AGREE = {
    "l2-int32": ("ReduceL2", "keepdims = 0", [np.array([[3, 4]], I32)]),
    "mean-int64": ("ReduceMean", "keepdims = 0", [np.array([[2**40, -(2**40), 7]], I64)]),
    "prelu": ("PRelu", "", [np.linspace(-8, 8, 16, dtype=F32), np.array([0.25], F32)]),
    "bitshift": ("BitShift", 'direction = "LEFT"', [np.array([1], U32), np.array([31], U32)]),
    "reverse-sequence": (
        "ReverseSequence",
        "batch_axis = 1, time_axis = 0",
        [_SEQUENCES, np.array([1, 3, 5, 6, 2], I64)],
    ),
}
_TYPES = {"int32": "int32", "int64": "int64", "uint32": "uint32", "float32": "float"}


def _one_op_model(op: str, attrs: str, inputs: list[np.ndarray]) -> onnx.ModelProto:
    kind = _TYPES[inputs[0].dtype.name]
    names = [f"c{k}" for k in range(len(inputs))]
    model = onnx.parser.parse_model(
        f"""
        <ir_version: 8, opset_import: ["" : 18]>
        g ({kind}[1] x) => ({kind}[?] z) {{
          r = {op} <{attrs}> ({", ".join(names)})
          f = Reshape (r, m)
          z = Add (f, x)
        }}
        """.replace(" <>", "")
    )
    model.graph.initializer.extend(
        onnx.numpy_helper.from_array(v, n) for n, v in zip(names, inputs, strict=True)
    )
    model.graph.initializer.append(onnx.numpy_helper.from_array(np.array([-1], I64), "m"))
    onnx.checker.check_model(model, full_check=True)
    return model


@pytest.mark.parametrize("case", sorted(VERSIONS_DIFFER))
def test_a_value_onnxruntime_versions_disagree_on_is_left_to_the_runtime(case):
    op, attrs, inputs = VERSIONS_DIFFER[case]
    model = _one_op_model(op, attrs, inputs)
    out = graphopt.optimize(model)
    assert op in [n.op_type for n in out.graph.node]
    assert_same_outputs(model, out, {"x": np.zeros(1, inputs[0].dtype)})


@pytest.mark.parametrize("case", sorted(VERSIONS_AGREE))
def test_a_value_onnxruntime_versions_agree_on_still_folds(case):
    op, attrs, inputs = VERSIONS_AGREE[case]
    model = _one_op_model(op, attrs, inputs)
    out = graphopt.optimize(model)
    assert op not in [n.op_type for n in out.graph.node]
    assert_same_outputs(model, out, {"x": np.zeros(1, inputs[0].dtype)})


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_int_min_modulo_minus_one_is_left_to_the_runtime(dtype):
    # onnxruntime 1.23.2 dies of SIGFPE on it (1.32 gives 0); the kernel folded 0. Neither
    # model is run here: on 1.23 that would kill the test process.
    kind = np.dtype(dtype).name
    model = onnx.parser.parse_model(
        f"""
        <ir_version: 8, opset_import: ["" : 13]>
        g ({kind}[1] x) => ({kind}[1] z) {{
          r = Mod (a, b)
          z = Add (r, x)
        }}
        """
    )
    low = np.iinfo(dtype).min
    model.graph.initializer.extend(
        [
            onnx.numpy_helper.from_array(np.array([low, 7], dtype), "a"),
            onnx.numpy_helper.from_array(np.array([-1, -1], dtype), "b"),
        ]
    )
    out = graphopt.optimize(model)
    assert "Mod" in [n.op_type for n in out.graph.node]


def test_int16_min_modulo_minus_one_still_folds():
    # promoted to int in C: no trap, onnxruntime 1.23.2 and 1.32 both give 0
    model = onnx.parser.parse_model(
        """
        <ir_version: 8, opset_import: ["" : 14]>
        g (int16[2] x) => (int16[2] z) {
          a = Constant <value = int16[2] {-32768, 7}> ()
          b = Constant <value = int16[2] {-1, -1}> ()
          r = Mod (a, b)
          z = Add (r, x)
        }
        """
    )
    out = graphopt.optimize(model)
    assert "Mod" not in [n.op_type for n in out.graph.node]
    assert_same_outputs(model, out, {"x": np.zeros(2, np.int16)})
