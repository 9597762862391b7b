"""Review of constant folding and static shapes: folds that differed from onnxruntime.

Each model here was optimized into one whose outputs differ from the original's in
onnxruntime; every built-in pipeline is checked against the original.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser
import pytest

import graphopt
from graphopt.analysis.shapes import shape_facts
from graphopt.backends.onnxruntime import run as ort_run
from graphopt.ir import Graph
from tests.conftest import assert_same_outputs

PIPELINES = ("default", "ort-cpu", "ort-cpu-native", "tensorrt", "simplify")

# torch's F.interpolate(x, size=pooled.shape[2:]) after MaxPool2d(2, 2, padding=1,
# ceil_mode=True), dynamic batch: onnxruntime (as the ONNX spec says) drops the last window,
# which would start in the right padding (5 → 3); ONNX shape inference keeps it (5 → 4), and
# the static dims Slice(Shape(p), 2, 4) folded to [4, 4]. (With a static batch onnxruntime's
# own optimizer folds Shape(p) from that same inference: [1, 1, 4, 4] at level "all" only.)
CEIL_POOL = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[N, 1, 5, 5] x) => (float[?, ?, ?, ?] y, float[?, ?, ?, ?] p) {
  p = MaxPool <kernel_shape = [2, 2], strides = [2, 2], pads = [1, 1, 1, 1], ceil_mode = 1> (x)
  s = Shape (p)
  two = Constant <value = int64[1] {2}> ()
  four = Constant <value = int64[1] {4}> ()
  hw = Slice (s, two, four)
  nc = Constant <value = int64[2] {1, 1}> ()
  sizes = Concat <axis = 0> (nc, hw)
  y = Resize <mode = "nearest"> (x, , , sizes)
}
"""

# the same pool in both branches of an If: ONNX inference types the If's output from them
CEIL_POOL_IN_IF = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[N, 1, 5, 5] x, bool b) => (float[?, ?, ?, ?] y) {
  p = If (b) <
    then_branch = t () => (float[?, ?, ?, ?] pt) {
      pt = MaxPool <kernel_shape = [2, 2], strides = [2, 2], pads = [1, 1, 1, 1], ceil_mode = 1> (x)
    },
    else_branch = e () => (float[?, ?, ?, ?] pe) {
      pe = AveragePool <kernel_shape = [2, 2], strides = [2, 2], pads = [1, 1, 1, 1], ceil_mode = 1> (x)
    }
  >
  s = Shape (p)
  two = Constant <value = int64[1] {2}> ()
  four = Constant <value = int64[1] {4}> ()
  hw = Slice (s, two, four)
  nc = Constant <value = int64[2] {1, 1}> ()
  sizes = Concat <axis = 0> (nc, hw)
  y = Resize <mode = "nearest"> (x, , , sizes)
}
"""


def _x() -> np.ndarray:
    return np.arange(25, dtype=np.float32).reshape(1, 1, 5, 5)


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_shape_of_a_ceil_mode_pool_folds_to_what_onnxruntime_computes(pipeline):
    model = onnx.parser.parse_model(CEIL_POOL)
    assert_same_outputs(model, graphopt.optimize(model, pipeline), {"x": _x()})


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_shape_of_an_if_with_ceil_mode_pools_in_its_branches_is_not_folded(pipeline):
    model = onnx.parser.parse_model(CEIL_POOL_IN_IF)
    for b in (True, False):
        feeds = {"x": _x(), "b": np.array(b)}
        assert_same_outputs(model, graphopt.optimize(model, pipeline), feeds)


def test_ceil_mode_pool_facts_are_onnxruntimes_and_reach_what_follows():
    model = onnx.parser.parse_model(
        """
        <ir_version: 8, opset_import: ["" : 19]>
        g (float[1, 1, 5, 5] x, float[1, 1, 7] v) => (float[?] c, float[?] a, float[?] l) {
          p1, i1 = MaxPool <kernel_shape = [2, 2], strides = [2, 2], pads = [1, 1, 1, 1],
                            ceil_mode = 1> (x)
          p2 = MaxPool <kernel_shape = [2, 2], strides = [2, 2], pads = [1, 1, 1, 1],
                        ceil_mode = 1> (p1)
          w = Constant <value = float[2, 1, 1, 1] {1, 2}> ()
          c = Conv (p2, w)
          a = AveragePool <kernel_shape = [2], strides = [4], auto_pad = "VALID", ceil_mode = 1> (v)
          l = LpPool <kernel_shape = [1], strides = [3], ceil_mode = 1> (v)
        }
        """
    )
    facts = shape_facts(Graph(model))
    assert facts.shape("p1") == (1, 1, 3, 3)  # ONNX inference: 4 x 4
    assert facts.shape("i1") == (1, 1, 3, 3)
    assert facts.dtype("i1") == onnx.TensorProto.INT64
    assert facts.shape("p2") == (1, 1, 2, 2)
    assert facts.shape("c") == (1, 2, 2, 2)
    assert facts.shape("a") == (1, 1, None)  # onnxruntime 2, ONNX 3: not told
    assert facts.shape("l") == (1, 1, 3)  # ⌈6/3⌉ + 1 = 3 windows start at 0, 3, 6 < 7


def _resized_like(producer: str, size: int) -> onnx.ModelProto:
    """y = Resize(x, sizes = [1, 1] ++ Shape(p)[2:]) for p made by `producer` from x."""
    return onnx.parser.parse_model(
        f"""
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[N, 1, {size}, {size}] x) => (float[?, ?, ?, ?] y) {{
          {producer}
          s = Shape (p)
          two = Constant <value = int64[1] {{2}}> ()
          four = Constant <value = int64[1] {{4}}> ()
          hw = Slice (s, two, four)
          nc = Constant <value = int64[2] {{1, 1}}> ()
          sizes = Concat <axis = 0> (nc, hw)
          y = Resize <mode = "nearest"> (x, , , sizes)
        }}
        """
    )


# onnxruntime scales 10 by float32 0.7 to ⌊6.99999988 (float32: 7.0)⌋ = 7; ONNX inference
# says 6, and Slice(Shape(p), 2, 4) folded to [6, 6]
RESIZE_BY_SCALES = """
  roi = Constant <value = float[0] {}> ()
  sc = Constant <value = float[4] {1, 1, 0.7, 0.7}> ()
  p = Resize <mode = "nearest"> (x, roi, sc)
"""

# onnxruntime pads an auto_pad SAME pool as if undilated: 4 windows of 5, where ONNX
# inference (and the spec) say ⌈5 / 1⌉ = 5
SAME_DILATED_POOL = """
  p = MaxPool <kernel_shape = [2, 2], auto_pad = "SAME_UPPER", dilations = [2, 2]> (x)
"""


@pytest.mark.parametrize("pipeline", PIPELINES)
@pytest.mark.parametrize(
    ("producer", "size"), [(RESIZE_BY_SCALES, 10), (SAME_DILATED_POOL, 5)], ids=["resize", "pool"]
)
def test_shape_folds_to_what_onnxruntime_computes_where_inference_differs(pipeline, producer, size):
    model = _resized_like(producer, size)
    x = np.arange(size * size, dtype=np.float32).reshape(1, 1, size, size)
    assert_same_outputs(model, graphopt.optimize(model, pipeline), {"x": x})


def test_resize_facts_keep_the_dims_inference_gets_right():
    model = onnx.parser.parse_model(
        """
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[1, 3, 10, 10] x) => (float[?] a, float[?] b) {
          roi = Constant <value = float[0] {}> ()
          s1 = Constant <value = float[4] {1, 1, 0.7, 2}> ()
          a = Resize <mode = "nearest"> (x, roi, s1)
          s2 = Constant <value = float[4] {1, 1, 0.5, 2}> ()
          b = Resize <mode = "nearest"> (x, roi, s2)
        }
        """
    )
    facts = shape_facts(Graph(model))
    assert facts.shape("a") == (1, 3, None, 20)  # 0.7 x 10: onnxruntime 7, inference 6
    assert facts.shape("b") == (1, 3, 5, 20)


BLOW_UPS = {
    # a [N, 1] and a [1, N] constant: N² out of 2N in (a meshgrid of anchors, a bias grid)
    "broadcast": ("y = Add (a, b)", ""),
    "outer-product": ("y = MatMul (a, b)", ""),
    "pad": ("y = Pad (a, p)", "p = Constant <value = int64[4] {0, 0, 0, 3000}> ()"),
    "resize": ("y = Resize (a, , s)", "s = Constant <value = float[2] {1, 3000}> ()"),
    "one-hot": (
        "y = OneHot (i, d, v)",
        "i = Constant <value = int64[4] {0, 1, 2, 3}> ()\n"
        "d = Constant <value = int64 {100000}> ()\n"
        "v = Constant <value = float[2] {0, 1}> ()",
    ),
}


@pytest.mark.parametrize("case", sorted(BLOW_UPS))
def test_size_limit_refuses_a_blow_up_before_evaluating_it(case, monkeypatch):
    node, extra = BLOW_UPS[case]
    assert_refused_before_evaluating(blow_up_model(node, extra), monkeypatch)


def blow_up_model(node: str, extra: str, opset: int = 13) -> onnx.ModelProto:
    """z = `node`'s y + x, after the `extra` lines, with constants a [n, 1] and b [1, n]
    (n = 2000) for `node` to read."""
    n = 2000
    model = onnx.parser.parse_model(
        f"""
        <ir_version: 8, opset_import: ["" : {opset}]>
        g (float[1] x) => (float[?, ?] z) {{
          {extra}
          {node}
          z = Add (y, x)
        }}
        """
    )
    model.graph.initializer.extend(
        [
            onnx.numpy_helper.from_array(np.arange(n, dtype=np.float32).reshape(n, 1), "a"),
            onnx.numpy_helper.from_array(np.arange(n, dtype=np.float32).reshape(1, n), "b"),
        ]
    )
    return model


def assert_refused_before_evaluating(model: onnx.ModelProto, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Constant folding at size_limit=1000 refuses `model`'s one node by its size bound,
    before any kernel runs (a spy on `evaluate`), and says so in --explain."""
    from graphopt.passes import constant_folding
    from graphopt.passes.constant_folding import ConstantFolding
    from graphopt.pipeline import make_pipeline

    evaluated = []
    real = constant_folding.evaluate

    def spy(node, *args, **kwargs):
        evaluated.append(node.op_type)
        return real(node, *args, **kwargs)

    monkeypatch.setattr(constant_folding, "evaluate", spy)
    pipeline = make_pipeline("t", [ConstantFolding(size_limit=1000)])
    out, report = graphopt.optimize_with_report(model, pipeline, explain=True)
    assert evaluated == []  # nothing allocated: the bound refused it
    assert [n.op_type for n in out.graph.node] == [n.op_type for n in model.graph.node]
    assert any(r[2] == "refused" and "exceeds size_limit=1000" in r[3] for r in report.explain)


@pytest.mark.parametrize("limit", ["-inf", "inf", "nan"])
def test_a_range_onnxruntime_refuses_is_left_unfolded_not_an_error(limit):
    # in a branch never taken the model runs; the folder stopped the whole optimization with
    # a PassError (numpy kernel: OverflowError / ValueError converting the count to an int)
    model = onnx.parser.parse_model(
        f"""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[1] x, bool b) => (float[?] y) {{
          y = If (b) <
            then_branch = t () => (float[?] yt) {{
              a = Constant <value = float {{0.0}}> ()
              one = Constant <value = float {{1.0}}> ()
              lim = Constant <value = float {{{limit}}}> ()
              r = Range (a, lim, one)
              yt = Add (r, x)
            }},
            else_branch = e () => (float[?] ye) {{
              ye = Identity (x)
            }}
          >
        }}
        """
    )
    feeds = {"x": np.ones(1, np.float32), "b": np.array(False)}
    # compared with onnxruntime's own optimizer off: onnxruntime 1.23 (the newest for Python
    # 3.10) cannot load this model at any other level (its graph_utils RemoveNode "should be
    # unreachable" on the Range in the branch); 1.24+ loads it
    want = ort_run(model, feeds, level="disable")
    for pipeline in PIPELINES:
        got = ort_run(graphopt.optimize(model, pipeline), feeds, level="disable")
        assert list(got) == ["y"], pipeline
        np.testing.assert_array_equal(got["y"], want["y"], err_msg=pipeline)


_HUGE_STEP = """
import sys
import numpy as np
import onnx
import onnx.helper as oh
import graphopt
from graphopt.backends.onnxruntime import run, session

step = int(sys.argv[1])
nodes = [oh.make_node("Slice", ["x", "s", "e", "a", "p"], ["y"]),
         oh.make_node("Shape", ["y"], ["sh"]), oh.make_node("Add", ["sh", "z"], ["o"])]
consts = [onnx.numpy_helper.from_array(np.array([v]), n)
          for v, n in ((0, "s"), (10, "e"), (0, "a"), (step, "p"))]
graph = oh.make_graph(
    nodes, "g",
    [oh.make_tensor_value_info("x", 1, [10]), oh.make_tensor_value_info("z", 7, [1])],
    [oh.make_tensor_value_info("o", 7, None)], consts)
model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)], ir_version=8)
feeds = {"x": np.zeros(10, np.float32), "z": np.zeros(1, np.int64)}
for pipeline in ("default", "simplify"):
    print(run(session(graphopt.optimize(model, pipeline)), feeds)["o"].tolist())
"""


@pytest.mark.slow
@pytest.mark.parametrize("step", [2**63 - 1, 2**32, -(2**63) + 1])
def test_a_huge_slice_step_neither_crashes_nor_hangs_shape_inference(step):
    # x[::step] runs in onnxruntime (one element, or none for a negative step); onnx 1.23's
    # Slice inference crashed the process (2^63 - 1: SIGSEGV) or never returned (2^32)
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _HUGE_STEP, str(step)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-500:]
    want = "[1]" if step > 0 else "[0]"
    assert done.stdout.splitlines() == [want, want]


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_expand_and_transpose_of_a_scalar_fold_to_a_scalar(pipeline):
    # np.ascontiguousarray returns at least 1-D: Expand(c, Shape(s)) of a scalar c and s
    # (target []) and Transpose of a scalar folded to shape [1], so y came out [1] not []
    model = onnx.parser.parse_model(
        """
        <ir_version: 8, opset_import: ["" : 13]>
        g (float x, float s) => (float y, float t) {
          c = Constant <value = float {2.5}> ()
          shape = Shape (s)
          e = Expand (c, shape)
          y = Add (x, e)
          tc = Transpose (c)
          t = Mul (x, tc)
        }
        """
    )
    feeds = {"x": np.array(1.0, np.float32), "s": np.array(0.0, np.float32)}
    assert_same_outputs(model, graphopt.optimize(model, pipeline), feeds)


# onnxruntime gives an auto_pad SAME ConvTranspose min(in·s, (in − 1)·s + output_padding +
# (k − 1)·d + 1) = 6 of 3 here; ONNX inference adds output_padding: 7
SAME_TRANSPOSED_CONV = """
  w = Constant <value = float[1, 1, 2, 2] {1, 1, 1, 1}> ()
  p = ConvTranspose <kernel_shape = [2, 2], strides = [2, 2], auto_pad = "SAME_UPPER",
                     output_padding = [1, 1]> (x, w)
"""


@pytest.mark.parametrize("pipeline", PIPELINES)
@pytest.mark.parametrize(
    ("producer", "size"),
    [(SAME_TRANSPOSED_CONV, 3)],
    ids=["conv-transpose"],
)
def test_shape_folds_to_what_onnxruntime_computes_after_a_same_transposed_conv(
    pipeline, producer, size
):
    model = _resized_like(producer, size)
    x = np.arange(size * size, dtype=np.float32).reshape(1, 1, size, size)
    assert_same_outputs(model, graphopt.optimize(model, pipeline), {"x": x})


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_a_resize_after_a_corrected_pool_is_checked_against_the_corrected_dims(pipeline):
    # pool: H 10 → 5 (inference 6), W 10; Resize by 0.7 x 1.3: onnxruntime 3 x 13. The pool
    # and the Resize (W: inference 12) were corrected in one round, the Resize's H from the
    # pool's stale 6: 4 was kept, and Gather(Shape(p), 2) folded to 4
    model = onnx.parser.parse_model(
        """
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[N, 1, 10, 10] x) => (float[?, ?, ?, ?] y) {
          q = AveragePool <kernel_shape = [3, 1], strides = [2, 1], pads = [0, 0, 2, 0],
                           ceil_mode = 1> (x)
          roi = Constant <value = float[0] {}> ()
          sc = Constant <value = float[4] {1, 1, 0.7, 1.3}> ()
          p = Resize <mode = "nearest"> (q, roi, sc)
          s = Shape (p)
          two = Constant <value = int64[1] {2}> ()
          h = Gather (s, two)
          nc = Constant <value = int64[2] {1, 1}> ()
          w = Constant <value = int64[1] {7}> ()
          sizes = Concat <axis = 0> (nc, h, w)
          y = Resize <mode = "nearest"> (x, , , sizes)
        }
        """
    )
    x = np.arange(100, dtype=np.float32).reshape(1, 1, 10, 10)
    assert_same_outputs(model, graphopt.optimize(model, pipeline), {"x": x})


def test_same_transposed_conv_facts_are_the_spec_and_onnxruntime_number_or_unknown():
    model = onnx.parser.parse_model(
        """
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[1, 1, 3, 3] x) => (float[?] a, float[?] b) {
          w = Constant <value = float[1, 1, 2, 2] {1, 1, 1, 1}> ()
          a = ConvTranspose <strides = [2, 2], auto_pad = "SAME_UPPER", output_padding = [1, 0]> (x, w)
          v = Constant <value = float[1, 1, 1, 1] {1}> ()
          b = ConvTranspose <strides = [2, 2], auto_pad = "SAME_LOWER"> (x, v)
        }
        """
    )
    facts = shape_facts(Graph(model))
    assert facts.shape("a") == (1, 1, 6, 6)  # spec and onnxruntime 6; inference 7 x 6
    assert facts.shape("b") == (1, 1, None, None)  # spec 6, onnxruntime 5: not told


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_resize_scales_from_a_value_floats_constant_are_checked_too(pipeline):
    # the scales' Constant spelled value_floats was not read, so inference's 6 stood (simplify
    # pipeline, which converts no Constant first) where onnxruntime scales 10 by 0.7 to 7
    producer = """
      roi = Constant <value = float[0] {}> ()
      sc = Constant <value_floats = [1.0, 1.0, 0.7, 0.7]> ()
      p = Resize <mode = "nearest"> (x, roi, sc)
    """
    model = _resized_like(producer, 10)
    x = np.arange(100, dtype=np.float32).reshape(1, 1, 10, 10)
    assert_same_outputs(model, graphopt.optimize(model, pipeline), {"x": x})


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_a_double_to_half_cast_folds_as_onnxruntime_rounds_it(pipeline):
    # onnxruntime casts double to half through float (two roundings); numpy's one rounding
    # folded 1 + 2^-11 + 2^-40 to 1.0009765625 (onnxruntime 1.0), 2049 + 2^-30 to 2050 (2048)
    # and 65519.99999 to 65504 (inf)
    values = [1 + 2**-11 + 2**-40, 2049 + 2**-30, 65519.99999]
    model = onnx.parser.parse_model(
        f"""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float16[3] x) => (float16[3] y) {{
          c = Constant <value = double[3] {{{", ".join(repr(v) for v in values)}}}> ()
          h = Cast <to = 10> (c)
          y = Add (x, h)
        }}
        """
    )
    feeds = {"x": np.zeros(3, np.float16)}
    assert_same_outputs(model, graphopt.optimize(model, pipeline), feeds, rtol=0, atol=0)
