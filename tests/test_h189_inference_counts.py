"""A Reshape target rewritten from onnxruntime's dims still loads where ONNX inference counts
otherwise.

MaxPool(kernel 1, stride 2, ceil_mode=1) of a 4×4 map: onnxruntime drops the last window
(it would start past the input): [1, 1, 2, 2]; ONNX 1.23 inference keeps it: [1, 1, 3, 3].
graphopt's shape facts hold onnxruntime's count (`graphopt.analysis.runtime_shapes`), and a
-1 written from them was divided out of inference's 9 elements by the checker and by
onnxruntime at load: "Dimension could not be inferred: incompatible shapes". merge-reshapes
turned Reshape(Flatten(y, 3), [0, -1]) into Reshape(y, [4, -1]); simplify-shape-subgraphs
turned Reshape(y, Concat([2], one dim of another input)) into Reshape(y, [2, -1]). Both now
write the dim. Each model is run as it is and rewritten, onnxruntime's optimizations off
(its own, on, fail the original at load the same way).
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import graphopt
from tests.fusion_models import build, run_at, run_passes

POOL = "y = MaxPool<kernel_shape=[1, 1], strides=[2, 2], ceil_mode=1>(x)"
X = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)


def _flatten_then_reshape() -> onnx.ModelProto:
    return build(
        f"""<ir_version: 8, opset_import: ["" : 13]>
        g (float[1, 1, 4, 4] x) => (float[a, b] z) {{
            {POOL}
            u = Flatten<axis=3>(y)
            z = Reshape(u, s)
        }}""",
        {"s": np.array([0, -1], np.int64)},
    )


def _reshape_by_another_input_s_dim() -> onnx.ModelProto:
    return build(
        f"""<ir_version: 8, opset_import: ["" : 13]>
        g (float[1, 1, 4, 4] x, float[N] w) => (float[a, b] z) {{
            {POOL}
            s = Shape(w)
            n = Gather(s, i)
            d = Unsqueeze(n, ax)
            t = Concat<axis=0>(c, d)
            z = Reshape(y, t)
        }}""",
        {
            "c": np.array([2], np.int64),
            "i": np.array(0, np.int64),
            "ax": np.array([0], np.int64),
        },
    )


def assert_same_outputs(
    model: onnx.ModelProto, out: onnx.ModelProto, feeds: dict[str, np.ndarray]
) -> None:
    expected, got = run_at(model, feeds, "disable"), run_at(out, feeds, "disable")
    assert list(got) == list(expected)
    for name, value in expected.items():
        assert got[name].dtype == value.dtype and got[name].shape == value.shape, name
        np.testing.assert_array_equal(got[name], value)


CASES = {
    "merge-reshapes": (_flatten_then_reshape, {"x": X}),
    "simplify-shape-subgraphs": (
        _reshape_by_another_input_s_dim,
        {"x": X, "w": np.zeros(2, np.float32)},
    ),
}


@pytest.mark.parametrize("rule", sorted(CASES))
def test_the_rewritten_target_checks_loads_and_keeps_the_outputs(rule: str) -> None:
    make, feeds = CASES[rule]
    model = make()
    out, report = run_passes(model, [rule])  # (onnx.checker, full check)
    assert any(r == rule and o == "applied" for r, _n, o, _why in report.explain)
    assert_same_outputs(model, out, feeds)


@pytest.mark.parametrize("pipeline", ["default", "ort-cpu", "tensorrt"])
@pytest.mark.parametrize("rule", sorted(CASES))
def test_the_pipelines_result_checks_and_loads(rule: str, pipeline: str) -> None:
    make, feeds = CASES[rule]
    model = make()
    out = graphopt.optimize(model, pipeline)
    onnx.checker.check_model(out, full_check=True)
    assert_same_outputs(model, out, feeds)


def test_without_such_a_node_the_minus_one_is_kept() -> None:
    model = build(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[1, 1, 2, 2] x) => (float[a, b] z) {
            u = Flatten<axis=3>(x)
            z = Reshape(u, s)
        }""",
        {"s": np.array([0, -1], np.int64)},
    )
    out, _ = run_passes(model, ["merge-reshapes"])
    targets = [t for t in out.graph.initializer if t.name.endswith("_shape")]
    assert [onnx.numpy_helper.to_array(t).tolist() for t in targets] == [[2, -1]]
    assert_same_outputs(model, out, {"x": X[:, :, :2, :2]})
