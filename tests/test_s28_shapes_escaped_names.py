"""NAME:DIMS specs (--shapes, optimize --input-shape, merge --macs-shape's x: form) name an
input whose name holds ':' and a space, as name lists (`\\,`) and --input-map (`\\=`, `\\:`)
take escapes. The name was all before the last ':', spaces too, but a word with a ':' ended a
spec: 'a:b c' (valid ONNX; TF exports name inputs 'x:0') could not be named ('a' of dims 'b',
then 'c'), and check's advice for it, `--shapes 'a:b c:MIN,OPT,MAX'`, was refused. Now '\\:',
'\\,' and '\\\\' in NAME stand for the character (merge's x: form takes '\\=' too: 'a\\=b:2x4'
was read as the INPUT=D0,... form); the advice is written escaped. Spellings taken before read
as before: 'x:0:1x3', 'input 1:1x3', a name ending in a backslash 'a\\:1x3'."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto
from onnx import helper as h

from graphopt.backends.tensorrt import ShapeRange, parse_shapes, shape_spec
from graphopt.cli import main
from graphopt.errors import BackendError

SPACED = "a:b c"  # a ':' in a word of a name with a space


def _relu(name: str, dims: list[int | str]) -> onnx.ModelProto:
    x = h.make_tensor_value_info(name, TensorProto.FLOAT, dims)
    y = h.make_tensor_value_info("y", TensorProto.FLOAT, dims)
    graph = h.make_graph([h.make_node("Relu", [name], ["y"])], "g", [x], [y])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


def _dims(vi: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("a\\:b c:1x3", ["a:b c"]),
        ("a\\:b c:1x3 d:2x3", ["a:b c", "d"]),
        ("p\\,q\\\\:1x3", ["p,q\\"]),
        ("k\\:0:1x3", ["k:0"]),
    ],
)
def test_escapes_in_a_name(text: str, names: list[str]) -> None:
    assert list(parse_shapes(text)) == names
    assert parse_shapes(text)[names[0]] == ShapeRange((1, 3), (1, 3), (1, 3))


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("x:0:1x3", "x:0"),  # the last ':' ends the name
        ("input 1:1x3", "input 1"),
        ("a,b:1x3", "a,b"),
        ("a=b:1x3", "a=b"),
        ("a\\b:1x3", "a\\b"),  # a backslash before anything else is itself
        ("a\\:1x3", "a\\"),  # every ':' escaped: cut at the last, as before
        ("C:\\x:1x3", "C:\\x"),
    ],
)
def test_spellings_taken_before_read_as_before(text: str, name: str) -> None:
    assert list(parse_shapes(text)) == [name]


@pytest.mark.parametrize(
    "name", [SPACED, "x:0", "a\\", "a\\:b", "a,b c:0", "in put:0 :1", "a b\\", "w\\ z", "q=r s:t"]
)
def test_the_advised_spec_reads_back_the_name(name: str) -> None:
    (word,) = shlex.split(shape_spec(name, "1x3,2x3,4x3"))
    assert parse_shapes(word) == {name: ShapeRange((1, 3), (2, 3), (4, 3))}


def test_a_spec_with_no_colon_left_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(_relu(SPACED, ["n", 3]), path)
    argv = ["optimize", str(path), "-o", str(tmp_path / "o.onnx"), "--input-shape", "a\\:b"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1
    assert "bad --input-shape 'a\\\\:b'" in err
    with pytest.raises(BackendError, match="expected NAME:"):
        parse_shapes("a\\:b c")


def test_optimize_fixes_an_input_named_with_a_colon_and_a_space(tmp_path: Path) -> None:
    path, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(_relu(SPACED, ["n", 3]), path)
    argv = ["optimize", str(path), "-o", str(out), "--input-shape", "a\\:b c:2x3", "--verify"]
    assert main(argv) == 0
    (vi,) = onnx.load(out).graph.input
    assert (vi.name, _dims(vi)) == (SPACED, [2, 3])


def test_optimize_says_the_differing_specs_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(_relu(SPACED, ["n", 3]), path)
    argv = ["optimize", str(path), "-o", str(tmp_path / "o.onnx"), "--verify"]
    assert main([*argv, "--input-shape", "a\\:b c:2x3", "--shapes", "a\\:b c:4x3"]) == 2
    err = capsys.readouterr().err
    assert "--shapes a\\:b c:4x3 differs from --input-shape a\\:b c:2x3" in err


def test_check_advises_an_escaped_spec_and_takes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(_relu(SPACED, ["n", 3]), path)
    main(["check", str(path)])
    out = capsys.readouterr().out
    assert "e.g. --shapes 'a\\:b c:MIN,OPT,MAX'" in out
    assert main(["check", str(path), "--shapes", "a\\:b c:1x3,2x3,4x3"]) == 0
    out = capsys.readouterr().out
    assert "dynamic-shape" not in out and "0 errors, 0 warnings" in out


def test_build_calibration_advice_names_the_input_escaped() -> None:
    from graphopt.commands.build import calibration_image_size

    with pytest.raises(BackendError) as e:
        calibration_image_size(SPACED, ["n", 3, 16, 16], parse_shapes("a\\:b c:1x1x16x16"))
    assert str(e.value).startswith("--shapes 'a\\:b c:1x1x16x16': calibration images")
    with pytest.raises(BackendError) as e:
        calibration_image_size(SPACED, [1, 3, "h", "w"], {})
    assert "give --shapes 'a\\:b c:1x3xHxW' for calibration" in str(e.value)


def _matmul(name: str) -> onnx.ModelProto:
    x = h.make_tensor_value_info(name, TensorProto.FLOAT, ["n", 4])
    y = h.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 8])
    w = onnx.numpy_helper.from_array(np.ones((4, 8), np.float32), "w")
    graph = h.make_graph([h.make_node("MatMul", [name, "w"], ["y"])], "g", [x], [y], [w])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


@pytest.mark.parametrize(
    ("name", "spec"),
    [
        ("a=b", "a\\=b:2x4"),  # read as INPUT=D0,... before: 'a\\' of dims 'b:2x4'
        (SPACED, "a\\:b c:2x4"),
        (SPACED, "a\\:b c=2,4"),
        ("x:0", "x:0:2x4"),  # as before
    ],
)
def test_merge_macs_shape_names_an_input_escaped(tmp_path: Path, name: str, spec: str) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(_matmul(name), path)
    report = tmp_path / "r.json"
    argv = ["merge", str(path), "-o", str(tmp_path / "o.onnx"), "--report", str(report)]
    assert main([*argv, "--macs-shape", spec]) == 0
    assert json.loads(report.read_text())["macs_merged"] == 2 * 4 * 8


def test_merge_macs_shape_refuses_a_bad_x_form_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(_matmul("a=b"), path)
    argv = ["merge", str(path), "-o", str(tmp_path / "o.onnx"), "--macs-shape", "a\\=b:2xq"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1
    assert "bad --macs-shape 'a\\\\=b:2xq': dimensions must be integers" in err
