"""`graphopt optimize --input-shape x:2x3 model.onnx -o out.onnx`: --input-shape (nargs +)
took the model as one more NAME:DIMS, and optimize said "the following arguments are
required: input", where `--shapes x:2x3 model.onnx` has taken the model since H154. Its one
value that is no NAME:DIMS is the model now, as for --shapes; values of both flags that are
no NAME:DIMS are counted together."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.cli import build_parser, main


def _model(path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "z"], ["y"])],
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3]),
            helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 1]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)


@pytest.mark.parametrize(
    "argv",
    [
        ["--input-shape", "x:2x3", "m.onnx", "-o", "o.onnx"],
        ["-o", "o.onnx", "--input-shape", "x:2x3", "m.onnx"],
        ["--input-shape", "m.onnx", "x:2x3", "-o", "o.onnx"],
        ["--input-shape", "x:2x3", "m.onnx", "--shapes", "z:2x1", "-o", "o.onnx", "--verify"],
    ],
)
def test_the_model_may_follow_input_shape(argv: list[str]) -> None:
    args = build_parser().parse_args(["optimize", *argv])
    assert (args.input, args.input_shape) == ("m.onnx", ["x:2x3"])


def test_optimize_runs_with_the_model_after_input_shape(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    _model(tmp_path / "m.onnx")
    argv = ["optimize", "--input-shape", "x:2x3", "z:2x1", "m.onnx", "-o", "o.onnx", "--verify"]
    assert main(argv) == 0, capsys.readouterr().err
    assert "verify: y: max abs diff 0" in capsys.readouterr().out
    dims = [d.dim_value for d in onnx.load("o.onnx").graph.input[0].type.tensor_type.shape.dim]
    assert dims == [2, 3]


def test_loose_values_of_both_flags_are_refused_together(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["optimize", "--input-shape", "x:2x3", "a", "--shapes", "b", "-o", "o.onnx"]
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "--input-shape 'a', --shapes 'b': 2 values are no NAME:DIMS" in err
    assert "give the model before --input-shape and --shapes" in err


def test_a_model_given_first_leaves_a_loose_value_to_bad_input_shape(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = build_parser().parse_args(
        ["optimize", "m.onnx", "--input-shape", "x:2x3", "o2.onnx", "-o", "o.onnx"]
    )
    assert (args.input, args.input_shape) == ("m.onnx", ["x:2x3", "o2.onnx"])
