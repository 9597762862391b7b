"""graphopt.backends.trt_check: one hand-built bad model per rule, and the real detectors."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.backends.trt_check import Finding, check_tensorrt, errors
from graphopt.backends.trt_support import TrtVersion, op_support, parse_version
from graphopt.errors import BackendError, PipelineError
from tests.trt_models import const, model, vi


def image_model(node, extra_inits=(), out_dims=None, x_dims=(1, 3, 8, 8), **kw):
    return model([node], [vi("x", list(x_dims))], [vi("y", out_dims)], extra_inits, **kw)


def rules(findings: list[Finding], severity: str = "error") -> list[str]:
    return [f.rule for f in findings if f.severity == severity]


def test_clean_model_has_no_findings():
    m = image_model(helper.make_node("Relu", ["x"], ["y"], name="r"), out_dims=[1, 3, 8, 8])
    assert check_tensorrt(m, 10) == []
    assert check_tensorrt(m, 11) == []


# -- versions, opsets, domains, ops ------------------------------------------------------------


def test_parse_version():
    assert parse_version(10) == TrtVersion(10, 15)
    assert parse_version("11") == TrtVersion(11, 5)
    assert parse_version("10.8.0.43") == TrtVersion(10, 8)
    with pytest.raises(BackendError, match="unknown TensorRT version"):
        parse_version("8.6")


@pytest.mark.parametrize(
    ("opset", "version", "bad"),
    [(8, 10, True), (25, 10, True), (25, "11.5", False), (25, "11.4", True), (17, 10, False)],
)
def test_opset_range(opset, version, bad):
    """Outside the documented range is a warning, never an error: the parser refuses no opset."""
    m = image_model(helper.make_node("Relu", ["x"], ["y"]), opset=opset)
    found = check_tensorrt(m, version)
    assert "opset" not in rules(found)
    assert ("opset" in rules(found, "warning")) == bad


def test_custom_domain_fusedconv_is_an_error():
    w = const("w", np.ones((3, 3, 1, 1), np.float32))
    node = helper.make_node(
        "FusedConv", ["x", "w"], ["y"], name="fc", domain="com.microsoft", activation="Relu"
    )
    found = check_tensorrt(image_model(node, [w], domains=["com.microsoft"]), 10)
    assert rules(found) == ["custom-domain"]
    assert found[0].node == "fc" and found[0].op == "com.microsoft::FusedConv"
    assert "plugin" in found[0].message


def test_plugin_domain_is_a_warning_and_local_functions_are_fine():
    plugin = helper.make_node("MyPlugin", ["x"], ["y"], domain="trt.plugins")
    found = check_tensorrt(image_model(plugin, domains=["trt.plugins"]), 10)
    assert rules(found, "warning") == ["custom-domain"] and errors(found) == []
    fn = helper.make_function(
        "local",
        "Act",
        ["a"],
        ["b"],
        [helper.make_node("Relu", ["a"], ["b"])],
        [helper.make_opsetid("", 17)],
    )
    call = helper.make_node("Act", ["x"], ["y"], domain="local")
    assert check_tensorrt(image_model(call, domains=["local"], functions=[fn]), 10) == []


def test_unsupported_and_unlisted_ops():
    m = model([helper.make_node("Unique", ["x"], ["y"], name="u")], [vi("x", [4])], [vi("y", None)])
    assert rules(check_tensorrt(m, 10)) == ["unsupported-op"]
    m = image_model(helper.make_node("NotAnOnnxOp", ["x"], ["y"]))
    assert rules(check_tensorrt(m, 10), "warning") == ["unlisted-op"]


def test_dft_arrives_in_tensorrt_11_2():
    assert op_support("DFT", parse_version("10")) == "no"
    assert op_support("DFT", parse_version("11.1")) == "no"
    assert op_support("DFT", parse_version("11.2")) == "yes"
    assert op_support("Swish", parse_version("10")) == "no"
    assert op_support("Swish", parse_version("11.0")) == "yes"


# -- attribute rules ---------------------------------------------------------------------------


def resize(**attrs):
    scales = const("s", [1.0, 1.0, 2.0, 2.0], np.float32)
    node = helper.make_node("Resize", ["x", "", "s"], ["y"], name="rs", **attrs)
    return image_model(node, [scales])


@pytest.mark.parametrize(
    ("attrs", "bad"),
    [
        ({"mode": "nearest", "coordinate_transformation_mode": "asymmetric"}, False),
        ({"mode": "linear", "coordinate_transformation_mode": "half_pixel"}, False),
        ({"mode": "cubic"}, False),
        ({"coordinate_transformation_mode": "tf_crop_and_resize"}, True),
        ({"coordinate_transformation_mode": "half_pixel_symmetric"}, True),
        ({"mode": "linear", "antialias": 1}, True),
        ({"keep_aspect_ratio_policy": "not_larger"}, True),
    ],
)
def test_resize_modes(attrs, bad):
    found = check_tensorrt(resize(**attrs), 10)
    assert rules(found) == (["unsupported-attribute"] if bad else [])


def test_pad_reflect_and_constant_axes():
    ok = helper.make_node("Pad", ["x", "p"], ["y"], mode="reflect")
    assert (
        check_tensorrt(image_model(ok, [const("p", [0, 0, 2, 2, 0, 0, 2, 2], np.int64)]), 10) == []
    )
    big = helper.make_node("Pad", ["x", "p"], ["y"], mode="reflect")  # TensorRT repeats reflection
    found = check_tensorrt(image_model(big, [const("p", [0, 0, 8, 0, 0, 0, 1, 0], np.int64)]), 10)
    assert found == []
    dyn_axes = model(
        [helper.make_node("Pad", ["x", "p", "", "axes"], ["y"])],
        [vi("x", [1, 3, 8, 8]), vi("axes", [2], TensorProto.INT64)],
        [vi("y", None)],
        [const("p", [1, 1, 1, 1], np.int64)],
        opset=18,
    )
    assert "dynamic axes" in errors(check_tensorrt(dyn_axes, "10.3"))[0].message
    assert errors(check_tensorrt(dyn_axes, 10)) == []  # tensor axes since 10.4


def test_reflect_pad_with_dynamic_axes_is_reported_not_a_crash():
    dyn_axes = model(
        [helper.make_node("Pad", ["x", "p", "", "axes"], ["y"], mode="reflect")],
        [vi("x", [1, 3, 8, 8]), vi("axes", [2], TensorProto.INT64)],
        [vi("y", None)],
        [const("p", [1, 1, 1, 1], np.int64)],
        opset=18,
    )
    messages = [f.message for f in errors(check_tensorrt(dyn_axes, "10.3"))]
    assert len(messages) == 1 and "dynamic axes" in messages[0]


def test_pooling_rules():
    dil = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], dilations=[2, 2])
    assert "dilations" in errors(check_tensorrt(image_model(dil), 10))[0].message
    # 1-D MaxPool/AveragePool are pooled as 2-D by the parser; LpPool has no such path
    one_d = helper.make_node("LpPool", ["x"], ["y"], kernel_shape=[2])
    found = check_tensorrt(image_model(one_d, x_dims=(1, 3, 8)), 10)
    assert "2-D or 3-D" in errors(found)[0].message
    indices = model(
        [
            helper.make_node("MaxPool", ["x"], ["y", "i"], kernel_shape=[2, 2]),
        ],
        [vi("x", [1, 3, 8, 8])],
        [vi("y", None), vi("i", None, TensorProto.INT64)],
    )
    assert "Indices" in errors(check_tensorrt(indices, 10))[0].message


def test_topk_rules():
    def topk(k, sorted_=1, k_const=True):
        inits = [const("k", [k], np.int64)] if k_const else []
        inputs = [vi("x", [1, 5000])] + ([] if k_const else [vi("k", [1], TensorProto.INT64)])
        node = helper.make_node("TopK", ["x", "k"], ["y", "i"], sorted=sorted_)
        return model([node], inputs, [vi("y", None), vi("i", None, TensorProto.INT64)], inits)

    assert check_tensorrt(topk(100), 10) == []
    assert "below 3840" in errors(check_tensorrt(topk(4000), 10))[0].message
    unsorted = check_tensorrt(topk(10, sorted_=0), 10)  # the parser ignores sorted: a warning
    assert errors(unsorted) == [] and "sorted" in unsorted[0].message
    assert errors(check_tensorrt(topk(10, k_const=False), 10)) == []  # K may be a tensor


def test_squeeze_without_axes_on_a_dynamic_shape_needs_11_5():
    m = model(
        [helper.make_node("Squeeze", ["x"], ["y"])], [vi("x", ["N", 3, 1, 8])], [vi("y", None)]
    )
    assert rules(check_tensorrt(m, 10, shapes={"x": None})) == ["unsupported-attribute"]
    assert rules(check_tensorrt(m, "11.4", shapes={"x": None})) == ["unsupported-attribute"]
    assert check_tensorrt(m, "11.5", shapes={"x": None}) == []


def test_scatternd_reduction():
    m = model(
        [helper.make_node("ScatterND", ["x", "i", "u"], ["y"], reduction="add")],
        [vi("x", [4]), vi("i", [1, 1], TensorProto.INT64), vi("u", [1])],
        [vi("y", None)],
    )
    assert "reduction" in errors(check_tensorrt(m, 10))[0].message


# -- dtypes and shapes -------------------------------------------------------------------------


def test_dtypes():
    int16_in = model(
        [helper.make_node("Identity", ["x"], ["y"])],
        [vi("x", [2], TensorProto.INT16)],
        [vi("y", [2], TensorProto.INT16)],
    )
    assert "dtype" in rules(check_tensorrt(int16_in, 10))
    double = model(
        [helper.make_node("Identity", ["x"], ["y"])],
        [vi("x", [2], TensorProto.DOUBLE)],
        [vi("y", [2], TensorProto.DOUBLE)],
    )
    found = check_tensorrt(double, 10)
    assert errors(found) == [] and rules(found, "warning") == ["dtype", "dtype"]
    inner_u8 = model(
        [
            helper.make_node("Cast", ["x"], ["u"], to=TensorProto.UINT8),
            helper.make_node("Cast", ["u"], ["y"], to=TensorProto.FLOAT),
        ],
        [vi("x", [2])],
        [vi("y", [2])],
    )
    assert (
        "UINT8 only as a network input or output" in errors(check_tensorrt(inner_u8, 10))[0].message
    )


def test_dynamic_input_needs_a_profile_unless_given():
    m = image_model(helper.make_node("Relu", ["x"], ["y"]), x_dims=("N", 3, "H", "W"))
    found = check_tensorrt(m, 10)
    assert rules(found, "warning") == ["dynamic-shape"] and "--shapes x:" in found[0].message
    assert check_tensorrt(m, 10, shapes={"x": None}) == []


# -- Q/DQ --------------------------------------------------------------------------------------


def qdq_conv(
    zp_dtype=np.int8,
    zp_value=0,
    act_scale=0.05,
    w_scale=None,
    w_axis=0,
    scale_input=False,
):
    """x → Q → DQ → Conv(·, DQ(w)) → y."""
    rng = np.random.default_rng(0)
    w = np.round(rng.standard_normal((4, 3, 3, 3)) * 20).astype(np.int8)
    w_scale = np.full(4, 0.01, np.float32) if w_scale is None else np.asarray(w_scale, np.float32)
    inits = [
        const("xz", zp_value, zp_dtype),
        const("wq", w),
        const("ws", w_scale),
        const("wz", np.zeros(w_scale.shape, np.int8)),
    ]
    inputs = [vi("x", [1, 3, 8, 8])]
    if scale_input:
        inputs.append(vi("xs", []))
    else:
        inits.append(const("xs", act_scale, np.float32))
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"], name="q"),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"], name="dq"),
        helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], name="dqw", axis=w_axis),
        helper.make_node("Conv", ["xd", "wd"], ["y"], name="conv"),
    ]
    return model(nodes, inputs, [vi("y", None)], inits)


def test_good_qdq_conv_is_clean():
    assert check_tensorrt(qdq_conv(), 10) == []
    assert check_tensorrt(qdq_conv(), 11) == []


def test_uint8_quantization_is_refused():
    found = errors(check_tensorrt(qdq_conv(zp_dtype=np.uint8, zp_value=128), 10))
    assert {f.rule for f in found} == {"qdq-type", "qdq-zero-point"}
    assert any("INT8 instead" in f.message for f in found)


def test_nonzero_zero_point():
    found = errors(check_tensorrt(qdq_conv(zp_value=3), 10))
    assert [f.rule for f in found] == ["qdq-zero-point", "qdq-zero-point"]  # on Q and DQ


@pytest.mark.parametrize("bad", [0.0, -0.1, np.nan])  # +inf: a warning (test_review12_trtcheck)
def test_scales_must_be_positive_and_finite(bad):
    found = errors(check_tensorrt(qdq_conv(act_scale=bad), 10))
    assert [f.rule for f in found] == ["qdq-scale", "qdq-scale"]
    w_bad = errors(check_tensorrt(qdq_conv(w_scale=[0.01, bad, 0.01, 0.01]), 10))
    assert [f.rule for f in w_bad] == ["qdq-scale"] and w_bad[0].node == "dqw"


def test_scale_must_be_constant():
    found = errors(check_tensorrt(qdq_conv(scale_input=True), 10))
    assert [f.rule for f in found] == ["qdq-scale", "qdq-scale"]


def test_weight_per_channel_axis_must_be_0():
    rng = np.random.default_rng(0)
    w = np.round(rng.standard_normal((4, 3, 3, 3)) * 20).astype(np.int8)
    inits = [
        const("wq", w),
        const("ws", np.full(3, 0.01, np.float32)),
        const("wz", np.zeros(3, np.int8)),
    ]
    nodes = [
        helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], name="dqw", axis=1),
        helper.make_node("Conv", ["x", "wd"], ["y"], name="conv"),
    ]
    found = errors(
        check_tensorrt(model(nodes, [vi("x", [1, 3, 8, 8])], [vi("y", None)], inits), 10)
    )
    assert [f.rule for f in found] == ["qdq-per-channel"] and "axis 1" in found[0].message


@pytest.mark.parametrize(
    "op, attrs, w_shape, axis, ok",
    [
        ("MatMul", {}, (3, 4), 1, True),  # B is [K, N]: N output channels
        ("MatMul", {}, (3, 4), 0, False),  # per input channel cannot be factored out
        ("Gemm", {"transB": 1}, (4, 3), 0, True),
        ("Gemm", {"transB": 1}, (4, 3), 1, False),
        ("Gemm", {}, (3, 4), 1, True),
    ],
)
def test_weight_per_channel_axis_is_the_output_channels(op, attrs, w_shape, axis, ok):
    rng = np.random.default_rng(0)
    w = np.round(rng.standard_normal(w_shape) * 20).astype(np.int8)
    n = w_shape[axis]
    inits = [
        const("wq", w),
        const("ws", np.full(n, 0.01, np.float32)),
        const("wz", np.zeros(n, np.int8)),
    ]
    nodes = [
        helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], name="dqw", axis=axis),
        helper.make_node(op, ["x", "wd"], ["y"], name="mm", **attrs),
    ]
    found = errors(check_tensorrt(model(nodes, [vi("x", [2, 3])], [vi("y", None)], inits), 10))
    if ok:
        assert found == []
    else:
        assert [f.rule for f in found] == ["qdq-per-channel"]
        assert f"axis {axis}" in found[0].message and f"{op} 'mm'" in found[0].message


def test_weight_axis_is_not_judged_through_a_reshape_or_transpose():
    """DQ(axis 1) → Reshape → MatMul keeps MatMul's output channels on axis 1; pytorch-quantization
    exports DQ(axis 0) → Transpose → MatMul: neither is refused."""
    rng = np.random.default_rng(0)
    w = np.round(rng.standard_normal((3, 4)) * 20).astype(np.int8)
    for axis, between in ((1, "Reshape"), (0, "Transpose")):
        n = w.shape[axis]
        inits = [
            const("wq", w),
            const("ws", np.full(n, 0.01, np.float32)),
            const("wz", np.zeros(n, np.int8)),
            const("shape", np.array([3, 4], np.int64)),
        ]
        mid = (
            helper.make_node("Reshape", ["wd", "shape"], ["wm"])
            if between == "Reshape"
            else helper.make_node("Transpose", ["wd"], ["wm"], perm=[1, 0])
        )
        nodes = [
            helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], name="dqw", axis=axis),
            mid,
            helper.make_node("MatMul", ["x", "wm"], ["y"], name="mm"),
        ]
        x = vi("x", [2, 3] if between == "Reshape" else [2, 4])
        found = errors(check_tensorrt(model(nodes, [x], [vi("y", None)], inits), 10))
        assert found == [], (between, [str(f) for f in found])


def test_activation_per_channel_is_refused():
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], axis=1),
        helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], axis=1),
    ]
    inits = [const("s", [0.1, 0.1, 0.1], np.float32), const("z", [0, 0, 0], np.int8)]
    found = errors(check_tensorrt(image_model_nodes(nodes, inits), 10))
    assert [f.rule for f in found] == ["qdq-per-channel", "qdq-per-channel"]


def image_model_nodes(nodes, inits):
    return model(nodes, [vi("x", [1, 3, 8, 8])], [vi("y", None)], inits)


def test_q_must_feed_dq_and_dq_must_follow_q_or_a_constant():
    inits = [const("s", 0.1, np.float32), const("z", 0, np.int8)]
    q_to_cast = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], name="q"),
        helper.make_node("Cast", ["q"], ["y"], to=TensorProto.FLOAT),
    ]
    found = errors(check_tensorrt(image_model_nodes(q_to_cast, inits), 10))
    assert [f.rule for f in found] == ["qdq-pair"] and "Cast" in found[0].message
    dq_from_input = model(
        [helper.make_node("DequantizeLinear", ["x", "s", "z"], ["y"], name="dq")],
        [vi("x", [1, 3, 8, 8], TensorProto.INT8)],
        [vi("y", None)],
        inits,
    )
    found = errors(check_tensorrt(dq_from_input, 10))
    assert [f.rule for f in found] == ["qdq-pair"] and found[0].node == "dq"


def test_qdq_placement_warnings():
    inits = [
        const("s", 0.1, np.float32),
        const("z", 0, np.int8),
        const("w", np.ones((3, 3, 1, 1), np.float32)),
    ]
    before_exp = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
        helper.make_node("DequantizeLinear", ["q", "s", "z"], ["d"]),
        helper.make_node("Exp", ["d"], ["y"]),
    ]
    found = check_tensorrt(image_model_nodes(before_exp, inits), 10)
    assert errors(found) == [] and rules(found, "warning") == ["qdq-placement"]
    conv_then_relu = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
        helper.make_node("QuantizeLinear", ["c", "s", "z"], ["q"]),
        helper.make_node("DequantizeLinear", ["q", "s", "z"], ["d"]),
        helper.make_node("Relu", ["d"], ["y"]),
    ]
    found = check_tensorrt(image_model_nodes(conv_then_relu, inits), 10)
    assert rules(found, "warning") == ["qdq-placement"] and "cannot fuse" in found[0].message


def test_quantized_types_by_version():
    def typed(dtype, block_size=0):
        attrs = {"block_size": block_size} if block_size else {}
        nodes = [
            helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], **attrs),
            helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], **attrs),
        ]
        z = helper.make_tensor("z", dtype, [], [0])
        return model(
            nodes,
            [vi("x", [1, 3, 8, 8])],
            [vi("y", None)],
            [const("s", 0.1, np.float32), z],
            opset=23,
        )

    assert errors(check_tensorrt(typed(TensorProto.FLOAT8E4M3FN), 10)) == []
    fp4 = typed(TensorProto.FLOAT4E2M1)
    assert "needs TensorRT 10.8" in errors(check_tensorrt(fp4, "10.4"))[0].message
    assert errors(check_tensorrt(fp4, "10.8")) == []
    assert "qdq-type" in {f.rule for f in errors(check_tensorrt(typed(TensorProto.INT16), 10))}


# -- what graphopt produces --------------------------------------------------------------------


def test_graphopt_quantize_output_is_clean_for_tensorrt():
    import graphopt

    pytest.importorskip("graphopt.quant.api")

    qdq_free = image_model(
        helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1]),
        [const("w", np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32))],
        out_dims=[1, 4, 8, 8],
    )
    feeds = [
        {"x": np.random.default_rng(i).standard_normal((1, 3, 8, 8)).astype(np.float32)}
        for i in range(4)
    ]
    q = graphopt.quantize(qdq_free, feeds, target="tensorrt")
    assert any(n.op_type == "QuantizeLinear" for n in q.graph.node)
    for version in (10, 11):
        assert errors(check_tensorrt(q, version)) == []


def test_graphopt_quantize_matmul_weights_are_clean_for_tensorrt():
    """A MatMul with a constant [K, N] weight (PP-OCR's recognizer head has two) is quantized
    per output channel, axis 1, which the checker accepts."""
    import graphopt

    rng = np.random.default_rng(0)
    qdq_free = model(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")],
        [vi("x", [2, 8])],
        [vi("y", [2, 6])],
        [const("w", rng.standard_normal((8, 6)).astype(np.float32))],
    )
    feeds = [{"x": rng.standard_normal((2, 8)).astype(np.float32)} for _ in range(4)]
    q = graphopt.quantize(qdq_free, feeds, target="tensorrt")
    (dq,) = [n for n in q.graph.node if n.op_type == "DequantizeLinear" and "w" in n.input[0]]
    assert [a.i for a in dq.attribute if a.name == "axis"] == [1]
    for version in (10, 11):
        assert errors(check_tensorrt(q, version)) == []


DETECTORS = ("common_det", "layout_cdla", "ppocr_det")
PROFILES = {"ppocr_det": {"x": None}}


def _optimized(path, pipeline):
    import graphopt

    try:
        return graphopt.optimize(str(path), pipeline=pipeline)
    except PipelineError as e:
        pytest.skip(f"pipeline {pipeline!r} is not available yet: {e}")


@pytest.mark.realmodel
@pytest.mark.parametrize("name", DETECTORS)
@pytest.mark.parametrize("pipeline", ["tensorrt", "default"])
def test_real_detectors_after_tensorrt_pipelines_have_no_errors(real_model, name, pipeline):
    optimized = _optimized(real_model(name), pipeline)
    onnx.checker.check_model(optimized)
    for version in (10, 11):
        found = check_tensorrt(optimized, version, shapes=PROFILES.get(name))
        assert errors(found) == [], [str(f) for f in found]


@pytest.mark.realmodel
def test_real_detector_quantized_for_tensorrt_has_no_errors(real_model, real_feeds):
    import graphopt

    pytest.importorskip("graphopt.quant.api")

    q = graphopt.quantize(
        str(real_model("layout_cdla")), real_feeds("layout_cdla", 2), target="tensorrt"
    )
    for version in (10, 11):
        assert errors(check_tensorrt(q, version)) == []
    # what `graphopt build --int8 --fp16` parses on TensorRT 11: Q/DQ in float16, no Casts
    # between a DequantizeLinear and its consumer, so not even a placement warning
    from graphopt.backends.tensorrt import fp16_model

    assert check_tensorrt(fp16_model(q), 11) == []


@pytest.mark.realmodel
def test_ort_cpu_pipeline_output_is_flagged(real_model):
    optimized = _optimized(real_model("common_det"), "ort-fusions")
    if not any(n.domain == "com.microsoft" for n in optimized.graph.node):
        pytest.skip("the ort-fusions pipeline emitted no com.microsoft op on common_det")
    found = errors(check_tensorrt(optimized, 10))
    assert found and {f.rule for f in found} == {"custom-domain"}
    assert any("FusedConv" in f.op for f in found)
