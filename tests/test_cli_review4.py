"""Review 4 of the command line: four leftovers of review 3.

`-o -` (a file named '-' was written), image options given with array feeds (ignored), a
declared 0-size dimension (fed as 1) and bench's missing progress. Every test failed before
its fix.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.cli import main
from tests.test_cli_review3 import one_line_error, typed_conv_model
from tests.test_trt_backend import V10, stand_in_libcuda  # noqa: F401 (a fixture)


def relu_model(dims: list[int]) -> onnx.ModelProto:
    """y = Relu(x), x and y declared float `dims` (IR 8: any onnxruntime loads it)."""
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="relu")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, dims)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


# ---------------------------------------------------------------------------- 0-size dims


@pytest.mark.parametrize("dims", [[1, 0, 4], [1, 3, 0, 8]])
def test_example_feeds_keep_a_declared_zero_size_dim(dims):
    """A dim declared 0 was fed as 1 (or 224, a spatial dim of a 4-D input): onnxruntime
    then refused the feed ('Got: 1 Expected: 0'), so --verify and bench failed on a model
    that runs."""
    from graphopt.backends.onnxruntime import example_feeds

    assert example_feeds(relu_model(dims))["x"].shape == tuple(dims)


def test_verify_and_bench_run_a_model_with_a_zero_size_input(tmp_path, capsys):
    path = tmp_path / "m.onnx"
    onnx.save(relu_model([1, 0, 4]), path)
    out = tmp_path / "o.onnx"
    assert main(["optimize", str(path), "-o", str(out), "--verify"]) == 0, capsys.readouterr()
    assert "verify: y: max abs diff 0" in capsys.readouterr().out
    assert main(["bench", str(path), "--runs", "2", "--warmup", "0"]) == 0, capsys.readouterr()
    assert "onnxruntime: " in capsys.readouterr().out


# ---------------------------------------------------------------------------- bench progress


@pytest.mark.parametrize("as_json", [False, True])
def test_bench_shows_its_runs_on_stderr_and_keeps_stdout_to_the_result(tmp_path, capsys, as_json):
    """bench said nothing until its last run (minutes for a detector on a slow CPU); it counts
    its runs on stderr now, as quantize counts its batches, and stdout still holds the
    result alone (one line, or the JSON)."""
    path = tmp_path / "m.onnx"
    onnx.save(relu_model([1, 4]), path)
    argv = ["bench", str(path), "--runs", "3", "--warmup", "2", "--threads", "1"]
    assert main(argv + ["--json"] * as_json) == 0
    out, err = capsys.readouterr()
    assert "bench 5/5 [" in err and err.endswith("\n"), err
    if as_json:
        assert json.loads(out)["runs"] == 3
    else:
        assert out.count("\n") == 1 and out.startswith("onnxruntime: ") and " 3 runs," in out
    assert main([*argv, "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and out.startswith("onnxruntime: ")


@pytest.mark.usefixtures("stand_in_libcuda")
def test_bench_counts_the_runs_of_an_engine(tmp_path, capsys, monkeypatch):
    """bench --backend tensorrt counts the engine's runs as the onnxruntime one does
    (EngineRunner.time_runs reports each run, warmup included, outside the timed span)."""
    import sys

    from tests.trt_fake import fake_tensorrt

    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt(V10))
    plan = tmp_path / "m.plan"
    plan.write_bytes(b"FAKE-ENGINE:" + V10.encode())
    argv = ["bench", str(plan), "--backend", "tensorrt", "--shapes", "x:2x4"]
    assert main([*argv, "--runs", "4", "--warmup", "1", "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["runs"] == 4
    assert "bench 5/5 [" in err, err


# ---------------------------------------------------------------------------- image options


@pytest.fixture
def conv_path(tmp_path):  # type: ignore[no-untyped-def]
    path = tmp_path / "m.onnx"
    onnx.save(typed_conv_model(), path)
    return path


@pytest.fixture
def array_folder(tmp_path):  # type: ignore[no-untyped-def]
    folder = tmp_path / "arrays"
    folder.mkdir()
    np.save(folder / "a.npy", np.ones((1, 3, 16, 16), np.float32))
    return folder


IMAGE_OPTIONS = [
    ["--size", "16x16"],
    ["--letterbox"],
    ["--mean", "0.5"],
    ["--std", "2"],
    ["--scale", "0"],
    ["--bgr"],
    ["--preprocess", "{yaml}"],
]


@pytest.mark.parametrize("option", IMAGE_OPTIONS, ids=lambda o: o[0])
def test_quantize_refuses_image_options_over_array_feeds(
    tmp_path, conv_path, array_folder, capsys, option
):
    """--mean 0.5 (any image option) with a --calib folder of .npy/.npz feeds calibrated on
    the arrays as they were, the option ignored (exit 0)."""
    spec = tmp_path / "spec.yaml"
    spec.write_text("mean: 0.5\n")
    out = tmp_path / "q.onnx"
    argv = ["quantize", str(conv_path), "-o", str(out), "--calib", str(array_folder)]
    option = [a.format(yaml=spec) for a in option]
    assert main([*argv, "--no-progress", *option]) == 2
    err = one_line_error(capsys, f"{option[0]} preprocesses images")
    assert "holds only .npy/.npz feeds" in err
    assert not out.exists()


def test_quantize_refuses_image_options_with_cache_scales(tmp_path, conv_path, capsys):
    """--cache-in alone calibrates on nothing: --size had no image to resize (exit 0)."""
    cache = tmp_path / "c.cache"
    cache.write_text("TRT-8601-EntropyCalibration2\n")
    out = tmp_path / "q.onnx"
    argv = ["quantize", str(conv_path), "-o", str(out), "--cache-in", str(cache), "--size", "8x8"]
    assert main(argv) == 2
    one_line_error(capsys, "--size preprocesses --calib images")
    assert not out.exists()


def test_quantize_takes_image_options_for_the_images_of_a_mixed_folder(
    tmp_path, conv_path, array_folder, capsys
):
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 256, (20, 20, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(array_folder / "b.png")
    out = tmp_path / "q.onnx"
    argv = ["quantize", str(conv_path), "-o", str(out), "--calib", str(array_folder)]
    assert main([*argv, "--no-progress", "--mean", "0.5", "--scale", "0.0039"]) == 0
    assert "2 feeds from" in capsys.readouterr().out and out.exists()


@pytest.mark.parametrize(
    "option",
    [o for o in IMAGE_OPTIONS if o[0] not in ("--letterbox", "--preprocess")]
    + [["--preset", "layout_cdla"]],
    ids=lambda o: o[0],
)
def test_distill_refuses_image_options_over_array_samples(
    tmp_path, conv_path, array_folder, capsys, option
):
    """distill-targets --data of .npy samples ran the teacher on the arrays as they were,
    --mean (any image option, a --preset too) ignored."""
    out = tmp_path / "targets"
    argv = ["distill-targets", str(conv_path), "--data", str(array_folder), "-o", str(out)]
    assert main([*argv, "--no-progress", *option]) == 2
    err = one_line_error(capsys, f"{option[0]} preprocesses images")
    assert "holds only .npy/.npz feeds" in err
    assert not out.exists()
    assert main([*argv, "--no-progress"]) == 0  # the same data without the option


# ---------------------------------------------------------------------------- -o -


def _stdout_argv(tmp_path, command: str) -> list[str]:  # type: ignore[no-untyped-def]
    """The arguments (all but -o) of `command` writing one model, on tmp_path's files."""
    model = tmp_path / "m.onnx"
    onnx.save(typed_conv_model(), model)
    other = tmp_path / "n.onnx"
    other.write_bytes(model.read_bytes())
    calib = tmp_path / "calib"
    calib.mkdir(exist_ok=True)
    np.save(calib / "a.npy", np.ones((1, 3, 16, 16), np.float32))
    merged = tmp_path / "merged.onnx"
    if command == "split":
        assert main(["merge", str(model), str(other), "-o", str(merged)]) == 0
    return {
        "optimize": ["optimize", str(model)],
        "quantize": ["quantize", str(model), "--calib", str(calib), "--no-progress"],
        "merge": ["merge", str(model), str(other)],
        "split": ["split", str(merged), "--task", "m"],
        "demo": ["demo", "--images", "1"],
    }[command]


@pytest.fixture
def small_demo(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """demo on a small conv model and one feed instead of a fetched detector."""
    from graphopt import realmodels

    model = tmp_path / "demo.onnx"
    onnx.save(typed_conv_model(), model)
    feeds = [{"x": np.full((1, 3, 16, 16), 0.5, np.float32)}]
    monkeypatch.setattr(realmodels, "fetch_model", lambda name: model)
    monkeypatch.setattr(realmodels, "model_inputs", lambda name, count: feeds[:count])


@pytest.mark.usefixtures("small_demo")
@pytest.mark.parametrize("command", ["optimize", "quantize", "merge", "split", "demo"])
def test_dash_writes_the_model_to_stdout(tmp_path, capsysbinary, monkeypatch, command):
    """`-o -` wrote a file named '-' in the current folder (and the report to stdout); it
    writes the model's bytes to standard output now, the report to stderr, as `-o
    /dev/stdout` does into a pipe."""
    argv = _stdout_argv(tmp_path, command)
    capsysbinary.readouterr()
    monkeypatch.chdir(tmp_path)
    assert main([*argv, "-o", "-"]) == 0
    out, err = capsysbinary.readouterr()
    assert not (tmp_path / "-").exists()
    written = onnx.load_from_string(out)  # a DecodeError (or b"") before
    assert [o.name for o in written.graph.output]
    assert b"wrote standard output" in err and b"Traceback" not in err


def test_dash_writes_through_a_pipe(tmp_path):
    """The same through a real pipe (the process's own standard output, not a capture)."""
    import os
    import subprocess
    import sys

    argv = _stdout_argv(tmp_path, "optimize")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    run = subprocess.run(
        [sys.executable, "-m", "graphopt", *argv, "-o", "-"],
        capture_output=True,
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": root},
    )
    assert run.returncode == 0, run.stderr.decode()
    assert onnx.load_from_string(run.stdout).graph.node
    assert not (tmp_path / "-").exists()


@pytest.mark.usefixtures("small_demo")
@pytest.mark.parametrize("command", ["optimize", "quantize", "merge", "split", "demo"])
def test_dash_is_refused_on_a_terminal(tmp_path, capsys, monkeypatch, command):
    """A model's bytes on a terminal are of no use: one line, exit 2, nothing written."""
    import sys

    argv = _stdout_argv(tmp_path, command)
    capsys.readouterr()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert main([*argv, "-o", "-"]) == 2
    one_line_error(capsys, "-o -: standard output is a terminal")
    assert not (tmp_path / "-").exists()


@pytest.mark.parametrize("command", ["build", "distill-targets"])
def test_dash_is_refused_where_no_model_can_go_to_stdout(tmp_path, capsys, monkeypatch, command):
    """build writes an engine and its .json sidecar, distill-targets a folder: `-o -` made
    files named '-' (distill: a folder '-' of targets)."""
    model = tmp_path / "m.onnx"
    onnx.save(typed_conv_model(), model)
    np.save(tmp_path / "a.npy", np.ones((1, 3, 16, 16), np.float32))
    argv = {
        "build": ["build", str(model)],
        "distill-targets": ["distill-targets", str(model), "--data", str(tmp_path / "a.npy")],
    }[command]
    monkeypatch.chdir(tmp_path)
    assert main([*argv, "-o", "-", *(["--no-progress"] if "distill" in command else [])]) == 2
    one_line_error(capsys, f"-o -: {command} writes files")
    assert not (tmp_path / "-").exists()


def test_optimize_refuses_external_data_on_stdout(tmp_path, capsysbinary, monkeypatch):
    argv = _stdout_argv(tmp_path, "optimize")
    monkeypatch.chdir(tmp_path)
    assert main([*argv, "-o", "-", "--external-data", "yes"]) == 2
    out, err = capsysbinary.readouterr()
    assert out == b"" and err.count(b"\n") == 1 and b"--external-data yes" in err
    assert not (tmp_path / "-").exists() and not (tmp_path / "-.data").exists()


def test_the_help_of_every_model_output_says_what_dash_does(capsys):
    for command in ("optimize", "quantize", "merge", "split", "demo"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())  # argparse wraps the lines
        assert "'-': the model's bytes on standard output, which must not be a terminal" in text
