"""focus-to-space-to-depth rewrites a Focus only when its input's height and width are known
to be even. On an empty input (batch 0, or a height of 0) of an odd height or width the Focus
runs in onnxruntime (its Concat skips empty inputs, whose other dims then need not agree) while
SpaceToDepth refuses the odd dim ('SpaceToDepth requires input height to be a multiple of
block_size'): the rewritten model failed where the original ran."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import graphopt
from tests.fusion_models import build, ops, run_at, run_passes

BIG = 9223372036854775807
S2D_ORDER = [(0, 0), (0, 1), (1, 0), (1, 1)]


def focus(x_dims: str) -> onnx.ModelProto:
    """Concat(x[:, :, dy::2, dx::2] for (dy, dx) in SpaceToDepth's order; axis 1)."""
    lines = [f"p{k} = Slice(x, s{k}, e, a, st)" for k in range(4)]
    inits = {f"s{k}": np.array(phase, np.int64) for k, phase in enumerate(S2D_ORDER)}
    inits.update(
        e=np.array([BIG, BIG], np.int64),
        a=np.array([2, 3], np.int64),
        st=np.array([2, 2], np.int64),
    )
    body = "\n          ".join(lines)
    return build(
        f"""<ir_version: 8, opset_import: ["" : 13]>
        g (float[{x_dims}] x) => (float[n, c, h, w] y) {{
          {body}
          y = Concat<axis = 1>(p0, p1, p2, p3)
        }}""",
        inits,
    )


def x_feed(*dims: int) -> dict[str, np.ndarray]:
    return {"x": np.linspace(-1.0, 1.0, int(np.prod(dims)), dtype=np.float32).reshape(dims)}


@pytest.mark.parametrize("pipeline", ["simplify", "pass"])
@pytest.mark.parametrize(
    "x_dims, feed",
    [
        ("N,2,H,W", (0, 2, 5, 6)),  # batch 0, odd height
        ("N,2,H,W", (1, 2, 0, 5)),  # no rows, odd width
        ("N,C,H,W", (1, 0, 5, 7)),  # no channels, odd height and width
    ],
    ids=["batch0-odd-h", "h0-odd-w", "c0-odd-hw"],
)
def test_an_empty_focus_of_odd_dims_keeps_running(x_dims, feed, pipeline):
    model = focus(x_dims)
    if pipeline == "pass":
        out, _ = run_passes(model, ["focus-to-space-to-depth", "eliminate-dead-code"])
    else:
        out = graphopt.optimize(model, pipeline)
    onnx.checker.check_model(out, full_check=True)
    want = run_at(model, x_feed(*feed), level="disable")
    got = run_at(out, x_feed(*feed), level="disable")
    assert {k: v.shape for k, v in got.items()} == {k: v.shape for k, v in want.items()}
    assert "SpaceToDepth" not in ops(out)


@pytest.mark.parametrize("x_dims", ["1,2,4,6", "N,2,4,6"])
def test_a_focus_of_even_dims_still_becomes_space_to_depth(x_dims):
    model = focus(x_dims)
    out = graphopt.optimize(model, "simplify")
    assert ops(out) == ["SpaceToDepth"]
    for feed in [(1, 2, 4, 6), (0, 2, 4, 6)] if x_dims.startswith("N") else [(1, 2, 4, 6)]:
        want = run_at(model, x_feed(*feed), level="disable")
        got = run_at(out, x_feed(*feed), level="disable")
        np.testing.assert_array_equal(got["y"], want["y"])
