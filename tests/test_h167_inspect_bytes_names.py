"""H167: names that are not UTF-8 in the file reach Python as bytes (onnx.proto is proto2: its
strings are not checked). `inspect` escaped them in op names only: a bytes opset domain was a
dict key `--json` refused (TypeError, a traceback), and a bytes function domain or node name
beside a text one did not sort (TypeError in the text report too)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from graphopt.cli import main

BAD = b"\xffZZ"  # not UTF-8


def _write(model: onnx.ModelProto, path: Path) -> Path:
    path.write_bytes(model.SerializeToString().replace(b"QQQ", BAD))
    return path


def _functions_model(path: Path) -> Path:
    """Two local functions, one in a domain that is not UTF-8; so is the producer's name."""
    model = onnx.parser.parse_model(
        """<ir_version: 8, opset_import: ["" : 17, "QQQloc" : 1, "other" : 1],
            producer_name: "QQQprod">
        g (float[2] x) => (float[2] y) {
            t = QQQloc.myrelu(x)
            y = other.myneg(t)
        }
        <domain: "QQQloc", opset_import: ["" : 17]>
        myrelu (z) => (w) { w = Relu(z) }
        <domain: "other", opset_import: ["" : 17]>
        myneg (z) => (w) { w = Neg(z) }"""
    )
    return _write(model, path)


def _named_groups_model(path: Path) -> Path:
    """Two Conv → Relu fusion groups, the first's nodes named with bytes that are not UTF-8."""
    model = onnx.parser.parse_model(
        """<ir_version: 8, opset_import: ["" : 17]>
        g (float[1, 2, 4, 4] x) => (float[1, 2, 4, 4] y, float[1, 2, 4, 4] z) {
            a = Conv(x, W)
            y = Relu(a)
            b = Conv(x, W)
            z = Relu(b)
        }"""
    )
    model.graph.initializer.append(numpy_helper.from_array(np.ones((2, 2, 1, 1), np.float32), "W"))
    for node, name in zip(model.graph.node, ["QQQa", "QQQb", "c", "d"], strict=True):
        node.name = name
    return _write(model, path)


def _inspect(path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    assert main(["inspect", str(path), *extra]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    return captured.out


def test_json_of_a_model_with_an_opset_domain_not_utf8(tmp_path, capsys) -> None:
    path = _functions_model(tmp_path / "f.onnx")
    report = json.loads(_inspect(path, capsys, "--json"))
    assert report["opsets"] == {"ai.onnx": 17, "\\xffZZloc": 1, "other": 1}
    assert report["producer"] == "\\xffZZprod"
    assert report["function_bodies"]["domains"] == {"\\xffZZloc": 1, "other": 1}


def test_text_report_of_functions_in_a_domain_not_utf8_beside_another(tmp_path, capsys) -> None:
    out = _inspect(_functions_model(tmp_path / "f.onnx"), capsys)
    assert "opsets: ai.onnx 17, \\xffZZloc 1, other 1\n" in out
    assert "local function bodies: 2 functions (\\xffZZloc 1, other 1), 2 nodes" in out


@pytest.mark.parametrize("as_json", [False, True])
def test_groups_whose_node_names_are_bytes_and_text(tmp_path, capsys, as_json: bool) -> None:
    path = _named_groups_model(tmp_path / "g.onnx")
    if as_json:
        report = json.loads(_inspect(path, capsys, "--json", "--groups"))
        largest = report["fusion"]["largest"]
        assert [g["nodes"] for g in largest] == [["\\xffZZa", "\\xffZZb"], ["c", "d"]]
        assert [g["ops"] for g in largest] == [["Conv", "Relu"]] * 2
    else:
        out = _inspect(path, capsys)
        assert "Conv → Relu  [\\xffZZa … \\xffZZb]" in out
        assert "Conv → Relu  [c … d]" in out
