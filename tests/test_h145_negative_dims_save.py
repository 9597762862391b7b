"""save_model writes a model whose initializer declares a negative dim (malformed, but onnx.save
and graphopt's load take it) as its bytes: a30d199's size estimate went negative and the save
failed with "cannot serialize: byte must be in range(0, 256)"."""

from __future__ import annotations

import onnx
import onnx.helper as oh
import pytest

from graphopt.ir import save_model


def test_a_negative_dim_is_saved_as_its_bytes(tmp_path):
    w = onnx.TensorProto(name="w", data_type=onnx.TensorProto.FLOAT, dims=[-100000000])
    graph = oh.make_graph(
        [oh.make_node("Identity", ["w"], ["y"], name="id")],
        "g",
        [],
        [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        [w],
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)])
    out = tmp_path / "m.onnx"
    save_model(model, out)
    assert out.read_bytes() == model.SerializeToString()


@pytest.mark.realmodel
def test_pieces_written_to_a_file_opened_to_append_follow_its_bytes(tmp_path, real_model):
    """`ModelPieces.write_to` seeks to place the graph's length before its body; a file opened
    to append writes at its end whatever the offset: such a file gets the pieces in order."""
    from graphopt.ir.model_io import serialized_pieces

    model = onnx.load(str(real_model("ppocr_det")))
    path = tmp_path / "m.bin"
    path.write_bytes(b"head")
    with open(path, "ab") as f:
        serialized_pieces(model).write_to(f)
    assert path.read_bytes() == b"head" + model.SerializeToString()
