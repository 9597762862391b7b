"""save_model writes a model to a file as it serializes it, a batch of pieces at a time
(`graphopt.ir.model_io.ModelPieces.write_to`): the file is the model's own bytes, and the save
never holds the whole serialization in memory."""

from __future__ import annotations

import os
import tracemalloc

import numpy as np
import onnx
import onnx.helper as oh
import pytest
from onnx import numpy_helper

import graphopt
from graphopt.errors import SaveError
from graphopt.ir import model_io, save_model
from graphopt.realmodels import fetch_model


def _leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".graphopt-"))


@pytest.mark.realmodel
@pytest.mark.parametrize("name", ["ppocr_det", "layout_cdla"])
def test_a_real_detector_is_saved_as_its_bytes_without_holding_them_all(tmp_path, name):
    model = graphopt.optimize(str(fetch_model(name)))
    data = model.SerializeToString()
    out = tmp_path / "m.onnx"
    save_model(model, out)  # (a first save: the imports and caches it makes are not counted)
    tracemalloc.start()
    try:
        save_model(model, out)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert out.read_bytes() == data
    # the parent held every piece before writing: a peak of the model's whole size (4.7 and
    # 7.2 MB); a batch of about a megabyte, with the largest weight (0.6 and 1 MB), now
    assert peak < len(data) / 3
    assert _leftovers(tmp_path) == []


def _int64_model(count: int) -> onnx.ModelProto:
    """A model whose weight is `count` int64 zeros held in `int64_data` (one byte each on the
    wire, eight in the save's estimate of the graph's size)."""
    w = onnx.TensorProto(name="w", data_type=onnx.TensorProto.INT64, dims=[count])
    w.int64_data.extend([0] * count)
    graph = oh.make_graph(
        [oh.make_node("Add", ["x", "w"], ["y"], name="add")],
        "g",
        [oh.make_tensor_value_info("x", onnx.TensorProto.INT64, [count])],
        [oh.make_tensor_value_info("y", onnx.TensorProto.INT64, [count])],
        [w],
    )
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)])


def test_a_graph_length_wider_or_narrower_than_guessed_is_written_again_right(tmp_path):
    # 300 000 zeros: ~300 KB on the wire (a 3-byte length), guessed 2.4 MB (4 bytes)
    for count in (300_000, 10):
        model = _int64_model(count)
        out = tmp_path / f"m{count}.onnx"
        save_model(model, out)
        assert out.read_bytes() == model.SerializeToString()
        assert onnx.load(str(out)) == model
    assert _leftovers(tmp_path) == []


def test_a_model_found_over_the_limit_while_written_goes_to_external_data(tmp_path, monkeypatch):
    """The estimate counts a node as a few bytes: a Constant node's 16 KB weight is found over
    a (lowered) 2 GiB limit only while the file is written. That file goes; the model is saved
    with its weight in a data file, as one over the limit from the start is."""
    weight = numpy_helper.from_array(np.arange(4096, dtype=np.float32), "c")
    graph = oh.make_graph(
        [
            oh.make_node("Constant", [], ["c"], name="const", value=weight),
            oh.make_node("Add", ["x", "c"], ["y"], name="add"),
        ],
        "g",
        [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [4096])],
        [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [4096])],
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)])
    monkeypatch.setattr(model_io, "TWO_GIB", 8192)
    assert model.ByteSize() > 16384  # over it, by a weight no estimate of the weights counts
    out = tmp_path / "m.onnx"
    try:
        save_model(model, out)
    except SaveError as e:  # what cannot go to a data file stays inline: refused, one line
        assert len(str(e).splitlines()) == 1
        assert not out.exists()
    else:  # (onnx moves a Constant node's weight to the data file too)
        assert (tmp_path / "m.onnx.data").stat().st_size == 16384
        loaded = onnx.load(str(out))
        assert numpy_helper.to_array(loaded.graph.node[0].attribute[0].t).tolist() == list(
            range(4096)
        )
    assert _leftovers(tmp_path) == []


def test_a_pipe_gets_the_model_whole(tmp_path):
    model = _int64_model(1000)
    read, write = os.pipe()  # (the model is ~1 KB: the pipe holds it all)
    with os.fdopen(write, "wb") as f:
        model_io._write(f, model_io.serialized_pieces(model))
    with os.fdopen(read, "rb") as f:
        assert f.read() == model.SerializeToString()
