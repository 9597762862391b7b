"""inspect's text report shows the model's producer, opset domains and op types through shown().

95e1b4d escaped tensor and node names, but the producer, the opset and function domains and
the op types (in 'ops:', the bodies' and functions' op counts, a fusion group's op sequence)
were printed as the model has them: a producer 'tool\\nv2', a domain 'cu\\nstom' or an op type
'My\\nOp' (ONNX allows any string) split their lines, the second half reading as a line of its
own ('v2)', 'stom 1', 'Op 1'). They are now quoted and escaped where not printable; plain ones
print as before, and --json is unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto
from onnx import helper as h

from graphopt.cli import main


def _save(tmp_path: Path, op: str, domain: str, producer: str) -> str:
    x = h.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = h.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    graph = h.make_graph([h.make_node(op, ["x"], ["y"], name="n", domain=domain)], "g", [x], [y])
    imports = [h.make_opsetid("", 18), h.make_opsetid(domain, 1)]
    model = h.make_model(graph, opset_imports=imports, producer_name=producer, ir_version=10)
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    return str(path)


def _report(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["inspect", *args]) == 0
    return capsys.readouterr().out


def test_strings_with_a_newline_keep_their_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _save(tmp_path, "My\nOp", "cu\nstom", "tool\nv2")
    lines = _report(capsys, path).splitlines()
    assert lines[0].endswith("(IR 10, producer 'tool\\nv2')"), lines[0]
    assert lines[1] == "opsets: ai.onnx 18, 'cu\\nstom' 1"
    assert "ops: 'cu\\nstom.My\\nOp' 1" in lines
    assert not any(line.startswith(("v2)", "stom", "Op ")) for line in lines), lines
    raw = json.loads(_report(capsys, path, "--json"))
    assert raw["producer"] == "tool\nv2" and "cu\nstom" in raw["opsets"]


def test_plain_strings_print_as_before(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = _report(capsys, _save(tmp_path, "MyOp", "custom", "tool")).splitlines()
    assert lines[0].endswith("(IR 10, producer tool)")
    assert lines[1] == "opsets: ai.onnx 18, custom 1"
    assert "ops: custom.MyOp 1" in lines
