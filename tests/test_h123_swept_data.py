"""A save with external data whose data file is removed from its temporary folder before it
is put in place (a cleanup in another pid namespace or host, where the folder takes no lock,
took the save for a killed one: see `graphopt.ir.model_io`'s docstring). The save took the
missing file for "no tensor large enough" and put the model alone: naming the old data file
(the new model reading the old model's weights), or a file that is not there. Now it is a
SaveError, and the model and data at the path are as they were."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser
import pytest
from onnx import numpy_helper

import graphopt.ir.model_io as model_io
from graphopt.errors import SaveError
from graphopt.ir import save_model
from tests.models_util import add_model


@pytest.mark.parametrize("first", [True, False])
def test_a_save_whose_data_file_was_swept_fails_and_keeps_what_was_there(
    tmp_path, monkeypatch, first
):
    path = tmp_path / "m.onnx"
    if not first:
        save_model(add_model(1), path, external_data=True)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    put = model_io._put_model_and_data

    def swept_first(work, tmp, *args):  # type: ignore[no-untyped-def]
        (tmp / "m.onnx.data").unlink()  # as a cleanup elsewhere removes it
        return put(work, tmp, *args)

    monkeypatch.setattr(model_io, "_put_model_and_data", swept_first)
    with pytest.raises(SaveError, match=r"m\.onnx: cannot write: its data file m\.onnx\.data"):
        save_model(add_model(2), path, external_data=True)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    if not first:
        loaded = onnx.load(str(path))
        assert float(numpy_helper.to_array(loaded.graph.initializer[0])[0, 0]) == 1.0


def test_a_model_too_small_for_a_data_file_is_saved_alone(tmp_path):
    """What the missing file meant before, and still means: no tensor of 1 KiB or more."""
    model = onnx.parser.parse_model("""
<ir_version: 8, opset_import: ["" : 17]>
g (float[4] x) => (float[4] y) { y = Add(x, w) }
""")
    model.graph.initializer.append(numpy_helper.from_array(np.ones(4, np.float32), "w"))
    save_model(model, tmp_path / "s.onnx", external_data=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.onnx"]
    assert onnx.load(str(tmp_path / "s.onnx")).graph.initializer[0].raw_data
