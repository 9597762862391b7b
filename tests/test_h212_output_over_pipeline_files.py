"""optimize -o never writes over a file the pipeline reads (H212).

`-o p.yaml --pipeline p.yaml` was refused, but not `-o` naming a file the pipeline includes or
a rule file of its `rules:`: the model replaced it (exit 0), and every later run refused the
pipeline ("not UTF-8 text"). The built-in pipelines are files too: `-o` naming the installed
simplify.yaml (included by default) replaced it.
"""

from __future__ import annotations

import pytest

from graphopt.cli import main
from graphopt.pipeline import builtin_pipelines
from tests.models_util import matmul_model
from tests.test_patterns_engine import QUICKGELU_RULE


@pytest.fixture
def files(tmp_path):
    import onnx

    model = tmp_path / "m.onnx"
    onnx.save(matmul_model(), str(model))
    (tmp_path / "inc.yaml").write_text("passes: [eliminate-dead-code]\n")
    (tmp_path / "r.yaml").write_text(QUICKGELU_RULE)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "top.yaml").write_text(
        "passes: [{include: ../inc.yaml}, fuse-patterns]\nrules: [../r.yaml]\n"
    )
    return tmp_path


@pytest.mark.parametrize(
    ("output", "what"),
    [
        ("inc.yaml", "--pipeline's included file"),
        ("r.yaml", "--pipeline's rule file"),
        ("sub/top.yaml", "--pipeline file"),
    ],
)
def test_o_naming_a_file_the_pipeline_reads_is_refused(files, capsys, output: str, what: str):
    before = (files / output).read_bytes()
    argv = ["optimize", str(files / "m.onnx"), "-o", str(files / output)]
    assert main([*argv, "--pipeline", str(files / "sub" / "top.yaml")]) == 2
    err = capsys.readouterr().err
    assert err == f"graphopt optimize: error: -o {files / output} is the {what}; give another\n"
    assert (files / output).read_bytes() == before
    # and the pipeline still runs
    assert main([*argv[:3], str(files / "o.onnx"), "--pipeline", str(files / "sub/top.yaml")]) == 0


def test_the_built_in_pipelines_files_count_too() -> None:
    """Checked without writing: `-o` over the installed files would replace them."""
    from graphopt.commands.optimize import _pipeline_reads

    builtins = builtin_pipelines()
    assert _pipeline_reads(None) == [
        ("default pipeline", str(builtins["default"])),
        ("default pipeline's included", str(builtins["simplify"])),
        ("default pipeline's included", str(builtins["simplify"])),
    ]
    assert ("--pipeline's included", str(builtins["ort-fusions"])) in _pipeline_reads("ort-cpu")


def test_a_pipeline_that_does_not_parse_names_only_itself(tmp_path) -> None:
    from graphopt.commands.optimize import _pipeline_reads

    bad = tmp_path / "bad.yaml"
    bad.write_text("passes:\n\t- x\n")
    assert _pipeline_reads(str(bad)) == [("--pipeline", str(bad))]
    assert _pipeline_reads("no-such-pipeline") == [("--pipeline", "no-such-pipeline")]
