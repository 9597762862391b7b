"""Shape-dependent no-op and layout rewrites do not trust dims onnxruntime may not share.

Range(-0.1, 0.20000002, 0.3) of float32 has 1 element by ONNX shape inference (and
onnxruntime 1.23.2) and 2 in onnxruntime 1.32 (`range_length_disputed`). eliminate-noops
took Slice(r, 0, 1) for a no-op (end ≥ dim 1: the Slice was dropped and the output grew to
2 elements), transpose-to-reshape turned Transpose(Unsqueeze(r, 1)) into Reshape(·, [1, 1])
(fails on 2 elements), merge-reshapes resolved the 0 of Reshape(Unsqueeze(r, 1), [0, -1])
to 1 ([2, 1] became [1, 2]). simplify-shape-subgraphs gave Reshape(r, Concat([2], a dim of
another input)) of Range(0.5, -0.7, -0.1) (13 elements to inference, 12 in onnxruntime
1.32) the target [2, -1], which inference cannot divide out of 13: the checker and
onnxruntime's loader refused the result. Each model is run as it is and rewritten in
onnxruntime (optimizations off): outputs must agree in dtype, shape and values.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import graphopt
from tests.conftest import assert_same_outputs
from tests.fusion_models import build, ops, run_passes

# (start, limit, delta) of float32: 1 element by ONNX inference, 2 in onnxruntime 1.32
DISPUTED = (-0.10000000149011612, 0.20000001788139343, 0.30000001192092896)
AGREED = (0.0, 1.0, 1.0)  # 1 element everywhere

BODIES = {
    "slice-to-the-inferred-end": (
        "eliminate-noops",
        "float[p] z",
        "z = Slice(r, s, e)",
        {"s": np.array([0]), "e": np.array([1])},
    ),
    "transpose-of-size-1-dims": (
        "transpose-to-reshape",
        "float[p, q] z",
        "u = Unsqueeze(r, ax)\n z = Transpose<perm=[1, 0]>(u)",
        {"ax": np.array([1])},
    ),
    "reshape-copying-a-dim-of-a-reshape": (
        "merge-reshapes",
        "float[p, q] z",
        "u = Unsqueeze(r, ax)\n z = Reshape(u, s)",
        {"ax": np.array([1]), "s": np.array([0, -1])},
    ),
}


def _model(bounds: tuple[float, float, float], case: str) -> onnx.ModelProto:
    _, output, body, inits = BODIES[case]
    start, limit, delta = (np.array(v, dtype=np.float32) for v in bounds)
    return build(
        f"""<ir_version: 8, opset_import: ["" : 13]>
        g (float[2] x) => ({output}) {{
            r = Range(a, b, d)
            {body}
        }}""",
        {"a": start, "b": limit, "d": delta, **inits},
    )


FEEDS = {"x": np.zeros(2, np.float32)}


@pytest.mark.parametrize("case", sorted(BODIES))
def test_the_pass_leaves_a_disputed_range_s_readers_alone(case: str) -> None:
    model = _model(DISPUTED, case)
    out, _ = run_passes(model, [BODIES[case][0]])
    assert ops(out) == ops(model)
    assert_same_outputs(model, out, FEEDS, rtol=0, atol=0)


@pytest.mark.parametrize("pipeline", ["default", "ort-cpu", "tensorrt"])
@pytest.mark.parametrize("case", sorted(BODIES))
def test_the_pipelines_keep_the_outputs_of_a_disputed_range(case: str, pipeline: str) -> None:
    model = _model(DISPUTED, case)
    out = graphopt.optimize(model, pipeline)
    onnx.checker.check_model(out, full_check=True)
    assert_same_outputs(model, out, FEEDS, rtol=0, atol=0)


@pytest.mark.parametrize("case", sorted(BODIES))
def test_a_range_every_runtime_counts_alike_is_still_rewritten(case: str) -> None:
    model = _model(AGREED, case)
    out, report = run_passes(model, [BODIES[case][0]])
    assert any(o == "applied" for _rule, _node, o, _reason in report.explain)
    assert_same_outputs(model, out, FEEDS, rtol=0, atol=0)


def test_no_minus_one_target_for_a_disputed_range() -> None:
    model = build(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[N] w) => (float[p, q] z) {
            r = Range(a, b, d)
            s = Shape(w)
            n = Gather(s, i)
            u = Unsqueeze(n, ax)
            t = Concat<axis=0>(c, u)
            z = Reshape(r, t)
        }""",
        {
            "a": np.array(0.5, np.float32),
            "b": np.array(-0.7, np.float32),
            "d": np.array(-0.1, np.float32),
            "c": np.array([2], np.int64),
            "i": np.array(0, np.int64),
            "ax": np.array([0], np.int64),
        },
    )
    feeds = {"w": np.zeros(6, np.float32)}  # (12 elements in onnxruntime 1.32: [2, 6])
    for out in (
        run_passes(model, ["simplify-shape-subgraphs"])[0],  # (checked in full)
        graphopt.optimize(model, "default"),
    ):
        onnx.checker.check_model(out, full_check=True)
        assert_same_outputs(model, out, feeds, rtol=0, atol=0)
