"""A model importing the default domain twice.

As "" and as "ai.onnx" at different versions, what it means is not settled: onnxruntime reads
the last import of either ("" 11 then ai.onnx 13: a Squeeze with an `axes` attribute is
refused), onnx.checker the "" one (valid to it). `load` now refuses it in one line.

Twice as "" (or twice as "ai.onnx"), or under both names at one version, it still loads: there
onnxruntime and onnx.checker both read the last import, as the Graph's index does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnx.parser
import pytest

import graphopt
from graphopt.analysis import post_dominator_tree
from graphopt.cli import main
from graphopt.errors import LoadError
from graphopt.ir.graph import Graph
from tests.fusion_models import run_at
from tests.test_cli_review3 import one_line_error

X = {"x": np.array([[-1.0, 2.0, -3.0, 4.0]], np.float32)}


def _model(imports: str, squeeze: str = "Squeeze<axes = [0]>(a)") -> onnx.ModelProto:
    return onnx.parser.parse_model(f"""
<ir_version: 8, opset_import: [{imports}]>
g (float[1,4] x) => (float[4] y) {{
  a = Relu(x)
  y = {squeeze}
}}
""")


REFUSED = {
    '"" 11, ai.onnx 13': ('"" : 11, "ai.onnx" : 13', '"" at opset 11 and as "ai.onnx" at opset 13'),
    'ai.onnx 13, "" 11': ('"ai.onnx" : 13, "" : 11', '"" at opset 11 and as "ai.onnx" at opset 13'),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_two_names_at_two_versions_refused(case: str) -> None:
    imports, needle = REFUSED[case]
    model = _model(imports)
    for given in (model, model.SerializeToString()):
        with pytest.raises(LoadError, match=needle) as caught:
            graphopt.optimize(given)
        assert "\n" not in str(caught.value)
    with pytest.raises(LoadError, match=needle):
        post_dominator_tree(model)


def test_checker_and_onnxruntime_disagree() -> None:
    """Why it is refused rather than read one way."""
    import onnxruntime as ort

    model = _model(REFUSED['"" 11, ai.onnx 13'][0])
    onnx.checker.check_model(model, full_check=True)
    with pytest.raises(Exception, match="axes"):
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def test_cli_refuses_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source, out = tmp_path / "m.onnx", tmp_path / "out.onnx"
    source.write_bytes(_model(REFUSED['"" 11, ai.onnx 13'][0]).SerializeToString())
    assert main(["optimize", str(source), "-o", str(out)]) == 2
    one_line_error(capsys, '"ai.onnx" at opset 13')
    assert not out.exists()


@pytest.mark.parametrize(
    ("imports", "squeeze", "version"),
    [
        ('"" : 13, "" : 11', "Squeeze<axes = [0]>(a)", 11),
        ('"" : 11, "" : 13', "Squeeze(a, zero)", 13),
        ('"ai.onnx" : 11, "ai.onnx" : 13', "Squeeze(a, zero)", 13),
        ('"" : 13, "ai.onnx" : 13', "Squeeze(a, zero)", 13),
    ],
    ids=["'' 13, '' 11", "'' 11, '' 13", "ai.onnx twice", "both names at one version"],
)
def test_read_as_the_last_import(imports: str, squeeze: str, version: int) -> None:
    model = _model(imports, squeeze)
    if "zero" in squeeze:
        model.graph.initializer.append(onnx.numpy_helper.from_array(np.array([0]), "zero"))
    onnx.checker.check_model(model, full_check=True)
    assert Graph(model).opset_version("") == version
    out = graphopt.optimize(model)
    np.testing.assert_array_equal(run_at(out, X, "disable")["y"], run_at(model, X, "disable")["y"])
