"""A model importing one domain at two opset versions ("" and "ai.onnx" are one domain): which
version applies is not settled. onnxruntime reads the last import, onnx.checker the last ""
one ("" 11 then ai.onnx 13: a Squeeze with an `axes` attribute is valid to the checker and
refused by onnxruntime), and graphopt read either: `default_opset` the first, the Graph's index
and quantize's check the last (quantize of "" 11 then "" 13 stopped on onnx.version_converter's
assertion "initial_version does not reflect current state of model"). `load` now refuses such
a model in one line; the same version imported twice still loads."""

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
from tests.fusion_models import run_at
from tests.test_cli_review3 import one_line_error


def _model(imports: str) -> onnx.ModelProto:
    return onnx.parser.parse_model(f"""
<ir_version: 8, opset_import: [{imports}]>
g (float[1,4] x) => (float[4] y) {{
  a = Relu(x)
  y = Squeeze<axes = [0]>(a)
}}
""")


REFUSED = {
    '"" 11, "" 13': '"" : 11, "" : 13',
    '"" 13, "" 11': '"" : 13, "" : 11',
    '"" 11, ai.onnx 13': '"" : 11, "ai.onnx" : 13',
    'ai.onnx 13, "" 11': '"ai.onnx" : 13, "" : 11',
    "com.microsoft 1, 2": '"" : 11, "com.microsoft" : 1, "com.microsoft" : 2',
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_in_one_line(case: str) -> None:
    model = _model(REFUSED[case])
    for given in (model, model.SerializeToString()):
        with pytest.raises(LoadError, match="at two opsets") as caught:
            graphopt.optimize(given)
        assert "\n" not in str(caught.value)
    with pytest.raises(LoadError, match="at two opsets"):
        post_dominator_tree(model)


def test_checker_and_onnxruntime_disagree() -> None:
    """Why the model is refused rather than read one way: for "" 11 then ai.onnx 13, the
    checker validates the opset-11 Squeeze and onnxruntime refuses it."""
    import onnxruntime as ort

    model = _model(REFUSED['"" 11, ai.onnx 13'])
    onnx.checker.check_model(model, full_check=True)
    with pytest.raises(Exception, match="axes"):
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def test_cli_refuses_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source, out = tmp_path / "m.onnx", tmp_path / "out.onnx"
    source.write_bytes(_model(REFUSED['"" 11, "" 13']).SerializeToString())
    assert main(["optimize", str(source), "-o", str(out)]) == 2
    one_line_error(capsys, "imports the default domain at two opsets (11 and 13)")
    assert not out.exists()


@pytest.mark.parametrize(
    "imports", ['"" : 11, "" : 11', '"" : 11, "ai.onnx" : 11', '"ai.onnx" : 11'], ids=str
)
def test_one_version_still_loads(imports: str) -> None:
    model = _model(imports)
    out = graphopt.optimize(model)
    x = {"x": np.array([[-1.0, 2.0, -3.0, 4.0]], np.float32)}
    np.testing.assert_array_equal(run_at(out, x, "disable")["y"], run_at(model, x, "disable")["y"])
