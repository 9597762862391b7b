"""merge's `--input-map`, `--prefix` and `--macs-shape` take the escapes `split --outputs` takes.

`--input-map I:NAME=MERGED` split at the first '=': an input named 'a=b' (ONNX allows any
string) could not be mapped ('a' was read as the name, 'b=x' as the merged input), and the
summary's advice for such an input gave a spec that mapped the wrong name. `--prefix` split at
every ',': no prefix could hold a comma. Now '\\=' and '\\:' in --input-map, '\\,' in --prefix,
and '\\\\' in both stand for the character; a backslash before anything else is itself, and an
empty prefix still keeps a model's output names. An index given as '²' (a digit int() refuses)
was a ValueError traceback. `--macs-shape INPUT=D0,...` split at the first '=' too: a merged
input named 'a=b' could be given no dims; '\\=' there too.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto
from onnx import helper as h

from graphopt.cli import main
from graphopt.multitask import merge_with_report


def _model(input_name: str, dims: list[int | str], op: str = "Relu") -> onnx.ModelProto:
    x = h.make_tensor_value_info(input_name, TensorProto.FLOAT, dims)
    y = h.make_tensor_value_info("y", TensorProto.FLOAT, dims)
    graph = h.make_graph([h.make_node(op, [input_name], ["y"])], "g", [x], [y])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


def _save(tmp_path: Path, *models: onnx.ModelProto) -> list[str]:
    paths = []
    for i, model in enumerate(models):
        path = tmp_path / f"m{i}.onnx"
        onnx.save(model, path)
        paths.append(str(path))
    return paths


def _run(path: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, feeds), strict=True))


def test_input_map_names_an_input_with_an_equals_sign(tmp_path: Path) -> None:
    paths = _save(tmp_path, _model("x", [2, 3]), _model("a=b", [2, 3], "Neg"))
    out = tmp_path / "merged.onnx"
    argv = ["merge", *paths, "-o", str(out), "--prefix", "p_,q_"]
    assert main([*argv, "--input-map", "1:a\\=b=x"]) == 0
    merged = onnx.load(out)
    assert [i.name for i in merged.graph.input] == ["x"]  # one input, both models read it
    x = np.arange(6, dtype=np.float32).reshape(2, 3) - 2
    got = _run(out, {"x": x})
    np.testing.assert_array_equal(got["p_y"], np.maximum(x, 0))
    np.testing.assert_array_equal(got["q_y"], -x)


def test_input_map_merged_name_keeps_its_equals_signs_and_backslashes(tmp_path: Path) -> None:
    paths = _save(tmp_path, _model("x", [2]), _model("x", [2]))
    out = tmp_path / "merged.onnx"
    # (the merged input after the first unescaped '=': '=' is itself there, '\\\\' one '\\')
    argv = ["merge", *paths, "-o", str(out), "--no-share", "--input-map", "1:x=m=n\\\\k"]
    assert main(argv) == 0
    assert [i.name for i in onnx.load(out).graph.input] == ["x", "m=n\\k"]


def test_prefix_holds_an_escaped_comma(tmp_path: Path) -> None:
    paths = _save(tmp_path, _model("x", [2]), _model("x", [2], "Neg"))
    out = tmp_path / "merged.onnx"
    assert main(["merge", *paths, "-o", str(out), "--prefix", "a\\,b_,c\\\\_"]) == 0
    assert [o.name for o in onnx.load(out).graph.output] == ["a,b_y", "c\\_y"]


def test_an_empty_prefix_is_still_one_prefix(tmp_path: Path) -> None:
    paths = _save(tmp_path, _model("x", [2]), _model("x", [2], "Neg"))
    out = tmp_path / "merged.onnx"
    assert main(["merge", *paths, "-o", str(out), "--prefix", ",b_"]) == 0
    assert [o.name for o in onnx.load(out).graph.output] == ["y", "b_y"]


def test_a_prefix_count_error_counts_escaped_commas_as_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = _save(tmp_path, _model("x", [2]), _model("x", [2], "Neg"))
    assert main(["merge", *paths, "-o", str(tmp_path / "o.onnx"), "--prefix", "a\\,b_"]) == 2
    assert "1 prefix for 2 models" in capsys.readouterr().err


def test_a_backslash_before_anything_else_is_itself(tmp_path: Path) -> None:
    paths = _save(tmp_path, _model("x", [2]), _model("x", [2], "Neg"))
    out = tmp_path / "merged.onnx"
    assert main(["merge", *paths, "-o", str(out), "--prefix", "a\\b_,c_"]) == 0
    assert [o.name for o in onnx.load(out).graph.output] == ["a\\b_y", "c_y"]


def test_the_advice_for_a_narrowed_input_named_with_an_equals_sign_can_be_pasted(
    tmp_path: Path,
) -> None:
    name = "a=b"
    models = [_model(name, [1, 3]), _model(name, ["N", 3], "Neg")]
    _, report = merge_with_report(models, prefixes=["a_", "b_"])
    advice = [line for line in report.summary().splitlines() if "to keep it apart" in line]
    assert len(advice) == 1
    words = shlex.split(advice[0].split("to keep it apart: ", 1)[1])
    assert words == ["--input-map", "1:a\\=b=b_a=b"]
    paths = _save(tmp_path, *models)
    out = tmp_path / "merged.onnx"
    assert main(["merge", *paths, "-o", str(out), "--prefix", "a_,b_", *words]) == 0
    assert [i.name for i in onnx.load(out).graph.input] == [name, "b_a=b"]


def test_a_digit_int_refuses_is_an_error_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = _save(tmp_path, _model("x", [2]), _model("x", [2], "Neg"))
    argv = ["merge", *paths, "-o", str(tmp_path / "o.onnx"), "--input-map", "\u00b2:x=z"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "neither a model index nor a prefix" in err


def _matmul_model(input_name: str) -> onnx.ModelProto:
    x = h.make_tensor_value_info(input_name, TensorProto.FLOAT, ["n", 4])
    y = h.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 8])
    w = onnx.numpy_helper.from_array(np.ones((4, 8), np.float32), "w")
    graph = h.make_graph([h.make_node("MatMul", [input_name, "w"], ["y"])], "g", [x], [y], [w])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


def test_macs_shape_gives_dims_to_an_input_with_an_equals_sign(tmp_path: Path) -> None:
    import json

    paths = _save(tmp_path, _matmul_model("a=b"))
    report = tmp_path / "r.json"
    argv = ["merge", *paths, "-o", str(tmp_path / "o.onnx"), "--report", str(report)]
    assert main([*argv, "--macs-shape", "a\\=b=2,4"]) == 0
    assert json.loads(report.read_text())["macs_merged"] == 2 * 4 * 8
