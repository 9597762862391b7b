"""Final review 10: defects found reviewing the day's library changes (each test fails on the
commit before its fix)."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser

import graphopt
from tests.conftest import assert_same_outputs

# x·clip(x + 3, 0, 6)/6 (a HardSwish at opset 12, which has none) feeding a local function
_HARDSWISH_INTO_FUNCTION = """
<ir_version: 8, opset_import: ["" : 12, "local": 1]>
g (float[1,3,4,4] x) => (float[1,3,4,4] y) {
  three = Constant<value = float {3.0}>()
  zero = Constant<value = float {0.0}>()
  six = Constant<value = float {6.0}>()
  a = Add(x, three)
  r = Clip(a, zero, six)
  m = Mul(x, r)
  h = Div(m, six)
  y = local.Twice(h)
}
<domain: "local", opset_import: ["" : 12]>
Twice (a) => (b) {
  b = Add(a, a)
}
"""


def test_upgrade_opset_keeps_a_model_with_local_functions() -> None:
    """onnx.version_converter drops a model's local functions: upgrading 12 -> 14 for the
    HardSwish left a call of local.Twice with no function (onnxruntime: 'not a registered
    function/op'; onnx's full check passed it as a custom op). merge's conversion inlines
    them first; fuse_patterns.upgrade_opset now leaves such a model at its opset."""
    model = onnx.parser.parse_model(_HARDSWISH_INTO_FUNCTION)
    out = graphopt.optimize(model, upgrade_opset=True)
    assert [f.name for f in out.functions] == ["Twice"]
    onnx.checker.check_model(out, full_check=True)
    x = np.random.default_rng(0).normal(0, 4, (1, 3, 4, 4)).astype(np.float32)
    assert_same_outputs(model, out, {"x": x})


def test_fp16_qdq_opset_move_keeps_local_functions() -> None:
    """TensorRT's float16 path moves a Q/DQ model to opset 19 with the same converter: the
    model's local functions were dropped there too; now its Q/DQ stay float32 instead."""
    from graphopt.backends.fp16 import _qdq_opset_for_fp16

    model = onnx.parser.parse_model(_HARDSWISH_INTO_FUNCTION)
    blocked: list[str] = []
    out = _qdq_opset_for_fp16(model, blocked)
    assert [f.name for f in out.functions] == ["Twice"]
    assert blocked == ["QuantizeLinear", "DequantizeLinear"]


def _bfloat16_plus_zero(zero: str) -> onnx.ModelProto:
    """x (as bfloat16) + a zero given by its bits (the parser reads bfloat16 as integers)."""
    return onnx.parser.parse_model(f"""
<ir_version: 8, opset_import: ["" : 17]>
g (float[3] x) => (float[3] y) {{
  xb = Cast<to=16>(x)
  z = Constant<value = bfloat16[3] {{{zero}, {zero}, {zero}}}>()
  s = Add(xb, z)
  f = Cast<to=1>(s)
  y = Reciprocal(f)
}}
""")


def test_bfloat16_plus_positive_zero_is_kept() -> None:
    """eliminate-noops keeps x + 0.0 on floats (-0.0 + 0.0 is +0.0), but judged the sign of
    the zero only for numpy's float kinds: a bfloat16 (or float8) constant decodes to an
    ml_dtypes type of kind "V", so bfloat16 x + 0.0 was dropped and Reciprocal gave -inf at
    x = -0.0 where IEEE arithmetic (ml_dtypes; onnxruntime's CPU build has no bfloat16 Add)
    gives +inf. x + (-0.0) still goes."""
    import ml_dtypes

    kept = graphopt.optimize(_bfloat16_plus_zero("0"))
    assert "Add" in [n.op_type for n in kept.graph.node]
    onnx.checker.check_model(kept, full_check=True)
    zero = ml_dtypes.bfloat16(0.0)
    assert not np.signbit(np.float32(ml_dtypes.bfloat16(-0.0) + zero))  # what it computes
    dropped = graphopt.optimize(_bfloat16_plus_zero("32768"))
    assert [n.op_type for n in dropped.graph.node] == ["Cast", "Cast", "Reciprocal"]


_LOAD_WHILE_TRUNCATED = """
import mmap, os, sys
from graphopt.errors import LoadError
from graphopt.ir import model_io
path = sys.argv[1]
real = mmap.mmap

def mapped_then_truncated(fileno, length, *args, **kwargs):
    mapping = real(fileno, length, *args, **kwargs)
    os.truncate(path, 100)  # another process rewrites the file in place meanwhile
    return mapping

mmap.mmap = mapped_then_truncated
try:
    model_io.load(path)
except LoadError:
    pass
print("survived")
"""


def test_a_model_file_truncated_while_loading_does_not_kill_the_process(tmp_path) -> None:
    """load parsed a model straight from a mapping of its file (f0a1ede): a file truncated
    after it was mapped (rewritten in place by another process: onnx.save, a trainer's
    checkpoint) killed the process with SIGBUS when the parse reached a page past the new end,
    where a read gives a short file (a LoadError, or the model read before the cut)."""
    import subprocess
    import sys

    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((512, 512), np.float32), "w")
    vi = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [512, 512]) for n in ("x", "y")]
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])], "g", [vi[0]], [vi[1]], [w]
    )
    path = tmp_path / "m.onnx"
    path.write_bytes(helper.make_model(graph).SerializeToString())
    run = subprocess.run(
        [sys.executable, "-c", _LOAD_WHILE_TRUNCATED, str(path)], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr[-400:]
    assert "survived" in run.stdout


def test_external_data_leaves_initializers_of_bodies_in_functions_inline(tmp_path) -> None:
    """save_model's external data walk (b267f71) marked the initializers of an If body inside
    a local function as external, which onnx's writer never visits: the tensor kept its
    raw_data beside data_location=EXTERNAL, and onnx's checker, onnxruntime and load refused
    the saved model. Such a tensor now stays inline; a function's Constant still goes out."""
    import onnxruntime as ort
    from onnx import numpy_helper

    from graphopt.ir.model_io import load, save_model

    model = onnx.parser.parse_model("""
<ir_version: 8, opset_import: ["" : 13, "local": 1]>
g (float[512] x, bool c) => (float[512] y) {
  y = local.Pick(x, c)
}
<domain: "local", opset_import: ["" : 13]>
Pick (a, c) => (b) {
  k = Constant<value = float[512] {0.0}>()
  ak = Add(a, k)
  b = If(c) <then_branch = t () => (float[512] o) { o = Identity(ak) },
             else_branch = e () => (float[512] o2) { o2 = Add(ak, w) }>
}
""")
    function = model.functions[0]
    function.node[0].attribute[0].t.CopyFrom(
        numpy_helper.from_array(np.full(512, 0.5, np.float32), "k")
    )
    branch = next(a.g for a in function.node[2].attribute if a.name == "else_branch")
    branch.initializer.append(numpy_helper.from_array(np.arange(512, dtype=np.float32), "w"))
    path = tmp_path / "m.onnx"
    save_model(model, path, external_data=True)
    assert (tmp_path / "m.onnx.data").stat().st_size == 2048  # the Constant's tensor
    onnx.checker.check_model(str(path), full_check=True)
    feeds = {"x": np.ones(512, np.float32), "c": np.array(False)}
    want = ort.InferenceSession(model.SerializeToString()).run(None, feeds)[0]
    got = ort.InferenceSession(str(path)).run(None, feeds)[0]
    np.testing.assert_array_equal(got, want)
    assert load(path).model.functions[0].name == "Pick"


def _scaled_twice_float16(a: list[float], b: list[float]) -> onnx.ModelProto:
    from onnx import TensorProto, helper, numpy_helper

    inits = [
        numpy_helper.from_array(np.array(v, np.float16).reshape(1, -1, 1, 1), n)
        for v, n in ((a, "a"), (b, "b"))
    ]
    nodes = [helper.make_node("Mul", ["x", "a"], ["t"]), helper.make_node("Mul", ["t", "b"], ["y"])]
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT16, [1, 2, 2, 2]) for n in "xy"]
    graph = helper.make_graph(nodes, "g", [io[0]], [io[1]], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def test_a_merged_float16_scale_is_judged_per_element() -> None:
    """(x·a)·b ⇒ x·(ab) is refused where ab rounds into float16's subnormals (96a5f27), but
    fbafd6b's exemption of channels below one ulp of the largest one applied to a scale's
    elements too: a = b = [1, 1e-4] merged to x·[1, 0], so channel 1 gave 0 where onnxruntime
    gives 1e-4 (x = 1e4). Each element of a scale multiplies its own channel of x."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    x = {"x": np.full((1, 2, 2, 2), 1e4, np.float16)}
    model = _scaled_twice_float16([1.0, 1e-4], [1.0, 1e-4])
    want = ort.InferenceSession(model.SerializeToString(), opts).run(None, x)[0]
    assert want[0, 1, 0, 0] > 0
    for pipeline in ("default", "ort-cpu", "tensorrt"):
        out = graphopt.optimize(model, pipeline)
        got = ort.InferenceSession(out.SerializeToString(), opts).run(None, x)[0]
        np.testing.assert_allclose(got.astype(np.float32), want.astype(np.float32), rtol=1e-3)
    # a normal product still merges
    merged = graphopt.optimize(_scaled_twice_float16([1.0, 0.5], [1.0, 0.25]))
    assert [n.op_type for n in merged.graph.node] == ["Mul"]
