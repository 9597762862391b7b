"""graphopt.backends.tensorrt: the build logic of both TensorRT generations, on a fake `tensorrt`
module (tests/trt_fake.py), plus the real build behind @pytest.mark.tensorrt."""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.backends import tensorrt as trt_backend
from graphopt.backends import trt_runtime
from graphopt.backends.tensorrt import (
    TRT_SYMBOLS,
    BuildPlan,
    ShapeRange,
    build_engine,
    calibration_cache_tag,
    fill_profile,
    fp16_model,
    parse_shapes,
    plan_build,
    retag_calibration_cache,
)
from graphopt.errors import BackendError
from tests.conftest import xfail_unless_onnxruntime_rounds_float16_quantize
from tests.trt_fake import FakeDevice, fake_tensorrt

V10 = "10.16.1.11"
V11 = "11.4.0.106"


# -- small models ------------------------------------------------------------------------------


def conv_model(dynamic: bool = False, qdq: bool = False) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32) * 0.2
    b = rng.standard_normal(4).astype(np.float32)
    dims: list = ["N", 3, "H", "W"] if dynamic else [1, 3, 16, 16]
    nodes = []
    inits = [numpy_helper.from_array(b, "b")]
    conv_in, weight = "x", "w"
    if qdq:
        inits += [
            numpy_helper.from_array(np.array(0.05, np.float32), "xs"),
            numpy_helper.from_array(np.array(0, np.int8), "xz"),
            numpy_helper.from_array(np.round(w / 0.01).astype(np.int8), "wq"),
            numpy_helper.from_array(np.full(4, 0.01, np.float32), "ws"),
            numpy_helper.from_array(np.zeros(4, np.int8), "wz"),
        ]
        nodes += [
            helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"], name="q_x"),
            helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"], name="dq_x"),
            helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], name="dq_w", axis=0),
        ]
        conv_in, weight = "xd", "wd"
    else:
        inits.append(numpy_helper.from_array(w, "w"))
    nodes += [
        helper.make_node("Conv", [conv_in, weight, "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["y"], name="relu"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.fixture
def use_fake(monkeypatch):
    """Install a fake `tensorrt` of the given version and pretend a GPU is present."""

    def install(version: str, **kwargs):
        fake = fake_tensorrt(version, **kwargs)
        monkeypatch.setitem(sys.modules, "tensorrt", fake)
        monkeypatch.setattr(trt_runtime, "cuda_device_count", lambda: (1, ""))
        return fake

    return install


def calls_named(fake, name: str) -> list[tuple]:
    return [c for c in fake.calls if c[0] == name]


# -- plan_build: the version logic, no TensorRT at all ----------------------------------------


@pytest.mark.parametrize(
    ("major", "kwargs", "expected"),
    [
        (10, {}, BuildPlan(10, "fp32", False)),
        (10, {"fp16": True}, BuildPlan(10, "fp16", False, ("FP16",))),
        (10, {"has_qdq": True}, BuildPlan(10, "int8", False, ("INT8",))),
        (10, {"has_qdq": True, "fp16": True}, BuildPlan(10, "int8+fp16", False, ("FP16", "INT8"))),
        (10, {"has_qdq": True, "strongly_typed": True}, BuildPlan(10, "int8", True)),
        (
            10,
            {"fp16": True, "strongly_typed": True},
            BuildPlan(10, "fp16", True, convert_fp16=True),
        ),
        (11, {}, BuildPlan(11, "fp32", True)),
        (11, {"fp16": True}, BuildPlan(11, "fp16", True, convert_fp16=True)),
        (11, {"has_qdq": True}, BuildPlan(11, "int8", True)),
        (11, {"has_qdq": True, "int8": True}, BuildPlan(11, "int8", True)),
    ],
)
def test_plan_build(major, kwargs, expected):
    kwargs = {"has_qdq": False, **kwargs}
    assert plan_build(major, **kwargs) == expected


def test_plan_build_v10_calibrator_is_the_legacy_path():
    plan = plan_build(10, has_qdq=False, int8=True, calibration=True, fp16=True)
    assert plan.calibrator and plan.flags == ("FP16", "INT8") and not plan.strongly_typed
    assert any("deprecated" in n for n in plan.notes)


@pytest.mark.parametrize(
    ("major", "kwargs", "needle"),
    [
        (11, {"int8": True, "calibration": True}, "no implicit INT8"),
        (11, {"strongly_typed": False}, "strongly typed networks only"),
        (10, {"int8": True}, "needs calibration data"),
        (10, {"int8": True, "calibration": True, "strongly_typed": True}, "cannot use the INT8"),
    ],
)
def test_plan_build_refuses(major, kwargs, needle):
    with pytest.raises(BackendError, match=needle):
        plan_build(major, has_qdq=False, **kwargs)


# -- shapes ------------------------------------------------------------------------------------


def test_parse_shapes_single_and_triples():
    shapes = parse_shapes(["x:1x3x640x640", "img:0:1x3x32x32,1x3x64x64,2x3x128x128"])
    assert shapes["x"] == ShapeRange((1, 3, 640, 640), (1, 3, 640, 640), (1, 3, 640, 640))
    assert shapes["img:0"].min == (1, 3, 32, 32) and shapes["img:0"].max == (2, 3, 128, 128)
    assert parse_shapes("a:1x2 b:3x4") == {
        "a": ShapeRange((1, 2), (1, 2), (1, 2)),
        "b": ShapeRange((3, 4), (3, 4), (3, 4)),
    }


@pytest.mark.parametrize(
    "spec",
    ["x1x3", "x:1x3,1x3", "x:1xax3", "x:2x3,1x3,4x3", "x:1x3,1x3x4,1x3", "x:0x3", ":1x3"],
)
def test_parse_shapes_rejects(spec):
    with pytest.raises(BackendError, match="bad --shapes"):
        parse_shapes([spec])


def test_parse_shapes_refuses_one_input_given_two_shapes():
    assert parse_shapes(["x:1x3", "x:1x3"]) == {"x": ShapeRange((1, 3), (1, 3), (1, 3))}
    with pytest.raises(BackendError, match="--input-shape gives 'x' twice, with different"):
        parse_shapes(["x:1x4", "x:2x4"], "--input-shape")  # the last one won


def test_fill_profile():
    r = ShapeRange((1, 3, 32, 32), (1, 3, 64, 64), (1, 3, 96, 96))
    assert fill_profile("x", (1, 3, -1, -1), r) == r
    assert fill_profile("x", (1, 3, 8, 8), None) is None
    with pytest.raises(BackendError, match="--shapes x:MIN,OPT,MAX"):
        fill_profile("x", (1, 3, -1, -1), None)
    with pytest.raises(BackendError, match="axis 0 is fixed to 2"):
        fill_profile("x", (2, 3, -1, -1), r)
    with pytest.raises(BackendError, match="rank 4 does not match"):
        fill_profile("x", (1, -1), r)


# -- importing TensorRT and finding a GPU -------------------------------------------------------


def test_missing_tensorrt_is_one_line_with_the_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import raises ImportError
    with pytest.raises(BackendError) as info:
        trt_backend.import_tensorrt()
    msg = str(info.value)
    assert "\n" not in msg and "pip install 'graphopt[tensorrt]'" in msg and "NVIDIA GPU" in msg


def test_old_tensorrt_is_refused(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt("8.6.1"))
    with pytest.raises(BackendError, match=r"TensorRT 8\.6\.1 is too old"):
        trt_backend.import_tensorrt()


def test_padded_version_string_reads_its_major(monkeypatch):
    """' 10.3.0 ' passes the installed-version check; its major was read as 0 ('TensorRT
    10.3.0 is too old')."""
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt(" 10.3.0\n"))
    trt = trt_backend.import_tensorrt()
    assert trt_backend.trt_major(trt) == 10
    assert trt_backend.trt_version(trt) == "10.3.0"
    assert calibration_cache_tag(trt) == "TRT-100300-EntropyCalibration2"


def test_no_gpu_is_one_line(monkeypatch):
    monkeypatch.setattr(trt_runtime, "cuda_device_count", lambda: (0, "no NVIDIA driver found"))
    with pytest.raises(BackendError, match="no NVIDIA GPU: no NVIDIA driver found"):
        trt_runtime.require_cuda_device()


def test_cuda_device_count_never_raises():
    count, why = trt_runtime.cuda_device_count()
    assert count >= 0
    assert (count == 0) == bool(why)


def test_calibration_cache_tag_uses_tensorrts_version_code():
    assert calibration_cache_tag(fake_tensorrt(V10)) == "TRT-101601-EntropyCalibration2"
    assert calibration_cache_tag(fake_tensorrt("10.1.0")) == "TRT-100100-EntropyCalibration2"


def test_retag_keeps_graphopts_scales_exactly():
    cache = pytest.importorskip("graphopt.quant.cache")

    scales = {"x": np.float32(0.0123), "conv_out": np.float32(3.5 / 127)}
    text = cache.dumps(scales, header="TRT-8601-EntropyCalibration2").encode()
    out = retag_calibration_cache(text, "TRT-101601-EntropyCalibration2")
    header, back = cache.loads(out.decode())
    assert header == "TRT-101601-EntropyCalibration2"
    assert back == scales


# -- building, TensorRT 10 ---------------------------------------------------------------------


def test_v10_fp32_dynamic_build_writes_engine_and_sidecar(use_fake, tmp_path):
    fake = use_fake(V10)
    src = tmp_path / "m.onnx"
    onnx.save(conv_model(dynamic=True), src)
    out = tmp_path / "m.plan"
    timing = tmp_path / "timing.cache"
    timing.write_bytes(b"old")
    info = build_engine(
        str(src),
        out,
        shapes=["x:1x3x32x32,1x3x64x64,4x3x128x128"],
        workspace_mib=256,
        timing_cache=timing,
    )
    assert calls_named(fake, "create_network") == [("create_network", 0)]
    assert calls_named(fake, "set_flag") == []
    assert calls_named(fake, "set_shape") == [
        ("set_shape", "x", (1, 3, 32, 32), (1, 3, 64, 64), (4, 3, 128, 128))
    ]
    assert calls_named(fake, "add_optimization_profile") == [("add_optimization_profile",)]
    assert calls_named(fake, "set_memory_pool_limit")[0][2] == 256 << 20
    assert calls_named(fake, "create_timing_cache") == [("create_timing_cache", b"old")]
    assert timing.read_bytes() == b"old+timing"
    assert out.read_bytes() == b"FAKE-ENGINE:" + V10.encode()
    side = json.loads((tmp_path / "m.plan.json").read_text())
    assert side["tensorrt_version"] == V10
    assert side["precision"] == "fp32" and side["strongly_typed"] is False
    assert side["source_sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert side["shapes"] == {
        "x": {"min": [1, 3, 32, 32], "opt": [1, 3, 64, 64], "max": [4, 3, 128, 128]}
    }
    assert side["graphopt_version"] and side["engine_bytes"] == len(out.read_bytes())
    assert info.precision == "fp32"
    assert sorted(os.listdir(tmp_path)) == ["m.onnx", "m.plan", "m.plan.json", "timing.cache"]


def test_v10_dynamic_input_without_shapes_is_refused_before_building(use_fake, tmp_path):
    fake = use_fake(V10)
    with pytest.raises(BackendError, match="input 'x' has dynamic dimensions"):
        build_engine(conv_model(dynamic=True), tmp_path / "m.plan")
    assert calls_named(fake, "build_serialized_network") == []
    assert not (tmp_path / "m.plan").exists()


def test_v10_fp16_uses_the_builder_flag_and_keeps_the_model(use_fake, tmp_path):
    fake = use_fake(V10)
    build_engine(conv_model(), tmp_path / "m.plan", fp16=True)
    assert calls_named(fake, "set_flag") == [("set_flag", "FP16")]
    assert calls_named(fake, "create_network") == [("create_network", 0)]
    parsed = fake.parsed_models[0]
    assert all(t.data_type == TensorProto.FLOAT for t in parsed.graph.initializer)


def test_v10_strongly_typed_on_request_sets_bit_1(use_fake, tmp_path):
    fake = use_fake(V10)
    info = build_engine(conv_model(qdq=True), tmp_path / "m.plan", strongly_typed=True)
    assert calls_named(fake, "create_network") == [("create_network", 1 << 1)]
    assert calls_named(fake, "set_flag") == [] and info.strongly_typed


def test_v10_qdq_model_builds_int8_without_calibrator(use_fake, tmp_path):
    fake = use_fake(V10)
    info = build_engine(conv_model(qdq=True), tmp_path / "m.plan", int8=True)
    assert calls_named(fake, "set_flag") == [("set_flag", "INT8")]
    assert calls_named(fake, "int8_calibrator") == []
    assert info.calibration == "qdq" and info.precision == "int8"


def test_v10_entropy_calibrator_feeds_batches_and_writes_cache(use_fake, tmp_path, monkeypatch):
    fake = use_fake(V10)
    device = FakeDevice()
    monkeypatch.setattr(trt_runtime, "CudaDevice", lambda: device)
    rng = np.random.default_rng(1)
    feeds = [{"x": rng.standard_normal((1, 3, 16, 16)).astype(np.float32)} for _ in range(3)]
    cache = tmp_path / "calib.cache"
    info = build_engine(
        conv_model(), tmp_path / "m.plan", int8=True, calibration=feeds, cache=cache
    )
    assert calls_named(fake, "set_flag") == [("set_flag", "INT8")]
    assert calls_named(fake, "int8_calibrator") == [("int8_calibrator",)]
    assert calls_named(fake, "read_calibration_cache") == [("read_calibration_cache", None)]
    assert calls_named(fake, "batches") == [("batches", 3)]
    assert calls_named(fake, "get_batch_size") == [("get_batch_size", 1)]
    assert len(device.copied) == 3
    for fed, copied in zip(feeds, device.copied, strict=True):
        np.testing.assert_array_equal(copied, fed["x"])
    assert cache.read_text().startswith("TRT-100000-EntropyCalibration2\nx: 3f000000")
    assert info.calibration == "calibrator"


def test_v10_calibrator_reads_graphopts_cache_with_tensorrts_header(use_fake, tmp_path):
    calib_cache = pytest.importorskip("graphopt.quant.cache")

    fake = use_fake(V10)
    cache = tmp_path / "graphopt.cache"
    calib_cache.write(cache, {"x": np.float32(0.02), "c": np.float32(0.1)})
    build_engine(conv_model(), tmp_path / "m.plan", int8=True, cache=cache)
    ((_, given),) = calls_named(fake, "read_calibration_cache")
    header, scales = calib_cache.loads(given.decode())
    assert header == "TRT-101601-EntropyCalibration2"
    assert scales == {"x": np.float32(0.02), "c": np.float32(0.1)}
    assert calls_named(fake, "batches") == []  # everything came from the cache


def test_parser_failure_names_the_node(use_fake, tmp_path):
    use_fake(V10)
    model = conv_model()
    model.graph.node[0].domain = "com.microsoft"
    model.graph.node[0].op_type = "FusedConv"
    model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    with pytest.raises(BackendError, match=r"failed at node 'conv' \(FusedConv\): No importer"):
        build_engine(model, tmp_path / "m.plan")
    assert os.listdir(tmp_path) == []


def test_builder_that_cannot_start_is_one_line(use_fake, tmp_path):
    use_fake(V10, no_builder=True)
    with pytest.raises(BackendError, match=r"cannot create a builder .*nullptr.*nvidia-smi"):
        build_engine(conv_model(), tmp_path / "m.plan")


def test_failed_build_writes_nothing(use_fake, tmp_path):
    use_fake(V10, fail_build=True)
    with pytest.raises(BackendError, match="failed to build the engine"):
        build_engine(conv_model(), tmp_path / "m.plan")
    assert os.listdir(tmp_path) == []


def test_unknown_profile_name_is_refused(use_fake, tmp_path):
    use_fake(V10)
    with pytest.raises(BackendError, match="--shapes names images"):
        build_engine(conv_model(), tmp_path / "m.plan", shapes=["images:1x3x16x16"])


def test_no_gpu_stops_the_build_before_tensorrt_is_used(monkeypatch, tmp_path):
    fake = fake_tensorrt(V10)
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    monkeypatch.setattr(trt_runtime, "cuda_device_count", lambda: (0, "no NVIDIA driver found"))
    with pytest.raises(BackendError, match="no NVIDIA GPU"):
        build_engine(conv_model(), tmp_path / "m.plan")
    assert fake.calls == []


# -- building, TensorRT 11 ---------------------------------------------------------------------


def test_v11_is_always_strongly_typed_and_never_sets_precision_flags(use_fake, tmp_path):
    fake = use_fake(V11)
    info = build_engine(conv_model(), tmp_path / "m.plan")
    # 11.0 deprecated STRONGLY_TYPED (bit 0 there, 1 in 10): always on, the flag ignored
    assert calls_named(fake, "create_network") == [("create_network", 0)]
    assert calls_named(fake, "set_flag") == []
    assert info.strongly_typed and info.precision == "fp32"


def test_v11_fp16_converts_the_model_instead_of_a_flag(use_fake, tmp_path):
    fake = use_fake(V11)
    info = build_engine(conv_model(), tmp_path / "m.plan", fp16=True)
    assert calls_named(fake, "set_flag") == []
    parsed = fake.parsed_models[0]
    assert {t.data_type for t in parsed.graph.initializer} == {TensorProto.FLOAT16}
    assert parsed.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT  # I/O kept
    assert info.precision == "fp16"


def test_v11_qdq_model_builds_int8(use_fake, tmp_path):
    fake = use_fake(V11)
    info = build_engine(conv_model(qdq=True), tmp_path / "m.plan", int8=True)
    assert calls_named(fake, "set_flag") == [] and calls_named(fake, "int8_calibrator") == []
    assert info.calibration == "qdq" and info.strongly_typed


def test_v11_refuses_implicit_int8(use_fake, tmp_path):
    fake = use_fake(V11)
    with pytest.raises(BackendError, match="TensorRT 11 has no implicit INT8"):
        build_engine(conv_model(), tmp_path / "m.plan", int8=True, calibration=[{}])
    assert calls_named(fake, "parse") == []


def test_v11_has_no_calibrator_class():
    with pytest.raises(BackendError, match="no IInt8EntropyCalibrator2"):
        trt_backend.make_entropy_calibrator(fake_tensorrt(V11), [], None)


# -- float16 conversion (the TensorRT 11 FP16 path), checked in onnxruntime ----------------------


def test_fp16_model_keeps_io_and_stays_close():
    from graphopt.backends.onnxruntime import run

    model = conv_model()
    half = fp16_model(model)
    assert half.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert half.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert any(t.data_type == TensorProto.FLOAT16 for t in half.graph.initializer)
    x = np.random.default_rng(2).standard_normal((1, 3, 16, 16)).astype(np.float32)
    a = run(model, {"x": x})["y"]
    b = run(half, {"x": x})["y"]
    assert b.dtype == np.float32
    np.testing.assert_allclose(b, a, rtol=1e-2, atol=1e-2)
    assert model.graph.initializer[0].data_type == TensorProto.FLOAT  # input not mutated


def test_fp16_qdq_model_gets_float16_scales_and_no_casts_inside():
    from graphopt.backends.onnxruntime import run
    from graphopt.backends.trt_check import check_tensorrt

    model = conv_model(qdq=True)
    half = fp16_model(model)
    onnx.checker.check_model(half, full_check=True)
    assert half.opset_import[0].version >= 19
    nodes = {n.name: n for n in half.graph.node}
    conv = nodes["conv"]
    producers = {o: n for n in half.graph.node for o in n.output}
    assert [producers[i].op_type for i in conv.input[:2]] == [
        "DequantizeLinear",
        "DequantizeLinear",
    ]
    scales = {t.name: t.data_type for t in half.graph.initializer}
    assert scales["xs"] == scales["ws"] == TensorProto.FLOAT16
    assert check_tensorrt(half, 11) == []
    xfail_unless_onnxruntime_rounds_float16_quantize()
    x = np.random.default_rng(5).standard_normal((1, 3, 16, 16)).astype(np.float32)
    np.testing.assert_allclose(
        run(half, {"x": x})["y"], run(model, {"x": x})["y"], rtol=1e-2, atol=2e-2
    )


def test_fp16_model_keeps_out_of_range_constants_in_float32():
    """An unfolded BatchNorm whose variance is beyond ±65504 (as in PP-OCRv4 det) would become
    inf in float16: its node stays float32 and the result stays close."""
    from graphopt.backends.onnxruntime import run

    var = np.array([9.8e7, 4.0, 1.0], np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Constant", [], ["var"], value=numpy_helper.from_array(var, "v")),
            helper.make_node("BatchNormalization", ["x", "g", "b", "m", "var"], ["y"], name="bn"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4])],
        [
            numpy_helper.from_array(np.array([2.0, 1.0, 0.5], np.float32), "g"),
            numpy_helper.from_array(np.array([0.1, 0.2, 0.3], np.float32), "b"),
            numpy_helper.from_array(np.array([100.0, 1.0, 0.0], np.float32), "m"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    half = fp16_model(model)
    onnx.checker.check_model(half, full_check=True)
    kept = {t.name: t.data_type for t in half.graph.initializer}
    assert kept["var"] == TensorProto.FLOAT
    x = np.random.default_rng(4).standard_normal((1, 3, 4, 4)).astype(np.float32) * 3000
    np.testing.assert_allclose(
        run(half, {"x": x})["y"], run(model, {"x": x})["y"], rtol=2e-3, atol=2e-3
    )


@pytest.mark.realmodel
@pytest.mark.parametrize("name", ["common_det", "layout_cdla", "ppocr_det"])
def test_fp16_model_on_real_detectors(real_model, real_feeds, name):
    from graphopt.backends.onnxruntime import run
    from graphopt.backends.trt_check import check_tensorrt, errors

    model = onnx.load(str(real_model(name)))
    half = fp16_model(model)
    onnx.checker.check_model(half, full_check=True)  # also: nodes in topological order
    assert errors(check_tensorrt(half, 11, shapes={"x": None})) == []
    feed = real_feeds(name, 1)[0]
    a = run(model, feed)
    b = run(half, feed)
    for out in a:
        scale = float(np.abs(a[out]).max())
        assert float(np.abs(a[out] - b[out]).max()) < 0.03 * scale, out


# -- the installed TensorRT (only where it imports) ---------------------------------------------


def _real_tensorrt():
    try:
        return importlib.import_module("tensorrt")
    except (ImportError, OSError) as e:
        pytest.skip(f"tensorrt is not importable here: {e}")


def _has(trt, symbol: str) -> bool:
    obj = trt
    for part in symbol.split("."):
        if not hasattr(obj, part):
            return False
        obj = getattr(obj, part)
    return True


def test_every_tensorrt_symbol_the_backend_uses_exists():
    """Runs wherever `import tensorrt` works (no GPU needed): each symbol in TRT_SYMBOLS."""
    trt = _real_tensorrt()
    major = trt_backend.trt_major(trt)
    wanted = list(TRT_SYMBOLS["common"]) + (list(TRT_SYMBOLS["tensorrt10"]) if major == 10 else [])
    missing = [s for s in wanted if not _has(trt, s)]
    assert missing == [], f"TensorRT {trt.__version__} lacks {missing}"
    if major >= 11:
        present = [s for s in TRT_SYMBOLS["removed_in_11"] if _has(trt, s)]
        assert present == [], f"TensorRT {trt.__version__} still has {present}"


def test_calibrator_subclasses_the_real_base(tmp_path):
    """Where the installed TensorRT still has IInt8EntropyCalibrator2 (10.x): graphopt's
    calibrator is a real subclass and answers TensorRT's calls (no GPU needed: fake device)."""
    trt = _real_tensorrt()
    if not hasattr(trt, "IInt8EntropyCalibrator2"):
        pytest.skip(f"TensorRT {trt.__version__} has no IInt8EntropyCalibrator2")
    feeds = [{"x": np.full((2, 3, 4, 4), i, np.float32)} for i in range(2)]
    device = FakeDevice()
    cache = tmp_path / "c.cache"
    calib = trt_backend.make_entropy_calibrator(trt, feeds, cache, device=device)
    assert isinstance(calib, trt.IInt8EntropyCalibrator2)
    assert calib.get_batch_size() == 2
    assert calib.get_algorithm() == trt.CalibrationAlgoType.ENTROPY_CALIBRATION_2
    first, second = calib.get_batch(["x"]), calib.get_batch(["x"])
    assert len(first) == 1 and first == second  # the buffer is reused
    assert calib.get_batch(["x"]) is None
    np.testing.assert_array_equal(device.copied[1], feeds[1]["x"])
    assert calib.read_calibration_cache() is None
    calib.write_calibration_cache(b"TRT-100000-EntropyCalibration2\nx: 3c000000\n")
    assert calib.read_calibration_cache().startswith(calibration_cache_tag(trt).encode())


def _gpu_or_skip():
    _real_tensorrt()
    count, why = trt_runtime.cuda_device_count()
    if count == 0:
        pytest.skip(f"no CUDA device: {why}")


_FAKE_LIBCUDA = r"""
#include <stdlib.h>
#include <string.h>
typedef unsigned long long CUdeviceptr;
static int calls = 0;
int cuInit(unsigned int flags) { return flags; }
int cuDeviceGetCount(int *n) { *n = 1; return 0; }
int cuDeviceGet(int *d, int i) { *d = i; return 0; }
int cuDevicePrimaryCtxRetain(void **ctx, int d) { *ctx = (void *)0x1; return 0; }
int cuCtxSetCurrent(void *ctx) { return ctx == (void *)0x1 ? 0 : 201; }
int cuStreamCreate(void **s, unsigned int f) { *s = (void *)0x2; return 0; }
int cuStreamSynchronize(void *s) { return s == (void *)0x2 ? 0 : 400; }
int cuMemAlloc_v2(CUdeviceptr *p, size_t n) { *p = (CUdeviceptr)malloc(n); return *p ? 0 : 2; }
int cuMemFree_v2(CUdeviceptr p) { free((void *)p); return 0; }
int cuMemcpyHtoD_v2(CUdeviceptr d, const void *h, size_t n) { memcpy((void *)d, h, n); return 0; }
int cuMemcpyDtoH_v2(void *h, CUdeviceptr d, size_t n) { memcpy(h, (void *)d, n); return 0; }
int cuGetErrorString(int e, const char **s) { *s = "CUDA_ERROR_FAKE"; return 0; }
"""


@pytest.fixture
def stand_in_libcuda(tmp_path, monkeypatch):
    """Point trt_runtime at a C stand-in for libcuda.so.1 whose 'device' memory is host memory."""
    import ctypes
    import shutil
    import subprocess

    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build the stand-in libcuda")
    src = tmp_path / "cuda.c"
    src.write_text(_FAKE_LIBCUDA)
    lib = tmp_path / "libcuda_fake.so"
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    monkeypatch.setattr(trt_runtime, "_load_driver", lambda: ctypes.CDLL(str(lib)))


def test_cuda_driver_calls_through_a_stand_in_libcuda(stand_in_libcuda):
    """CudaDevice's ctypes calls (argument types, 64-bit pointers, size_t sizes)."""
    import ctypes

    assert trt_runtime.cuda_device_count() == (1, "")
    device = trt_runtime.CudaDevice()
    data = (np.arange(3 * 1000, dtype=np.float32) / 3).reshape(3, 1000)
    ptr = device.malloc(data.nbytes)
    assert ptr > 0
    device.to_device(ptr, data)
    device.synchronize()
    back = np.zeros_like(data)
    device.to_host(back, ptr)
    np.testing.assert_array_equal(back, data)
    device.free_all()
    with pytest.raises(BackendError, match="CUDA cuStreamSynchronize failed: CUDA_ERROR_FAKE"):
        device.stream = ctypes.c_void_p(0x3)
        device.synchronize()


def test_engine_runner_binds_and_runs_with_fake_tensorrt(stand_in_libcuda, monkeypatch):
    """EngineRunner: I/O discovery, dynamic input shapes, buffer growth, copies in and out."""
    fake = fake_tensorrt(V10)
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    runner = trt_runtime.EngineRunner(b"FAKE-ENGINE:" + V10.encode())
    assert runner.input_names == ["x"]
    for rows in (2, 5, 3):  # grows the buffers once, then reuses them
        x = np.random.default_rng(rows).standard_normal((rows, 4)).astype(np.float32)
        np.testing.assert_allclose(runner.run({"x": x})["y"], 2 * x + 1, rtol=1e-6)
    times = runner.time_runs({"x": np.ones((2, 4), np.float32)}, runs=3, warmup=2)
    assert len(times) == 3 and all(t >= 0 for t in times)
    assert len(calls_named(fake, "execute_async_v3")) == 3 + 5
    with pytest.raises(BackendError, match="no feed for engine input 'x'"):
        runner.run({"z": np.ones((1, 4), np.float32)})
    with pytest.raises(BackendError, match=r"engine input 'x' cannot take shape \(2, 5\)"):
        runner.run({"x": np.ones((2, 5), np.float32)})
    with pytest.raises(BackendError, match="cannot deserialize"):
        trt_runtime.EngineRunner(b"not an engine")


@pytest.mark.tensorrt
def test_cuda_device_memory_round_trip():
    """The driver-API memory path of trt_runtime; needs a GPU but not TensorRT."""
    count, why = trt_runtime.cuda_device_count()
    if count == 0:
        pytest.skip(f"no CUDA device: {why}")
    device = trt_runtime.CudaDevice()
    data = np.arange(4096, dtype=np.float32).reshape(4, 1024) / 7
    ptr = device.malloc(data.nbytes)
    device.to_device(ptr, data)
    device.synchronize()
    back = np.empty_like(data)
    device.to_host(back, ptr)
    np.testing.assert_array_equal(back, data)
    device.free_all()


@pytest.mark.tensorrt
def test_real_build_and_run_matches_onnxruntime(tmp_path):
    _gpu_or_skip()
    from graphopt.backends.onnxruntime import run
    from graphopt.backends.trt_runtime import EngineRunner

    model = conv_model()
    info = build_engine(model, tmp_path / "m.plan", workspace_mib=256)
    assert info.engine_bytes > 0
    x = np.random.default_rng(3).standard_normal((1, 3, 16, 16)).astype(np.float32)
    got = EngineRunner((tmp_path / "m.plan").read_bytes()).run({"x": x})["y"]
    np.testing.assert_allclose(got, run(model, {"x": x})["y"], rtol=1e-3, atol=1e-3)


@pytest.mark.tensorrt
def test_real_qdq_and_dynamic_build(tmp_path):
    _gpu_or_skip()
    from graphopt.backends.trt_runtime import EngineRunner

    info = build_engine(
        conv_model(dynamic=True, qdq=True),
        tmp_path / "q.plan",
        int8=True,
        shapes=["x:1x3x16x16,1x3x32x32,2x3x64x64"],
    )
    assert info.calibration == "qdq"
    runner = EngineRunner((tmp_path / "q.plan").read_bytes())
    out = runner.run({"x": np.ones((2, 3, 64, 64), np.float32)})["y"]
    assert out.shape == (2, 4, 64, 64) and np.isfinite(out).all()
