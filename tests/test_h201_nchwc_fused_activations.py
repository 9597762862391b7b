"""ort-nchwc-layout, H201: FusedConv activations as onnxruntime's nchwc Conv applies them.

A Conv whose output channels are not a multiple of the block b leaves b⌈C/b⌉ − C padded
channels holding act(0); the next Conv multiplies them by zero filters, which only a finite
value survives, so the pass tracks a bound on them. HardSwish (|h(v)| ≤ |v|, h(0) = 0) and a
one-sided Clip (the absent bound is ∓float32 max, as fuse-ort-contrib writes it: clip(0) = 0)
had none, and every Conv reading such a tensor was refused (a missed rewrite, never a wrong
one). A FusedConv activation onnxruntime's kernels lack (Silu, Elu, a wrong parameter count)
was rewritten into an nchwc Conv that does not load either; it is now left alone.

Oracle: onnxruntime at ORT_DISABLE_ALL on the original and on the rewritten model, fed real
photographs (scikit-image's, ImageNet-normalized).
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphopt
from graphopt.backends.onnxruntime import session
from graphopt.passes.ort_nchwc import NCHWC_DOMAIN
from graphopt.pipeline import make_pipeline
from tests.test_pass_ort_nchwc import BLOCK, needs_nchwc

RNG = np.random.default_rng(201)
FLT_MAX = float(np.finfo(np.float32).max)
LAYOUT = make_pipeline("t", ["ort-nchwc-layout"])
SIZE = 48


def _weight(*shape: int) -> np.ndarray:
    """A filter scaled like a trained one (unit-variance outputs)."""
    return (RNG.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))).astype(np.float32)


def _fused(x: str, w: str, b: str, y: str, activation, params=None, **attrs) -> onnx.NodeProto:
    node = helper.make_node("FusedConv", [x, w, b], [y], y, domain="com.microsoft", **attrs)
    node.attribute.append(helper.make_attribute("activation", activation))
    if params is not None:
        node.attribute.append(helper.make_attribute("activation_params", params))
    return node


def _model(nodes: list[onnx.NodeProto], inits: dict[str, np.ndarray]) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    imports = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    return helper.make_model(graph, opset_imports=imports, ir_version=8)


def _chain(first: tuple, middle: tuple) -> onnx.ModelProto:
    """photo → FusedConv(3 → 20, `first`) → depthwise FusedConv(20, `middle`) → Conv(20 → 32)
    → y: 20 channels are not a multiple of 8 or 16, so the Convs after the first read padded
    channels, bounded by the activations."""
    nodes = [
        _fused("x", "W0", "B0", "a", *first, pads=[1] * 4, strides=[2, 2]),
        _fused("a", "W1", "B1", "d", *middle, pads=[1] * 4, group=20),
        helper.make_node("Conv", ["d", "W2", "B2"], ["y"], "last"),
    ]
    inits = {"W0": _weight(20, 3, 3, 3), "W1": _weight(20, 1, 3, 3), "W2": _weight(32, 20, 1, 1)}
    inits |= {"B0": _weight(20, 1)[:, 0], "B1": _weight(20, 1)[:, 0], "B2": _weight(32, 1)[:, 0]}
    return _model(nodes, inits)


@pytest.fixture(scope="module")
def photos() -> list[dict[str, np.ndarray]]:
    from graphopt.realmodels import images, preprocess

    spec = {"scale": 1 / 255.0, "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}
    return [{"x": preprocess(image, (SIZE, SIZE), **spec)} for image in images(2)]


def _rewrite(model: onnx.ModelProto) -> tuple[onnx.ModelProto, dict[str, tuple[str, str]]]:
    out, report = graphopt.optimize_with_report(model, LAYOUT, explain=True)
    notes = {node: (outcome, why) for rule, node, outcome, why in report.explain}
    return out, notes


def _assert_same(original, rewritten, feeds_list) -> None:
    before = session(original, threads=1, level="disable")
    after = session(rewritten, threads=1, level="disable")
    for feeds in feeds_list:
        (expected,), (got,) = before.run(None, feeds), after.run(None, feeds)
        assert np.isfinite(expected).all() and expected.shape == got.shape
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


CHAINS = {
    "hardswish": (("HardSwish",), ("HardSwish",)),
    "clip_min_only": (("Clip", [0.0, FLT_MAX]), ("Clip", [0.0, FLT_MAX])),
    "clip_max_only": (("Clip", [-FLT_MAX, 6.0]), ("Clip", [-FLT_MAX, 6.0])),
    "hardswish_then_relu6": (("HardSwish",), ("Clip", [0.0, 6.0])),
    "clip_min_only_then_hardswish": (("Clip", [0.0, FLT_MAX]), ("HardSwish",)),
}


@needs_nchwc
@pytest.mark.realmodel
@pytest.mark.parametrize("case", sorted(CHAINS))
def test_convs_after_hardswish_and_one_sided_clip_are_rewritten(case, photos):
    assert 20 % BLOCK  # (padded channels exist for every NCHWc block size: 8, 16)
    original = _chain(*CHAINS[case])
    rewritten, notes = _rewrite(original)
    # the last Conv read a tensor whose padded channels had no bound: "may not be finite"
    assert notes == {n: ("applied", "") for n in ("a", "d", "last")}
    convs = [n for n in rewritten.graph.node if n.op_type == "Conv"]
    assert len(convs) == 3 and all(n.domain == NCHWC_DOMAIN for n in convs)
    _assert_same(original, rewritten, photos)


REFUSED = {
    "silu": ("Silu", None),
    "elu": ("Elu", [1.0]),
    "clip_one_param": ("Clip", [0.0]),
    "leakyrelu_no_param": ("LeakyRelu", None),
    "not_utf8": (b"Re\xfflu", None),
}


@needs_nchwc
@pytest.mark.parametrize("case", sorted(REFUSED))
def test_activation_onnxruntime_lacks_leaves_the_fused_conv_alone(case):
    """onnxruntime 1.32 loads neither the FusedConv nor the nchwc Conv made of it
    ("GetFusedActivationAttr(info, activation_).IsOK() was false"): the node stays as it was,
    and the rest of the graph is still rewritten."""
    activation, params = REFUSED[case]
    original = _chain(("Relu",), (activation, params))
    with pytest.raises(Exception, match="GetFusedActivationAttr"):
        session(original, threads=1, level="disable")
    rewritten, notes = _rewrite(original)
    outcome, why = notes["d"]
    assert outcome == "refused" and "refuse activation" in why
    assert notes["a"] == notes["last"] == ("applied", "")
    kept = [n for n in rewritten.graph.node if n.name == "d"]
    assert len(kept) == 1 and kept[0].op_type == "FusedConv"
    assert list(kept[0].attribute) == list(
        next(n for n in original.graph.node if n.name == "d").attribute
    )


@needs_nchwc
def test_activations_onnxruntime_applies_are_kept_with_their_parameters():
    """HardSwish (with parameters it ignores), HardSigmoid, LeakyRelu and two-sided Clip go into
    the nchwc Conv as they are; no probe refuses them."""
    for activation, params in [
        ("HardSwish", [1.0, 2.0]),
        ("HardSigmoid", [0.2, 0.5]),
        ("LeakyRelu", [0.1]),
        ("Clip", [-1.0, 1.0]),
    ]:
        original = _chain(("Relu",), (activation, params))
        rewritten, notes = _rewrite(original)
        assert notes["d"] == ("applied", ""), activation
        (conv,) = [n for n in rewritten.graph.node if any(a.name == "group" for a in n.attribute)]
        attrs = {a.name: helper.get_attribute_value(a) for a in conv.attribute}
        assert attrs["activation"] == activation.encode()
        np.testing.assert_allclose(attrs["activation_params"], params, rtol=1e-7)


def _unfused_chain() -> onnx.ModelProto:
    """photo → Conv 3→20 → HardSwish → depthwise Conv 20 → Clip(min=0) → Conv 20→32 → y, as an
    exporter writes it (opset 14): ort-fusions makes the FusedConvs the layout pass reads."""
    nodes = [
        helper.make_node("Conv", ["x", "W0", "B0"], ["c0"], "c0", pads=[1] * 4, strides=[2, 2]),
        helper.make_node("HardSwish", ["c0"], ["a"], "hardswish"),
        helper.make_node("Conv", ["a", "W1", "B1"], ["c1"], "c1", pads=[1] * 4, group=20),
        helper.make_node("Clip", ["c1", "zero"], ["d"], "clip"),
        helper.make_node("Conv", ["d", "W2", "B2"], ["y"], "last"),
    ]
    inits = {"W0": _weight(20, 3, 3, 3), "W1": _weight(20, 1, 3, 3), "W2": _weight(32, 20, 1, 1)}
    inits |= {"B0": _weight(20, 1)[:, 0], "B1": _weight(20, 1)[:, 0], "B2": _weight(32, 1)[:, 0]}
    inits["zero"] = np.array(0.0, np.float32)
    model = _model(nodes, inits)
    del model.opset_import[:]
    model.opset_import.append(helper.make_opsetid("", 14))
    return model


@needs_nchwc
@pytest.mark.realmodel
@pytest.mark.parametrize("pipeline", ["ort-cpu-native", "ort-cpu"])
def test_pipelines_rewrite_every_conv_after_hardswish_and_relu_clip(pipeline, photos):
    original = _unfused_chain()
    rewritten, report = graphopt.optimize_with_report(original, pipeline, explain=True)
    layout = [
        (node, outcome, why)
        for rule, node, outcome, why in report.explain
        if rule == "ort-nchwc-layout" and node != "(graph)"
    ]
    assert len(layout) == 3 and all(outcome == "applied" for _, outcome, _ in layout), layout
    _assert_same(original, rewritten, photos)


NAN, INF = float("nan"), float("inf")
ODD_PARAMETERS = {
    # parameters an activation does not read bound nothing: all three Convs rewritten
    "relu_nan_params": (("Relu", [NAN]), ("Relu", [NAN]), "applied"),
    "hardswish_inf_params": (("HardSwish", [INF, NAN]), ("Tanh", [NAN]), "applied"),
    "clip_unbounded": (("Clip", [-INF, INF]), ("Clip", [0.0, INF]), "applied"),
    # HardSigmoid(0) = clip(∞·0 + ½, 0, 1) is NaN in the padded channels: before 41eedf7 it was
    # bounded by 1 and the last Conv summed NaN·0 into every output (all NaN, the original none)
    "hardsigmoid_inf_alpha": (("HardSigmoid", [INF, 0.5]), ("Relu",), "refused"),
    "leakyrelu_nan_alpha": (("LeakyRelu", [NAN]), ("Relu",), "refused"),
}


@needs_nchwc
@pytest.mark.realmodel
@pytest.mark.parametrize("case", sorted(ODD_PARAMETERS))
def test_non_finite_activation_parameters_bound_only_what_reads_them(case, photos):
    first, middle, last = ODD_PARAMETERS[case]
    original = _chain(first, middle)
    rewritten, notes = _rewrite(original)
    assert notes["a"] == notes["d"] == ("applied", "")
    assert notes["last"][0] == last
    before = session(original, threads=1, level="disable")
    after = session(rewritten, threads=1, level="disable")
    for feeds in photos:
        (expected,), (got,) = before.run(None, feeds), after.run(None, feeds)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
