"""load's refusal of a node that writes one tensor twice (271c466) is one line for any op type.

The message put the node's op type in as the model has it: an op type holding a control
character (a custom domain's 'My\\nOp', a flipped byte's form feed in 'Split') made
'graphopt optimize' print a two-line error. The op type is escaped as load's undefined-input
error escapes it; a plain op type prints as before.
"""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto
from onnx import helper as h

import graphopt
from graphopt.cli import main
from graphopt.errors import LoadError


def _model(op: str, domain: str) -> onnx.ModelProto:
    x = h.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    a = h.make_tensor_value_info("a", TensorProto.FLOAT, [1])
    node = h.make_node(op, ["x"], ["a", "a"], name="n", domain=domain)
    graph = h.make_graph([node], "g", [x], [a])
    imports = [h.make_opsetid("", 18), h.make_opsetid("custom", 1)]
    return h.make_model(graph, opset_imports=imports)


@pytest.mark.parametrize(
    ("op", "domain", "shown"), [("My\nOp", "custom", "My\\nOp"), ("Sp\flit", "", "Sp\\x0clit")]
)
def test_an_op_type_with_a_control_character_is_escaped(op: str, domain: str, shown: str) -> None:
    with pytest.raises(LoadError) as e:
        graphopt.optimize(_model(op, domain))
    assert str(e.value) == (
        f"the given ModelProto: node 'n' ({shown}) writes tensor 'a' twice; ONNX graphs must "
        "be in SSA form"
    )


def test_the_cli_error_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(_model("My\nOp", "custom"), path)
    out = tmp_path / "o.onnx"
    assert main(["optimize", str(path), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "writes tensor 'a' twice" in err, err
    assert not out.exists()


def test_a_plain_op_type_prints_as_before() -> None:
    with pytest.raises(
        LoadError, match=r"^the given ModelProto: node 'n' \(Split\) writes tensor 'a' twice"
    ):
        graphopt.optimize(_model("Split", ""))
