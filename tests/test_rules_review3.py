"""Adversarial review of the pattern rules (patterns/*.yaml and graphopt/patterns): the
defects it found, each with a test that fails on the commit before its fix.

float16 folds whose product rounds into subnormals: a folded multiplier (W·s of a BN or a
per-channel Mul, a merged scale a·b) is rounded once to the weight's dtype; where that lands
below float16's smallest normal (6.1e-5) it keeps only a few bits, while the original's conv
output and scale were normal. The references run at ORT_DISABLE_ALL: onnxruntime's own
Conv+BN fusion (at its default level) would round the same way and hide the difference.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import graphopt
from tests.fusion_models import build, run_at

H = np.float16


def _assert_same_unfolded(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> None:
    """Every pipeline's result computes what the original does, both run without
    onnxruntime's own fusions, to float16's precision (2^-10 relative)."""
    ref = run_at(model, feeds, level="disable")
    for pipeline in ("default", "ort-fusions", "tensorrt"):
        out = graphopt.optimize(model, pipeline)
        got = run_at(out, feeds, level="disable")
        for name, want in ref.items():
            np.testing.assert_allclose(
                got[name].astype(np.float64),
                want.astype(np.float64),
                rtol=2e-3,
                atol=0,
                err_msg=f"{pipeline}: {name}",
            )


def _conv_model(tail: str, inits: dict[str, np.ndarray], op: str = "Conv") -> onnx.ModelProto:
    shape = "1,4,2,2" if op == "Conv" else "1,4,4,4"
    return build(
        f"""<ir_version: 8, opset_import: ["" : 13]>
        g (float16[1,3,2,2] x) => (float16[{shape}] z) {{
          y = {op}<strides = [{1 if op == "Conv" else 2}, {1 if op == "Conv" else 2}]>(x, W)
          {tail}
        }}""",
        inits,
    )


def _bn(gamma: float) -> dict[str, np.ndarray]:
    return {
        "g": np.full(4, gamma, H),
        "b": np.zeros(4, H),
        "m": np.zeros(4, H),
        "v": np.ones(4, H),
    }


X = {"x": np.full((1, 3, 2, 2), 100.0, H)}


@pytest.mark.parametrize("op", ["Conv", "ConvTranspose"])
def test_float16_batchnorm_fold_whose_weights_underflow_stays(op):
    """float16 W = 1e-4 and BN scale 1e-3: W·s = 1e-7 is subnormal (1.19e-7 stored), so the
    folded Conv was 19 % off (3.58e-5 for 3.00e-5)."""
    w = np.full((4, 3, 1, 1) if op == "Conv" else (3, 4, 2, 2), 1e-4, H)
    model = _conv_model("z = BatchNormalization(y, g, b, m, v)", {"W": w, **_bn(1e-3)}, op)
    _assert_same_unfolded(model, X)


@pytest.mark.parametrize("op", ["Mul", "Div"])
def test_float16_per_channel_scale_fold_whose_weights_underflow_stays(op):
    k = 1e-3 if op == "Mul" else 1e3
    model = _conv_model(
        f"z = {op}(y, k)", {"W": np.full((4, 3, 1, 1), 1e-4, H), "k": np.full((4, 1, 1), k, H)}
    )
    _assert_same_unfolded(model, X)


def test_float16_scale_shift_fold_whose_weights_underflow_stays():
    model = _conv_model(
        "s = Mul(y, k)\n          z = Add(s, d)",
        {
            "W": np.full((4, 3, 1, 1), 1e-4, H),
            "k": np.full((4, 1, 1), 1e-3, H),
            "d": np.full((4, 1, 1), 1e-5, H),
        },
    )
    _assert_same_unfolded(model, X)


@pytest.mark.parametrize("op", ["Gemm", "MatMul"])
def test_float16_batchnorm_into_gemm_whose_weights_underflow_stays(op):
    model = build(
        f"""<ir_version: 8, opset_import: ["" : 13]>
        g (float16[2,3] x) => (float16[2,4] z) {{
          y = {op}(x, W)
          z = BatchNormalization(y, g, b, m, v)
        }}""",
        {"W": np.full((3, 4), 1e-4, H), **_bn(1e-3)},
    )
    _assert_same_unfolded(model, {"x": np.full((2, 3), 100.0, H)})


@pytest.mark.parametrize(
    ("second", "a", "b"),
    [("Mul", 1e-4, 1e-4), ("Div", 1e-3, 1e3)],
)
def test_float16_merged_scale_that_underflows_stays(second, a, b):
    """(x·1e-4)·1e-4 merged to x·1e-8 was x·0 in float16 (every output 0 for 1e-4 ... 5e-4);
    (x·1e-3)/1e3 merged to x·1e-6, a subnormal 1.3 % off."""
    model = build(
        f"""<ir_version: 8, opset_import: ["" : 13]>
        g (float16[1,4] x) => (float16[1,4] y) {{
          t = Mul(x, a)
          y = {second}(t, b)
        }}""",
        {"a": np.array(a, H), "b": np.array(b, H)},
    )
    _assert_same_unfolded(model, {"x": np.array([[1e4, 2e4, 3e4, 5e4]], H)})


def test_float16_folds_whose_products_stay_normal_still_apply():
    """The guard refuses only a lossy rounding: float16 W ≈ 0.1 times BN scale ≈ 0.5 folds, and
    so does a merged scale 0.5·0.25."""
    rng = np.random.default_rng(0)
    model = _conv_model(
        "z = BatchNormalization(y, g, b, m, v)",
        {"W": (rng.uniform(0.05, 0.15, (4, 3, 1, 1))).astype(H), **_bn(0.5)},
    )
    out = graphopt.optimize(model)
    assert [n.op_type for n in out.graph.node] == ["Conv"]
    _assert_same_unfolded(model, X)
    merged = build(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float16[1,4] x) => (float16[1,4] y) {
          t = Mul(x, a)
          y = Mul(t, b)
        }""",
        {"a": np.array(0.5, H), "b": np.array(0.25, H)},
    )
    assert [n.op_type for n in graphopt.optimize(merged).graph.node] == ["Mul"]


def test_float32_batchnorm_fold_over_a_few_subnormal_weights_applies():
    """Real float32 weights hold subnormals: W·s rounds them far below an ulp of their
    channel's weight mass, so the fold still applies."""
    rng = np.random.default_rng(1)
    w = rng.uniform(-1, 1, (4, 3, 1, 1)).astype(np.float32)
    w[:, 0, 0, 0] = 3e-39
    model = build(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,3,2,2] x) => (float[1,4,2,2] z) {
          y = Conv(x, W)
          z = BatchNormalization(y, g, b, m, v)
        }""",
        {"W": w, **{k: v.astype(np.float32) for k, v in _bn(0.5).items()}},
    )
    out = graphopt.optimize(model)
    assert [n.op_type for n in out.graph.node] == ["Conv"]


# ---------------------------------------------------------------------------- opset upgrade

HARDSWISH = """a = Add(x, three)
          r = Clip(a, zero, six)
          m = Mul(x, r)
          h = Div(m, six)"""
HARDSWISH_CLIP_ATTRS = HARDSWISH.replace("Clip(a, zero, six)", "Clip<min = 0.0, max = 6.0>(a)")


@pytest.mark.parametrize(
    ("opset", "x_shape", "tail", "inits"),
    [
        # the converter makes these a Resize with half_pixel coordinates (theirs: asymmetric)
        (7, "1,2,6,6", 'y = Upsample<mode = "linear", scales = [1.0, 1.0, 2.0, 2.0]>(h)', {}),
        (9, "1,2,6,6", 'y = Upsample<mode = "linear">(h, s)', {"s": [1, 1, 2, 2]}),
        (10, "1,2,6,6", 'y = Resize<mode = "linear">(h, s)', {"s": [1, 1, 2, 2]}),
    ],
)
def test_opset_upgrade_refuses_ops_the_converter_changes(opset, x_shape, tail, inits):
    """upgrade_opset converts with onnx.version_converter, which changed these ops' results
    (linear Upsample/Resize off by up to 4.8, Hardmax picking other elements); the model now
    keeps its opset and the rules' fallback (x·HardSigmoid(x))."""
    hardswish = HARDSWISH_CLIP_ATTRS if opset < 11 else HARDSWISH
    consts = {"three": 3.0, "six": 6.0, "zero": 0.0, **inits}
    model = build(
        f"""<ir_version: 7, opset_import: ["" : {opset}]>
        g (float[{x_shape}] x) => (float[n, c, h, w] y) {{
          {hardswish}
          {tail}
        }}""",
        {k: np.asarray(v, np.float32) for k, v in consts.items() if k in hardswish + tail},
    )
    rng = np.random.default_rng(0)
    x = {"x": rng.uniform(-4, 4, [int(d) for d in x_shape.split(",")]).astype(np.float32)}
    out = graphopt.optimize(model, upgrade_opset=True)
    want, got = run_at(model, x)["y"], run_at(out, x)["y"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert out.opset_import[0].version == opset


def test_opset_upgrade_converts_a_flattening_hardmax_exactly():
    """Hardmax over axis 1 of a 4-D tensor: flattened to 2-D up to opset 12, one axis at 13.
    The converter kept the node (another one-hot) and the model then kept its opset; since
    ecb0339 it is converted as Flatten, Hardmax, Reshape: the upgrade applies (HardSwish at
    14) and the outputs are the same."""
    consts = {"three": 3.0, "six": 6.0, "zero": 0.0}
    model = build(
        f"""<ir_version: 7, opset_import: ["" : 12]>
        g (float[1,2,3,3] x) => (float[n, c, h, w] y) {{
          {HARDSWISH}
          y = Hardmax<axis = 1>(h)
        }}""",
        {k: np.asarray(v, np.float32) for k, v in consts.items()},
    )
    rng = np.random.default_rng(0)
    x = {"x": rng.uniform(-4, 4, [1, 2, 3, 3]).astype(np.float32)}
    out = graphopt.optimize(model, upgrade_opset=True)
    np.testing.assert_array_equal(run_at(out, x)["y"], run_at(model, x)["y"])
    assert out.opset_import[0].version == 14
    assert "HardSwish" in {n.op_type for n in out.graph.node}


def test_opset_upgrade_still_applies_where_the_converter_is_right():
    """Nearest Upsample and a Hardmax model at opset 13 already upgrade as before."""
    model = build(
        f"""<ir_version: 7, opset_import: ["" : 9]>
        g (float[1,2,6,6] x) => (float[1,2,12,12] y) {{
          {HARDSWISH_CLIP_ATTRS}
          y = Upsample<mode = "nearest">(h, s)
        }}""",
        {
            k: np.asarray(v, np.float32)
            for k, v in {"three": 3, "six": 6, "s": [1, 1, 2, 2]}.items()
        },
    )
    out = graphopt.optimize(model, upgrade_opset=True)
    assert "HardSwish" in [n.op_type for n in out.graph.node]
    x = {"x": np.random.default_rng(1).uniform(-4, 4, (1, 2, 6, 6)).astype(np.float32)}
    np.testing.assert_allclose(run_at(out, x)["y"], run_at(model, x)["y"], rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------- "ai.onnx" nodes


def _ai_onnx_model(nodes: list[onnx.NodeProto], inits: dict, x: list, z: list) -> onnx.ModelProto:
    """Nodes that spell the default domain "ai.onnx", in a model importing "" (onnxruntime runs
    it; onnx's checker wants "" on the nodes, so the model is built without it)."""
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x)],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, z)],
        [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)], ir_version=8)


def _node(op: str, inputs: list[str], output: str) -> onnx.NodeProto:
    return onnx.helper.make_node(op, inputs, [output], domain="ai.onnx")


_RNG = np.random.default_rng(3)
_BN = {
    "g": _RNG.random(2) + 0.5,
    "b": _RNG.random(2),
    "mu": _RNG.random(2),
    "v": _RNG.random(2) + 0.5,
}
_BN_NODE = _node("BatchNormalization", ["c", "g", "b", "mu", "v"], "z")


@pytest.mark.parametrize(
    ("first", "last", "inits", "x", "z"),
    [
        ("Conv", _BN_NODE, {"W": _RNG.random((2, 2, 1, 1)), **_BN}, [1, 2, 3, 3], [1, 2, 3, 3]),
        (
            "ConvTranspose",
            _BN_NODE,
            {"W": _RNG.random((2, 2, 1, 1)), **_BN},
            [1, 2, 3, 3],
            [1, 2, 3, 3],
        ),
        ("Gemm", _BN_NODE, {"W": _RNG.random((3, 2)), **_BN}, [4, 3], [4, 2]),
        (
            "ConvTranspose",
            _node("Mul", ["c", "k"], "z"),
            {"W": _RNG.random((2, 2, 1, 1)), "k": _RNG.random((2, 1, 1))},
            [1, 2, 3, 3],
            [1, 2, 3, 3],
        ),
    ],
    ids=["conv-bn", "convtranspose-bn", "gemm-bn", "convtranspose-mul"],
)
def test_folds_of_nodes_in_the_ai_onnx_domain(first, last, inits, x, z):
    """An absent attribute takes its schema default looked up in the node's domain: "ai.onnx"
    found no schema (and `Graph.opset_version("ai.onnx")` is 0 where the model imports ""), so
    BN's epsilon and ConvTranspose's group were None and fold-batchnorm raised a TypeError."""
    model = _ai_onnx_model([_node(first, ["x", "W"], "c"), last], inits, x, z)
    for pipeline in ("default", "tensorrt"):
        out = graphopt.optimize(model, pipeline)
        assert [n.op_type for n in out.graph.node] == [first]
        feeds = {"x": _RNG.uniform(-2, 2, x).astype(np.float32)}
        np.testing.assert_allclose(
            run_at(out, feeds)["z"], run_at(model, feeds)["z"], rtol=1e-5, atol=1e-6
        )


def _conv_bn(w: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> onnx.ModelProto:
    """z = BatchNormalization(Conv(x, W), γ, β, 0, 1) over a 1×3×2×2 input of W's dtype."""
    c = w.shape[0]
    t = "float16" if w.dtype == H else "float"
    return build(
        f"""<ir_version: 8, opset_import: ["" : 13]>
        g ({t}[1,3,2,2] x) => ({t}[1,{c},2,2] z) {{
          y = Conv(x, W)
          z = BatchNormalization(y, g, b, m, v)
        }}""",
        {"W": w, "g": gamma, "b": beta, "m": np.zeros(c, w.dtype), "v": np.ones(c, w.dtype)},
    )


@pytest.mark.parametrize(("pruned_w", "pruned_gamma"), [(4e-43, 1e-39), (3e-24, 3e-18)])
def test_float32_batchnorm_over_pruned_channels_still_folds(pruned_w, pruned_gamma):
    """The guard refused ppocrv3_det's four Conv+BN folds and two of ppocrv3_rec's: they have
    channels a trainer pruned (γ ~1e-39 over subnormal weights ~1e-43, W·s ~1e-82 that rounds
    to 0; or W·s ~1e-41, a subnormal of a few bits) beside channels of ~1. Such a channel adds
    less than one ulp of the layer's largest channel to anything: fold."""
    w = np.full((4, 3, 1, 1), 0.5, np.float32)
    w[2] = pruned_w
    gamma = np.array([1.0, 0.5, pruned_gamma, 2.0], np.float32)
    model = _conv_bn(w, gamma, np.array([0.1, -0.2, 3e-40, 0.3], np.float32))
    out = graphopt.optimize(model)
    assert [n.op_type for n in out.graph.node] == ["Conv"]
    x = {"x": np.random.default_rng(0).uniform(-100, 100, (1, 3, 2, 2)).astype(np.float32)}
    want = run_at(model, x, level="disable")["z"]
    # within float32 rounding of the layer's scale (the pruned channel holds ~1e-39)
    got = run_at(out, x, level="disable")["z"]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6 * float(np.abs(want).max()))


def test_an_upgrade_whose_result_fails_the_full_check_is_not_made():
    """optimize(upgrade_opset=True) moved an opset-12 model with MeanVarianceNormalization to
    14 (for HardSwish): onnx's full check fails MVN's function-body inference from 13 on, so
    the result broke the API's contract (it passes check_model(full_check=True)). The upgrade
    is refused then, as when the converter fails: the model stays at 12, unfused."""
    model = onnx.parser.parse_model(
        """<ir_version: 7, opset_import: ["" : 12]>
        g (float[1,4,3,3] x) => (float[1,4,3,3] y) {
          n = MeanVarianceNormalization(x)
          three = Constant<value = float {3.0}>()
          six = Constant<value = float {6.0}>()
          zero = Constant<value = float {0.0}>()
          a = Add(n, three)
          c = Clip(a, zero, six)
          m = Mul(n, c)
          y = Div(m, six)
        }"""
    )
    onnx.checker.check_model(model, full_check=True)
    out = graphopt.optimize(model, upgrade_opset=True)
    onnx.checker.check_model(out, full_check=True)
    assert out.opset_import[0].version == 12


def test_float16_batchnorm_with_one_small_channel_stays():
    """fbafd6b ignored every channel below one float16 ulp of the largest one: a float16 Conv
    with channel 0 at 1e-2 and channel 1 at 1e-4, BN scales [1, 1e-3], folded with channel 1
    19 % off (1.07e-4 where onnxruntime gives 9.0e-5 at x = 100). Channels are outputs of their
    own: only those below float32's ulp of the largest (pruned) are ignored."""
    w = np.full((2, 3, 1, 1), 1e-2, H)
    w[1] = 1e-4
    model = _conv_bn(w, np.array([1.0, 1e-3], H), np.zeros(2, H))
    _assert_same_unfolded(model, {"x": np.full((1, 3, 2, 2), 100, H)})
