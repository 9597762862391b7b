"""merge --verify's per-output lines and split's summary line show output names via shown().

Both printed the names as the models have them: an output named 'o\\nut' (valid ONNX) made
'verify: a_o' and 'ut: max abs diff 0' two lines, and split's 'kept ... for outputs o' then
'ut; wrote ...'. Now quoted and escaped where not printable; plain names print as before.
"""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto
from onnx import helper as h

from graphopt.cli import main


def _save(path: Path, out: str, op: str) -> str:
    x = h.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])
    y = h.make_tensor_value_info(out, TensorProto.FLOAT, [1, 3])
    graph = h.make_graph([h.make_node(op, ["x"], [out])], "g", [x], [y])
    onnx.save(h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]), path)
    return str(path)


@pytest.mark.parametrize(("out", "shown"), [("o\nut", "'a_o\\nut'"), ("out", "a_out")])
def test_verify_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], out: str, shown: str
) -> None:
    a, b = _save(tmp_path / "a.onnx", out, "Relu"), _save(tmp_path / "b.onnx", out, "Abs")
    merged = tmp_path / "m.onnx"
    args = ["merge", a, b, "-o", str(merged), "--prefix", "a_,b_", "--verify"]
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"verify: {shown}: max abs diff 0" in lines, lines
    assert not any(line.startswith("ut") for line in lines)


@pytest.mark.parametrize(("out", "shown"), [("o\nut", "'o\\nut'"), ("out", "out")])
def test_split_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], out: str, shown: str
) -> None:
    a, b = _save(tmp_path / "a.onnx", out, "Relu"), _save(tmp_path / "b.onnx", out, "Abs")
    merged, back = tmp_path / "m.onnx", tmp_path / "back.onnx"
    assert main(["merge", a, b, "-o", str(merged), "--prefix", "a_,b_"]) == 0
    capsys.readouterr()
    assert main(["split", str(merged), "--task", "b_", "-o", str(back)]) == 0
    text = capsys.readouterr().out
    assert text.count("\n") == 1, text
    assert f"for outputs {shown}; wrote " in text
    assert [o.name for o in onnx.load(back).graph.output] == [out]
