"""An interrupted save through a symbolic link puts the old model file itself back (H235).

`graphopt optimize m.onnx -o o.onnx`, o.onnx a link to real/o.onnx, with external data and an
existing o.onnx.data: a Ctrl-C between the save's steps (after the new model, naming its data
under a fresh name, is put; before the data file is replaced) puts the old model back
(`model_io._Swap.settle`). Through a link it was put back by writing its bytes again, a new
file at real/o.onnx: the old model, but no longer the file the run found there. 1c89c5d's
`save_output` tells "the model was written" from "nothing was written" by that file's
identity (device, inode, mtime), so the run said "interrupted; wrote o.onnx; only what came
after (the report) was cut short" beside the old model (its parent said "nothing was
written"). Now the kept hard link itself is renamed back: the file is the one found there,
and the line says nothing was written. Controls (pass on both): the same without a link, and
an interrupt once the data file is replaced (the new model stands: "wrote o.onnx").
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphopt.ir.model_io as model_io
from graphopt import cli


def _model(scale: float) -> onnx.ModelProto:
    w = numpy_helper.from_array(np.full((64, 64), scale, dtype=np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])],
        [w],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _save(model: onnx.ModelProto, path: Path) -> None:
    onnx.save(copy.deepcopy(model), path, save_as_external_data=True, location=path.name + ".data")


def _setup(tmp_path: Path, link: bool) -> Path:
    """m.onnx (weights 2) to optimize, and an old o.onnx (weights 1) with o.onnx.data beside
    it; o.onnx a link to real/o.onnx where `link`. The file the save is to replace."""
    _save(_model(2.0), tmp_path / "m.onnx")
    old = _model(1.0)
    _save(old, tmp_path / "o.onnx")
    if not link:
        return tmp_path / "o.onnx"
    (tmp_path / "real").mkdir()
    os.replace(tmp_path / "o.onnx", tmp_path / "real" / "o.onnx")
    os.symlink(Path("real") / "o.onnx", tmp_path / "o.onnx")  # o.onnx.data stays beside it
    return tmp_path / "real" / "o.onnx"


def _weight(tmp_path: Path) -> float:
    return float(numpy_helper.to_array(onnx.load(tmp_path / "o.onnx").graph.initializer[0])[0, 0])


@pytest.mark.parametrize("link", [True, False])
def test_an_interrupt_before_the_data_is_replaced_keeps_the_old_file(
    tmp_path, monkeypatch, capsys, link
) -> None:  # type: ignore[no-untyped-def]
    found = os.stat(_setup(tmp_path, link))

    def interrupted(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    monkeypatch.setattr(model_io, "_replace_by_link", interrupted)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["optimize", "m.onnx", "-o", "o.onnx"]) == 130
    assert capsys.readouterr().err == "graphopt optimize: interrupted; nothing was written\n"
    assert _weight(tmp_path) == 1.0  # the old model, with its old data
    now = os.stat(tmp_path / "o.onnx")
    assert (now.st_dev, now.st_ino, now.st_mtime_ns) == (
        found.st_dev,
        found.st_ino,
        found.st_mtime_ns,
    )
    assert os.path.islink(tmp_path / "o.onnx") is link
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".graphopt")]


def test_an_interrupt_once_the_data_is_replaced_keeps_the_new_model(
    tmp_path, monkeypatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    _setup(tmp_path, link=True)
    real = model_io._replace_by_link

    def replaced_then_interrupted(*args, **kwargs):  # type: ignore[no-untyped-def]
        real(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(model_io, "_replace_by_link", replaced_then_interrupted)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["optimize", "m.onnx", "-o", "o.onnx"]) == 130
    assert capsys.readouterr().err == (
        "graphopt optimize: interrupted; wrote o.onnx; only what came after (the report) was "
        "cut short\n"
    )
    assert _weight(tmp_path) == 2.0
    assert os.path.islink(tmp_path / "o.onnx")
