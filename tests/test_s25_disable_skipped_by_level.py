"""`disable` / `--disable` of a pass the pipeline has but runs at no step at the opt level in
force (`fold-batchnorm`, level 1, with `opt_level=0`).

Disabling it changed nothing, like disabling a pass the pipeline lacks (H227), but only the
absent pass got a warning. Now the same one-line warning names the pass, the pipeline and the
level; the run goes on. A pass the level does run (`eliminate-dead-code`, level 0) gets none.
"""

from __future__ import annotations

import logging

import onnx
import pytest

import graphopt
from graphopt import cli

MODEL = """<ir_version: 8, opset_import: ["" : 17]>
g (float[1,4] x) => (float[1,4] y) { a = Relu(x)  b = Identity(a)  y = Relu(b) }"""

SAID = (
    "pipeline 'default' runs no 'fold-batchnorm' pass at opt level 0: disabling it changes nothing"
)


def _disabling(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "disabling" in r.getMessage()
    ]


def test_api_warns_of_a_pass_the_level_does_not_run(caplog) -> None:  # type: ignore[no-untyped-def]
    model = onnx.parser.parse_model(MODEL)
    with caplog.at_level(logging.WARNING, logger="graphopt"):
        out = graphopt.optimize(model, "default", opt_level=0, disable=["fold-batchnorm"])
    assert [n.op_type for n in out.graph.node] == ["Relu", "Identity", "Relu"]  # level 0 ran
    assert _disabling(caplog) == [SAID]


def test_api_says_nothing_for_a_pass_the_level_runs(caplog) -> None:  # type: ignore[no-untyped-def]
    model = onnx.parser.parse_model(MODEL)
    with caplog.at_level(logging.WARNING, logger="graphopt"):
        graphopt.optimize(model, "default", opt_level=0, disable=["eliminate-dead-code"])
        graphopt.optimize(model, "default", disable=["fold-batchnorm"])  # level 1 runs it
    assert _disabling(caplog) == []


def test_pipeline_opt_level_counts_too(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    yaml = tmp_path / "p.yaml"
    yaml.write_text(
        "name: mine\nopt_level: 0\npasses:\n  - fold-batchnorm\n  - eliminate-dead-code\n"
    )
    model = onnx.parser.parse_model(MODEL)
    with caplog.at_level(logging.WARNING, logger="graphopt"):
        graphopt.optimize(model, str(yaml), disable=["fold-batchnorm"])
    assert _disabling(caplog) == [
        "pipeline 'mine' runs no 'fold-batchnorm' pass at opt level 0: disabling it changes nothing"
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="graphopt"):  # the user's level wins
        graphopt.optimize(model, str(yaml), opt_level=1, disable=["fold-batchnorm"])
    assert _disabling(caplog) == []


def test_cli_warns_once_and_writes(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    onnx.save(onnx.parser.parse_model(MODEL), tmp_path / "m.onnx")
    argv = ["optimize", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "o.onnx")]
    with caplog.at_level(logging.WARNING, logger="graphopt"):
        code = cli.main([*argv, "--opt-level", "0", "--disable", "fold-batchnorm"])
    assert code == 0
    assert (tmp_path / "o.onnx").is_file()
    assert _disabling(caplog) == [SAID]
