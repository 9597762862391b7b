"""`graphopt build` refuses to write over its input model.

`-o m.onnx` for input m.onnx replaced the ONNX model with the engine, and `--timing-cache
m.onnx` with a timing cache (`graphopt quantize` refuses its --cache on the input already).
Run with the stand-in TensorRT of tests/trt_fake.py, so that the build would go ahead.
"""

from __future__ import annotations

import sys

import onnx
import pytest

from graphopt.backends import trt_runtime
from graphopt.cli import main
from tests.test_cli_build_bench import conv_model
from tests.trt_fake import fake_tensorrt


@pytest.fixture
def with_fake_tensorrt(monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt("10.16.1.11"))
    monkeypatch.setattr(trt_runtime, "cuda_device_count", lambda: (1, ""))


@pytest.mark.parametrize(
    ("extra", "flag"),
    [
        ([], "-o"),
        (["--timing-cache", "{model}"], "--timing-cache"),
        (["--int8", "--cache", "{model}"], "--cache"),
    ],
)
def test_build_never_writes_over_the_input_model(tmp_path, capsys, with_fake_tensorrt, extra, flag):
    model = tmp_path / "m.onnx"
    onnx.save(conv_model(), str(model))
    before = model.read_bytes()
    output = str(model) if flag == "-o" else str(tmp_path / "m.plan")
    argv = ["build", str(model), "-o", output, *(a.format(model=model) for a in extra)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{flag} " in err and "the input model" in err
    assert model.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_a_cache_on_the_engine_path_is_refused(tmp_path, capsys, with_fake_tensorrt):
    model = tmp_path / "m.onnx"
    onnx.save(conv_model(), str(model))
    plan = str(tmp_path / "m.plan")
    assert main(["build", str(model), "-o", plan, "--timing-cache", plan]) == 2
    assert "--timing-cache" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_distinct_paths_still_build(tmp_path, with_fake_tensorrt):
    model = tmp_path / "m.onnx"
    onnx.save(conv_model(), str(model))
    timing = tmp_path / "timing.cache"
    assert (
        main(["build", str(model), "-o", str(tmp_path / "m.plan"), "--timing-cache", str(timing)])
        == 0
    )
    assert (tmp_path / "m.plan").read_bytes().startswith(b"FAKE-ENGINE")
