"""A `pathlib.Path` given as the pipeline names a file, never a built-in (H227).

`graphopt.optimize(m, Path("default"))` ran the built-in `default` even with a file of that name
in the working directory, whose passes the caller meant. A str keeps meaning the built-in
first (documented: "a built-in name, or a YAML path"); a Path is read as the file, and a Path
with no file behind it is a one-line `PipelineError` (it ran the built-in, without a word).
"""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

import graphopt
from graphopt.pipeline import load_pipeline

MODEL = """<ir_version: 8, opset_import: ["" : 17]>
g (float[1,4] x) => (float[1,4] y) { a = Identity(x)  y = Relu(a) }"""

# runs no pass at all: the Identity stays, where the built-in `default` removes it
MINE = "name: mine\npasses: []\n"


def test_a_path_reads_the_file_of_a_builtins_name(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    Path("default").write_text(MINE, encoding="utf-8")
    assert load_pipeline(Path("default")).name == "mine"
    out = graphopt.optimize(onnx.parser.parse_model(MODEL), Path("default"))
    assert [n.op_type for n in out.graph.node] == ["Identity", "Relu"]


def test_a_str_still_names_the_builtin_first(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    Path("default").write_text(MINE, encoding="utf-8")
    assert load_pipeline("default").name == "default"
    out = graphopt.optimize(onnx.parser.parse_model(MODEL), "default")
    assert [n.op_type for n in out.graph.node] == ["Relu"]


def test_a_path_with_no_file_is_refused(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    with pytest.raises(graphopt.PipelineError) as e:
        graphopt.optimize(onnx.parser.parse_model(MODEL), Path("tensorrt"))
    assert str(e.value) == (
        "tensorrt: pipeline file not found (the built-in is named by the string 'tensorrt')"
    )
    with pytest.raises(graphopt.PipelineError, match=r"^nope: pipeline file not found$"):
        load_pipeline(Path("nope"))
