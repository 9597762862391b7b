"""`optimize --verify --shapes` on a model with an empty-dim input (declared [0, 3]): a --shapes
that does not fit was refused with the advice "give x:0x3", which --shapes then refused in
turn ("need 0 < min <= opt <= max"). The advice given must be one the command takes."""

from __future__ import annotations

import re
from pathlib import Path

import onnx
from onnx import TensorProto, helper

from graphopt import cli


def _empty_input_model(path: Path) -> None:
    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["x"], ["r"]),
            helper.make_node("Concat", ["r", "z"], ["y"], axis=0),
        ],
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [0, 3]),
            helper.make_tensor_value_info("z", TensorProto.FLOAT, [2, 3]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)


def test_the_advice_for_an_unfit_shapes_of_an_empty_dim_input_is_taken(tmp_path, capsys) -> None:
    model, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    _empty_input_model(model)
    command = ["optimize", str(model), "-o", str(out), "--verify"]
    assert cli.main([*command, "--shapes", "x:1x3", "z:2x3"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "index 0 is fixed at 0 (Got: 1 Expected: 0)" in err
    assert not out.exists()
    given = re.search(r"; give (\S+)$", err.strip())
    # the advice: another --shapes for x, or none for it
    shapes = ["--shapes", given.group(1), "z:2x3"] if given else ["--shapes", "z:2x3"]
    if not given:
        assert "leave x out of --shapes" in err
    assert cli.main([*command, *shapes]) == 0, capsys.readouterr().err
    assert "verify: y: max abs diff 0" in capsys.readouterr().out
    assert out.exists()


def test_a_nonzero_fixed_dim_is_still_advised_as_a_shape(tmp_path, capsys) -> None:
    model, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    _empty_input_model(model)
    command = ["optimize", str(model), "-o", str(out), "--verify"]
    assert cli.main([*command, "--shapes", "z:3x3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("; give z:2x3"), err
    assert cli.main([*command, "--shapes", "z:2x3"]) == 0
