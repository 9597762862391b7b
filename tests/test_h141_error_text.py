"""Error text H141 made consistent: one `shown` for the commands and the library, paths shown
on one line in merge's errors, bench --inputs named by its flag, merge --input-map and split
--strip-prefix given to no effect, optimize --opt-level out of range. Every test here failed
before its fix.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnx.helper as oh
import pytest

import graphopt.commands._common
import graphopt.distill
from graphopt.cli import main
from tests.test_cli_review4 import relu_model
from tests.test_h135_paths_shown import one_line_error
from tests.test_io_review2_names import _model_with_a_latin1_output


def test_shown_is_one_function_the_commands_and_the_library_share():
    """distill.py carried a private copy of the commands' `shown` (the library does not import
    the commands); it lives in graphopt._text now."""
    from graphopt._text import shown

    assert graphopt.commands._common.shown is shown
    assert graphopt.distill.shown is shown
    assert not hasattr(graphopt.distill, "_shown")
    assert shown("a\nb") == "'a\\nb'"
    assert shown(Path("a b")) == "a b"  # a space is printable: as given


ODD = "a b\nc"  # a space and a newline


def _latin1_output_model(folder: Path) -> str:
    """A Relu model named ODD + ".onnx" in `folder`, its output named with a Latin-1 byte (not
    UTF-8 text)."""
    path = Path(_model_with_a_latin1_output(folder)).rename(folder / f"{ODD}.onnx")
    return str(path)


def _one_line_naming(error: BaseException, path: str) -> None:
    text = str(error)
    assert "\n" not in text, text
    assert text.startswith(f"{path!r}: "), text


def test_merge_names_a_model_path_on_one_line(tmp_path):
    from graphopt.multitask import MergeError, merge

    odd = _latin1_output_model(tmp_path)
    other = tmp_path / "other.onnx"
    onnx.save(relu_model([1, 4]), str(other))
    with pytest.raises(MergeError, match="is not UTF-8 text") as caught:
        merge([str(other), odd])
    _one_line_naming(caught.value, odd)


def test_split_names_the_model_path_on_one_line(tmp_path):
    from graphopt.multitask import MergeError, split

    odd = _latin1_output_model(tmp_path)
    with pytest.raises(MergeError, match="is not UTF-8 text") as caught:
        split(odd, ["x"])
    _one_line_naming(caught.value, odd)


def test_merge_functions_names_the_model_path_on_one_line():
    """The guard behind rename_clashing (two same-named local functions that differ) printed
    the path raw."""
    from graphopt.multitask import MergeError
    from graphopt.multitask.merge import _merge_functions

    def with_function(op: str) -> onnx.ModelProto:
        f = oh.make_function("local", "F", ["a"], ["b"], [oh.make_node(op, ["a"], ["b"])], [])
        return oh.make_model(oh.make_graph([], "g", [], []), functions=[f])

    with pytest.raises(MergeError, match="local function local:F differs") as caught:
        _merge_functions(
            onnx.ModelProto(), [with_function("Relu"), with_function("Neg")], ["m", ODD]
        )
    _one_line_naming(caught.value, ODD)


@pytest.mark.parametrize(
    ("kind", "needle"),
    [
        ("missing", "cannot read input feeds: "),
        ("folder", "cannot read input feeds: it is a folder"),
        ("npy", "not an .npz archive of named arrays"),
        ("other input", "no array for model input(s) x"),
    ],
)
def test_bench_names_the_inputs_flag_of_a_bad_feeds_file(tmp_path, capsys, kind, needle):
    """bench --inputs said "a b\\nc.npz: cannot read input feeds: ..." (example_feeds' words: no
    flag, the path raw on two lines), where optimize --inputs names the flag."""
    model = tmp_path / "m.onnx"
    onnx.save(relu_model([1, 4]), str(model))
    npz = tmp_path / f"{ODD}.npz"
    if kind == "folder":
        npz.mkdir()
    elif kind == "npy":
        with npz.open("wb") as f:
            np.save(f, np.ones((1, 4), np.float32))
    elif kind == "other input":
        np.savez(npz, z=np.ones((1, 4), np.float32))
    assert main(["bench", str(model), "--runs", "1", "--no-progress", "--inputs", str(npz)]) == 2
    one_line_error(capsys, f"--inputs {str(npz)!r}: {needle}")


def test_example_feeds_shows_the_path_on_one_line(tmp_path):
    from graphopt.backends.onnxruntime import example_feeds
    from graphopt.errors import VerifyError

    npz = tmp_path / f"{ODD}.npz"
    with pytest.raises(VerifyError, match="cannot read input feeds") as caught:
        example_feeds(relu_model([1, 4]), npz=npz)
    _one_line_naming(caught.value, str(npz))


def test_bench_shows_the_model_path_on_one_line(tmp_path, capsys):
    odd = _latin1_output_model(tmp_path)
    assert main(["bench", odd, "--runs", "1", "--no-progress"]) == 2
    one_line_error(capsys, f"{odd!r}: graph output b'y\\xe9Q' is not UTF-8 text")
    assert main(["bench", odd, "--backend", "tensorrt", "--no-progress"]) == 2
    one_line_error(capsys, f"{odd!r} is an ONNX model: build an engine first")


def test_merge_refuses_an_input_mapped_twice(tmp_path, capsys):
    """`--input-map 1:x=a --input-map 1:x=b` kept the last mapping, silently, and exited 0."""
    a, b = tmp_path / "a.onnx", tmp_path / "b.onnx"
    onnx.save(relu_model([1, 4]), str(a))
    onnx.save(relu_model([1, 4]), str(b))
    out = tmp_path / "m.onnx"
    argv = ["merge", str(a), str(b), "-o", str(out)]
    assert main([*argv, "--input-map", "1:x=p", "--input-map", "1:x=q"]) == 2
    one_line_error(
        capsys, "--input-map '1:x=q': input 'x' of model 1 is already mapped to 'p'; map each"
    )
    assert not out.exists()
    # the same mapping given twice asks one thing: merged as once
    assert main([*argv, "--input-map", "1:x=p", "--input-map", "1:x=p"]) == 0
    assert sorted(i.name for i in onnx.load(str(out)).graph.input) == ["p", "x"]


def test_split_refuses_an_empty_strip_prefix(tmp_path, capsys):
    """`split --outputs y --strip-prefix ''` renamed nothing and exited 0: the check of a prefix
    no output starts with skipped "" (every name starts with it)."""
    model = tmp_path / "m.onnx"
    onnx.save(relu_model([1, 4]), str(model))
    out = tmp_path / "s.onnx"
    argv = ["split", str(model), "--outputs", "y", "-o", str(out)]
    assert main([*argv, "--strip-prefix", ""]) == 2
    one_line_error(capsys, "--strip-prefix '': an empty prefix renames no output")
    assert not out.exists()


@pytest.mark.parametrize("level", ["-1", "3"])
def test_optimize_refuses_an_opt_level_no_pass_has(tmp_path, capsys, level):
    """--opt-level -1 ran no pass and exited 0 without a word (the model written as loaded);
    3 ran what 2 runs. Passes have levels 0 to 2."""
    model = tmp_path / "m.onnx"
    onnx.save(relu_model([1, 4]), str(model))
    out = tmp_path / "o.onnx"
    assert main(["optimize", str(model), "-o", str(out), "--opt-level", level]) == 2
    one_line_error(capsys, f"--opt-level must be 0 to 2, got {level} (passes run at")
    assert not out.exists()
    assert main(["optimize", str(model), "-o", str(out), "--opt-level", "0"]) == 0
