"""--shapes can name an input whose name has a space ('input 1', valid ONNX): the flag's text
was split at every space, so `--shapes 'a b:2x3'` was 'bad --shapes 'a'', while `check` told
the user to pass `--shapes a b:MIN,OPT,MAX` (two words to a shell)."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.backends.tensorrt import ShapeRange, parse_shapes
from graphopt.cli import main
from graphopt.errors import BackendError


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("input 1:1x3", ["input 1"]),
        ("x:1x3 y:2x3", ["x", "y"]),
        ("a  b c:1x3   d:2x2", ["a  b c", "d"]),
        ("  x:1x3  ", ["x"]),
    ],
)
def test_names_with_spaces_are_read_whole(text: str, names: list[str]) -> None:
    assert list(parse_shapes(text)) == names


def test_a_word_with_no_colon_at_the_end_is_still_refused() -> None:
    with pytest.raises(BackendError, match=r"bad --shapes 'b': expected NAME:"):
        parse_shapes("a:1x3 b")


def test_check_advises_a_quoted_spec_and_takes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["a b"], ["y"])],
        "g",
        [helper.make_tensor_value_info("a b", TensorProto.FLOAT, ["n", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])],
    )
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    main(["check", str(path)])
    out = capsys.readouterr().out
    assert "e.g. --shapes 'a b:MIN,OPT,MAX'" in out
    assert main(["check", str(path), "--shapes", "a b:1x3,2x3,4x3"]) == 0
    out = capsys.readouterr().out
    assert "dynamic-shape" not in out and "0 errors, 0 warnings" in out
    assert parse_shapes(["a b:1x3,2x3,4x3"])["a b"] == ShapeRange((1, 3), (2, 3), (4, 3))
