"""ort-nchwc-layout: onnxruntime's NCHWc kernels ahead of time, checked against onnxruntime.

Every rewritten model runs at ORT_DISABLE_ALL next to the original at ORT_DISABLE_ALL (so the
only NCHWc ops are ours) and must agree at fp32 tolerances; the reordered filters must be
bitwise equal to those onnxruntime itself saves at ORT_ENABLE_ALL for the same model.
"""

from __future__ import annotations

import collections
import tempfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.backends.onnxruntime import session
from graphopt.passes import ort_nchwc
from graphopt.passes.ort_nchwc import BLOCK_SIZE_KEY, NCHWC_DOMAIN, measured_block_size
from tests.models_util import run

BLOCK, WHY = measured_block_size()
needs_nchwc = pytest.mark.skipif(BLOCK == 0, reason=f"no NCHWc kernels here: {WHY}")
RNG = np.random.default_rng(7)


def model(
    nodes: list[onnx.NodeProto],
    x_shape: list[int],
    inits: dict[str, np.ndarray],
    outputs: tuple[str, ...] = ("y",),
    opset: int = 17,
) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, list("nchw")) for o in outputs],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    imports = [helper.make_opsetid("", opset), helper.make_opsetid("com.microsoft", 1)]
    return helper.make_model(graph, opset_imports=imports)


def rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def weight(*shape: int) -> np.ndarray:
    """A filter scaled like a trained one (unit-variance outputs), so that fp32 summation order
    differences stay far below the tolerances."""
    return rand(*shape) / np.float32(np.sqrt(np.prod(shape[1:])))


def conv(x: str, w: str, y: str, b: str | None = None, **attrs) -> onnx.NodeProto:
    return helper.make_node("Conv", [x, w] + ([b] if b else []), [y], **attrs)


def outputs_at_disable_all(m: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    return session(m, threads=1, level="disable").run(None, feeds)


def assert_same(original: onnx.ModelProto, rewritten: onnx.ModelProto, rtol=1e-4, atol=1e-5):
    shape = [d.dim_value for d in original.graph.input[0].type.tensor_type.shape.dim]
    feeds = {"x": rand(*shape)}
    expected = outputs_at_disable_all(original, feeds)
    got = outputs_at_disable_all(rewritten, feeds)
    assert [o.name for o in rewritten.graph.output] == [o.name for o in original.graph.output]
    for e, g in zip(expected, got, strict=True):
        assert e.shape == g.shape and e.dtype == g.dtype
        np.testing.assert_allclose(g, e, rtol=rtol, atol=atol)


def nchwc_ops(m: onnx.ModelProto) -> collections.Counter:
    return collections.Counter(n.op_type for n in m.graph.node if n.domain == NCHWC_DOMAIN)


def ort_saved(m: onnx.ModelProto) -> onnx.ModelProto:
    """The model onnxruntime itself saves at ORT_ENABLE_ALL (NchwcTransformer included)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ort.onnx"
        session(m, threads=1, level="all", optimized_path=str(path))
        return onnx.load(str(path))


def nchwc_filters(m: onnx.ModelProto) -> collections.Counter:
    inits = {t.name: t for t in m.graph.initializer}
    return collections.Counter(
        numpy_helper.to_array(inits[n.input[1]]).tobytes()
        for n in m.graph.node
        if n.domain == NCHWC_DOMAIN and n.op_type == "Conv" and n.input[1] in inits
    )


def layout(m: onnx.ModelProto) -> onnx.ModelProto:
    return run(m, "ort-nchwc-layout")


# ------------------------------------------------------------------ convolutions
CONVS = {
    "bias": ([1, 32, 10, 10], (32, 32, 3, 3), dict(pads=[1, 1, 1, 1]), True),
    "no_bias": ([1, 32, 10, 10], (48, 32, 1, 1), {}, False),
    "strides_pads": ([1, 32, 11, 9], (32, 32, 3, 3), dict(strides=[2, 2], pads=[1, 0, 1, 2]), True),
    "dilations": ([1, 32, 12, 12], (32, 32, 3, 3), dict(dilations=[2, 2], pads=[2, 2, 2, 2]), True),
    "first_layer_rgb": ([1, 3, 16, 16], (32, 3, 3, 3), dict(strides=[2, 2], pads=[1] * 4), True),
    "unaligned_out": ([1, 32, 8, 8], (20, 32, 3, 3), dict(pads=[1] * 4), True),
    "unaligned_in": ([1, 24, 8, 8], (32, 24, 3, 3), dict(pads=[1] * 4), True),
    "grouped": ([1, 64, 8, 8], (32, 32, 3, 3), dict(group=2, pads=[1] * 4), True),
    "depthwise": ([1, 32, 9, 9], (32, 1, 3, 3), dict(group=32, pads=[1] * 4), True),
    "depthwise_unaligned": ([1, 24, 9, 9], (24, 1, 5, 5), dict(group=24, pads=[2] * 4), True),
    "auto_pad_same_batch_2": ([2, 16, 7, 9], (32, 16, 3, 3), dict(auto_pad="SAME_UPPER"), True),
    "kernel_shape_attr": ([1, 16, 6, 6], (16, 16, 1, 3), dict(kernel_shape=[1, 3]), False),
}


@needs_nchwc
@pytest.mark.parametrize("case", sorted(CONVS))
def test_conv_matches_original_and_onnxruntime_filters(case):
    x_shape, w_shape, attrs, with_bias = CONVS[case]
    inits = {"W": weight(*w_shape)}
    if with_bias:
        inits["B"] = rand(w_shape[0])
    original = model([conv("x", "W", "y", "B" if with_bias else None, **attrs)], x_shape, inits)
    rewritten = layout(original)
    assert nchwc_ops(rewritten)["Conv"] == 1
    assert not [n for n in rewritten.graph.node if n.op_type == "Conv" and n.domain == ""]
    assert_same(original, rewritten)
    assert {p.key: p.value for p in rewritten.metadata_props} == {BLOCK_SIZE_KEY: str(BLOCK)}
    ours, theirs = nchwc_filters(rewritten), nchwc_filters(ort_saved(original))
    assert ours == theirs, "reordered filter differs from onnxruntime's"


@needs_nchwc
def test_filter_layouts_are_onnxruntimes_bitwise_on_a_chain():
    """First layer (NCHW input), unaligned middle, 1×1 and 3×3: same filters, same op counts."""
    inits = {"W0": weight(24, 3, 3, 3), "W1": weight(40, 24, 3, 3), "W2": weight(32, 40, 1, 1)}
    inits |= {"B0": rand(24), "B1": rand(40), "B2": rand(32)}
    nodes = [
        conv("x", "W0", "c0", "B0", pads=[1] * 4),
        helper.make_node("Relu", ["c0"], ["r0"]),
        conv("r0", "W1", "c1", "B1", pads=[1] * 4),
        helper.make_node("Relu", ["c1"], ["r1"]),
        conv("r1", "W2", "y", "B2"),
    ]
    original = model(nodes, [1, 3, 12, 12], inits)
    rewritten = layout(original)
    theirs = ort_saved(original)
    assert nchwc_filters(rewritten) == nchwc_filters(theirs)
    assert nchwc_ops(rewritten) == nchwc_ops(theirs)
    assert_same(original, rewritten)


def test_reorder_functions_block_and_pad():
    """R(W)[o-block, i-block, h, w, bi, bo] = W[o·b+bo, i·b+bi, h, w]; padded filters are 0."""
    w = rand(6, 4, 1, 2)
    bibo = ort_nchwc.reorder_filter_oihw_bibo(w, 2).reshape(3, 2, 1, 2, 2, 2)
    assert bibo[1, 0, 0, 1, 1, 0] == w[2, 1, 0, 1]
    bo = ort_nchwc.reorder_filter_oihw_bo(w, 4)
    assert bo.shape == (8, 4, 1, 2)
    blocks = bo.reshape(2, 4, 1, 2, 4)
    assert blocks[1, 3, 0, 1, 1] == w[5, 3, 0, 1]
    assert not blocks[1, :, :, :, 2:].any()


# ------------------------------------------------------------------ FusedConv and fusions
@needs_nchwc
@pytest.mark.parametrize(
    "activation, params", [("Relu", None), ("LeakyRelu", [0.1]), ("Sigmoid", None)]
)
def test_fused_conv_keeps_its_activation(activation, params):
    attrs = dict(activation=activation, pads=[1] * 4)
    if params:
        attrs["activation_params"] = params
    node = helper.make_node("FusedConv", ["x", "W", "B"], ["y"], domain="com.microsoft", **attrs)
    original = model([node], [1, 16, 8, 8], {"W": weight(32, 16, 3, 3), "B": rand(32)})
    rewritten = layout(original)
    (nchwc,) = [n for n in rewritten.graph.node if n.op_type == "Conv"]
    assert (
        helper.get_attribute_value(next(a for a in nchwc.attribute if a.name == "activation"))
        == activation.encode()
    )
    assert_same(original, rewritten)


@needs_nchwc
def test_add_fuses_into_conv_sum_and_relu_into_activation():
    """Relu(Conv(a) + Conv(b)) ⇒ one nchwc Conv with Sum and activation=Relu."""
    inits = {"W0": weight(32, 16, 3, 3), "W1": weight(32, 32, 1, 1), "B0": rand(32), "B1": rand(32)}
    nodes = [
        conv("x", "W0", "a", "B0", pads=[1] * 4),
        conv("a", "W1", "b", "B1"),
        helper.make_node("Add", ["b", "a"], ["s"]),
        helper.make_node("Relu", ["s"], ["y"]),
    ]
    original = model(nodes, [1, 16, 8, 8], inits)
    rewritten = layout(original)
    assert nchwc_ops(rewritten) == {"Conv": 2, "ReorderInput": 1, "ReorderOutput": 1}
    summed = [n for n in rewritten.graph.node if n.op_type == "Conv" and len(n.input) == 4]
    assert len(summed) == 1
    assert "Add" not in [n.op_type for n in rewritten.graph.node]
    assert_same(original, rewritten)


@needs_nchwc
def test_chain_stays_blocked_through_quickgelu_concat_pool_and_resize():
    inits = {
        "W0": weight(32, 3, 3, 3),
        "W1": weight(16, 32, 1, 1),
        "W2": weight(16, 64, 1, 1),
        "scales": np.array([1, 1, 2, 2], np.float32),
    }
    nodes = [
        conv("x", "W0", "c0", pads=[1] * 4),
        helper.make_node("QuickGelu", ["c0"], ["g0"], domain="com.microsoft", alpha=1.0),
        conv("g0", "W1", "c1"),
        helper.make_node("MaxPool", ["c1"], ["p1"], kernel_shape=[5, 5], pads=[2] * 4),
        helper.make_node("AveragePool", ["c1"], ["p2"], kernel_shape=[3, 3], pads=[1] * 4),
        helper.make_node("Concat", ["g0", "p1", "p2"], ["cat"], axis=1),
        conv("cat", "W2", "c2"),
        helper.make_node(
            "Resize",
            ["c2", "", "scales"],
            ["up"],
            mode="nearest",
            coordinate_transformation_mode="asymmetric",
            nearest_mode="floor",
        ),
        helper.make_node("GlobalAveragePool", ["up"], ["y"]),
    ]
    original = model(nodes, [1, 3, 16, 16], inits, opset=13)
    rewritten = layout(original)
    counts = nchwc_ops(rewritten)
    assert counts["ReorderInput"] == 0 and counts["ReorderOutput"] == 1
    assert counts["MaxPool"] == 1 and counts["AveragePool"] == 1
    assert counts["Upsample"] == 1 and counts["GlobalAveragePool"] == 1
    assert_same(original, rewritten)


@needs_nchwc
def test_tensor_read_in_both_layouts_and_graph_output_keep_names():
    """A conv output that is a graph output and read by a non-blocked op gets one
    ReorderOutput writing its original name."""
    inits = {"W0": weight(16, 16, 3, 3), "W1": weight(16, 16, 3, 3), "k": rand(1, 16, 1, 1)}
    nodes = [
        conv("x", "W0", "a", pads=[1] * 4),
        conv("a", "W1", "y", pads=[1] * 4),
        helper.make_node("Mul", ["a", "k"], ["z"]),  # broadcasting: stays NCHW
    ]
    original = model(nodes, [1, 16, 6, 6], inits, outputs=("y", "a", "z"))
    rewritten = layout(original)
    reorders = [n for n in rewritten.graph.node if n.op_type == "ReorderOutput"]
    assert sorted(n.output[0] for n in reorders) == ["a", "y"]
    assert_same(original, rewritten)


# ------------------------------------------------------------------ refusals
@needs_nchwc
@pytest.mark.parametrize(
    "case",
    [
        "channel_multiplier",
        "grouped_unaligned",
        "weight_is_input",
        "maxpool_unaligned",
        "input_channels_not_multiple_of_4",
        "depthwise_channels_not_multiple_of_4",
    ],
)
def test_refuses_what_onnxruntime_refuses(case):
    if case == "channel_multiplier":  # depthwise with 2 filters per channel
        original = model([conv("x", "W", "y", group=24)], [1, 24, 6, 6], {"W": weight(48, 1, 3, 3)})
    elif case == "input_channels_not_multiple_of_4":  # onnxruntime's ReorderInput would fail
        # (a squeeze-excitation conv of PP-OCR's MobileNetV3 classifier reads 22 channels)
        original = model([conv("x", "W", "y")], [1, 22, 6, 6], {"W": weight(16, 22, 1, 1)})
    elif case == "depthwise_channels_not_multiple_of_4":
        original = model([conv("x", "W", "y", group=18)], [1, 18, 6, 6], {"W": weight(18, 1, 3, 3)})
    elif case == "grouped_unaligned":  # 1.5 blocks of channels per group (24 where b is 16)
        per_group = BLOCK + BLOCK // 2  # (24 per group is aligned to an AVX2 CPU's block of 8)
        original = model(
            [conv("x", "W", "y", group=2)],
            [1, 2 * per_group, 6, 6],
            {"W": weight(2 * per_group, per_group, 1, 1)},
        )
    elif case == "weight_is_input":
        original = model([conv("x", "x", "y")], [16, 16, 1, 1], {})
    else:
        node = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3])
        original = model([node], [1, 20, 6, 6], {})
    rewritten = layout(original)
    assert not nchwc_ops(rewritten)
    assert_same(original, rewritten)
    if case != "weight_is_input":
        assert not nchwc_ops(ort_saved(original))  # onnxruntime's own transformer refuses too


@needs_nchwc
def test_unaligned_channels_read_blocked_need_no_reorder():
    """22 channels between two convs: the second reads the first's blocked output (padded with
    zeros) and is converted; only a ReorderInput of 22 channels is what onnxruntime cannot run."""
    inits = {"W0": weight(22, 16, 3, 3), "W1": weight(16, 22, 1, 1)}
    nodes = [conv("x", "W0", "a", pads=[1] * 4), conv("a", "W1", "y")]
    original = model(nodes, [1, 16, 6, 6], inits)
    rewritten = layout(original)
    assert nchwc_ops(rewritten) == {"Conv": 2, "ReorderInput": 1, "ReorderOutput": 1}
    assert_same(original, rewritten)


def test_changes_nothing_without_nchwc_kernels(monkeypatch):
    monkeypatch.setattr(ort_nchwc, "measured_block_size", lambda: (0, "no NCHWc kernels"))
    original = model([conv("x", "W", "y")], [1, 16, 4, 4], {"W": weight(16, 16, 1, 1)})
    import graphopt
    from graphopt.pipeline import make_pipeline

    out, report = graphopt.optimize_with_report(
        original, make_pipeline("t", ["ort-nchwc-layout"]), explain=True
    )
    assert not nchwc_ops(out) and not out.metadata_props
    assert ("ort-nchwc-layout", "(graph)", "refused", "no NCHWc kernels") in report.explain


# ------------------------------------------------------------------ real detectors
@needs_nchwc
@pytest.mark.realmodel
@pytest.mark.parametrize("name", ["common_det", "layout_cdla"])
def test_real_detectors_ort_cpu_native(name, real_model, real_feeds):
    import graphopt

    original = onnx.load(str(real_model(name)))
    rewritten = graphopt.optimize(original, "ort-cpu-native")
    assert nchwc_ops(rewritten)["Conv"] >= 80
    before = session(original, threads=2, level="disable")
    after = session(rewritten, threads=2, level="disable")
    for feeds in real_feeds(name, 2):
        for e, g in zip(before.run(None, feeds), after.run(None, feeds), strict=True):
            assert e.shape == g.shape
            assert np.max(np.abs(g - e)) <= 1e-4 * np.max(np.abs(e))
    # the same filters onnxruntime itself makes from the ort-cpu model
    theirs = ort_saved(graphopt.optimize(original, "ort-fusions"))
    assert nchwc_filters(rewritten) == nchwc_filters(theirs)


@needs_nchwc
def test_add_after_fused_convs_stays_blocked_and_broadcast_mul_does_not():
    """FusedConv outputs have no ONNX-inferred shape: the pass infers them as Conv's. An Add of
    equal shapes stays blocked; a broadcasting Mul (squeeze-excite) reorders back."""

    def fused(x, w, y):
        return helper.make_node(
            "FusedConv", [x, w], [y], domain="com.microsoft", activation="Relu", pads=[1] * 4
        )

    inits = {"W0": weight(32, 16, 3, 3), "W1": weight(32, 32, 3, 3)}
    nodes = [
        fused("x", "W0", "a"),
        fused("a", "W1", "b"),
        helper.make_node("Add", ["a", "b"], ["s"]),
        helper.make_node("GlobalAveragePool", ["s"], ["g"]),
        helper.make_node("Mul", ["s", "g"], ["y"]),
    ]
    original = model(nodes, [1, 16, 8, 8], inits)
    rewritten = layout(original)
    adds = [n for n in rewritten.graph.node if n.op_type == "Add"]
    assert len(adds) == 1 and adds[0].output[0] != "s"  # the Add reads and writes blocked
    (mul,) = [n for n in rewritten.graph.node if n.op_type == "Mul"]
    assert list(mul.input) == ["s", "g"]  # broadcasting: NCHW operands
    assert nchwc_ops(rewritten)["GlobalAveragePool"] == 1
    assert_same(original, rewritten)


RESIZES = [  # (mode, coordinate_transformation_mode, nearest_mode, onnxruntime converts it)
    ("nearest", "asymmetric", "floor", True),
    ("nearest", "asymmetric", "round_prefer_floor", False),
    ("nearest", "half_pixel", "floor", False),
    ("linear", "asymmetric", None, True),
    ("linear", "align_corners", None, True),
    ("linear", "half_pixel", None, True),
    ("linear", "pytorch_half_pixel", None, False),
]


@needs_nchwc
@pytest.mark.parametrize("mode, transform, nearest, converted", RESIZES)
def test_resize_modes_like_onnxruntime(mode, transform, nearest, converted):
    attrs = dict(mode=mode, coordinate_transformation_mode=transform)
    if nearest:
        attrs["nearest_mode"] = nearest
    inits = {"W": weight(32, 32, 1, 1), "scales": np.array([1, 1, 2, 3], np.float32)}
    nodes = [conv("x", "W", "c"), helper.make_node("Resize", ["c", "", "scales"], ["y"], **attrs)]
    original = model(nodes, [1, 32, 5, 7], inits, opset=13)
    rewritten = layout(original)
    assert nchwc_ops(rewritten)["Upsample"] == int(converted)
    assert nchwc_ops(ort_saved(original))["Upsample"] == int(converted)
    # a converted Resize's scales go with it (onnxruntime warned about the unused initializer)
    read = {t for n in rewritten.graph.node for t in n.input}
    assert ("scales" in read) == (not converted)
    assert {t.name for t in rewritten.graph.initializer} <= read
    assert_same(original, rewritten)


@needs_nchwc
@pytest.mark.parametrize(
    "op, attrs",
    [
        ("MaxPool", dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)),
        ("MaxPool", dict(kernel_shape=[2, 2], strides=[2, 2])),
        ("AveragePool", dict(kernel_shape=[3, 3], pads=[1] * 4, count_include_pad=1)),
        ("AveragePool", dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)),
        ("GlobalMaxPool", {}),
    ],
)
def test_pools_after_a_conv(op, attrs):
    nodes = [conv("x", "W", "c", pads=[1] * 4), helper.make_node(op, ["c"], ["y"], **attrs)]
    original = model(nodes, [1, 16, 9, 10], {"W": weight(32, 16, 3, 3)})
    rewritten = layout(original)
    assert nchwc_ops(rewritten) == {"Conv": 1, op: 1, "ReorderInput": 1, "ReorderOutput": 1}
    assert nchwc_ops(ort_saved(original))[op] == 1
    assert_same(original, rewritten)


@needs_nchwc
def test_scalar_constant_ops_stay_blocked_and_division_of_a_constant_does_not():
    """(⟦a⟧ · k) + ⟦a⟧ and ⟦a⟧ − k, ⟦a⟧ / k stay blocked; k / ⟦a⟧ would turn zero padding into
    inf, so it reads NCHW."""
    inits = {"W": weight(32, 16, 3, 3), "k": np.array([0.5], np.float32)}
    inits["two"] = np.array(2.0, np.float32)
    nodes = [
        conv("x", "W", "a", pads=[1] * 4),
        helper.make_node("Mul", ["k", "a"], ["m"]),
        helper.make_node("Add", ["m", "a"], ["s"]),
        helper.make_node("Sub", ["s", "two"], ["d"]),
        helper.make_node("Div", ["d", "two"], ["y"]),
        helper.make_node("Div", ["two", "a"], ["z"]),
    ]
    original = model(nodes, [1, 16, 6, 6], inits, outputs=("y", "z"))
    rewritten = layout(original)
    writes = {n.output[0]: n for n in rewritten.graph.node}
    assert writes["y"].op_type == "ReorderOutput"  # the chain ends blocked
    assert writes["z"].op_type == "Div" and list(writes["z"].input) == ["two", "a"]
    assert writes["a"].op_type == "ReorderOutput"
    # z = 2/a amplifies a's summation-order differences where a is near 0: rtol 1e-3
    assert_same(original, rewritten, rtol=1e-3)
