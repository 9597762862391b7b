"""The model loader's and pipeline loader's user-facing errors (review, session 16).

- A model path holding a newline made every command's error two lines (`_load_path` and the
  loader's other messages put the path in raw); a printable path (a space in it) is shown as
  given, one that is not is quoted as `repr` writes it.
- A missing external data file was reported in onnx's words ("... is not regular file").
- `optimize("")` and `optimize(m, pipeline="")` said ".: ... is a directory / not found".
- The analyses gave a tree for a ModelProto at opset 6 and refused the same model as a path or
  bytes ("unsupported opset"): every kind of model is now checked as `load` checks it.
"""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

import graphopt
from graphopt.analysis import dominator_tree, fuse_ops, post_dominator_tree, topological_order
from graphopt.cli import main
from graphopt.errors import LoadError, PipelineError, SaveError
from graphopt.ir import load, save_model
from tests.test_cli_build_bench import conv_model
from tests.test_cli_review3 import one_line_error

NEWLINE, SPACE = "a\nb", "c d"


def _folder(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    return folder


def _shown(path: Path) -> str:
    text = str(path)
    return text if text.isprintable() else repr(text)


def _argv(command: str, path: Path, tmp_path: Path) -> list[str]:
    if command == "optimize":
        return ["optimize", str(path), "-o", str(tmp_path / "out.onnx")]
    if command == "quantize":
        calib = tmp_path / "calib"
        calib.mkdir(exist_ok=True)
        return ["quantize", str(path), "-o", str(tmp_path / "out.onnx"), "--calib", str(calib)]
    return [command, str(path)]


def _opset6(path: Path) -> None:
    model = conv_model()
    model.opset_import[0].version = 6
    onnx.save(model, str(path))


def _external_without_data(path: Path) -> None:
    onnx.save_model(
        conv_model(), str(path), save_as_external_data=True, location="w.bin", size_threshold=0
    )
    (path.parent / "w.bin").unlink()


@pytest.mark.parametrize("command", ["optimize", "inspect", "check", "quantize"])
@pytest.mark.parametrize("name", [NEWLINE, SPACE])
@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (None, "no such file"),
        (_opset6, "unsupported opset 6"),
        (_external_without_data, "tensor 'w' keeps its data in 'w.bin'"),
    ],
)
def test_a_model_path_is_shown_on_one_line(tmp_path, capsys, command, name, make, needle):
    path = _folder(tmp_path, name) / "m.onnx"
    if make is not None:
        make(path)
    assert main(_argv(command, path, tmp_path)) == 2
    err = one_line_error(capsys, needle)
    assert f"error: {_shown(path)}: " in err, err
    assert not (tmp_path / "out.onnx").exists()


def test_a_missing_external_data_file_is_said_our_way(tmp_path):
    path = tmp_path / "m.onnx"
    _external_without_data(path)
    with pytest.raises(LoadError) as info:
        load(path)
    message = str(info.value)
    assert message == (
        f"{path}: external data could not be loaded: tensor 'w' keeps its data in 'w.bin' "
        f"({tmp_path / 'w.bin'}): no such file"
    )
    assert "regular file" not in message


def test_an_external_data_location_that_is_a_folder_is_said_our_way(tmp_path):
    path = tmp_path / "m.onnx"
    _external_without_data(path)
    (tmp_path / "w.bin").mkdir()
    with pytest.raises(LoadError, match=r"'w\.bin' \(.*\): is a folder, not a data file$"):
        load(path)


def test_a_save_path_is_shown_on_one_line(tmp_path):
    out = tmp_path / NEWLINE / "m.onnx"  # its folder does not exist
    with pytest.raises(SaveError) as info:
        save_model(conv_model(), out)
    assert len(str(info.value).splitlines()) == 1, info.value
    assert str(info.value).startswith(f"{str(out)!r}: folder {str(out.parent)!r} ")


def test_an_empty_model_path_says_so(tmp_path, capsys):
    with pytest.raises(
        LoadError, match=r"^the model path is empty: give the path of an ONNX file$"
    ):
        graphopt.optimize("")
    with pytest.raises(LoadError, match="the model path is empty"):
        post_dominator_tree("")


def test_an_empty_pipeline_name_says_so_and_lists_the_built_ins(tmp_path, capsys):
    with pytest.raises(PipelineError) as info:
        graphopt.optimize(conv_model(), pipeline="")
    message = str(info.value)
    assert message.startswith("the pipeline name is empty: use one of "), message
    for name in ("default", "tensorrt"):
        assert name in message
    src = tmp_path / "m.onnx"
    onnx.save(conv_model(), str(src))
    assert main(["optimize", str(src), "-o", str(tmp_path / "o.onnx"), "--pipeline", ""]) == 2
    one_line_error(capsys, "the pipeline name is empty")
    assert not (tmp_path / "o.onnx").exists()


def test_a_pipeline_path_is_shown_on_one_line(tmp_path):
    missing = tmp_path / NEWLINE / "p.yaml"
    with pytest.raises(PipelineError) as info:
        graphopt.optimize(conv_model(), pipeline=str(missing))
    assert str(info.value) == f"{str(missing)!r}: pipeline file not found"


@pytest.mark.parametrize(
    "analysis", [post_dominator_tree, dominator_tree, topological_order, fuse_ops]
)
def test_the_analyses_check_the_opset_of_every_kind_of_model(tmp_path, analysis):
    model = conv_model()
    model.opset_import[0].version = 6
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    for given, where in (
        (model, "the given ModelProto"),
        (model.SerializeToString(), "the given bytes"),
        (path, str(path)),
    ):
        with pytest.raises(LoadError, match=r"unsupported opset 6 \(graphopt supports") as info:
            analysis(given)
        assert str(info.value).startswith(f"{where}: "), info.value
    model.opset_import[0].version = 13
    onnx.save(model, str(path))
    assert analysis(model) == analysis(path) == analysis(model.SerializeToString())


def test_the_analyses_refuse_a_model_without_outputs_as_load_does(tmp_path):
    model = conv_model()
    del model.graph.output[:]
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    for given in (model, path, model.SerializeToString()):
        with pytest.raises(LoadError, match="declares no outputs"):
            post_dominator_tree(given)


def _pipeline_file(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    path = _folder(tmp_path, NEWLINE) / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("passes: [no-such-pass]\n", ":1: unknown pass 'no-such-pass'"),
        ("passes: [\n", ": invalid YAML"),
        ("", ": empty pipeline file"),
        ("passes:\n  - include: p.yaml\n", ":2: include cycle through "),
        (
            "passes: [eliminate-dead-code]\nrules: [nothere.yaml]\n",
            ":2: rule file 'nothere.yaml' not found",
        ),
    ],
)
def test_a_pipeline_file_in_an_odd_folder_is_named_on_one_line(tmp_path, text, needle):
    path = _pipeline_file(tmp_path, text)
    with pytest.raises(PipelineError) as info:
        graphopt.optimize(conv_model(), pipeline=str(path))
    message = str(info.value)
    assert len(message.splitlines()) == 1, message
    assert message.startswith(repr(str(path))), message
    assert needle in message, message


def test_a_pipeline_file_in_an_odd_folder_still_runs_and_is_named_by_its_file(tmp_path):
    path = _pipeline_file(tmp_path, "passes:\n  - include: default\n", "mine.yaml")
    model, report = graphopt.optimize_with_report(conv_model(), pipeline=str(path))
    assert report.pipeline == "mine"
    assert [n.op_type for n in model.graph.node] == ["Conv"]


def _odd_input_model() -> onnx.ModelProto:
    model = conv_model()
    for node in model.graph.node:
        node.input[0] = NEWLINE
    model.graph.input[0].name = NEWLINE
    return model


@pytest.mark.parametrize(
    ("shapes", "needle"),
    [
        ({NEWLINE: (0, 3, 16, 16)}, "input_shapes: 'a\\nb' dims must be 1 or more"),
        ({NEWLINE: ("x",)}, "input_shapes: 'a\\nb' dims must be integers"),
        ({"zz": (1,)}, "input_shapes: the model has no input 'zz'; inputs: 'a\\nb'"),
    ],
)
def test_an_input_name_in_an_input_shapes_error_is_on_one_line(shapes, needle):
    with pytest.raises(PipelineError) as info:
        graphopt.optimize(_odd_input_model(), input_shapes=shapes)
    message = str(info.value)
    assert len(message.splitlines()) == 1, message
    assert message.startswith(needle), message


@pytest.mark.parametrize("command", ["optimize", "inspect", "check"])
def test_an_empty_model_path_says_so_on_the_command_line(tmp_path, capsys, command):
    first, _, *rest = _argv(command, Path("m.onnx"), tmp_path)
    assert main([first, "", *rest]) == 2
    one_line_error(capsys, "error: the model path is empty: give the path of an ONNX file")
    assert not (tmp_path / "out.onnx").exists()
