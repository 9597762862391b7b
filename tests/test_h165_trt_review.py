"""H165: graphopt's TensorRT tables and static check against TensorRT's own sources.

Each test is one place where graphopt.backends.trt_support / trt_check disagreed with what
TensorRT's ONNX parser (onnx/onnx-tensorrt, 10.0 GA and 10.1 GA commits, and the 10.14-era
onnxOpImporters.cpp) or its layers (NVIDIA/TensorRT include/NvInfer.h, release/10.x and 11.1)
do; the source is in the test's docstring."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

from graphopt.backends.trt_check import check_tensorrt
from graphopt.backends.trt_support import op_support, parse_version
from tests.trt_models import const, messages, model, vi


def deform_conv_model():
    node = helper.make_node("DeformConv", ["x", "w", "off"], ["y"], name="dcn", pads=[1, 1, 1, 1])
    w = const("w", np.ones((2, 2, 3, 3)), np.float32)
    return model(
        [node], [vi("x", [1, 2, 5, 5]), vi("off", [1, 18, 5, 5])], [vi("y", None)], [w], opset=19
    )


def test_deform_conv_arrives_in_tensorrt_10_1():
    """onnx-tensorrt docs/Changelog.md, 10.1 GA: "Added support for `DeformConv` operation";
    the 10.0 GA operators.md has no DeformConv row and onnxOpImporters.cpp at 10.0-GA no
    DeformConv importer. The table said 'yes' on 10.0, so check passed a model 10.0 rejects."""
    assert op_support("DeformConv", parse_version("10.0")) == "no"
    assert op_support("DeformConv", parse_version("10.1")) == "yes"
    old = messages(check_tensorrt(deform_conv_model(), "10.0"))
    assert old == ["unsupported-op: TensorRT 10.0's ONNX parser does not support DeformConv"]
    assert messages(check_tensorrt(deform_conv_model(), "10.1")) == []
    assert messages(check_tensorrt(deform_conv_model(), 11)) == []


def grid_sample_model(opset: int, mode: str | None):
    attrs = {} if mode is None else {"mode": mode}
    node = helper.make_node("GridSample", ["x", "grid"], ["y"], name="gs", **attrs)
    return model(
        [node], [vi("x", [1, 1, 4, 4]), vi("grid", [1, 3, 3, 2])], [vi("y", None)], opset=opset
    )


def test_grid_sample_20_mode_names_are_an_error():
    """importGridSample (onnxOpImporters.cpp at 10.1 GA, and the 10.14-era text with the
    Attention importer) maps mode "nearest" / "bilinear" / "bicubic" and leaves any other value
    at InterpolationMode::kNEAREST without an error; GridSample-20 renamed the modes "linear" and
    "cubic". check said nothing, and TensorRT would sample nearest-neighbour where onnxruntime
    interpolates: on this grid the two differ (shown with onnxruntime's own nearest)."""
    import onnxruntime as ort

    linear = grid_sample_model(20, "linear")
    found = messages(check_tensorrt(linear, 10))
    assert len(found) == 1 and "GridSample mode 'linear'" in found[0], found
    assert "nearest-neighbour" in found[0] and "leave mode out" in found[0]
    assert len(messages(check_tensorrt(linear, 11))) == 1
    cubic = messages(check_tensorrt(grid_sample_model(20, "cubic"), 10))
    assert len(cubic) == 1 and "'bicubic'" in cubic[0], cubic
    # what the importer knows, and an absent mode (linear in ONNX 20, "bilinear" in the importer)
    assert messages(check_tensorrt(grid_sample_model(20, None), 10)) == []
    assert messages(check_tensorrt(grid_sample_model(20, "nearest"), 10)) == []
    assert messages(check_tensorrt(grid_sample_model(16, "bilinear"), 10)) == []
    assert messages(check_tensorrt(grid_sample_model(16, "bicubic"), 10)) == []

    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    grid = np.linspace(-0.8, 0.7, 18, dtype=np.float32).reshape(1, 3, 3, 2)

    def run(m):
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        sess = ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        return sess.run(None, {"x": x, "grid": grid})[0]

    wanted, trt_computes = run(linear), run(grid_sample_model(20, "nearest"))
    assert np.abs(wanted - trt_computes).max() > 0.5


def resize_model(mode, scales, x_dims=(1, 3, 4, 4), opset=13, axes=None, sizes=None):
    names = ["x", "", "s" if scales is not None else ""]
    inits = [] if scales is None else [const("s", scales, np.float32)]
    if sizes is not None:
        names.append("z")
        inits.append(const("z", sizes, np.int64))
    attrs = {"mode": mode} | ({} if axes is None else {"axes": axes})
    if opset == 10:  # Resize-10: (X, scales)
        names = ["x", "s"]
    node = helper.make_node("Resize", names, ["y"], name="rs", **attrs)
    return model([node], [vi("x", list(x_dims))], [vi("y", None)], inits, opset=opset)


def test_resize_scales_outside_the_innermost_axes_are_refused():
    """importResize (onnxOpImporters.cpp 10.1 GA and the 10.14-era text): with constant scales,
    canUseNDResize refuses linear scales other than 1 outside the innermost 3 axes ("This
    version of TensorRT only supports linear resizing on the outermost 3 dimensions") and cubic
    ones outside the innermost 2; with `sizes` it returns before that check. check passed them."""

    def found(m, version=10):
        return messages(check_tensorrt(m, version))

    batch = found(resize_model("linear", [2, 1, 1, 1]))
    assert len(batch) == 1 and "innermost 3 axes" in batch[0], batch
    assert len(found(resize_model("linear", [2, 1, 1, 1]), 11)) == 1
    assert len(found(resize_model("linear", [2, 1, 1, 1], opset=10), "10.0")) == 1
    channels = found(resize_model("cubic", [1, 2, 2, 2]))
    assert len(channels) == 1 and "innermost 2 axes" in channels[0], channels
    # axes (opset 18) spread the scales over the rank first
    assert len(found(resize_model("linear", [2], opset=18, axes=[0]))) == 1
    assert found(resize_model("linear", [2, 2], opset=18, axes=[-2, -1])) == []
    # what the importer takes
    assert found(resize_model("linear", [1, 1, 2, 2])) == []
    assert found(resize_model("linear", [1, 1, 2, 2, 2], x_dims=(1, 3, 4, 4, 4))) == []
    assert found(resize_model("cubic", [1, 1, 2, 2])) == []
    assert found(resize_model("nearest", [2, 2, 2, 2])) == []
    assert found(resize_model("linear", None, sizes=[2, 3, 4, 4])) == []


def einsum_model(equation, dims):
    node = helper.make_node("Einsum", ["x"], ["y"], name="e", equation=equation)
    return model([node], [vi("x", dims)], [vi("y", None)], opset=13)


def test_einsum_diagonal_needs_tensorrt_10_12():
    """NvInfer.h release/10.1 .. release/10.11, IEinsumLayer: "TensorRT does not support
    ellipsis, diagonal operations or more than two inputs for Einsum" (importEinsum, 10.1 GA,
    rewrites ellipses and extra inputs itself, not diagonals); the note is gone in release/10.12
    and onnx-tensorrt's Changelog 10.12 GA says "Added support for ellipses, diagonal, and
    broadcasting in `Einsum` operations". check passed a diagonal on every 10.x."""
    diagonal = einsum_model("bii->bi", [2, 3, 3])
    old = messages(check_tensorrt(diagonal, "10.11"))
    assert len(old) == 1 and "diagonal ('i'" in old[0] and "10.12" in old[0], old
    assert len(messages(check_tensorrt(einsum_model("...ii->...i", [2, 3, 3]), "10.8"))) == 1
    assert messages(check_tensorrt(diagonal, "10.12")) == []
    assert messages(check_tensorrt(diagonal, 11)) == []
    assert messages(check_tensorrt(einsum_model("bij->bji", [2, 3, 4]), "10.1")) == []


def test_topk_k_of_3840_is_accepted():
    """NvInfer.h (NVIDIA/TensorRT release/10.13 and 11.1), ITopKLayer::setK: "Currently only
    values up to 3840 are supported"; addTopK: "only values of K up to 3840 are supported"; a K
    input: "Values larger than 3840 will result in a runtime error". The importer does not check
    K. check refused K = 3840 itself (the matrix's "less than 3840")."""

    def topk(k):
        node = helper.make_node("TopK", ["x", "k"], ["y", "i"], name="topk")
        outputs = [vi("y", None), vi("i", None, TensorProto.INT64)]
        return model([node], [vi("x", [1, 5000])], outputs, [const("k", [k], np.int64)])

    assert messages(check_tensorrt(topk(3840), 10)) == []
    assert messages(check_tensorrt(topk(3840), 11)) == []
    over = messages(check_tensorrt(topk(3841), 10))
    assert len(over) == 1 and "up to 3840" in over[0], over


def test_a_string_attribute_that_is_not_utf8_is_reported_not_raised():
    """onnx.checker.check_model(full_check=True) accepts a string attribute of any bytes;
    trt_check decoded every mode / equation as UTF-8 and 'graphopt check --target tensorrt'
    ended in a UnicodeDecodeError traceback. Now the value is reported as one TensorRT does
    not take (its parser compares the bytes with its known names and matches none)."""
    import onnx

    pad = helper.make_node("Pad", ["x", "p"], ["y"], name="pad")
    pad.attribute.append(helper.make_attribute("mode", b"\xff\xfe"))
    m = model(
        [pad],
        [vi("x", [1, 1, 4, 4])],
        [vi("y", [1, 1, 4, 4])],
        [const("p", [0] * 8, np.int64)],
        opset=16,
    )
    onnx.checker.check_model(m, full_check=True)
    found = messages(check_tensorrt(m, 10))
    assert found == ["unsupported-attribute: Pad mode '\\\\xff\\\\xfe' is not supported"], found
    sample = grid_sample_model(16, None)
    sample.graph.node[0].attribute.append(helper.make_attribute("mode", b"\xc3("))
    found = messages(check_tensorrt(sample, 11))
    assert len(found) == 1 and "GridSample mode '\\\\xc3('" in found[0], found


def test_matrix_restrictions_check_did_not_read():
    """The 10.15 operators.md Restrictions column, rows check had no rule for (each passed):
    EyeLike "`input` must have static dimensions" (importEyeLike 10.1 GA: "Eyelike does not
    work for dynamically shaped tensors"); Hardmax "`axis` dimension of input must be a
    build-time constant" (importHardmax 10.1 GA: a OneHot of that depth); STFT "`frame_step`
    and `window` must be an initializer. Input must be real-valued"; Attention "`past_key`,
    `past_value` and `nonpad_kv_seqlen` inputs are unsupported. `present_key`, `present_value`
    and `qk_matmul_output` outputs are unsupported. `qk_matmul_output_mode` and `softcap`
    attributes are unsupported"; TensorScatter "`past_cache` and `update` must be 4D. `axis`
    must be -2"."""

    def one(op, inputs, attrs=None, outputs=("y",), inits=(), opset=24, version=10):
        node = helper.make_node(
            op, [n for n, _ in inputs], list(outputs), name="n", **(attrs or {})
        )
        graph_inputs = [vi(n, dims) for n, dims in inputs if n and dims is not None]
        m = model([node], graph_inputs, [vi(o, None) for o in outputs if o], list(inits), opset)
        return messages(check_tensorrt(m, version, shapes={"x": None}))

    # EyeLike
    assert len(one("EyeLike", [("x", ["N", 4])])) == 1
    assert one("EyeLike", [("x", [3, 4])]) == []
    # Hardmax: the axis dimension (opset 13+), every dimension from axis on below 13
    assert len(one("Hardmax", [("x", [2, "C"])])) == 1
    assert one("Hardmax", [("x", ["N", 5])]) == []
    assert len(one("Hardmax", [("x", ["N", 3, "W"])], {"axis": 1}, opset=11)) == 1
    assert one("Hardmax", [("x", ["N", 3, 4])], {"axis": 1}, opset=11) == []
    # STFT
    step = const("step", 4, np.int64)
    assert one("STFT", [("x", [1, 64, 1]), ("step", None)], inits=[step]) == []
    assert len(one("STFT", [("x", [1, 64, 2]), ("step", None)], inits=[step])) == 1
    computed = one("STFT", [("x", [1, 64, 1]), ("s", [])])
    assert computed == [
        "unsupported-attribute: STFT frame_step must be an initializer or a Constant"
    ]
    # Attention: Q, K, V [B, H, S, D]
    qkv = [("x", [1, 2, 4, 8]), ("k", [1, 2, 4, 8]), ("v", [1, 2, 4, 8])]
    assert one("Attention", qkv) == []
    past = [*qkv, ("", None), ("pk", [1, 2, 3, 8]), ("pv", [1, 2, 3, 8])]
    assert len(one("Attention", past)) == 2
    assert len(one("Attention", qkv, outputs=("y", "present_k", "present_v"))) == 1
    assert len(one("Attention", qkv, {"softcap": 30.0})) == 1
    # TensorScatter
    cache = [("x", [1, 2, 8, 4]), ("u", [1, 2, 1, 4])]
    assert one("TensorScatter", cache) == []
    assert len(one("TensorScatter", cache, {"axis": 1})) == 1
    assert len(one("TensorScatter", [("x", [2, 8, 4]), ("u", [2, 1, 4])], {"axis": 1})) == 3


def test_build_calibrates_a_two_input_model_from_npz_feeds(monkeypatch, tmp_path, capsys):
    """'graphopt build --int8 --calib DIR' refused every model with more than one input, as
    "--calib DIR feeds single-input models; give .npz feeds per input", also when DIR held
    exactly those .npz feeds (the check came before any file was read). An .npz names its
    inputs; only .npy arrays and images need a single input. On the fake TensorRT 10 of
    tests/trt_fake.py the calibrator now receives both inputs of both batches."""
    import sys

    import onnx

    from graphopt.backends import trt_runtime
    from graphopt.cli import main
    from tests.trt_fake import FakeDevice, fake_tensorrt

    fake = fake_tensorrt("10.16.1.11")
    device = FakeDevice()
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    monkeypatch.setattr(trt_runtime, "cuda_device_count", lambda: (1, ""))
    monkeypatch.setattr(trt_runtime, "CudaDevice", lambda: device)
    add = helper.make_node("Add", ["a", "b"], ["y"], name="add")
    onnx.save(
        model([add], [vi("a", [1, 4]), vi("b", [1, 4])], [vi("y", [1, 4])]), tmp_path / "m.onnx"
    )
    calib = tmp_path / "calib"
    calib.mkdir()
    for i in range(2):
        np.savez(
            calib / f"{i}.npz", a=np.full((1, 4), i, np.float32), b=np.ones((1, 4), np.float32)
        )
    args = ["build", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "m.plan"), "--int8"]
    assert main([*args, "--calib", str(calib)]) == 0
    assert [c for c in fake.calls if c[0] == "batches"] == [("batches", 2)]
    assert [float(a.sum()) for a in device.copied] == [0.0, 4.0, 4.0, 4.0]
    assert (tmp_path / "m.plan").read_bytes().startswith(b"FAKE-ENGINE")
    # an image or a .npy still feeds one input: said per file, one line, nothing written
    np.save(calib / "2.npy", np.ones((1, 4), np.float32))
    capsys.readouterr()
    assert main([*args[:3], str(tmp_path / "n.plan"), "--int8", "--calib", str(calib)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "2.npy: a .npy array feeds one input and the model has 2" in err[0]
    assert not (tmp_path / "n.plan").exists()


def test_a_refused_input_shape_names_the_profile_range(monkeypatch):
    """EngineRunner said "engine input 'x' cannot take shape (2, 5) (outside the engine's
    optimization profile (-1, 4))": ICudaEngine.get_tensor_shape gives the engine's shape with
    -1 for a dynamic dimension, not the profile. The range comes from
    get_tensor_profile_shape(name, 0) -> [min, opt, max] (pyCore.cpp release/10.0, 10.13 and
    11.1), listed in TRT_SYMBOLS now."""
    import sys

    import pytest

    from graphopt.backends import trt_runtime
    from graphopt.backends.tensorrt import TRT_SYMBOLS
    from graphopt.errors import BackendError
    from tests.trt_fake import HostMemoryDevice, fake_tensorrt

    assert "ICudaEngine.get_tensor_profile_shape" in TRT_SYMBOLS["common"]
    fake = fake_tensorrt("11.4.0.106")
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    profile = [(1, 4), (4, 4), (8, 4)]
    monkeypatch.setattr(
        fake.ICudaEngine, "get_tensor_profile_shape", lambda self, n, i: profile, raising=False
    )
    runner = trt_runtime.EngineRunner(b"FAKE-ENGINE", device=HostMemoryDevice())
    x = np.ones((3, 4), np.float32)
    np.testing.assert_allclose(runner.run({"x": x})["y"], 3 * x)
    with pytest.raises(BackendError) as refused:
        runner.run({"x": np.ones((2, 5), np.float32)})
    assert str(refused.value) == (
        "engine input 'x' cannot take shape (2, 5): the engine takes (-1, 4) from (1, 4) to "
        "(8, 4) (its optimization profile)"
    )


def test_upsample_linear_scales_outside_the_innermost_axes_are_refused():
    """importUpsample (onnxOpImporters.cpp 10.1 GA) runs Resize's canUseNDResize check on
    constant linear / bilinear scales: "This version of TensorRT only supports linear resizing
    on the outermost 3 dimensions" for a scale other than 1 outside the innermost 3 axes."""

    def upsample(mode, scales, opset):
        if opset >= 9:
            node = helper.make_node("Upsample", ["x", "s"], ["y"], name="up", mode=mode)
            inits = [const("s", scales, np.float32)]
        else:
            node = helper.make_node("Upsample", ["x"], ["y"], name="up", mode=mode, scales=scales)
            inits = []
        m = model([node], [vi("x", [1, 3, 4, 4])], [vi("y", None)], inits, opset=opset)
        return messages(check_tensorrt(m, 10))

    found = upsample("linear", [2.0, 1.0, 1.0, 1.0], 9)
    assert [f for f in found if "innermost 3 axes" in f] == found and len(found) == 1, found
    assert len([f for f in upsample("linear", [2.0, 1.0, 2.0, 2.0], 7) if "innermost" in f]) == 1
    assert [f for f in upsample("linear", [1.0, 1.0, 2.0, 2.0], 9) if "innermost" in f] == []
    assert [f for f in upsample("nearest", [2.0, 2.0, 2.0, 2.0], 9) if "innermost" in f] == []


def test_a_workspace_past_size_t_is_refused_in_one_line(monkeypatch, tmp_path, capsys):
    """IBuilderConfig.set_memory_pool_limit binds its size as size_t (pyCore.cpp, release/10.13
    and 11.1); pybind answers a larger (or negative) int with TypeError 'incompatible function
    arguments', which 'graphopt build --workspace 17592186044416' (2^44 MiB = 2^64 bytes) met
    as a traceback after parsing the model. The fake's set_memory_pool_limit here refuses
    what pybind refuses."""
    import sys

    import onnx

    from graphopt.backends import trt_runtime
    from graphopt.cli import main
    from tests.trt_fake import conv_relu_model, fake_tensorrt

    fake = fake_tensorrt("10.16.1.11")
    taken = fake.IBuilderConfig.set_memory_pool_limit

    def as_pybind(self, pool, size):
        if not 0 <= size < 2**64:
            raise TypeError("set_memory_pool_limit(): incompatible function arguments")
        return taken(self, pool, size)

    monkeypatch.setattr(fake.IBuilderConfig, "set_memory_pool_limit", as_pybind)
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    monkeypatch.setattr(trt_runtime, "cuda_device_count", lambda: (1, ""))
    onnx.save(conv_relu_model(), tmp_path / "m.onnx")
    args = ["build", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "m.plan"), "--workspace"]
    assert main([*args, str(2**44)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "workspace must be 0 to 17592186044415 MiB" in err[0], err
    assert not (tmp_path / "m.plan").exists()
    assert main([*args, str(2**44 - 1)]) == 0  # the largest size_t of MiB still builds
    assert ("set_memory_pool_limit", fake.MemoryPoolType.WORKSPACE, (2**44 - 1) << 20) in fake.calls
