"""The seeded feeds of `optimize --verify` and `bench` (`example_feeds`) for an input whose
type they cannot make advised "give real ones with --inputs NPZ", which cannot work for an
element type ONNX does not define (99), none (UNDEFINED), or one numpy has no dtype for
(float8, int4: --inputs refuses an entry for it). Now the first two say the model's input
type is invalid, the others that --inputs cannot give them either; bfloat16, which --inputs
takes, keeps the advice."""

from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.backends.onnxruntime import example_feeds
from graphopt.cli import main
from graphopt.errors import VerifyError


def _cast_from(elem: int) -> onnx.ModelProto:
    """y = Cast(x, float32), x declared of element type `elem` (any number)."""
    graph = helper.make_graph(
        [helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT)],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
    )
    graph.input[0].type.tensor_type.elem_type = elem
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)


def _refusal(elem: int) -> str:
    with pytest.raises(VerifyError) as caught:
        example_feeds(_cast_from(elem), real_inputs="--inputs NPZ")
    return str(caught.value)


@pytest.mark.parametrize(
    ("elem", "what"),
    [
        (99, "has element type 99, which ONNX does not define"),
        (TensorProto.UNDEFINED, "declares no element type"),
    ],
)
def test_an_invalid_input_type_is_said_invalid(elem: int, what: str) -> None:
    text = _refusal(elem)
    assert text.startswith(f"input 'x' {what}: the model's input type is invalid"), text
    assert "--inputs" not in text


@pytest.mark.parametrize("elem", [TensorProto.FLOAT8E4M3FN, TensorProto.INT4])
def test_a_type_numpy_lacks_is_not_sent_to_inputs(elem: int) -> None:
    text = _refusal(elem)
    named = TensorProto.DataType.Name(elem)
    assert "give real ones" not in text
    assert f"nor taken from --inputs NPZ for {named}, which numpy has no dtype for" in text


def test_bfloat16_keeps_the_advice() -> None:
    assert _refusal(TensorProto.BFLOAT16).endswith("; give real ones with --inputs NPZ")


@pytest.mark.parametrize("command", ["optimize", "bench"])
def test_the_commands_say_it_in_one_line(tmp_path, capsys, command: str) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(_cast_from(99), path)
    args = (
        ["optimize", str(path), "-o", str(tmp_path / "o.onnx"), "--verify"]
        if command == "optimize"
        else ["bench", str(path), "--no-progress", "--runs", "1"]
    )
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    # (optimize refuses such a model before it optimizes it: test_s30_optimize_undefined_type)
    said = (
        "has element type 99, which ONNX does not define"
        if command == "optimize"
        else ("the model's input type is invalid")
    )
    assert said in err and "--inputs" not in err, err
    assert not (tmp_path / "o.onnx").exists()
