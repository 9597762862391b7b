"""H168: shape facts that onnxruntime's run contradicts, and the passes that acted on them."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx.parser
import pytest

import graphopt
from graphopt.analysis import shape_facts
from tests.conftest import assert_same_outputs
from tests.fusion_models import run_at

STFT = """<ir_version: 9, opset_import: ["" : 17]>
g (float[1,16,1] x) => (int64[1] bins) {
  step = Constant<value=int64 {4}>()
  window = Constant<value=float[WINDOW] {WEIGHTS}>()
  z = STFT(x, step, window)
  shape = Shape(z)
  axis = Constant<value=int64[1] {2}>()
  bins = Gather(shape, axis)
}"""


def _stft(window: int) -> onnx.ModelProto:
    text = STFT.replace("WINDOW", str(window)).replace("WEIGHTS", ", ".join(["1"] * window))
    return onnx.parser.parse_model(text)


@pytest.mark.parametrize("window", [5, 6])
def test_onesided_stft_without_frame_length_has_half_the_bins(window):
    # onnxruntime: ⌊window / 2⌋ + 1 bins; ONNX inference said `window`, and
    # simplify-shape-subgraphs folded Shape(z)[2] to that constant
    model = _stft(window)
    stated = shape_facts(model).shape("z")
    real = (1, 3, window // 2 + 1, 2)
    assert stated is None or all(
        not isinstance(d, int) or d == r for d, r in zip(stated, real, strict=True)
    )
    feeds = {"x": np.linspace(-1, 1, 16, dtype=np.float32).reshape(1, 16, 1)}
    for pipeline in ("default", "tensorrt"):
        out = graphopt.optimize(model, pipeline=pipeline)
        assert_same_outputs(model, out, feeds)


def _optimize_in_a_process(tmp_path, model: onnx.ModelProto, *args: str) -> onnx.ModelProto:
    """`graphopt optimize` (ARGS) of `model` in a process of its own (a segfault fails the test,
    not the run); the result."""
    src, dst = tmp_path / "in.onnx", tmp_path / "out.onnx"
    onnx.save(model, src)
    done = subprocess.run(
        [sys.executable, "-m", "graphopt", "optimize", str(src), "-o", str(dst), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return onnx.load(dst)


SHAPE_SLICE = """<ir_version: 8, opset_import: ["" : 13]>
g (float[2,3,4,5,6] x) => (int64[1] z) {
  shape = Shape(x)
  start = Constant<value=int64[1] {2}>()
  end = Constant<value=int64[1] {STEP}>()
  axis = Constant<value=int64[1] {0}>()
  step = Constant<value=int64[1] {STEP}>()
  picked = Slice(shape, start, end, axis, step)
  zero = Constant<value=int64[1] {0}>()
  z = Add(picked, zero)
}"""


@pytest.mark.parametrize("step", [2**31 - 1, 2**31 - 2])
def test_a_huge_step_slice_of_a_shape_does_not_crash_inference(tmp_path, step):
    # onnx 1.23's data propagation of Shape(x)[2::2^31 - 1] overflowed start + step and
    # segfaulted: `graphopt optimize` died with SIGSEGV (shapes clamped steps to 2^31 - 1)
    model = onnx.parser.parse_model(SHAPE_SLICE.replace("STEP", str(step)))
    out = _optimize_in_a_process(tmp_path, model)
    assert_same_outputs(model, out, {"x": np.ones((2, 3, 4, 5, 6), np.float32)})


COMPUTED_STEP = """<ir_version: 8, opset_import: ["" : 13]>
g (float[2,3,4,5,6] x) => (int64[1] z) {
  shape = Shape(x)
  start = Constant<value=int64[1] {2}>()
  end = Constant<value=int64[1] {2147483647}>()
  axis = Constant<value=int64[1] {0}>()
  big = Constant<value=int64 {2147483647}>()
  step = Unsqueeze(big, axis)
  picked = Slice(shape, start, end, axis, step)
  zero = Constant<value=int64[1] {0}>()
  z = Add(picked, zero)
}"""

FUNCTION_STEP = """<ir_version: 8, opset_import: ["" : 13, "local" : 1]>
g (float[2,3,4,5,6] x) => (int64[1] z) {
  step = Constant<value=int64[1] {2147483647}>()
  z = local.Pick(x, step)
}
<domain: "local", opset_import: ["" : 13]>
Pick (x, step) => (z) {
  shape = Shape(x)
  start = Constant<value=int64[1] {2}>()
  end = Constant<value=int64[1] {2147483647}>()
  axis = Constant<value=int64[1] {0}>()
  z = Slice(shape, start, end, axis, step)
}"""


@pytest.mark.parametrize(
    ("text", "pipeline"),
    [(COMPUTED_STEP, "default"), (FUNCTION_STEP, "ort-cpu")],
    ids=["computed", "in-function"],
)
def test_a_huge_step_computed_or_in_a_function_does_not_crash_inference(tmp_path, text, pipeline):
    # data propagation carries a step of 2^31 - 1 through Unsqueeze (Concat, Cast, Gather) of
    # constants, and from a caller into a model-local function: both segfaulted as above
    model = onnx.parser.parse_model(text)
    out = _optimize_in_a_process(tmp_path, model, "--pipeline", pipeline)
    assert_same_outputs(model, out, {"x": np.ones((2, 3, 4, 5, 6), np.float32)})


@pytest.mark.parametrize("step", [-(2**31) + 1, -(2**31), -(2**63)])
def test_a_huge_negative_step_to_int64_max_is_still_disputed(step):
    # Slice(x, 3, INT64_MAX, step < 0): onnxruntime takes row 3, ONNX none; a step the light
    # model clamped hid that from the dispute check, and Shape(r) folded to [0, 5]
    text = f"""<ir_version: 8, opset_import: ["" : 13]>
    g (float[7,5] x) => (float[2] z) {{
      start = Constant<value=int64[1] {{3}}>()
      end = Constant<value=int64[1] {{9223372036854775807}}>()
      axis = Constant<value=int64[1] {{0}}>()
      step = Constant<value=int64[1] {{{step}}}>()
      r = Slice(x, start, end, axis, step)
      shape = Shape(r)
      z = Cast<to=1>(shape)
    }}"""
    model = onnx.parser.parse_model(text)
    stated = shape_facts(model).shape("r")
    assert stated is None or all(
        not isinstance(d, int) or d == real for d, real in zip(stated, (1, 5), strict=True)
    )
    out = graphopt.optimize(model)
    assert_same_outputs(model, out, {"x": np.arange(35, dtype=np.float32).reshape(7, 5)})


def _resize_kept_aspect(policy: str, axes: list[int], then: list) -> onnx.ModelProto:
    """Resize(x[2, 1, 9, 4], sizes [3, 27] on `axes`, `policy`) followed by the nodes `then`."""
    return onnx.helper.make_model(
        onnx.helper.make_graph(
            [
                onnx.helper.make_node(
                    "Resize",
                    ["x", "", "", "sizes"],
                    ["y"],
                    axes=axes,
                    keep_aspect_ratio_policy=policy,
                ),
                *then,
            ],
            "g",
            [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 1, 9, 4])],
            [onnx.helper.make_tensor_value_info("z", onnx.TensorProto.FLOAT, None)],
            [
                onnx.numpy_helper.from_array(np.array([3, 27], np.int64), "sizes"),
                onnx.numpy_helper.from_array(np.array([0, 0], np.int64), "starts"),
                onnx.numpy_helper.from_array(np.array([3, 1], np.int64), "ends"),
                onnx.numpy_helper.from_array(np.array([2, 3], np.int64), "axes"),
            ],
        ),
        opset_imports=[onnx.helper.make_opsetid("", 18)],
        ir_version=8,
    )


@pytest.mark.parametrize("policy", ["not_larger", "not_smaller"])
@pytest.mark.parametrize("axes", [[-2, -1], [-1, -2]])
def test_resize_keeping_the_aspect_ratio_over_negative_axes_states_no_dims(policy, axes):
    # onnxruntime 1.32 returns x's own dims there ([2, 1, 9, 4]), ONNX inference the policy's
    # ([2, 1, 3, 1] for not_larger over [-2, -1])
    model = _resize_kept_aspect(policy, axes, [onnx.helper.make_node("Identity", ["y"], ["z"])])
    feeds = {"x": np.linspace(0, 1, 72, dtype=np.float32).reshape(2, 1, 9, 4)}
    real = run_at(model, feeds, level="disable")["z"].shape
    stated = shape_facts(model).shape("y")
    assert stated is None or all(
        not isinstance(d, int) or d == r for d, r in zip(stated, real, strict=True)
    )


def test_a_slice_of_a_resize_keeping_the_aspect_ratio_is_not_taken_for_a_noop():
    # inference's [2, 1, 3, 1] made y[:, :, 0:3, 0:1] look like all of y: the Slice was
    # dropped, and the model's output grew from [2, 1, 3, 1] to [2, 1, 9, 4]
    slice_ = onnx.helper.make_node("Slice", ["y", "starts", "ends", "axes"], ["z"])
    model = _resize_kept_aspect("not_larger", [-2, -1], [slice_])
    feeds = {"x": np.linspace(0, 1, 72, dtype=np.float32).reshape(2, 1, 9, 4)}
    for pipeline in ("default", "tensorrt"):
        assert_same_outputs(model, graphopt.optimize(model, pipeline=pipeline), feeds)


@pytest.mark.parametrize(
    ("size", "attributes"),
    [
        ([1, 2, 7], {"strides": [2], "pads": [0, 0], "output_shape": [1]}),
        ([1, 2, 8, 9], {"strides": [1, 3], "output_padding": [0, 2], "output_shape": [7, 15]}),
    ],
)
def test_a_conv_transpose_with_output_shape_keeps_its_rank(size, attributes):
    # onnx 1.23 inference states [1, 2] (rank 2) for these outputs, onnxruntime gives
    # [1, 2, 1] and [1, 2, 7, 15]: Shape(y) was folded to [1, 2]
    spatial = len(size) - 2
    weight = np.linspace(-1, 1, 4 * 3**spatial, dtype=np.float32).reshape([2, 2] + [3] * spatial)
    model = onnx.helper.make_model(
        onnx.helper.make_graph(
            [
                onnx.helper.make_node("ConvTranspose", ["x", "w"], ["y"], **attributes),
                onnx.helper.make_node("Shape", ["y"], ["shape"]),
                onnx.helper.make_node("Cast", ["shape"], ["z"], to=onnx.TensorProto.FLOAT),
            ],
            "g",
            [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, size)],
            [onnx.helper.make_tensor_value_info("z", onnx.TensorProto.FLOAT, None)],
            [onnx.numpy_helper.from_array(weight, "w")],
        ),
        opset_imports=[onnx.helper.make_opsetid("", 13)],
        ir_version=8,
    )
    assert shape_facts(model).rank("y") in (None, len(size))
    feeds = {"x": np.linspace(-1, 1, int(np.prod(size)), dtype=np.float32).reshape(size)}
    for pipeline in ("default", "ort-cpu"):
        assert_same_outputs(model, graphopt.optimize(model, pipeline=pipeline), feeds)


def _shape_of_one_node(
    opset: int, node: onnx.NodeProto, size: list[int], *inits
) -> onnx.ModelProto:
    """Cast(Shape(y), float) of `node` (x → y) over x of `size`."""
    shape = onnx.helper.make_node("Shape", ["y"], ["shape"])
    cast = onnx.helper.make_node("Cast", ["shape"], ["z"], to=onnx.TensorProto.FLOAT)
    graph = onnx.helper.make_graph(
        [node, shape, cast],
        "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, size)],
        [onnx.helper.make_tensor_value_info("z", onnx.TensorProto.FLOAT, None)],
        list(inits),
    )
    return onnx.helper.make_model(
        graph, opset_imports=[onnx.helper.make_opsetid("", opset)], ir_version=7
    )


@pytest.mark.parametrize(
    ("opset", "node", "size", "inits"),
    [
        # negative axes, which opsets 1-10 do not define: onnxruntime counts them from the
        # back ([1, 5] and [4, 3]), inference kept x's dims ([5] and [4, 1, 3])
        (9, onnx.helper.make_node("Unsqueeze", ["x"], ["y"], axes=[-2]), [5], []),
        (9, onnx.helper.make_node("Squeeze", ["x"], ["y"], axes=[-2]), [4, 1, 3], []),
        (7, onnx.helper.make_node("Unsqueeze", ["x"], ["y"], axes=[-1]), [5, 3], []),
        # a slope that x does not take unidirectionally: onnxruntime broadcasts it both ways
        # ([5, 5, 5]), inference states x's [5, 5, 1]
        (
            13,
            onnx.helper.make_node("PRelu", ["x", "slope"], ["y"]),
            [5, 5, 1],
            [onnx.numpy_helper.from_array(np.linspace(0, 1, 5, dtype=np.float32), "slope")],
        ),
    ],
    ids=["unsqueeze-9", "squeeze-9", "unsqueeze-7", "prelu"],
)
def test_onnxruntime_shapes_of_nodes_the_spec_does_not_define(opset, node, size, inits):
    model = _shape_of_one_node(opset, node, size, *inits)
    feeds = {"x": np.linspace(-1, 1, int(np.prod(size)), dtype=np.float32).reshape(size)}
    real = run_at(model, feeds, level="disable")["z"]
    stated = shape_facts(model).shape("y")
    assert stated is None or (
        len(stated) == real.size
        and all(not isinstance(d, int) or d == r for d, r in zip(stated, real, strict=True))
    )
    for pipeline in ("default", "tensorrt"):
        out = graphopt.optimize(model, pipeline=pipeline)
        np.testing.assert_array_equal(run_at(out, feeds, level="disable")["z"], real)


@pytest.mark.parametrize("size", [[1, 6, 1], ["N", 6, 1]])
def test_a_squeeze_by_empty_axes_squeezes_every_dim_of_one(size):
    # onnxruntime squeezes every dim of 1 where the axes input is an empty constant ([6]);
    # ONNX inference squeezed none ([1, 6, 1]), and Shape(y) was folded to that
    empty = onnx.numpy_helper.from_array(np.zeros(0, np.int64), "axes")
    node = onnx.helper.make_node("Squeeze", ["x", "axes"], ["y"])
    model = _shape_of_one_node(13, node, size, empty)
    feeds = {"x": np.linspace(-1, 1, 6, dtype=np.float32).reshape(1, 6, 1)}
    real = run_at(model, feeds, level="disable")["z"]
    stated = shape_facts(model).shape("y")
    assert stated is None or (
        len(stated) == real.size
        and all(not isinstance(d, int) or d == r for d, r in zip(stated, real, strict=True))
    )
    for pipeline in ("default", "tensorrt"):
        out = graphopt.optimize(model, pipeline=pipeline)
        np.testing.assert_array_equal(run_at(out, feeds, level="disable")["z"], real)
