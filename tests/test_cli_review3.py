"""Adversarial review 3 of the command line (all sub-commands but optimize's paths/streams).

Each test reproduces a defect found by running `graphopt ...` with a wrong or odd option: a
traceback, a wrong exit code, a misleading message, a flag that did nothing, or a file left
behind by a failed run. Every test failed before its fix.
"""

from __future__ import annotations

import os
import sys

import onnx
import pytest

from graphopt.backends import trt_runtime
from graphopt.cli import main
from tests.test_cli_build_bench import conv_model
from tests.trt_fake import fake_tensorrt


def typed_conv_model() -> onnx.ModelProto:
    """conv_model with its output's shape declared (onnx.checker's full check wants it)."""
    model = conv_model()
    model.graph.output[0].type.tensor_type.shape.dim.extend(
        [onnx.TensorShapeProto.Dimension(dim_value=d) for d in (1, 4, 16, 16)]
    )
    return model


def one_line_error(capsys: pytest.CaptureFixture[str], needle: str) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    assert err.count("\n") == 1, err
    assert needle in err, err
    return err


@pytest.fixture
def model(tmp_path):  # type: ignore[no-untyped-def]
    path = tmp_path / "m.onnx"
    onnx.save(conv_model(), str(path))
    return path


@pytest.fixture
def with_fake_tensorrt(monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt("10.16.1.11"))
    monkeypatch.setattr(trt_runtime, "cuda_device_count", lambda: (1, ""))


# ---------------------------------------------------------------------------- build


@pytest.mark.parametrize(
    ("folder", "extra", "flag"),
    [
        ("out", [], "-o"),  # IsADirectoryError traceback after the build
        ("m.plan.json", [], "the engine's sidecar"),  # engine written, then a traceback
        ("t", ["--timing-cache", "{folder}"], "--timing-cache"),
        ("c", ["--int8", "--cache", "{folder}"], "--cache"),
    ],
)
def test_build_refuses_a_folder_where_it_writes_a_file(
    tmp_path, model, capsys, with_fake_tensorrt, folder, extra, flag
):
    (tmp_path / folder).mkdir()
    output = str(tmp_path / (folder if flag == "-o" else "m.plan"))
    argv = ["build", str(model), "-o", output, *(a.format(folder=tmp_path / folder) for a in extra)]
    assert main(argv) == 2
    one_line_error(capsys, f"{flag} ")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["m.onnx", folder])
    assert not any((tmp_path / folder).iterdir())


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--int8", "--calib", "{calib}", "--calib-count", "0"], "--calib-count"),
        (["--int8", "--calib", "{calib}", "--calib-count", "-1"], "--calib-count"),
        (["--workspace", "-5"], "--workspace"),
    ],
)
def test_build_refuses_counts_that_mean_nothing(
    tmp_path, model, capsys, with_fake_tensorrt, extra, needle
):
    """--calib-count 0 built an INT8 engine calibrated on no batch, -1 silently dropped the
    last calibration file, --workspace -5 built (a negative pool size for TensorRT)."""
    import numpy as np

    calib = tmp_path / "calib"
    calib.mkdir()
    for i in range(2):
        np.save(calib / f"{i}.npy", np.zeros((1, 3, 16, 16), np.float32))
    plan = tmp_path / "m.plan"
    argv = ["build", str(model), "-o", str(plan), *(a.format(calib=calib) for a in extra)]
    assert main(argv) == 2
    one_line_error(capsys, needle)
    assert not plan.exists()


# ---------------------------------------------------------------------------- merge


@pytest.mark.parametrize("where", ["folder", "below a file"])
def test_merge_refuses_an_unwritable_report_before_writing_the_model(
    tmp_path, model, capsys, where
):
    """--report DIR failed after the merged model was saved: exit 2 with a model on disk, and
    a message naming write_atomic's temporary file."""
    other = tmp_path / "n.onnx"
    other.write_bytes(model.read_bytes())
    if where == "folder":
        report = tmp_path / "report"
        report.mkdir()
    else:
        (tmp_path / "afile").write_text("x")
        report = tmp_path / "afile" / "r.json"
    out = tmp_path / "merged.onnx"
    assert main(["merge", str(model), str(other), "-o", str(out), "--report", str(report)]) == 2
    err = one_line_error(capsys, "--report")
    assert ".graphopt-" not in err
    assert not out.exists()


# ---------------------------------------------------------------------------- distill-targets


def interrupt_distill_after_two(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """distill-targets is interrupted (KeyboardInterrupt, as Ctrl-C) once its progress bar has
    drawn 2 samples done; the bar's own draw, to put back for a rerun."""
    from graphopt.commands import distill

    draw = distill._Bar.__call__

    def interrupted_after_two(self, done, total):  # type: ignore[no-untyped-def]
        draw(self, done, total)
        if done == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(distill._Bar, "__call__", interrupted_after_two)
    return draw


def test_an_interrupted_distill_says_its_checkpoints_are_kept(tmp_path, model, capsys, monkeypatch):
    """Ctrl-C said "interrupted; nothing was written" (after the progress bar, on its line)
    while the samples up to the last checkpoint were on disk, and a rerun resumes from them."""
    import json

    import numpy as np

    from graphopt.commands import distill

    data = tmp_path / "data"
    data.mkdir()
    for i in range(4):
        np.save(data / f"{i}.npy", np.zeros((1, 3, 16, 16), np.float32))
    draw = interrupt_distill_after_two(monkeypatch)
    out = tmp_path / "targets"
    argv = ["distill-targets", str(model), "--data", str(data), "-o", str(out), "--checkpoint", "1"]
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.splitlines()[-1]
    assert last.startswith("graphopt distill-targets: interrupted;"), err
    assert "nothing was written" not in err and "resume" in last
    assert json.loads((out / "manifest.json").read_text())["done"] == 2
    monkeypatch.setattr(distill._Bar, "__call__", draw)
    assert main(argv) == 0  # the rerun resumes and completes
    assert json.loads((out / "manifest.json").read_text())["done"] == 4


def test_other_commands_still_say_nothing_was_written(tmp_path, model, capsys, monkeypatch):
    from graphopt.commands import inspect

    def interrupt(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    monkeypatch.setattr(inspect, "inspect_model", interrupt)
    assert main(["inspect", str(model)]) == 130
    one_line_error(capsys, "graphopt inspect: interrupted; nothing was written")


@pytest.fixture
def image_folder(tmp_path):  # type: ignore[no-untyped-def]
    import numpy as np
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    pixels = np.random.default_rng(0).integers(0, 256, (20, 20, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(folder / "a.png")
    return folder


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--std", "0"], "--std"),  # divided by zero: inf targets, exit 0
        (["--std", "1,0,1"], "--std"),
        (["--scale", "nan"], "--scale"),  # NaN pixels: NaN targets, exit 0
        (["--scale", "inf"], "--scale"),
        (["--mean", "nan"], "--mean"),
        (["--temperature", "inf"], "temperature"),  # softmax(z/inf): uniform targets
        (["--threads", "-1"], "--threads"),  # taken, as onnxruntime's default
    ],
)
def test_distill_refuses_numbers_that_make_garbage_targets(
    tmp_path, model, image_folder, capsys, extra, needle
):
    out = tmp_path / "targets"
    argv = ["distill-targets", str(model), "--data", str(image_folder), "-o", str(out)]
    assert main([*argv, "--no-progress", "--logits", "y", "--axis", "1", *extra]) == 2
    one_line_error(capsys, needle)
    assert not (out / "manifest.json").exists()


def test_distill_names_an_unknown_output_once(tmp_path, model, image_folder, capsys):
    """--logits y,nosuch said "teacher has no output 'nosuch', 'nosuch'"."""
    out = tmp_path / "targets"
    argv = ["distill-targets", str(model), "--data", str(image_folder), "-o", str(out)]
    assert main([*argv, "--logits", "y,nosuch", "--axis", "1"]) == 2
    err = one_line_error(capsys, "'nosuch'")
    assert err.count("nosuch") == 1


# ---------------------------------------------------------------------------- bench


def test_bench_refuses_shapes_it_would_not_use(tmp_path, model, capsys):
    """--inputs NPZ --shapes x:... timed the .npz arrays and ignored --shapes (exit 0)."""
    import numpy as np

    feeds = tmp_path / "feeds.npz"
    np.savez(feeds, x=np.zeros((1, 3, 16, 16), np.float32))
    argv = ["bench", str(model), "--runs", "1", "--inputs", str(feeds)]
    assert main([*argv, "--shapes", "x:2x3x16x16"]) == 2
    one_line_error(capsys, "--shapes")
    assert main(argv) == 0


def test_bench_refuses_negative_threads(model, capsys):
    assert main(["bench", str(model), "--runs", "1", "--threads", "-1"]) == 2
    one_line_error(capsys, "--threads")


# ---------------------------------------------------------------------------- optimize


def test_optimize_refuses_inputs_without_verify(tmp_path, model, capsys):
    """--inputs NPZ without --verify was read by nothing (exit 0, no comparison run), as
    --shapes without --verify is refused."""
    import numpy as np

    feeds = tmp_path / "feeds.npz"
    np.savez(feeds, x=np.zeros((1, 3, 16, 16), np.float32))
    out = tmp_path / "o.onnx"
    assert main(["optimize", str(model), "-o", str(out), "--inputs", str(feeds)]) == 2
    one_line_error(capsys, "--inputs")
    assert not out.exists()
    assert main(["optimize", str(model), "-o", str(out), "--inputs", str(feeds), "--verify"]) == 0


# ---------------------------------------------------------------------------- demo


def test_demo_counts_the_images_it_verified_on(tmp_path, model, capsys, monkeypatch):
    """--images 100 verified on the 22 photographs there are and said "over 100 real
    images"; it then said "over 22" (and nothing of the 78 asked for that it did not use): it is
    refused now, as --images 0 is (H129). (The detector fetch is replaced by a small model:
    what is checked is the count.)"""
    import numpy as np

    from graphopt import realmodels

    typed = conv_model()
    typed.graph.output[0].type.tensor_type.shape.dim.extend(
        [onnx.TensorShapeProto.Dimension(dim_value=d) for d in (1, 4, 16, 16)]
    )
    onnx.save(typed, str(model))
    feeds = [{"x": np.full((1, 3, 16, 16), v, np.float32)} for v in (0.5, -1.0)]
    monkeypatch.setattr(realmodels, "fetch_model", lambda name: model)
    monkeypatch.setattr(realmodels, "model_inputs", lambda name, count: feeds[:count])
    assert main(["demo", "--images", "100"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert "--images must be at most 22, the photographs the demo has, got 100" in captured.err
    assert main(["demo", "--images", "2"]) == 0
    out = capsys.readouterr().out
    assert "over 2 real images" in out
    assert main(["demo", "--images", "1"]) == 0
    assert "over 1 real image: " in capsys.readouterr().out


@pytest.mark.parametrize("tolerance", ["nan", "inf"])
def test_merge_refuses_a_tolerance_that_is_not_a_number(tmp_path, model, capsys, tolerance):
    """--tolerance nan merged as 0 (exit 0); inf shared weights whatever their values, so the
    second model's head computed with the first one's weights."""
    other = conv_model()
    other.graph.initializer[0].CopyFrom(
        onnx.numpy_helper.from_array(-onnx.numpy_helper.to_array(other.graph.initializer[0]), "w")
    )
    second = tmp_path / "n.onnx"
    onnx.save(other, str(second))
    out = tmp_path / "merged.onnx"
    argv = ["merge", str(model), str(second), "-o", str(out), "--tolerance", tolerance]
    assert main(argv) == 2
    one_line_error(capsys, "tolerance")
    assert not out.exists()


# ---------------------------------------------------------------------------- .npy/.npz feeds


def _unreadable(path, kind: str):  # type: ignore[no-untyped-def]
    """An .npz/.npy file numpy cannot read: empty, another format, or a truncated archive."""
    import io

    import numpy as np

    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "onnx":
        path.write_bytes(conv_model().SerializeToString())
    else:
        buffer = io.BytesIO()
        np.savez(buffer, x=np.zeros((1, 3, 16, 16), np.float32))
        path.write_bytes(buffer.getvalue()[:200])
    return path


@pytest.mark.parametrize("kind", ["empty", "onnx", "truncated"])
@pytest.mark.parametrize("command", ["bench", "optimize", "distill-targets", "build"])
def test_an_unreadable_feed_file_is_one_line(
    tmp_path, model, capsys, with_fake_tensorrt, command, kind
):
    """An empty .npy/.npz raised EOFError (a traceback) from bench --inputs, optimize --verify
    --inputs, distill-targets --data and build --calib, and a truncated archive BadZipFile; a
    file of another format was "pickled (object) data" with numpy's advice to unpickle it."""
    folder = tmp_path / "feeds"
    folder.mkdir()
    feeds = _unreadable(folder / ("a.npz" if kind == "truncated" else "a.npy"), kind)
    npz = _unreadable(tmp_path / "f.npz", kind)
    out, plan, targets = tmp_path / "o.onnx", tmp_path / "m.plan", tmp_path / "t"
    argv = {
        "bench": ["bench", str(model), "--runs", "1", "--inputs", str(npz)],
        "optimize": ["optimize", str(model), "-o", str(out), "--verify", "--inputs", str(npz)],
        "distill-targets": [
            *("distill-targets", str(model), "--data", str(folder), "-o", str(targets)),
            "--no-progress",
        ],
        "build": ["build", str(model), "-o", str(plan), "--int8", "--calib", str(folder)],
    }[command]
    assert main(argv) == 2
    err = one_line_error(capsys, "empty" if kind == "empty" else "not a .npy or .npz file")
    assert "pickle" not in err
    assert feeds.exists()
    assert not out.exists() and not plan.exists()


def test_bench_times_a_model_whose_first_input_is_a_scalar(tmp_path, capsys):
    """The batch was the first feed's shape[0]: an IndexError traceback for a scalar input."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Neg", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])],
    )
    path = tmp_path / "scalar.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    assert main(["bench", str(path), "--runs", "2", "--warmup", "0"]) == 0
    assert "(batch 1)" in capsys.readouterr().out


def test_distill_refuses_a_teacher_with_a_sequence_input(tmp_path, capsys):
    """A sequence input raised KeyError: 0 (a traceback) from the dtype lookup of the first
    sample, after the targets folder was made."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("SequenceAt", ["s", "i"], ["y"])],
        "g",
        [helper.make_tensor_sequence_value_info("s", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.array(0, np.int64), "i")],
    )
    teacher = tmp_path / "seq.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(teacher))
    data = tmp_path / "data"
    data.mkdir()
    np.save(data / "a.npy", np.zeros((1, 3), np.float32))
    out = tmp_path / "targets"
    argv = ["distill-targets", str(teacher), "--data", str(data), "-o", str(out)]
    assert main([*argv, "--no-progress"]) == 2
    one_line_error(capsys, "'s' is not a tensor")
    assert not out.exists()


@pytest.mark.parametrize("command", ["quantize", "build"])
def test_a_calibration_file_given_for_the_folder_is_named_as_such(
    tmp_path, model, capsys, with_fake_tensorrt, command
):
    """--calib m.npy (a file) said the folder "does not exist" / "no such folder"."""
    import numpy as np

    feed = tmp_path / "a.npy"
    np.save(feed, np.zeros((1, 3, 16, 16), np.float32))
    out = str(tmp_path / "out")
    extra = ["--int8"] if command == "build" else []
    assert main([command, str(model), "-o", out, *extra, "--calib", str(feed)]) == 2
    err = one_line_error(capsys, "is a file, not a folder")
    assert "exist" not in err and "no such" not in err


# ---------------------------------------------------------------------------- -o /dev/stdout


@pytest.mark.skipif(not os.path.exists("/dev/stdout"), reason="needs /dev/stdout")
@pytest.mark.parametrize("command", ["optimize", "merge", "split", "quantize"])
def test_a_model_written_to_stdout_is_not_followed_by_the_report(tmp_path, model, command):
    """`-o /dev/stdout | reader`: the model went through the pipe followed by the command's
    "...; wrote /dev/stdout" line (and merge's table), so the reader got a corrupt model."""
    import subprocess

    import numpy as np

    typed = conv_model()
    typed.graph.output[0].type.tensor_type.shape.dim.extend(
        [onnx.TensorShapeProto.Dimension(dim_value=d) for d in (1, 4, 16, 16)]
    )
    onnx.save(typed, str(model))
    other = tmp_path / "n.onnx"
    other.write_bytes(model.read_bytes())
    calib = tmp_path / "calib"
    calib.mkdir()
    np.save(calib / "a.npy", np.ones((1, 3, 16, 16), np.float32))
    merged = tmp_path / "merged.onnx"
    if command == "split":
        assert main(["merge", str(model), str(other), "-o", str(merged)]) == 0
    args = {
        "optimize": ["optimize", str(model)],
        "merge": ["merge", str(model), str(other)],
        "split": ["split", str(merged), "--task", "m"],
        "quantize": ["quantize", str(model), "--calib", str(calib), "--no-progress"],
    }[command]
    run = subprocess.run(
        [sys.executable, "-m", "graphopt", *args, "-o", "/dev/stdout"],
        capture_output=True,
        timeout=300,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    assert run.returncode == 0, run.stderr.decode()
    written = onnx.load_from_string(run.stdout)  # a DecodeError before
    assert written.graph.output
    assert "wrote /dev/stdout" in run.stderr.decode()


# ---------------------------------------------------------------------------- external data


@pytest.mark.parametrize(
    ("command", "flag"),
    [
        ("merge", "-o"),
        ("merge", "--report"),
        ("split", "-o"),
        ("quantize", "-o"),
        ("quantize", "--cache"),
        ("quantize", "-o.data"),  # the output's own data file <out>.data is the input's
        ("build", "-o"),
        ("build", "--timing-cache"),
    ],
)
def test_no_command_writes_over_its_input_external_data(
    tmp_path, capsys, with_fake_tensorrt, command, flag
):
    """merge/split/quantize/build -o (or --report, --cache, --timing-cache) naming the input's
    external data file wrote over it (exit 0): the input model no longer loaded."""
    import numpy as np

    typed = conv_model()
    typed.graph.output[0].type.tensor_type.shape.dim.extend(
        [onnx.TensorShapeProto.Dimension(dim_value=d) for d in (1, 4, 16, 16)]
    )
    other = tmp_path / "n.onnx"
    onnx.save(typed, str(other))
    model = tmp_path / "m.onnx"
    data_name = "q.onnx.data" if flag == "-o.data" else "weights.bin"
    onnx.save(typed, str(model), save_as_external_data=True, location=data_name, size_threshold=0)
    data = tmp_path / data_name
    before = data.read_bytes()
    calib = tmp_path / "calib"
    calib.mkdir()
    np.save(calib / "a.npy", np.ones((1, 3, 16, 16), np.float32))
    out = str(tmp_path / "q.onnx") if flag == "-o.data" else str(data)
    target = {"-o": out, "-o.data": out}.get(flag, str(tmp_path / "out.onnx"))
    argv = {
        "merge": ["merge", str(model), str(other), "-o", target],
        "split": ["split", str(model), "--outputs", "y", "-o", target],
        "quantize": ["quantize", str(model), "--calib", str(calib), "--no-progress", "-o", target],
        "build": ["build", str(model), "-o", target],
    }[command]
    if flag not in ("-o", "-o.data"):
        argv += [flag, str(data)]
        if command == "quantize":
            argv += ["--method", "entropy"]
    assert main(argv) == 2
    one_line_error(capsys, "data file")
    assert data.read_bytes() == before
    onnx.load(str(model))  # still loads with its weights


# ---------------------------------------------------------------------------- --help


def test_every_option_of_every_command_says_what_it_does():
    """bench --backend had no help text (`--help` listed it bare)."""
    import argparse

    from graphopt.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    bare = [
        f"{name} {action.option_strings or action.dest}"
        for name, sub in commands.choices.items()
        for action in sub._actions
        if not isinstance(action, argparse._HelpAction) and not action.help
    ]
    assert not bare


# ---------------------------------------------------------------------------- check


def test_check_errors_only_does_not_say_there_are_no_warnings(tmp_path, capsys):
    """--errors-only printed "0 errors, 0 warnings" for a model with a warning it left out."""
    dynamic = conv_model()
    dim = dynamic.graph.input[0].type.tensor_type.shape.dim[2]
    dim.dim_param = "H"  # a dynamic dim: a warning (the engine needs a profile)
    path = tmp_path / "d.onnx"
    onnx.save(dynamic, str(path))
    assert main(["check", str(path)]) == 1
    assert "0 errors, 1 warning" in capsys.readouterr().out
    assert main(["check", str(path), "--errors-only"]) == 0
    out = capsys.readouterr().out
    assert "0 errors; 1 warning not shown (--errors-only)" in out and "0 warnings" not in out


def test_a_distill_that_fails_before_storing_anything_leaves_no_folder(tmp_path, model, capsys):
    """A teacher that fails on the first sample (a .npy of the wrong rank) left the empty
    targets folder it had made."""
    import numpy as np

    data = tmp_path / "data"
    data.mkdir()
    np.save(data / "a.npy", np.zeros((3, 16, 16), np.float32))
    out = tmp_path / "new" / "targets"
    argv = ["distill-targets", str(model), "--data", str(data), "-o", str(out), "--no-progress"]
    assert main(argv) == 2
    one_line_error(capsys, "the teacher failed on a.npy")
    assert not (tmp_path / "new").exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    assert main([*argv[:-2], str(existing), "--no-progress"]) == 2
    assert existing.is_dir()  # a folder that was there stays


# ---------------------------------------------------------------------------- split


def test_split_says_a_strip_prefix_leaves_an_output_without_a_name(tmp_path, capsys):
    """--strip-prefix equal to a kept output's whole name failed in onnx.checker with "Field
    'name' of 'value_info' is required to be non-empty"."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Neg", ["x"], ["t_"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("t_", TensorProto.FLOAT, [2])],
    )
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    out = tmp_path / "s.onnx"
    argv = ["split", str(path), "-o", str(out), "--outputs", "t_", "--strip-prefix", "t_"]
    assert main(argv) == 2
    one_line_error(capsys, "strip prefix 't_' leaves output 't_' with no name")
    assert not out.exists()


# ---------------------------------------------------------------------------- demo -o


@pytest.mark.parametrize("where", ["folder", "missing folder", "below a file"])
def test_demo_checks_its_output_before_running(tmp_path, capsys, monkeypatch, where):
    """demo -o DIR (or in a folder that does not exist) failed only after fetching,
    optimizing and verifying the detector."""
    from graphopt import realmodels

    def fetch(name):  # type: ignore[no-untyped-def]
        raise AssertionError("the detector was fetched before -o was checked")

    monkeypatch.setattr(realmodels, "fetch_model", fetch)
    (tmp_path / "afile").write_text("x")
    output = {
        "folder": tmp_path,
        "missing folder": tmp_path / "nope" / "d.onnx",
        "below a file": tmp_path / "afile" / "d.onnx",
    }[where]
    assert main(["demo", "-o", str(output)]) == 2
    one_line_error(capsys, str(output))


# ---------------------------------------------------------------------------- non-UTF-8 names


def _latin1_named(tmp_path, which: str):  # type: ignore[no-untyped-def]
    """A Relu whose graph input or output name is Latin-1 'é' in the file (protobuf hands it
    over as bytes; onnx.checker accepts it)."""
    from onnx import TensorProto, helper

    x, y = ("xQQ", "y") if which == "input" else ("x", "yQQ")
    graph = helper.make_graph(
        [helper.make_node("Relu", [x], [y], name="r")],
        "g",
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info(y, TensorProto.FLOAT, [1, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    path = tmp_path / f"latin_{which}.onnx"
    path.write_bytes(model.SerializeToString().replace(b"QQ", b"\xe9Q"))
    return path


@pytest.mark.parametrize(
    ("command", "which"),
    [
        ("merge", "output"),  # TypeError: can only concatenate str (not "bytes") to str
        ("merge --verify", "input"),  # UnicodeDecodeError
        ("split", "output"),  # TypeError in the message's join
        ("distill-targets", "output"),  # TypeError: a string pattern on bytes
        ("check", "input"),  # TypeError in the --shapes message's join
    ],
)
def test_a_name_that_is_not_utf8_is_one_line(tmp_path, model, capsys, command, which):
    import numpy as np

    path = _latin1_named(tmp_path, which)
    out = str(tmp_path / "out.onnx")
    data = tmp_path / "data"
    data.mkdir()
    np.save(data / "a.npy", np.ones((1, 4), np.float32))
    name, *extra = command.split()
    argv = {
        "merge": ["merge", str(path), str(model), "-o", out, *extra],
        "split": ["split", str(path), "-o", out, "--outputs", "y"],
        "distill-targets": [name, str(path), "--data", str(data), "-o", out, "--no-progress"],
        "check": ["check", str(path), "--shapes", "x:1x4"],
    }[name]
    assert main(argv) == 2
    one_line_error(capsys, f"graph {which} b'")
    assert not (tmp_path / "out.onnx").exists()


def _latin1_conv(tmp_path, which: str):  # type: ignore[no-untyped-def]
    """conv_model with its graph input ("input") or the inner tensor between Conv and Relu
    ("inner") named with a Latin-1 'é'."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    x, c = ("xQQ", "c") if which == "input" else ("x", "cQQ")
    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    graph = helper.make_graph(
        [
            helper.make_node("Conv", [x, "w"], [c], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", [c], ["y"]),
        ],
        "g",
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 16, 16])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    path = tmp_path / f"latin_{which}.onnx"
    path.write_bytes(model.SerializeToString().replace(b"QQ", b"\xe9Q"))
    return path


def test_merge_refuses_an_inner_name_that_is_not_utf8(tmp_path, model, capsys):
    """merge prefixes every tensor name of a head: TypeError for an inner bytes name."""
    path = _latin1_conv(tmp_path, "inner")
    out = tmp_path / "out.onnx"
    assert main(["merge", str(path), str(model), "-o", str(out)]) == 2
    one_line_error(capsys, "tensor of node Conv b'c")
    assert not out.exists()


def test_quantize_refuses_an_input_name_that_is_not_utf8(tmp_path, capsys):
    """quantize: UnicodeDecodeError from the Q/DQ insertion (node.input.extend)."""
    import numpy as np

    path = _latin1_conv(tmp_path, "input")
    calib = tmp_path / "calib"
    calib.mkdir()
    np.save(calib / "a.npy", np.ones((1, 3, 16, 16), np.float32))
    out = tmp_path / "q.onnx"
    argv = ["quantize", str(path), "-o", str(out), "--calib", str(calib), "--no-progress"]
    assert main(argv) == 2
    one_line_error(capsys, "graph input b'x")
    assert not out.exists()


@pytest.mark.parametrize("name", ["a.npy", "a.npz"])
def test_quantize_does_not_advise_unpickling_a_feed_file(tmp_path, model, capsys, name):
    """A calibration file of another format was "pickled (object) data", with numpy's advice
    to load it with allow_pickle=True or pickle.load()."""
    calib = tmp_path / "calib"
    calib.mkdir()
    (calib / name).write_bytes(conv_model().SerializeToString())
    onnx.save(typed_conv_model(), str(model))
    out = tmp_path / "q.onnx"
    argv = ["quantize", str(model), "-o", str(out), "--calib", str(calib), "--no-progress"]
    assert main(argv) == 2
    err = one_line_error(capsys, "not a .npy or .npz file")
    assert "pickle" not in err


@pytest.mark.parametrize("sample", ["a.png", "a.npy"])
def test_distill_refuses_a_teacher_without_inputs(tmp_path, capsys, sample):
    """An image sample raised IndexError (a traceback) for a teacher of Constants only; a .npy
    one said it "fits only one-input models ([])"."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper
    from PIL import Image

    graph = helper.make_graph(
        [
            helper.make_node(
                "Constant", [], ["y"], value=numpy_helper.from_array(np.ones(3, np.float32))
            )
        ],
        "g",
        [],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])],
    )
    teacher = tmp_path / "const.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(teacher))
    data = tmp_path / "data"
    data.mkdir()
    if sample.endswith(".png"):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(data / sample)
    else:
        np.save(data / sample, np.zeros(3, np.float32))
    out = tmp_path / "t"
    argv = ["distill-targets", str(teacher), "--data", str(data), "-o", str(out), "--no-progress"]
    assert main(argv) == 2
    one_line_error(capsys, "the teacher has no inputs")
    assert not out.exists()


@pytest.mark.parametrize(
    ("written", "read"), [("-o", "--cache-in"), ("-o", "--preprocess"), ("--cache", "--preprocess")]
)
def test_quantize_never_writes_over_a_file_it_reads(tmp_path, model, capsys, written, read):
    """-o F --cache-in F replaced the calibration cache with the model (exit 0), -o F
    --preprocess F the preprocessing spec."""
    import numpy as np

    onnx.save(typed_conv_model(), str(model))
    calib = tmp_path / "calib"
    calib.mkdir()
    np.save(calib / "a.npy", np.ones((1, 3, 16, 16), np.float32))
    shared = tmp_path / "shared"
    text = "TRT-8601-MinMaxCalibration\nx: 3c00f145\n" if read == "--cache-in" else "scale: 1.0\n"
    shared.write_text(text)
    argv = ["quantize", str(model), "--no-progress", read, str(shared)]
    argv += ["--calib", str(calib)] if read != "--cache-in" else []
    argv += ["-o", str(shared) if written == "-o" else str(tmp_path / "q.onnx")]
    argv += ["--cache", str(shared)] if written == "--cache" else []
    assert main(argv) == 2
    one_line_error(capsys, f"{written} {shared} is the {read} file")
    assert shared.read_text() == text


@pytest.mark.parametrize("command", ["optimize -p", "optimize --inputs", "quantize", "demo"])
def test_no_command_writes_its_model_over_a_file_it_read(
    tmp_path, model, capsys, monkeypatch, command
):
    """-o F -p F replaced the pipeline YAML with the model (optimize, quantize, demo), and
    optimize -o F --verify --inputs F the feeds (exit 0)."""
    import numpy as np

    from graphopt import realmodels

    def fetch(name):  # type: ignore[no-untyped-def]
        raise AssertionError("the detector was fetched before -o was checked")

    onnx.save(typed_conv_model(), str(model))
    calib = tmp_path / "calib"
    calib.mkdir()
    np.save(calib / "a.npy", np.ones((1, 3, 16, 16), np.float32))
    shared = tmp_path / "shared"
    if command == "optimize --inputs":
        np.savez(shared, x=np.ones((1, 3, 16, 16), np.float32))
        shared = tmp_path / "shared.npz"
    else:
        shared.write_text("name: mine\npasses:\n  - eliminate-dead-code\n")
    before = shared.read_bytes()
    name, *flag = command.split()
    argv = {
        "optimize": ["optimize", str(model), *flag, str(shared), "--verify"],
        "quantize": ["quantize", str(model), "--calib", str(calib), "--pipeline", str(shared)],
        "demo": ["demo", "--pipeline", str(shared)],
    }[name]
    monkeypatch.setattr(realmodels, "fetch_model", fetch)
    assert main([*argv, "-o", str(shared)]) == 2
    one_line_error(capsys, f"-o {shared} is the ")
    assert shared.read_bytes() == before


@pytest.mark.parametrize("command", ["merge", "split", "quantize"])
def test_a_command_that_changes_what_a_model_computes_never_replaces_its_input(
    tmp_path, model, capsys, command
):
    """merge/split/quantize -o IN replaced the input with a different model (exit 0): the
    merged one (outputs renamed), one task of it, or the quantized one (and quantize refuses a
    quantized model, so the float original was gone). optimize, which keeps what the model
    computes, still rewrites in place."""
    import numpy as np

    onnx.save(typed_conv_model(), str(model))
    other = tmp_path / "n.onnx"
    other.write_bytes(model.read_bytes())
    calib = tmp_path / "calib"
    calib.mkdir()
    np.save(calib / "a.npy", np.ones((1, 3, 16, 16), np.float32))
    before = model.read_bytes()
    argv = {
        "merge": ["merge", str(model), str(other)],
        "split": ["split", str(model), "--outputs", "y"],
        "quantize": ["quantize", str(model), "--calib", str(calib), "--no-progress"],
    }[command]
    assert main([*argv, "-o", str(model)]) == 2
    one_line_error(capsys, f"-o {model} is the input model's path")
    assert model.read_bytes() == before
    assert main(["optimize", str(model), "-o", str(model)]) == 0


# ---------------------------------------------------------------------------- onnxruntime errors


@pytest.mark.parametrize("command", ["bench", "optimize", "distill-targets"])
def test_a_wrong_feed_shape_names_the_dims(tmp_path, model, capsys, command):
    """onnxruntime's "Got invalid dimensions for input: x for the following indices" was cut
    at its first line: the dims it got and expected, on the lines after it, were not said."""
    import numpy as np

    data = tmp_path / "data"
    data.mkdir()
    np.save(data / "a.npy", np.ones((1, 3, 8, 8), np.float32))
    argv = {
        "bench": ["bench", str(model), "--runs", "1", "--shapes", "x:1x3x8x8"],
        "optimize": [
            "optimize",
            str(model),
            "-o",
            str(tmp_path / "o.onnx"),
            "--verify",
            "--shapes",
            "x:1x3x8x8",
        ],
        "distill-targets": [
            "distill-targets",
            str(model),
            "--data",
            str(data),
            "-o",
            str(tmp_path / "t"),
            "--no-progress",
        ],
    }[command]
    assert main(argv) == 2
    # optimize and bench (0bab61a) refuse the --shapes before running, in their own words
    # (onnxruntime's facts); distill-targets says what onnxruntime said
    own = (
        "--shapes x:1x3x8x8 does not fit input x, declared [1, 3, 16, 16]: "
        "index 2 is fixed at 16 (Got: 8 Expected: 16)"
    )
    needle = {"optimize": own, "bench": own}
    one_line_error(capsys, needle.get(command, "index: 2 Got: 8 Expected: 16"))


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--percentile", "99.9"], "--percentile is for --method percentile"),
        (["--method", "entropy", "--percentile", "99"], "--percentile is for"),
        (["--entropy-floor", "0"], "--entropy-floor is for --method entropy"),
        (["--histogram-sample", "100"], "--histogram-sample is for --method entropy"),
        (["--trt-version", "10.3.0"], "--trt-version"),
    ],
)
def test_quantize_refuses_an_option_its_method_ignores(tmp_path, model, capsys, extra, needle):
    """--percentile 99.9 without --method percentile calibrated with the max (exit 0, the
    option silently ignored); so did --entropy-floor without entropy, --histogram-sample with
    minmax and --trt-version without --cache."""
    import numpy as np

    onnx.save(typed_conv_model(), str(model))
    calib = tmp_path / "calib"
    calib.mkdir()
    np.save(calib / "a.npy", np.ones((1, 3, 16, 16), np.float32))
    out = tmp_path / "q.onnx"
    argv = ["quantize", str(model), "-o", str(out), "--calib", str(calib), "--no-progress"]
    assert main([*argv, *extra]) == 2
    one_line_error(capsys, needle)
    assert not out.exists()
    assert main([*argv, "--method", "percentile", "--percentile", "99.9"]) == 0


def test_merge_refuses_a_tolerance_with_no_share(tmp_path, model, capsys):
    """--no-share --tolerance 0.1: nothing is shared, the tolerance was silently ignored."""
    other = tmp_path / "n.onnx"
    other.write_bytes(model.read_bytes())
    out = tmp_path / "merged.onnx"
    argv = ["merge", str(model), str(other), "-o", str(out), "--no-share"]
    assert main([*argv, "--tolerance", "0.1"]) == 2
    one_line_error(capsys, "--tolerance")
    assert not out.exists()


def test_bench_refuses_threads_for_tensorrt(tmp_path, capsys, with_fake_tensorrt):
    """--backend tensorrt --threads 4 timed the engine and ignored --threads."""
    plan = tmp_path / "m.plan"
    plan.write_bytes(b"engine")
    assert main(["bench", str(plan), "--backend", "tensorrt", "--threads", "4"]) == 2
    one_line_error(capsys, "--threads")


def test_build_refuses_a_calibration_cache_without_int8(
    tmp_path, model, capsys, with_fake_tensorrt
):
    """--cache C without --int8 built an fp32 engine and never read or wrote C (--calib
    without --int8 was refused already)."""
    plan = tmp_path / "m.plan"
    argv = ["build", str(model), "-o", str(plan), "--cache", str(tmp_path / "c.cache")]
    assert main(argv) == 2
    one_line_error(capsys, "--cache")
    assert not plan.exists()


@pytest.mark.parametrize("extra", [["--temperature", "4"], ["--axis", "1"]])
def test_distill_refuses_softmax_options_without_logits(tmp_path, model, capsys, extra):
    """--temperature 4 (or --axis 1) without --logits stored the raw outputs, the option
    silently ignored."""
    import numpy as np

    data = tmp_path / "data"
    data.mkdir()
    np.save(data / "a.npy", np.ones((1, 3, 16, 16), np.float32))
    out = tmp_path / "t"
    argv = ["distill-targets", str(model), "--data", str(data), "-o", str(out), "--no-progress"]
    assert main([*argv, *extra]) == 2
    one_line_error(capsys, f"{extra[0]} applies to --logits")
    assert not out.exists()
    assert main([*argv, *extra, "--logits", "y"]) == 0


@pytest.mark.parametrize("flag", ["--tolerance", "--atol"])
def test_optimize_refuses_a_verify_bound_without_verify(tmp_path, model, capsys, flag):
    """--tolerance 1e-6 (or --atol) without --verify: no comparison ran, exit 0."""
    out = tmp_path / "o.onnx"
    argv = ["optimize", str(model), "-o", str(out), flag, "1e-6"]
    assert main(argv) == 2
    one_line_error(capsys, f"{flag} sets --verify's bound")
    assert not out.exists()
    assert main([*argv, "--verify"]) == 0


@pytest.mark.parametrize("name", ["o.npy", "o.npz"])
def test_an_array_of_python_objects_is_named_so(tmp_path, name):
    """A .npy of objects was 'not a .npy or .npz file', an .npz of objects 'a corrupt .npz
    archive': both are readable files whose arrays hold Python objects (pickles)."""
    import numpy as np

    from graphopt.arrays import load_arrays

    path = tmp_path / name
    objects = np.array([{"a": 1}], dtype=object)
    if name.endswith(".npy"):
        np.save(path, objects, allow_pickle=True)
    else:
        np.savez(path, x=objects)
    with pytest.raises(ValueError, match="holds an array of Python objects"):
        load_arrays(path)


def test_bench_refuses_more_threads_than_four_per_cpu(tmp_path, capsys):
    """bench --threads 100000 started 100000 onnxruntime threads (16 GB before any run);
    more than four per CPU is a one-line error now (every onnxruntime session graphopt opens)."""
    import os

    import onnx
    from onnx import TensorProto, helper

    from graphopt.cli import main

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    too_many = 4 * (os.cpu_count() or 1) + 1
    assert main(["bench", str(path), "--threads", str(too_many), "--runs", "1"]) == 2
    err = capsys.readouterr().err
    assert f"{too_many} threads is more than 4 per CPU" in err and "Traceback" not in err
