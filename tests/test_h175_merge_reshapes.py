"""merge-reshapes across a 0 that copies a dynamic dim (H175).

Reshape(R₁(…Rₖ(x)), s) with a 0 in s (allowzero=0) copies a dim of R₁'s output. Where that
dim is dynamic, the merge keeps the 0 and is exact only across links that each copied the
dim from their own input (a Reshape with a 0 at the same index, allowzero=0). Each model runs,
original and rewritten, in onnxruntime with every graph optimization off, on several feeds
of the dynamic dims; where the original fails on a feed, the rewritten model must fail too.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser
import pytest

from graphopt.api import optimize_with_report
from graphopt.backends.onnxruntime import run as ort_run
from graphopt.errors import BackendError
from graphopt.pipeline import make_pipeline
from tests.models_util import ops, parse

HEADER = '<ir_version: 8, opset_import: ["" : 14]>\n'
PASSES = ["constants-to-initializers", "merge-reshapes", "eliminate-dead-code"]


def merged(text: str) -> tuple[onnx.ModelProto, onnx.ModelProto, list[str]]:
    """The model from `text`, merge-reshapes' result (checked) and the pass's refusals."""
    model = parse(HEADER + text)
    out, report = optimize_with_report(model, make_pipeline("t", PASSES), explain=True)
    onnx.checker.check_model(out, full_check=True)
    refused = [r[3] for r in report.explain if r[0] == "merge-reshapes" and r[2] == "refused"]
    return model, out, refused


def outcome(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict | None:
    """The outputs onnxruntime (ORT_DISABLE_ALL) computes, or None where the run fails."""
    try:
        return ort_run(model, feeds, level="disable")
    except BackendError:
        return None


def assert_same_on(original: onnx.ModelProto, out: onnx.ModelProto, *shapes: tuple) -> None:
    """Both models agree (values, dtype, shape; or both fail) on x of each shape, and the
    original runs on at least one."""
    ran = 0
    for shape in shapes:
        x = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
        a, b = outcome(original, {"x": x}), outcome(out, {"x": x})
        assert (a is None) == (b is None), (shape, a is None)
        if a is None or b is None:
            continue
        ran += 1
        assert list(a) == list(b)
        for name in a:
            assert a[name].dtype == b[name].dtype and a[name].shape == b[name].shape, shape
            np.testing.assert_array_equal(b[name], a[name])
    assert ran


def reshape_inputs(model: onnx.ModelProto) -> list[str]:
    return [n.input[0] for n in model.graph.node if n.op_type == "Reshape"]


def test_zero_copied_by_every_reshape_of_the_chain_merges():
    # the test_pass_layout case that was refused: both Reshapes copy dim 0 with a 0
    model, out, _ = merged(
        """
        g (float[N, 12] x) => (float[N, 3, 4] y) {
          s1 = Constant <value = int64[3] {0, 3, 4}> ()
          a = Reshape (x, s1)
          s2 = Constant <value = int64[3] {0, 3, -1}> ()
          y = Reshape (a, s2)
        }
        """
    )
    assert ops(out) == ["Reshape"] and reshape_inputs(out) == ["x"]
    assert_same_on(model, out, (1, 12), (2, 12), (5, 12), (0, 12))


def test_three_reshapes_copying_two_dynamic_dims_with_minus_one_merge():
    model, out, _ = merged(
        """
        g (float[N, C, 8] x) => (float[N, C, 8] y) {
          s1 = Constant <value = int64[4] {0, 0, 2, -1}> ()
          a = Reshape (x, s1)
          s2 = Constant <value = int64[3] {0, 0, -1}> ()
          b = Reshape (a, s2)
          s3 = Constant <value = int64[4] {0, 0, 4, 2}> ()
          c = Reshape (b, s3)
          s4 = Constant <value = int64[3] {0, 0, -1}> ()
          y = Reshape (c, s4)
        }
        """
    )
    assert ops(out) == ["Reshape"] and reshape_inputs(out) == ["x"]
    assert_same_on(model, out, (1, 1, 8), (2, 3, 8), (4, 1, 8), (0, 3, 8), (2, 0, 8))


def test_merge_stops_at_the_first_link_that_does_not_copy_the_dim():
    # x →Squeeze→ [N, 12] →Reshape(0, 3, 4)→ a →Reshape(0, -1): the 0 is the Squeeze's dim 0,
    # which the Reshape of the chain copied, so y reads the Squeeze's output
    model, out, _ = merged(
        """
        g (float[N, 1, 12] x) => (float[N, 12] y) {
          axes = Constant <value = int64[1] {1}> ()
          q = Squeeze (x, axes)
          s1 = Constant <value = int64[3] {0, 3, 4}> ()
          a = Reshape (q, s1)
          s2 = Constant <value = int64[2] {0, -1}> ()
          y = Reshape (a, s2)
        }
        """
    )
    assert ops(out) == ["Squeeze", "Reshape"] and reshape_inputs(out) == ["q"]
    assert_same_on(model, out, (1, 1, 12), (3, 1, 12), (6, 1, 12))


def test_middle_tensor_read_twice_and_a_graph_output_stays_right():
    model, out, _ = merged(
        """
        g (float[N, 12] x) => (float[N, 12] y, float[N, 3, 4] a, float[N, 3, 4] r) {
          s1 = Constant <value = int64[3] {0, 3, 4}> ()
          a = Reshape (x, s1)
          r = Relu (a)
          s2 = Constant <value = int64[2] {0, 12}> ()
          y = Reshape (a, s2)
        }
        """
    )
    assert reshape_inputs(out) == ["x", "x"]
    assert_same_on(model, out, (1, 12), (4, 12), (0, 12))


@pytest.mark.parametrize(
    "link, shapes",
    [
        # a Flatten merges the leading dims: its dim 0 is 3N, not N
        ("a = Flatten <axis = 2> (x)", [(1, 3, 4), (2, 3, 4), (5, 3, 4)]),
        # an Unsqueeze in front shifts the dims: a's dim 0 is 1
        ("one = Constant <value = int64[1] {0}> ()\n a = Unsqueeze (x, one)", [(2, 3, 4)]),
        # a Reshape that does not copy dim 0 (-1 there; a's dim 0 is 3N)
        ("s = Constant <value = int64[2] {-1, 4}> ()\n a = Reshape (x, s)", [(2, 3, 4)]),
        # a 0 at another index: a = [1, 3, 4N]
        ("s = Constant <value = int64[3] {1, 0, -1}> ()\n a = Reshape (x, s)", [(2, 3, 4)]),
    ],
    ids=["flatten", "unsqueeze", "minus-one", "zero-elsewhere"],
)
def test_links_that_do_not_copy_the_dim_are_refused(link, shapes):
    model, out, refused = merged(
        f"""
        g (float[N, 3, 4] x) => (float[M, 2, 2] y) {{
          {link}
          s2 = Constant <value = int64[3] {{0, 2, -1}}> ()
          y = Reshape (a, s2)
        }}
        """
    )
    assert reshape_inputs(out)[-1] == "a"
    assert any("dynamic dim" in r for r in refused)
    assert_same_on(model, out, *shapes)


def test_allowzero_link_is_refused():
    # with allowzero=1 the inner 0 is a literal 0, not x's dim 0: on x [3, 0] a is [0, 5],
    # y is [0, 7]; Reshape(x, [0, 7]) would ask 21 values of an empty x. (Shape inference
    # makes a [0, 5]: a zero-size dim, left alone like a dynamic one the chain does not copy.)
    model, out, _ = merged(
        """
        g (float[N, K] x) => (float[M, 7] y) {
          s1 = Constant <value = int64[2] {0, 5}> ()
          a = Reshape <allowzero = 1> (x, s1)
          s2 = Constant <value = int64[2] {0, 7}> ()
          y = Reshape (a, s2)
        }
        """
    )
    assert reshape_inputs(out) == ["x", "a"]
    assert_same_on(model, out, (3, 0), (0, 4))
