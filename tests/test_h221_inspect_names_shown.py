"""H221: `graphopt inspect` printed tensor and node names as the model has them. A name with a
newline (ONNX allows any string) split its line, so an input's line read "  in" and then
"put: float [1, 3, 8, 8]", and a fusion group's "[node" / "one]": the report could not be
read line by line. The names now go through `shown` (quoted and escaped when they hold a
character that is not printable), as inspect already showed the model's path; plain names
are printed as before. `--json` is unchanged (JSON escapes them itself)."""

from __future__ import annotations

import json

import onnx
from onnx import TensorProto, helper

from graphopt.cli import main


def _model(path) -> None:  # type: ignore[no-untyped-def]
    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["in\nput"], ["r"], name="relu\none"),
            helper.make_node("Sigmoid", ["r"], ["s"], name="plain"),
            helper.make_node("Mul", ["r", "s"], ["out\tput"], name="mul\nlast"),
        ],
        "g",
        [helper.make_tensor_value_info("in\nput", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("out\tput", TensorProto.FLOAT, [1, 3, 8, 8])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)


def test_names_with_a_newline_stay_on_their_line(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "m.onnx"
    _model(path)
    assert main(["inspect", str(path), "--groups"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "  'in\\nput': float [1, 3, 8, 8]" in lines
    assert "  'out\\tput': float [1, 3, 8, 8]" in lines
    assert any(line.endswith("(from 'relu\\none')") for line in lines), lines
    groups = lines[lines.index("groups:") + 1 :]
    assert len(groups) == 1  # one group, on one line
    assert groups[0].endswith("['relu\\none' … 'mul\\nlast']"), groups[0]
    assert all(
        line.startswith(
            (
                "  ",
                "model:",
                "opsets:",
                "nodes:",
                "inputs:",
                "outputs:",
                "ops:",
                "post-dominators:",
                "fusion groups",
                "groups:",
            )
        )
        for line in lines
    ), lines


def test_json_keeps_the_names_as_they_are(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "m.onnx"
    _model(path)
    assert main(["inspect", str(path), "--json", "--groups"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [t["name"] for t in report["inputs"]] == ["in\nput"]
    assert report["fusion"]["groups"][0]["nodes"][0] == "relu\none"
