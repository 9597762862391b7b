"""merge names the model whose opset conversion the checker refuses.

A MeanVarianceNormalization-9 model merged with an opset 13 model is converted to opset 13 by
onnx.version_converter; the converted model fails onnx.checker (onnx's own MVN-13 function body
does not infer), where the model passes, and merge said "the merged model fails onnx.checker:
... (op_type:MeanVarianceNormalization, ...)", as if merging had made it. It names the model
and the conversion now (and still refuses it). A Scan-8 model, whose conversion onnxruntime
cannot load either, is said by that check first (tests/test_h202_merge_conversion_runtime.py).
"""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import parser

from graphopt.cli import main
from graphopt.multitask import MergeError, merge

OPSET_13 = parser.parse_model(
    '<ir_version: 8, opset_import: ["" : 13]>\ng (float[1,2] z) => (float[1,2] w) { w = Relu(z) }'
)


def _mvn9() -> onnx.ModelProto:
    model = parser.parse_model(
        '<ir_version: 7, opset_import: ["" : 9]>\n'
        "g (float[1,3,4,4] x) => (float[1,3,4,4] y) { y = MeanVarianceNormalization(x) }"
    )
    onnx.checker.check_model(model, full_check=True)  # the model itself passes
    return model


def test_merge_names_the_model_whose_conversion_fails_the_checker() -> None:
    with pytest.raises(MergeError) as caught:
        merge([_mvn9(), OPSET_13])
    text = str(caught.value)
    assert text.startswith(
        "model 0: needs default opset 13 to merge (it uses 9) and onnx.version_converter's "
        "model fails onnx.checker ("
    ), text
    assert "MeanVarianceNormalization" in text and "merged model" not in text
    assert "\n" not in text


def test_cli_says_it_in_one_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    onnx.save(_mvn9(), tmp_path / "mvn9.onnx")
    onnx.save(OPSET_13, tmp_path / "relu.onnx")
    out = tmp_path / "m.onnx"
    argv = ["merge", str(tmp_path / "mvn9.onnx"), str(tmp_path / "relu.onnx"), "-o", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "mvn9.onnx: needs default opset 13" in err
    assert not out.exists()
