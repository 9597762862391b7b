"""`graphopt.quantize(..., pipeline=Path(...))` reads the file, never a built-in, as optimize
does (H234, after H227's df3935a).

quantize turned the Path into a str, which names a built-in first: `pipeline=Path("default")`
ran the built-in `default` with a file `default` there to be read (the Identity below, which
the file's empty pipeline keeps, was gone), and recorded the built-in in the cache's sidecar;
`Path("tensorrt")` with no such file ran the built-in without a word. Now a Path is the file:
its passes run, the sidecar records it as './default' (a name no built-in takes, so a later
run reads the same file), and a Path with no file is optimize's one-line `PipelineError`. A str
still names the built-in first (the control).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnx.parser
import pytest

import graphopt
from graphopt.quant import sidecar as sidecar_io

# the Identity stays under a pipeline of no passes, and goes under the built-in `default`
WEIGHTS = ", ".join(str((i % 5 - 2) / 4) for i in range(12))
MODEL = f"""<ir_version: 8, opset_import: ["" : 17]>
g (float[1, 3, 8, 8] x) => (float[1, 4, 8, 8] y) <float[4, 3, 1, 1] w = {{{WEIGHTS}}}> {{
  a = Identity(x)
  c = Conv(a, w)
  y = Relu(c)
}}"""

FEEDS = [{"x": np.linspace(-1, 1, 192, dtype=np.float32).reshape(1, 3, 8, 8)}]
MINE = "name: mine\npasses: []\n"


def _ops(model: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in model.graph.node]


def test_a_path_reads_the_file_of_a_builtins_name(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    Path("default").write_text(MINE, encoding="utf-8")
    out = graphopt.quantize(onnx.parser.parse_model(MODEL), FEEDS, pipeline=Path("default"))
    assert "Identity" in _ops(out)
    out = graphopt.quantize(
        onnx.parser.parse_model(MODEL), FEEDS, pipeline=Path("default"), cache="c.cache"
    )
    assert "Identity" in _ops(out)
    side = sidecar_io.read("c.cache")
    assert side is not None and side.pipeline is not None
    assert side.pipeline[0] == "./default"
    assert side.pipeline == sidecar_io.pipeline_identity("./default", "tensorrt")


def test_a_path_with_no_file_is_refused_as_optimize_refuses_it(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    with pytest.raises(graphopt.PipelineError) as e:
        graphopt.quantize(onnx.parser.parse_model(MODEL), FEEDS, pipeline=Path("tensorrt"))
    assert str(e.value) == (
        "tensorrt: pipeline file not found (the built-in is named by the string 'tensorrt')"
    )


def test_a_str_still_names_the_builtin_first(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    Path("default").write_text(MINE, encoding="utf-8")
    out = graphopt.quantize(onnx.parser.parse_model(MODEL), FEEDS, pipeline="default")
    assert "Identity" not in _ops(out)
    assert "Identity" in _ops(onnx.parser.parse_model(MODEL))
