"""H128, a user's walk through README.md with the real detectors: what did not hold.

- README's user pipeline (`rules: [my_rules.yaml]` with no rule pass) was refused: "rules: loads
  1 rule(s) that no step runs"; it now has a `fuse-patterns` step.
- optimize's `--input-shape` errors named `input_shapes:`, the Python API's argument, not the
  flag.
- `optimize --shapes` without --verify said "use it with --verify, not --inputs", with no
  --inputs given.
- merge's `--prefix` count and `--input-map` index errors named no flag ("input_map key 5 is
  neither a model index nor a prefix").
- split's "kept 1481 nodes" and merge's 607 "nodes" for the same model (merge leaves Constant
  nodes out) now read as the same model.
- distill-targets' `--hints` typo was "pass expose-tensors: no tensor named ...", a pass the user
  never named; its progress bar redrew with a carriage return into logs (every redraw on one
  line) where quantize's and bench's write whole lines.
- distill-targets' missing --data said "nothere: no such file or folder" (build: "--calib
  nothere: no such folder"); build said "written to m.plan (+ .json)" where the others end
  "; wrote OUT".
- bench said "1 runs".
- Help: the top-level description said INT8 "with entropy calibration" (the default is max);
  options with a default that their help did not give.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import onnx
import pytest

from graphopt.cli import build_parser, main
from tests.test_cli_review3 import interrupt_distill_after_two

pytestmark = pytest.mark.realmodel

README = Path(__file__).resolve().parents[1] / "README.md"
CLS = "transpose_0.tmp_0,transpose_2.tmp_0,transpose_4.tmp_0,transpose_6.tmp_0"
BOX = "transpose_1.tmp_0,transpose_3.tmp_0,transpose_5.tmp_0,transpose_7.tmp_0"


def _one_line_error(capsys: pytest.CaptureFixture[str], start: str) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    assert err.count("\n") == 1, err
    assert err.startswith(start), err
    return err


# ------------------------------------------------------------------------------ README


def test_the_readme_user_pipeline_runs_with_its_rules_file(tmp_path, real_model):
    import graphopt

    text = README.read_text(encoding="utf-8")
    block = text.split("A user's file works the same way", 1)[1].split("```yaml\n", 1)[1]
    (tmp_path / "mine.yaml").write_text(block.split("```", 1)[0], encoding="utf-8")
    assert "rules: [my_rules.yaml]" in block
    (tmp_path / "my_rules.yaml").write_text(  # a user rule, in the `user` group by default
        "rules:\n"
        "  - name: double-neg\n"
        "    target: |\n"
        "      y = Neg(x)\n"
        "      z = Neg(y)\n"
        "    replacement: z = Identity(x)\n",
        encoding="utf-8",
    )
    model, report = graphopt.optimize_with_report(
        str(real_model("common_det")), str(tmp_path / "mine.yaml")
    )
    assert report.pipeline == "mine"
    assert "fuse-patterns" in report.totals()
    # the example's steps reach what `default` reaches on common_det
    assert len(model.graph.node) == 271


# ------------------------------------------------------------------------------ shapes


def test_optimize_input_shape_on_a_fixed_dim_names_the_flag(tmp_path, real_model, capsys):
    out = tmp_path / "o.onnx"
    argv = ["optimize", str(real_model("common_det")), "-o", str(out), "--input-shape"]
    assert main([*argv, "images:1x3x320x320"]) == 2
    _one_line_error(
        capsys, "graphopt optimize: error: --input-shape: input 'images' dim 2 is 416, got 320"
    )
    assert main([*argv, "nosuch:1x3x8x8"]) == 2
    _one_line_error(capsys, "graphopt optimize: error: --input-shape: the model has no input")
    assert not out.exists()


def test_optimize_shapes_without_verify_names_only_what_is_missing(tmp_path, real_model, capsys):
    out = str(tmp_path / "o.onnx")
    argv = ["optimize", str(real_model("common_det")), "-o", out, "--shapes", "images:1x3x416x416"]
    assert main(argv) == 2
    err = _one_line_error(capsys, "graphopt optimize: error: --shapes")
    assert "use it with --verify" in err and "--inputs" not in err
    feeds = tmp_path / "f.npz"
    feeds.write_bytes(b"")  # never read: refused before
    assert main([*argv, "--verify", "--inputs", str(feeds)]) == 2
    err = _one_line_error(capsys, "graphopt optimize: error: --shapes")
    assert "which --inputs replaces" in err


# ------------------------------------------------------------------------------ merge/split


def test_merge_prefix_and_input_map_errors_name_the_flag(tmp_path, real_model, capsys):
    layout = str(real_model("layout_cdla"))
    out = tmp_path / "m.onnx"
    argv = ["merge", layout, layout, "-o", str(out)]
    assert main([*argv, "--prefix", "a_"]) == 2
    _one_line_error(capsys, "graphopt merge: error: --prefix a_: 1 prefix for 2 models")
    assert main([*argv, "--input-map", "5:image=image"]) == 2
    _one_line_error(
        capsys, "graphopt merge: error: --input-map '5:image=image': there is no model 5"
    )
    assert not out.exists()


def test_split_counts_nodes_as_merge_does_for_the_same_model(tmp_path, real_model, capsys):
    from graphopt.multitask import merge_with_report

    layout = str(real_model("layout_cdla"))
    cls, box = tmp_path / "cls.onnx", tmp_path / "box.onnx"
    assert main(["split", layout, "-o", str(cls), "--outputs", CLS]) == 0
    line = capsys.readouterr().out
    assert main(["split", layout, "-o", str(box), "--outputs", BOX]) == 0
    capsys.readouterr()
    found = re.search(r"kept (\d+) nodes \((\d+) Constant, (\d+) others: merge's count\)", line)
    assert found, line
    total, constants, others = map(int, found.groups())
    kept = onnx.load(str(cls)).graph.node
    assert total == len(kept) and constants == sum(n.op_type == "Constant" for n in kept)
    _, report = merge_with_report([str(cls), str(box)])
    assert report.tasks[0].nodes == others == 607  # README's merge table: cls_ 607


# ------------------------------------------------------------------------------ distill


@pytest.fixture
def photos(tmp_path):
    from graphopt.realmodels import image_paths

    folder = tmp_path / "photos"
    folder.mkdir()
    for path in image_paths()[:4]:
        shutil.copy(path, folder)
    return folder


def _distill(real_model, photos: Path, out: Path) -> list[str]:  # type: ignore[no-untyped-def]
    """`graphopt distill-targets` of layout_cdla on the photographs, to OUT."""
    model = str(real_model("layout_cdla"))
    return ["distill-targets", model, "--data", str(photos), "-o", str(out)]


def test_distill_hint_typo_names_the_flag(tmp_path, real_model, photos, capsys):
    out = tmp_path / "t"
    argv = _distill(real_model, photos, out)
    assert main([*argv, "--hints", "nope", "--preset", "layout_cdla"]) == 2
    err = _one_line_error(capsys, "graphopt distill-targets: error: --hints nope: ")
    assert "no tensor named 'nope'" in err and "expose-tensors" not in err
    assert not out.exists()


def test_distill_progress_writes_whole_lines_to_a_log_and_counts_a_resume(
    tmp_path, real_model, photos, capsys, monkeypatch
):
    import json

    from graphopt.commands import distill

    out = tmp_path / "t"
    argv = [*_distill(real_model, photos, out), "--preset", "layout_cdla", "--checkpoint", "1"]
    draw = interrupt_distill_after_two(monkeypatch)
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert "\r" not in err, err  # captured stderr is no terminal: whole lines, as quantize's
    assert err.splitlines()[0].startswith("distill-targets 0/4 [")
    assert err.splitlines()[-1].startswith("graphopt distill-targets: interrupted;")
    assert json.loads((out / "manifest.json").read_text())["done"] == 2
    monkeypatch.setattr(distill._Bar, "__call__", draw)
    assert main(argv) == 0  # resumes: counts the two samples it runs
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("distill-targets (resumed after 2 of 4) 0/2 ["), lines
    assert lines[-1].startswith("distill-targets (resumed after 2 of 4) 2/2 [====="), lines
    assert json.loads((out / "manifest.json").read_text())["done"] == 4


def test_distill_missing_data_names_the_flag(tmp_path, real_model, capsys):
    out = tmp_path / "t"
    argv = ["distill-targets", str(real_model("layout_cdla")), "-o", str(out)]
    assert main([*argv, "--data", str(tmp_path / "nothere")]) == 2
    _one_line_error(  # as build's "--calib DIR: no such folder"
        capsys, f"graphopt distill-targets: error: --data {tmp_path / 'nothere'}: no such file"
    )
    assert not out.exists()


# ------------------------------------------------------------------------------ build


def test_build_says_what_it_wrote_as_the_other_commands_do(
    tmp_path, real_model, capsys, monkeypatch
):
    """It said "... engine (0.0 MiB) written to m.plan (+ .json)"; optimize, quantize and
    split end with "; wrote OUT". The TensorRT here is tests/trt_fake.py's (no GPU)."""
    import sys

    from graphopt.backends import trt_runtime
    from tests.trt_fake import fake_tensorrt

    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt("10.16.1.11"))
    monkeypatch.setattr(trt_runtime, "cuda_device_count", lambda: (1, ""))
    plan = tmp_path / "m.plan"
    assert main(["build", str(real_model("common_det")), "-o", str(plan)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.endswith(f"; wrote {plan} and {plan}.json"), line
    assert "fp32 engine" in line and plan.is_file() and Path(f"{plan}.json").is_file()


def test_bench_counts_one_run_in_the_singular(real_model, capsys):
    model = str(real_model("common_det"))
    assert main(["bench", model, "--runs", "1", "--warmup", "0", "--no-progress"]) == 0
    line = capsys.readouterr().out
    assert ": 1 run, p50 " in line, line  # it said "1 runs"
    assert main(["bench", model, "--runs", "2", "--warmup", "0", "--no-progress"]) == 0
    assert ": 2 runs, p50 " in capsys.readouterr().out


# ------------------------------------------------------------------------------ help


def test_help_gives_the_defaults_and_the_default_calibration():
    parser = build_parser()
    assert "with entropy calibration" not in (parser.description or "")
    assert "max" in (parser.description or "")
    # quantize and demo are other sessions' files; every other command says its defaults
    for name, command in parser.commands.items():  # type: ignore[attr-defined]
        if name in ("quantize", "demo"):
            continue
        for action in command._actions:
            if action.default in (None, False, [], "", "==SUPPRESS==") or not action.help:
                continue
            assert "default" in action.help, (name, action.option_strings, action.help)
    calib_count = build_parser().commands["build"]._option_string_actions["--calib-count"]  # type: ignore[attr-defined]
    assert "files" in calib_count.help and "(default 32)" in calib_count.help
