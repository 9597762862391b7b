"""Review 12, the command line as a user meets it: what was wrong in its usage errors and its
outputs. Each test failed before its fix."""

from __future__ import annotations

from pathlib import Path

import onnx
import onnx.parser
import pytest

from graphopt.cli import main

SMALL = """
<ir_version: 8, opset_import: ["" : 13]>
g (float[2,3] x) => (float[2,3] y) {
    i = Identity(x)
    y = Relu(i)
}
"""


@pytest.fixture
def model_path(tmp_path: Path) -> Path:
    path = tmp_path / "m.onnx"
    onnx.save(onnx.parser.parse_model(SMALL), str(path))
    return path


def _exit_code(argv: list[str]) -> int:
    """main's return, or the code argparse exits with."""
    try:
        return main(argv)
    except SystemExit as e:
        return int(e.code or 0)


def test_a_dump_dir_that_is_the_output_path_is_refused_before_anything_runs(
    model_path, tmp_path, capsys
):
    """`-o out.onnx --dump-dir out.onnx` made the folder out.onnx, ran every pass, and only
    then refused to save the model over a folder, which it left behind."""
    out = tmp_path / "out.onnx"
    argv = [
        "optimize",
        str(model_path),
        "-o",
        str(out),
        "--dump-dir",
        str(tmp_path / "." / "out.onnx"),
    ]
    assert _exit_code(argv) == 2
    err = capsys.readouterr().err
    assert "--dump-dir" in err and "is the -o path" in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["optimize", "IN", "-o", "OUT", "extra"], "optimize"),
        (["inspect", "IN", "--bogus"], "inspect"),
        (["bench", "IN", "--runs", "1", "--bogus"], "bench"),
    ],
)
def test_an_unknown_argument_names_the_command_and_its_help(
    model_path, tmp_path, capsys, argv, command
):
    """The top-level parser reported a command's unknown argument: 'graphopt: error:
    unrecognized arguments: extra (see 'graphopt --help')', whose help does not list the
    command's options."""
    argv = [
        str(model_path) if a == "IN" else str(tmp_path / "o.onnx") if a == "OUT" else a
        for a in argv
    ]
    assert _exit_code(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"graphopt {command}: error: unrecognized arguments: ")
    assert err.rstrip().endswith(f"(see 'graphopt {command} --help')")
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.onnx").exists()


def test_a_missing_argument_is_said_by_the_command(capsys):
    assert _exit_code(["optimize"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("graphopt optimize: error: the following arguments are required")


def test_bench_times_at_the_onnxruntime_level_asked(model_path, capsys, monkeypatch):
    """bench timed every model at ORT_ENABLE_ALL: an ort-* pipeline's model, meant to run at
    ORT_DISABLE_ALL, could not be timed as it runs."""
    import json

    from graphopt.backends import onnxruntime as ort_backend

    seen: list[str] = []
    real = ort_backend.session

    def spy(model: object, **kwargs: object) -> object:
        seen.append(str(kwargs.get("level", "all")))
        return real(model, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ort_backend, "session", spy)
    argv = ["bench", str(model_path), "--runs", "1", "--warmup", "0", "--no-progress"]
    assert main([*argv, "--level", "disable", "--json"]) == 0
    assert seen == ["disable"]
    assert json.loads(capsys.readouterr().out)["level"] == "disable"
    assert main([*argv, "--level", "basic"]) == 0
    assert capsys.readouterr().out.startswith("onnxruntime at level basic: ")
    seen.clear()
    assert main(argv) == 0
    assert seen == ["all"] and capsys.readouterr().out.startswith("onnxruntime: ")
    assert _exit_code([*argv, "--level", "disable", "--backend", "tensorrt"]) == 2
    assert "--level is onnxruntime's" in capsys.readouterr().err


def test_inspect_refuses_a_negative_top(model_path, capsys):
    """`--top -3` was read as 0 without a word."""
    assert main(["inspect", str(model_path), "--top", "-3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("graphopt inspect: error: --top must be at least 0, got -3")
    assert main(["inspect", str(model_path), "--top", "0"]) == 0


def test_an_interrupted_optimize_names_the_dumps_it_left(model_path, tmp_path, capsys, monkeypatch):
    """Ctrl-C said 'nothing was written' while --dump-dir held the dumps of the passes run."""
    import graphopt.api

    real = graphopt.api.optimize_with_report

    def interrupted(*args: object, **kwargs: object) -> object:
        real(*args, **kwargs)  # type: ignore[arg-type]
        raise KeyboardInterrupt

    monkeypatch.setattr(graphopt.api, "optimize_with_report", interrupted)
    out, dump = tmp_path / "o.onnx", tmp_path / "dump"
    assert main(["optimize", str(model_path), "-o", str(out), "--dump-dir", str(dump)]) == 130
    err = capsys.readouterr().err.strip()
    assert err == (
        f"graphopt optimize: interrupted; the output was not written; {dump} holds the dumps "
        "of the passes run so far"
    )
    assert not out.exists() and [p.name for p in dump.iterdir()] == ["01-eliminate-noops.onnx"]
    assert main(["optimize", str(model_path), "-o", str(out)]) == 130
    assert capsys.readouterr().err.strip() == "graphopt optimize: interrupted; nothing was written"


def test_a_verify_failure_with_dumps_does_not_say_nothing_was_written(
    model_path, tmp_path, capsys, monkeypatch
):
    from graphopt.backends import onnxruntime as ort_backend

    real = ort_backend.compare

    def compare(*args: object, **kwargs: object) -> object:
        diffs = real(*args, **kwargs)  # type: ignore[arg-type]
        diffs[0].max_abs = 1.0
        return diffs

    monkeypatch.setattr(ort_backend, "compare", compare)
    out, dump = tmp_path / "o.onnx", tmp_path / "dump"
    argv = ["optimize", str(model_path), "-o", str(out), "--verify"]
    assert main([*argv, "--dump-dir", str(dump)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(f"; the output was not written ({dump} holds the dumps)")
    assert not out.exists() and any(dump.iterdir())
    assert main(argv) == 2
    assert capsys.readouterr().err.strip().endswith("; nothing was written")


def test_merge_refuses_a_report_named_dash(model_path, tmp_path, capsys, monkeypatch):
    """`--report -` wrote a file named '-' (where `-o -` means standard output)."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "mm.onnx"
    argv = ["merge", str(model_path), str(model_path), "-o", str(out), "--report", "-"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("graphopt merge: error: --report -: the JSON report is written to a file")
    assert not (tmp_path / "-").exists() and not out.exists()


def _conv_relu(path: Path) -> None:
    import numpy as np
    import onnx.helper as oh

    rng = np.random.default_rng(0)
    graph = oh.make_graph(
        [
            oh.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
            oh.make_node("Relu", ["c"], ["y"]),
        ],
        "g",
        [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 8, 8])],
        [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4, 8, 8])],
        [onnx.numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")],
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_demo_of_an_ort_pipeline_compares_at_disable_too(tmp_path, capsys, monkeypatch):
    """demo compared an ort-* pipeline's model (FusedConv) only at ORT_ENABLE_ALL, not at
    ORT_DISABLE_ALL, where it is meant to run."""
    import numpy as np

    from graphopt import realmodels
    from graphopt.backends import onnxruntime as ort_backend

    path = tmp_path / "m.onnx"
    _conv_relu(path)
    feeds = [{"x": np.full((1, 3, 8, 8), v, np.float32)} for v in (0.5, -1.0)]
    monkeypatch.setattr(realmodels, "fetch_model", lambda name: path)
    monkeypatch.setattr(realmodels, "model_inputs", lambda name, count: feeds[:count])
    monkeypatch.setattr(realmodels, "pending_downloads", lambda name, images=0: [])
    seen: list[str] = []
    real = ort_backend.session

    def spy(model: object, **kwargs: object) -> object:
        seen.append(str(kwargs.get("level", "all")))
        return real(model, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ort_backend, "session", spy)
    assert main(["demo", "-p", "ort-fusions", "--images", "1"]) == 0
    out = capsys.readouterr().out
    assert sorted(set(seen)) == ["all", "disable"]
    assert "real image 0 at level disable: output y: max abs diff" in out
    seen.clear()
    assert main(["demo", "--images", "1"]) == 0  # standard ONNX: as before
    assert set(seen) == {"all"} and "real image 0: output y" in capsys.readouterr().out
