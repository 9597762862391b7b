"""merge names the model whose opset conversion the checker refuses.

A Scan-8 model (its scan inputs carry a batch axis) merged with an opset 13 model is converted
to opset 13 by onnx.version_converter, which keeps the batch axis in Scan-9, whose scan inputs
have none: the converted model fails onnx.checker, and merge said "the merged model fails
onnx.checker: ... (op_type:Scan, ...) differ in rank", as if the merge had made it. It names
the model and the conversion now (and still refuses it).
"""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper, parser

from graphopt.cli import main
from graphopt.multitask import MergeError, merge

OPSET_13 = parser.parse_model(
    '<ir_version: 8, opset_import: ["" : 13]>\ng (float[1,2] z) => (float[1,2] w) { w = Relu(z) }'
)


def _scan8() -> onnx.ModelProto:
    def vi(name: str, dims: list[int]) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)

    body = helper.make_graph(
        [helper.make_node("Add", ["s", "xi"], ["s2"]), helper.make_node("Identity", ["s2"], ["o"])],
        "body",
        [vi("s", [3]), vi("xi", [3])],
        [vi("s2", [3]), vi("o", [3])],
    )
    scan = helper.make_node(
        "Scan", ["", "init", "x"], ["final", "outs"], body=body, num_scan_inputs=1
    )
    graph = helper.make_graph(
        [scan],
        "g",
        [vi("init", [2, 3]), vi("x", [2, 4, 3])],
        [vi("final", [2, 3]), vi("outs", [2, 4, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 8)], ir_version=4)
    onnx.checker.check_model(model, full_check=True)  # the model itself passes
    return model


def test_merge_names_the_model_whose_conversion_fails_the_checker() -> None:
    with pytest.raises(MergeError) as caught:
        merge([_scan8(), OPSET_13])
    text = str(caught.value)
    assert text.startswith(
        "model 0: needs default opset 13 to merge (it uses 8) and onnx.version_converter's "
        "model fails onnx.checker ("
    ), text
    assert "Scan" in text and "merged model" not in text and "\n" not in text


def test_cli_says_it_in_one_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    onnx.save(_scan8(), tmp_path / "scan8.onnx")
    onnx.save(OPSET_13, tmp_path / "relu.onnx")
    out = tmp_path / "m.onnx"
    argv = ["merge", str(tmp_path / "scan8.onnx"), str(tmp_path / "relu.onnx"), "-o", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "scan8.onnx: needs default opset 13" in err
    assert not out.exists()
