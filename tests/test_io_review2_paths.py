"""An output path ending in '/' names a folder: nothing is written.

`Path("out/")` is `out`, so `graphopt optimize m.onnx -o out/` (a folder that does not exist
yet) wrote the model as a file named `out` and said "wrote out/"; onnx.save and cp refuse.
"""

from __future__ import annotations

import onnx
import onnx.helper as oh
import pytest

from graphopt.cli import main
from graphopt.errors import SaveError
from graphopt.ir import save_model


def _model() -> onnx.ModelProto:
    graph = oh.make_graph(
        [oh.make_node("Relu", ["x"], ["y"], name="r")],
        "g",
        [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])],
        [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])],
    )
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)], ir_version=8)


@pytest.mark.parametrize("external", [None, True])
def test_a_path_ending_in_a_slash_writes_nothing(tmp_path, external):
    with pytest.raises(SaveError, match="names a folder"):
        save_model(_model(), f"{tmp_path / 'out'}/", external_data=external)
    assert list(tmp_path.iterdir()) == []


def test_optimize_into_a_folder_name_is_one_line_and_writes_nothing(tmp_path, capsys):
    src = tmp_path / "m.onnx"
    onnx.save(_model(), str(src))
    assert main(["optimize", str(src), "-o", f"{tmp_path / 'out'}/"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "names a folder" in err
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


def test_an_output_below_a_file_says_the_file_is_no_folder(tmp_path):
    """-o FILE/x.onnx with FILE an existing file said 'folder FILE does not exist'."""
    blocker = tmp_path / "FILE"
    blocker.write_text("x")
    with pytest.raises(SaveError, match=r"folder .*FILE is a file, not a folder"):
        save_model(onnx.ModelProto(), blocker / "x.onnx")
    assert blocker.read_text() == "x"
