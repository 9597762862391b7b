"""CLI: `graphopt build`, `graphopt bench`, `graphopt check --target tensorrt`."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.backends import trt_runtime
from graphopt.cli import main
from graphopt.commands.bench import summarize
from tests.trt_fake import FakeDevice, fake_tensorrt


def conv_model(dims=(1, 3, 16, 16)) -> onnx.ModelProto:
    w = np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="conv", pads=[1, 1, 1, 1])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(dims))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "w")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


@pytest.fixture
def model_path(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(conv_model(), path)
    return path


@pytest.fixture
def fake_trt(monkeypatch):
    def install(version="10.16.1.11", gpu=True):
        fake = fake_tensorrt(version)
        monkeypatch.setitem(sys.modules, "tensorrt", fake)
        monkeypatch.setattr(
            trt_runtime,
            "cuda_device_count",
            lambda: (1, "") if gpu else (0, "no NVIDIA driver found"),
        )
        return fake

    return install


def one_error_line(capsys, needle: str) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert needle in lines[0] and "Traceback" not in err
    return lines[0]


# -- build -------------------------------------------------------------------------------------


def test_build_without_tensorrt_exits_2_with_install_hint(
    monkeypatch, capsys, model_path, tmp_path
):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    rc = main(["build", str(model_path), "-o", str(tmp_path / "m.plan")])
    assert rc == 2
    one_error_line(capsys, "pip install 'graphopt[tensorrt]'")
    assert not (tmp_path / "m.plan").exists()


def test_build_without_gpu_exits_2_saying_so(fake_trt, capsys, model_path, tmp_path):
    fake_trt(gpu=False)
    assert main(["build", str(model_path), "-o", str(tmp_path / "m.plan")]) == 2
    one_error_line(capsys, "no NVIDIA GPU")


def test_build_with_tensorrt_10_writes_engine_and_sidecar(fake_trt, capsys, model_path, tmp_path):
    fake = fake_trt()
    out = tmp_path / "m.plan"
    rc = main(["build", str(model_path), "-o", str(out), "--fp16", "--workspace", "64"])
    assert rc == 0
    assert "fp16 engine" in capsys.readouterr().out
    assert out.read_bytes().startswith(b"FAKE-ENGINE")
    side = json.loads((tmp_path / "m.plan.json").read_text())
    assert side["precision"] == "fp16" and side["builder_flags"] == ["FP16"]
    assert ("set_memory_pool_limit", fake.MemoryPoolType.WORKSPACE, 64 << 20) in fake.calls


def test_built_engine_and_sidecar_are_readable_per_umask(fake_trt, model_path, tmp_path):
    """Not 0600 (a temporary file's mode): a server running as another user must read them."""
    import os

    fake_trt()
    old = os.umask(0o022)
    try:
        assert main(["build", str(model_path), "-o", str(tmp_path / "m.plan")]) == 0
    finally:
        os.umask(old)
    for name in ("m.plan", "m.plan.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644


def test_build_int8_on_tensorrt_11_needs_a_qdq_model(fake_trt, capsys, model_path, tmp_path):
    fake_trt("11.4.0.106")
    rc = main(
        [
            "build",
            str(model_path),
            "-o",
            str(tmp_path / "m.plan"),
            "--int8",
            "--cache",
            str(tmp_path / "c"),
        ]
    )
    assert rc == 2
    one_error_line(capsys, "graphopt quantize")


def test_build_int8_calibrates_from_an_image_folder(fake_trt, monkeypatch, model_path, tmp_path):
    from PIL import Image

    fake = fake_trt()
    device = FakeDevice()
    monkeypatch.setattr(trt_runtime, "CudaDevice", lambda: device)
    images = tmp_path / "calib"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)).save(images / f"{i}.png")
    cache = tmp_path / "calib.cache"
    rc = main(
        [
            "build",
            str(model_path),
            "-o",
            str(tmp_path / "m.plan"),
            "--int8",
            "--calib",
            str(images),
            "--cache",
            str(cache),
        ]
    )
    assert rc == 0
    assert ("batches", 3) in fake.calls
    assert [a.shape for a in device.copied] == [(1, 3, 16, 16)] * 3
    assert all(a.min() >= 0.0 and a.max() <= 1.0 for a in device.copied)  # scaled to 0..1
    assert cache.read_text().startswith("TRT-")


def test_build_calib_read_failures_exit_2_with_one_line(fake_trt, capsys, model_path, tmp_path):
    fake_trt()
    calib = tmp_path / "calib"
    calib.mkdir()
    np.save(calib / "a.npy", np.zeros((1, 3, 16, 16), np.float32))
    plan = str(tmp_path / "m.plan")
    missing = str(tmp_path / "missing.onnx")
    assert main(["build", missing, "-o", plan, "--int8", "--calib", str(calib)]) == 2
    one_error_line(capsys, "missing.onnx")
    (calib / "b.npz").write_text("not an npz")
    assert main(["build", str(model_path), "-o", plan, "--int8", "--calib", str(calib)]) == 2
    one_error_line(capsys, "b.npz")


def test_build_bad_shapes_exit_2(fake_trt, capsys, model_path, tmp_path):
    fake_trt()
    assert (
        main(["build", str(model_path), "-o", str(tmp_path / "m.plan"), "--shapes", "x:1x3"]) == 2
    )
    one_error_line(capsys, "rank 2 does not match")


def test_build_end_to_end_subprocess_has_no_traceback(model_path, tmp_path):
    """The real console entry point, on this machine (TensorRT may or may not be installed)."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "graphopt",
            "build",
            str(model_path),
            "-o",
            str(tmp_path / "m.plan"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode == 0:
        pytest.skip("TensorRT and a GPU are present: the build succeeded")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "TensorRT" in done.stderr or "NVIDIA GPU" in done.stderr


# -- bench -------------------------------------------------------------------------------------


def test_summarize_percentiles_and_throughput():
    r = summarize("onnxruntime", "m", [0.001 * i for i in range(1, 101)], batch=2)
    assert r.runs == 100 and r.min_ms == pytest.approx(1.0)
    # nearest rank (H183): a time some run took, met by at least N% of the runs
    assert r.p50_ms == pytest.approx(50.0) and r.p90_ms == pytest.approx(90.0)
    assert r.p99_ms == pytest.approx(99.0) and r.mean_ms == pytest.approx(50.5)
    assert r.throughput == pytest.approx(2 * 1000 / 50.5)


def test_bench_onnxruntime_json(capsys, model_path):
    rc = main(
        [
            "bench",
            str(model_path),
            "--backend",
            "onnxruntime",
            "--runs",
            "7",
            "--warmup",
            "1",
            "--threads",
            "1",
            "--json",
        ]
    )
    assert rc == 0
    result = json.loads(capsys.readouterr().out)
    assert result["runs"] == 7 and result["backend"] == "onnxruntime" and result["batch"] == 1
    assert 0 < result["min_ms"] <= result["p50_ms"] <= result["p90_ms"] <= result["p99_ms"]
    assert result["throughput"] > 0


def test_bench_dynamic_model_with_shapes(capsys, tmp_path):
    path = tmp_path / "dyn.onnx"
    onnx.save(conv_model(dims=("N", 3, "H", "W")), path)
    rc = main(
        ["bench", str(path), "--runs", "2", "--warmup", "0", "--shapes", "x:2x3x8x8", "--json"]
    )
    assert rc == 0
    assert json.loads(capsys.readouterr().out)["batch"] == 2


def test_bench_shapes_too_large_to_allocate_exit_2_with_one_line(capsys, tmp_path):
    path = tmp_path / "dyn.onnx"
    onnx.save(conv_model(dims=("N", 3, "H", "W")), path)
    assert main(["bench", str(path), "--shapes", "x:100000x100000x1000x10"]) == 2
    one_error_line(capsys, "cannot make a 100000x100000x1000x10 feed for input 'x'")


def test_bench_onnxruntime_feed_of_the_wrong_shape_exits_2(capsys, model_path, tmp_path):
    np.savez(tmp_path / "bad.npz", x=np.zeros((2, 2), np.float32))
    assert main(["bench", str(model_path), "--inputs", str(tmp_path / "bad.npz")]) == 2
    one_error_line(capsys, "bad.npz: x is 2x2, which does not fit input x")


def test_bench_tensorrt_needs_an_engine(capsys, model_path):
    assert main(["bench", str(model_path), "--backend", "tensorrt"]) == 2
    one_error_line(capsys, "build an engine first")


def test_bench_tensorrt_unreadable_inputs_are_one_backend_error(tmp_path):
    from graphopt.commands.bench import _engine_feeds
    from graphopt.errors import BackendError

    (tmp_path / "bad.npz").write_text("not an npz")
    for path in (tmp_path / "bad.npz", tmp_path / "missing.npz"):
        with pytest.raises(BackendError, match="cannot read input feeds"):
            _engine_feeds(None, {}, str(path))


def test_bench_tensorrt_without_tensorrt(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    plan = tmp_path / "m.plan"
    plan.write_bytes(b"x")
    assert main(["bench", str(plan), "--backend", "tensorrt"]) == 2
    one_error_line(capsys, "pip install 'graphopt[tensorrt]'")


@pytest.mark.realmodel
def test_bench_onnxruntime_real_detector(capsys, real_model):
    rc = main(
        ["bench", str(real_model("layout_cdla")), "--runs", "3", "--warmup", "1", "--threads", "1"]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "p50" in out and "p99" in out and "samples/s" in out


# -- check -------------------------------------------------------------------------------------


def test_check_exit_codes(capsys, model_path, tmp_path):
    assert main(["check", "--target", "tensorrt=11", str(model_path)]) == 0
    assert "0 errors, 0 warnings" in capsys.readouterr().out
    bad = conv_model()
    bad.graph.node[0].domain = "com.microsoft"
    bad.graph.node[0].op_type = "FusedConv"
    bad.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    path = tmp_path / "fused.onnx"
    onnx.save(bad, path)
    assert main(["check", "--target", "tensorrt", str(path)]) == 1
    out = capsys.readouterr().out
    assert "error: [custom-domain] node 'conv' (com.microsoft::FusedConv)" in out
    assert main(["check", "--target", "openvino", str(path)]) == 2
    one_error_line(capsys, "unknown --target")
    assert main(["check", str(tmp_path / "missing.onnx")]) == 2
    one_error_line(capsys, "no such file")


def test_check_warnings_count_unless_errors_only(capsys, tmp_path):
    path = tmp_path / "dyn.onnx"
    onnx.save(conv_model(dims=("N", 3, "H", "W")), path)
    assert main(["check", str(path)]) == 1
    assert "dynamic-shape" in capsys.readouterr().out
    assert main(["check", str(path), "--errors-only"]) == 0
    assert main(["check", str(path), "--shapes", "x:1x3x8x8,1x3x16x16,1x3x32x32"]) == 0
