"""An output path that is a symbolic link is written through, as onnx.save and onnxsim do.

save_model renamed its temporary file onto the path: a link `current.onnx -> v3/model.onnx`
became a regular file and the model it pointed to stayed as it was.
"""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from graphopt.cli import main
from graphopt.errors import SaveError
from graphopt.ir import load, save_model
from tests.models_util import WEIGHT, matmul_model

_model = matmul_model


def _link(tmp_path):  # type: ignore[no-untyped-def]
    """tmp/current.onnx -> versions/v3.onnx (an older file there)."""
    (tmp_path / "versions").mkdir()
    real = tmp_path / "versions" / "v3.onnx"
    real.write_bytes(b"older model")
    link = tmp_path / "current.onnx"
    os.symlink(os.path.join("versions", "v3.onnx"), link)
    return link, real


def test_saving_onto_a_link_replaces_the_file_it_points_to(tmp_path):
    link, real = _link(tmp_path)
    save_model(_model(), link)
    assert link.is_symlink() and os.readlink(link) == os.path.join("versions", "v3.onnx")
    assert real.read_bytes() == _model().SerializeToString()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["current.onnx", "versions"]
    assert [p.name for p in (tmp_path / "versions").iterdir()] == ["v3.onnx"]


def test_optimize_onto_a_link_keeps_the_link(tmp_path):
    link, real = _link(tmp_path)
    src = tmp_path / "m.onnx"
    onnx.save(_model(), str(src))
    assert main(["optimize", str(src), "-o", str(link)]) == 0
    assert link.is_symlink()
    back = onnx.load(str(real))
    np.testing.assert_array_equal(numpy_helper.to_array(back.graph.initializer[0]), WEIGHT)


def test_external_data_through_a_link_loads_from_the_link(tmp_path):
    """The model goes where the link points, its data file beside the link: a reader opening
    the link (onnx.load, onnxruntime, graphopt) looks for the data there, as onnx.save wrote."""
    link, real = _link(tmp_path)
    save_model(_model(), link, external_data=True)
    assert link.is_symlink()
    assert (tmp_path / "current.onnx.data").is_file()
    stored = onnx.load(str(real), load_external_data=False)
    assert stored.graph.initializer[0].data_location == onnx.TensorProto.EXTERNAL
    loaded = load(link)
    np.testing.assert_array_equal(numpy_helper.to_array(loaded.model.graph.initializer[0]), WEIGHT)


def test_a_link_into_a_missing_folder_writes_nothing(tmp_path):
    link = tmp_path / "dangling.onnx"
    os.symlink(os.path.join("nowhere", "m.onnx"), link)
    with pytest.raises(SaveError, match="whose folder does not exist"):
        save_model(_model(), link)
    assert link.is_symlink() and sorted(p.name for p in tmp_path.iterdir()) == ["dangling.onnx"]


def test_a_dangling_link_in_an_existing_folder_is_created_through(tmp_path):
    (tmp_path / "versions").mkdir()
    link = tmp_path / "next.onnx"
    os.symlink(os.path.join("versions", "v4.onnx"), link)
    save_model(_model(), link)
    assert link.is_symlink()
    assert (tmp_path / "versions" / "v4.onnx").read_bytes() == _model().SerializeToString()


def test_every_atomic_writer_writes_through_a_link(tmp_path):
    """write_atomically itself follows the link (the engine, cache and manifest writers call it
    directly): it replaced the link with a regular file."""
    from graphopt.ir.model_io import write_atomically

    link, real = _link(tmp_path)
    write_atomically(link, link.parent, b"engine bytes")
    assert link.is_symlink() and real.read_bytes() == b"engine bytes"
    write_atomically(link, link.parent, [b"in ", b"pieces"])
    assert link.is_symlink() and real.read_bytes() == b"in pieces"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["current.onnx", "versions"]
    assert [p.name for p in (tmp_path / "versions").iterdir()] == ["v3.onnx"]
