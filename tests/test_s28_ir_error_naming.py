"""Errors that lost their one line or the model's name.

An element type number ONNX does not define (a damaged file: data_type 999) in a message
graphopt was making: onnx's DataType.Name raised a ValueError, a traceback in every command
for an initializer with a negative dim of such a type; now the message says "type 999". And
a cycle found when the nodes are ordered (through an If's bodies) was said without the
model's path, which load's own errors name."""

from __future__ import annotations

import pytest
from onnx import TensorProto, helper

from graphopt import cli
from graphopt._text import type_name
from graphopt.errors import QuantizeError
from graphopt.quant.image_input import image_input


def _damaged(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    weight = model.graph.initializer.add(name="w", data_type=999)
    weight.dims.extend([-1, 2])
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    return path


@pytest.mark.parametrize("command", ["optimize", "inspect"])
def test_a_negative_dim_of_an_undefined_type_is_one_line(tmp_path, capsys, command) -> None:
    path = _damaged(tmp_path)
    argv = [command, str(path)] + (
        ["-o", str(tmp_path / "o.onnx")] if command == "optimize" else []
    )
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "type 999 -1x2" in err and "negative dim" in err, err
    assert not (tmp_path / "o.onnx").exists()


def test_type_name() -> None:
    assert type_name(TensorProto.FLOAT) == "float"
    assert type_name(TensorProto.FLOAT, lower=False) == "FLOAT"
    assert type_name(999) == "type 999"


def test_an_image_input_of_an_undefined_type_is_a_quantize_error() -> None:
    with pytest.raises(QuantizeError, match="type 999"):
        image_input("x", 999, [1, 3, 8, 8])


def _cycle_through_a_body(tmp_path):
    # If(c) -> a, Relu(a) -> b, and both branches read b: a cycle through the If's bodies
    def branch(name: str):
        return helper.make_graph(
            [helper.make_node("Neg", ["b"], [f"{name}_out"])],
            name,
            [],
            [helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT, [2])],
        )

    graph = helper.make_graph(
        [
            helper.make_node(
                "If", ["c"], ["a"], name="i1", then_branch=branch("t"), else_branch=branch("e")
            ),
            helper.make_node("Relu", ["a"], ["b"], name="r1"),
        ],
        "g",
        [helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("b", TensorProto.FLOAT, [2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    path = tmp_path / "cycle.onnx"
    path.write_bytes(model.SerializeToString())
    return path


@pytest.mark.parametrize("command", ["optimize", "inspect"])
def test_a_cycle_through_a_body_names_the_file(tmp_path, capsys, command) -> None:
    # (the error said "the graph has a cycle through node 'i1'", without the model's path)
    path = _cycle_through_a_body(tmp_path)
    argv = [command, str(path)] + (
        ["-o", str(tmp_path / "o.onnx")] if command == "optimize" else []
    )
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert f"{path}: the graph has a cycle through node" in err, err
    assert not (tmp_path / "o.onnx").exists()
