"""merge --macs-shape INPUT=D0,D1,... with a negative dim: 5301c63 refused it with the form's
generic "expected INPUT=D0,D1,..." where merge said "every dim must be 1 or more" of it
(test_input_fuzz13's test_merge_refuses_macs_dims_no_input_can_take, which it broke), as
--shapes lets a '-' reach its "need 0 < min". The form now reads its dims with
tensorrt.dim_value, the digits --shapes takes (ASCII, within an int64), shared, not copied;
so a dim --shapes takes (leading zeros past 19 characters) is taken here too."""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

from graphopt.cli import main
from graphopt.commands.merge import _macs_shapes


def test_a_negative_dim_is_read_for_merge_to_refuse() -> None:
    assert _macs_shapes(["x=1,2,-3"]) == {"x": [1, 2, -3]}


def test_leading_zeros_are_read_as_shapes_reads_them() -> None:
    dims = "0" * 20 + "3"
    assert _macs_shapes([f"x=1,{dims}"]) == _macs_shapes([f"x:1x{dims}"]) == {"x": [1, 3]}


def test_merge_says_every_dim_must_be_1_or_more(tmp_path, capsys) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    path, out = tmp_path / "m.onnx", tmp_path / "mg.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    argv = ["merge", str(path), str(path), "-o", str(out), "--macs-shape", "x=1,2,-3,8"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "x=1,2,-3,8: every dim must be 1 or more" in err
    assert not out.exists()
