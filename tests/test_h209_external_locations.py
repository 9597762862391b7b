"""External data entries that name no data file, or two (review H209, session 22).

- A tensor marked as external data without a 'location' entry (or with an empty one) was
  reported as "keeps its data in '' (<the model's folder>): is a folder, not a data file".
- A tensor with two 'location' entries that differ loaded from the last one, and optimize
  wrote a model reading it; onnx.checker reads the first one and onnxruntime refuses the model
  ("duplicate 'location' entries"), so which file the model means is not settled.
- A location through a link, then up ('sub/../w.bin', sub a link to another folder), is read
  by onnx as w.bin beside the model (normalized first), but `LoadedModel.data_files` named the
  file the link's target folder's parent holds (resolved first): `-o <folder>/w.bin` was not
  refused, and the save replaced the input's data file by the optimized model. Likewise
  `save_model` of a model whose weights were not loaded took such a location for readable
  where the link's target folder's parent held the file, and wrote a model onnx cannot load.
- An external data entry whose key onnx does not know (a damaged 'offset': 'ofPset') was
  ignored by onnx's loader (a UserWarning, two lines on stderr) and the tensor read from
  offset 0, another tensor's bytes: optimize wrote them out as its weight (outputs 32 where
  the model computes 48), while onnxruntime refuses the model ("model format error").
- A string tensor kept as external data (onnxruntime: "External data type cannot be UNDEFINED
  or STRING") loaded with the file's bytes as its raw_data, and optimize wrote a model that
  onnx.checker refuses too ("STRING data should not be stored in raw_data field").
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import graphopt
from graphopt.cli import main
from graphopt.errors import LoadError
from graphopt.ir import load
from tests.test_cli_review3 import one_line_error

WEIGHT = np.arange(256, dtype=np.float32).reshape(16, 16)


def _model_with_entries(folder: Path, entries: list[tuple[str, str]]) -> Path:
    """y = x @ W, W kept as external data with `entries`; w.bin and v.bin both hold W's bytes
    (v.bin doubled)."""
    (folder / "w.bin").write_bytes(WEIGHT.tobytes())
    (folder / "v.bin").write_bytes((2 * WEIGHT).tobytes())
    weight = numpy_helper.from_array(WEIGHT, "W")
    weight.ClearField("raw_data")
    weight.data_location = onnx.TensorProto.EXTERNAL
    for key, value in entries:
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")],
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 16])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    path = folder / "m.onnx"
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize(
    "entries",
    [[("offset", "0")], [("location", ""), ("offset", "0")]],
    ids=["no-location", "empty-location"],
)
def test_a_tensor_naming_no_data_file_says_so(
    tmp_path: Path, entries: list[tuple[str, str]]
) -> None:
    path = _model_with_entries(tmp_path, entries)
    with pytest.raises(LoadError, match="'W' is marked as external data but names no data file"):
        load(path)


def test_two_location_entries_that_differ_are_refused(tmp_path: Path) -> None:
    path = _model_with_entries(tmp_path, [("location", "v.bin"), ("location", "w.bin")])
    with pytest.raises(LoadError, match=r"names two external data files \('v.bin' and 'w.bin'"):
        graphopt.optimize(str(path))


def test_the_cli_says_it_in_one_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _model_with_entries(tmp_path, [("location", "v.bin"), ("location", "w.bin")])
    out = tmp_path / "out.onnx"
    assert main(["optimize", str(path), "-o", str(out)]) == 2
    one_line_error(capsys, "names two external data files")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "v.bin", "w.bin"]


def test_one_location_given_twice_alike_still_loads(tmp_path: Path) -> None:
    path = _model_with_entries(tmp_path, [("location", "w.bin"), ("location", "w.bin")])
    weight = load(path).model.graph.initializer[0]
    assert np.array_equal(numpy_helper.to_array(weight), WEIGHT)


def test_the_data_file_named_is_the_one_onnx_read_through_a_link(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (tmp_path / "elsewhere" / "deeper").mkdir(parents=True)
    (folder / "sub").symlink_to(tmp_path / "elsewhere" / "deeper")
    path = _model_with_entries(folder, [("location", "sub/../w.bin")])
    loaded = load(path)
    assert np.array_equal(numpy_helper.to_array(loaded.model.graph.initializer[0]), WEIGHT)
    assert loaded.data_files == ((folder / "w.bin").resolve(),)
    assert main(["optimize", str(path), "-o", str(folder / "w.bin")]) == 2
    one_line_error(capsys, "is an external data file of the input model")
    assert (folder / "w.bin").read_bytes() == WEIGHT.tobytes()


def test_save_model_judges_an_unloaded_location_as_onnx_reads_it(tmp_path: Path) -> None:
    from graphopt.errors import SaveError
    from graphopt.ir import save_model

    (tmp_path / "elsewhere" / "deeper").mkdir(parents=True)
    source = _model_with_entries(tmp_path / "elsewhere", [("location", "w.bin")])
    model = onnx.load(str(source), load_external_data=False)
    model.graph.initializer[0].external_data[0].value = "sub/../w.bin"
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "sub").symlink_to(tmp_path / "elsewhere" / "deeper")  # sub/.. is elsewhere
    with pytest.raises(
        SaveError, match=re.escape("keeps its data in external file 'sub/../w.bin'")
    ):
        save_model(model, folder / "m.onnx")
    assert sorted(p.name for p in folder.iterdir()) == ["sub"]


def test_an_unknown_external_data_key_is_refused_not_ignored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _model_with_entries(
        tmp_path, [("location", "v.bin"), ("ofPset", "1024"), ("length", "1024")]
    )
    (tmp_path / "v.bin").write_bytes(np.zeros(256, np.float32).tobytes() + WEIGHT.tobytes())
    with pytest.raises(LoadError, match="external data entry 'ofPset', which is none of"):
        load(path)
    assert main(["optimize", str(path), "-o", str(tmp_path / "out.onnx")]) == 2
    one_line_error(capsys, "'ofPset'")
    assert not (tmp_path / "out.onnx").exists()


def test_a_string_tensor_kept_as_external_data_is_refused(tmp_path: Path) -> None:
    (tmp_path / "s.bin").write_bytes(b"\x01abcdefg")
    strings = helper.make_tensor("S", onnx.TensorProto.STRING, [2], [b"a", b"bc"])
    strings.ClearField("string_data")
    strings.data_location = onnx.TensorProto.EXTERNAL
    for key, value in (("location", "s.bin"), ("offset", "0"), ("length", "8")):
        entry = strings.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph(
        [helper.make_node("Identity", ["S"], ["out"], name="id")],
        "g",
        [],
        [helper.make_tensor_value_info("out", onnx.TensorProto.STRING, [2])],
        [strings],
    )
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(LoadError, match="'S' is kept as external data, which cannot hold a string"):
        graphopt.optimize(str(path))


def test_an_undefined_tensor_kept_as_external_data_is_refused(tmp_path: Path) -> None:
    """(its first message said 'a undefined tensor')"""
    path = _model_with_entries(tmp_path, [("location", "w.bin")])
    model = onnx.load(str(path), load_external_data=False)
    model.graph.initializer[0].data_type = onnx.TensorProto.UNDEFINED
    onnx.save(model, str(path))
    with pytest.raises(
        LoadError, match="'W' is kept as external data, which cannot hold an undefined"
    ):
        load(path)
