"""`disable` / `--disable` naming a registered pass the pipeline does not run (H227).

A name that is no pass at all is a one-line `PipelineError` naming the valid passes (exit 2
from the CLI). A registered pass the chosen pipeline never runs (`fuse-patterns` or
`ort-nchwc-layout` with `default`) was taken without a word: disabling it changed nothing,
which the user did not mean. Now one warning names the pass and the pipeline's passes; the run
goes on (the request is harmless, and scripts pass one --disable list to several pipelines).
"""

from __future__ import annotations

import logging

import onnx
import pytest

import graphopt
from graphopt import cli

MODEL = """<ir_version: 8, opset_import: ["" : 17]>
g (float[1,4] x) => (float[1,4] y) { a = Relu(x)  b = Identity(a)  y = Relu(b) }"""


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_api_warns_of_a_pass_the_pipeline_does_not_run(caplog) -> None:  # type: ignore[no-untyped-def]
    model = onnx.parser.parse_model(MODEL)
    with caplog.at_level(logging.WARNING, logger="graphopt"):
        out = graphopt.optimize(model, "default", disable=["fuse-patterns"])
    assert [n.op_type for n in out.graph.node] == ["Relu", "Relu"]  # the run went on
    said = [w for w in _warnings(caplog) if "disabling" in w]
    assert len(said) == 1
    assert said[0].startswith(
        "pipeline 'default' runs no 'fuse-patterns' pass: disabling it changes nothing "
        "(its passes: constants-to-initializers, constant-folding, "
    )
    assert "\n" not in said[0]


def test_api_says_nothing_for_a_pass_the_pipeline_runs(caplog) -> None:  # type: ignore[no-untyped-def]
    model = onnx.parser.parse_model(MODEL)
    with caplog.at_level(logging.WARNING, logger="graphopt"):
        graphopt.optimize(model, "default", disable=["eliminate-dead-code"])
    assert not [w for w in _warnings(caplog) if "disabling" in w]


def test_api_refuses_a_name_that_is_no_pass() -> None:
    model = onnx.parser.parse_model(MODEL)
    with pytest.raises(graphopt.PipelineError, match="cannot disable unknown pass 'fuse-patern'"):
        graphopt.optimize(model, "default", disable=["fuse-patern"])


def test_cli_warns_once_for_two_absent_passes(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    onnx.save(onnx.parser.parse_model(MODEL), tmp_path / "m.onnx")
    argv = ["optimize", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "o.onnx")]
    with caplog.at_level(logging.WARNING, logger="graphopt"):
        code = cli.main([*argv, "--disable", "ort-nchwc-layout", "--disable", "fuse-patterns"])
    assert code == 0
    assert (tmp_path / "o.onnx").is_file()
    said = [w for w in _warnings(caplog) if "disabling" in w]
    assert len(said) == 1
    assert said[0].startswith(
        "pipeline 'default' runs no 'fuse-patterns' or 'ort-nchwc-layout' pass: disabling them"
    )


def test_cli_typo_is_one_line_exit_2(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    onnx.save(onnx.parser.parse_model(MODEL), tmp_path / "m.onnx")
    argv = ["optimize", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "o.onnx")]
    assert cli.main([*argv, "--disable", "fuse-patern"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("graphopt optimize: error: cannot disable unknown pass 'fuse-patern'; ")
    assert "fuse-patterns" in err  # the valid names are listed
    assert not (tmp_path / "o.onnx").exists()
