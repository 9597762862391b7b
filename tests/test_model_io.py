"""Lossless load → save round trips, atomic writes and one-line load errors."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import onnx.helper as oh
import onnx.parser
import pytest
from onnx import numpy_helper

import graphopt
from graphopt.errors import LoadError, SaveError
from graphopt.ir import Graph, load, load_model, save_model
from tests.models_util import WEIGHT, matmul_model

RICH = """
<ir_version: 8, opset_import: ["" : 15, "custom.domain" : 1, "local" : 1], producer_name: "test", producer_version: "1.0", doc_string: "model doc", domain: "ai.example", model_version: 7>
main (float[N,4] x, bool cond) => (float[N,4] y, float[N,4] z) <float[4] w = {1.0, 2.0, 3.0, 4.0}> {
    a = Add(x, w)
    b = custom.domain.MyOp <alpha = 0.5> (a)
    c = local.Twice(b)
    y = If(cond) <
        then_branch = then_g () => (float[N,4] t) { t = Neg(c) },
        else_branch = else_g () => (float[N,4] e) { e = Abs(c) }
    >
    trip = Constant <value = int64 {3}> ()
    init = Identity(a)
    z = Loop(trip, cond, init) <
        body = loop_g (int64 i, bool cin, float[N,4] acc) => (bool cout, float[N,4] acc_out) {
            cout = Identity(cin)
            acc_out = Add(acc, w)
        }
    >
}
<domain: "local", opset_import: ["" : 15]>
Twice (u) => (v) {
    v = Add(u, u)
}
"""


def _rich_model() -> onnx.ModelProto:
    model = onnx.parser.parse_model(RICH)
    onnx.helper.set_model_props(model, {"author": "graphopt-tests", "license": "apache"})
    model.graph.doc_string = "graph doc"
    model.graph.node[0].doc_string = "node doc"
    model.graph.value_info.append(oh.make_tensor_value_info("a", onnx.TensorProto.FLOAT, ["N", 4]))
    for i, node in enumerate(model.graph.node):
        node.name = f"n{i}"
    return model


def test_rich_model_round_trip_is_byte_identical(tmp_path):
    model = _rich_model()
    path = tmp_path / "rich.onnx"
    onnx.save_model(model, str(path))
    loaded = load_model(path)
    out = Graph(loaded).commit()
    target = tmp_path / "out.onnx"
    save_model(out, target)
    assert target.read_bytes() == path.read_bytes()


def test_rich_model_survives_optimize_without_losing_anything(tmp_path):
    model = _rich_model()
    before = model.SerializeToString()
    out = graphopt.optimize(model, pipeline=_dce_only(tmp_path))
    assert model.SerializeToString() == before, "the caller's model was mutated"
    assert {(o.domain, o.version) for o in out.opset_import} == {
        (o.domain, o.version) for o in model.opset_import
    }
    assert [(p.key, p.value) for p in out.metadata_props] == [
        (p.key, p.value) for p in model.metadata_props
    ]
    assert out.doc_string == "model doc" and out.graph.doc_string == "graph doc"
    assert [f.name for f in out.functions] == ["Twice"]
    assert out.model_version == 7 and out.producer_name == "test"
    assert any(vi.name == "a" for vi in out.graph.value_info)
    ops = [n.op_type for n in out.graph.node]
    assert "MyOp" in ops and "If" in ops and "Loop" in ops and "Twice" in ops


def _dce_only(tmp_path):
    p = tmp_path / "dce.yaml"
    p.write_text("passes:\n  - eliminate-dead-code\n")
    return p


def _external_model(folder: Path, location: str = "m.onnx.data") -> Path:
    """x @ WEIGHT, its 16 KiB weight stored as external data `location`, saved as folder/m.onnx."""
    src = folder / "m.onnx"
    onnx.save_model(
        matmul_model(),
        str(src),
        save_as_external_data=True,
        location=location,
        size_threshold=0,
    )
    return src


def test_model_with_external_data_round_trips_as_external(tmp_path):
    weight = WEIGHT
    (tmp_path / "src").mkdir()
    src = _external_model(tmp_path / "src", location="m.weights")
    loaded = load(src)
    assert loaded.external_data
    np.testing.assert_array_equal(numpy_helper.to_array(loaded.model.graph.initializer[0]), weight)
    out = tmp_path / "out.onnx"
    save_model(Graph(loaded.model).commit(), out, external_data=loaded.external_data)
    assert (tmp_path / "out.onnx.data").stat().st_size >= weight.nbytes
    assert out.stat().st_size < weight.nbytes  # weights are not inline
    back = onnx.load(str(out))
    np.testing.assert_array_equal(numpy_helper.to_array(back.graph.initializer[0]), weight)


def test_external_data_output_is_rewritten_in_place_and_again(tmp_path, monkeypatch):
    """Saving over a model and its data file works, from any working directory (onnx's own
    converter refused when `location` existed relative to the current directory), and again."""
    src = _external_model(tmp_path)
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        loaded = load(src)
        save_model(loaded.model, src, external_data=True)
    stored = onnx.load(str(src), load_external_data=False)
    assert stored.graph.initializer[0].data_location == onnx.TensorProto.EXTERNAL
    back = onnx.load(str(src))
    np.testing.assert_array_equal(numpy_helper.to_array(back.graph.initializer[0]), WEIGHT)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.data"]


def test_external_data_file_gets_the_model_files_mode(tmp_path):
    # onnx writes its data file 0600: a model another user (a server) can read, with weights
    # it cannot, would load nowhere
    src = _external_model(tmp_path)
    out = tmp_path / "out.onnx"
    old = os.umask(0o022)
    try:
        save_model(load(src).model, out, external_data=True)
    finally:
        os.umask(old)
    data = tmp_path / "out.onnx.data"
    assert out.stat().st_mode & 0o777 == 0o644
    assert data.stat().st_mode & 0o777 == 0o644


def test_weights_kept_in_typed_fields_go_to_external_data_too(tmp_path):
    """paddle2onnx writes weights as float_data / int64_data, which onnx's converter leaves
    inline: they are written to the data file as the same values (a model over 2 GiB would
    otherwise stay over 2 GiB)."""
    w = np.arange(64 * 64, dtype=np.float32).reshape(64, 64) / 7
    idx = np.arange(300, dtype=np.int64)
    graph = oh.make_graph(
        [
            oh.make_node("MatMul", ["x", "w"], ["y"], name="mm"),
            oh.make_node("Gather", ["v", "idx"], ["z"], name="g"),
        ],
        "g",
        [
            oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 64]),
            oh.make_tensor_value_info("v", onnx.TensorProto.FLOAT, [400]),
        ],
        [
            oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 64]),
            oh.make_tensor_value_info("z", onnx.TensorProto.FLOAT, [300]),
        ],
        [
            oh.make_tensor("w", onnx.TensorProto.FLOAT, [64, 64], w.ravel().tolist()),
            oh.make_tensor("idx", onnx.TensorProto.INT64, [300], idx.tolist()),
        ],
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)])
    assert not model.graph.initializer[0].HasField("raw_data")
    out = tmp_path / "out.onnx"
    save_model(model, out, external_data=True)
    stored = onnx.load(str(out), load_external_data=False)
    assert [t.data_location for t in stored.graph.initializer] == [onnx.TensorProto.EXTERNAL] * 2
    assert out.stat().st_size < 1024
    back = onnx.load(str(out))
    np.testing.assert_array_equal(numpy_helper.to_array(back.graph.initializer[0]), w)
    np.testing.assert_array_equal(numpy_helper.to_array(back.graph.initializer[1]), idx)


def test_saving_onto_a_folder_writes_nothing(tmp_path):
    loaded = load(_external_model(tmp_path))
    (tmp_path / "out").mkdir()
    with pytest.raises(SaveError, match="is a folder"):
        save_model(loaded.model, tmp_path / "out", external_data=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.data", "out"]
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_missing_or_truncated_external_data_is_a_one_line_load_error(tmp_path, damage):
    src = _external_model(tmp_path)
    data = tmp_path / "m.onnx.data"
    if damage == "missing":
        data.unlink()
    else:
        data.write_bytes(data.read_bytes()[:100])
    with pytest.raises(LoadError, match=r"m\.onnx: external data could not be loaded") as info:
        load(src)
    assert len(str(info.value).splitlines()) == 1


@pytest.mark.slow
def test_model_over_two_gib_is_saved_with_external_data(tmp_path):
    rows = (2**31) // (4 * 4096) + 16  # float32 rows of 4096 → a little over 2 GiB
    data = tmp_path / "big.data"
    with open(data, "wb") as f:
        chunk = np.ones((1024, 4096), np.float32).tobytes()
        for _ in range(rows // 1024):
            f.write(chunk)
        f.write(np.ones((rows % 1024, 4096), np.float32).tobytes())
    weight = onnx.TensorProto(name="w", data_type=onnx.TensorProto.FLOAT, dims=[rows, 4096])
    weight.data_location = onnx.TensorProto.EXTERNAL
    for key, value in (("location", "big.data"), ("offset", "0"), ("length", str(rows * 4096 * 4))):
        weight.external_data.add(key=key, value=value)
    graph = oh.make_graph(
        [oh.make_node("Gather", ["w", "i"], ["y"], name="g")],
        "g",
        [oh.make_tensor_value_info("i", onnx.TensorProto.INT64, [1])],
        [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4096])],
        [weight],
    )
    src = tmp_path / "big.onnx"
    src.write_bytes(
        oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)]).SerializeToString()
    )
    loaded = load(src)
    assert len(loaded.model.graph.initializer[0].raw_data) > 2**31
    out = tmp_path / "big_out.onnx"
    save_model(Graph(loaded.model).commit(), out)  # auto: over 2 GiB → external
    del loaded
    assert (tmp_path / "big_out.onnx.data").stat().st_size >= rows * 4096 * 4
    from graphopt.backends.onnxruntime import run

    y = run(str(out), {"i": np.array([3], np.int64)})["y"]
    np.testing.assert_array_equal(y, np.ones((1, 4096), np.float32))


def test_save_is_atomic_and_leaves_nothing_on_failure(tmp_path, monkeypatch):
    model = _rich_model()
    target = tmp_path / "out.onnx"
    target.write_bytes(b"previous content")

    def boom(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(SaveError, match="No space left"):
        save_model(model, target)
    monkeypatch.undo()
    assert target.read_bytes() == b"previous content"
    assert [p.name for p in tmp_path.iterdir()] == ["out.onnx"]


def test_save_into_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(SaveError, match="does not exist"):
        save_model(_rich_model(), tmp_path / "nope" / "m.onnx")


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "empty file"),
        (b"\x00\x01garbage that is not protobuf\xff\xff\xff", "not an ONNX model"),
    ],
)
def test_bad_files_are_one_line_load_errors(tmp_path, content, match):
    p = tmp_path / "bad.onnx"
    p.write_bytes(content)
    with pytest.raises(LoadError, match=match) as info:
        load_model(p)
    assert "\n" not in str(info.value)


def test_truncated_model_is_a_load_error(tmp_path):
    data = _rich_model().SerializeToString()
    p = tmp_path / "trunc.onnx"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(LoadError):
        load_model(p)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(LoadError, match="no such file"):
        load_model(tmp_path / "missing.onnx")
    with pytest.raises(LoadError, match="is a directory"):
        load_model(tmp_path)


def test_undefined_tensor_is_named():
    graph = oh.make_graph(
        [oh.make_node("Relu", ["ghost"], ["y"], name="r")],
        "g",
        [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)])
    with pytest.raises(LoadError, match="'ghost'"):
        load_model(model)
    with pytest.raises(LoadError, match="'ghost'"):  # not copying checks just the same
        load_model(model, copy=False)


def test_unsupported_opset_is_named():
    graph = oh.make_graph(
        [oh.make_node("Relu", ["x"], ["y"])],
        "g",
        [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 99)])
    with pytest.raises(LoadError, match="unsupported opset 99"):
        load_model(model)


def test_load_from_bytes_and_graphsurgeon():
    import onnx_graphsurgeon as gs

    model = _rich_model()
    assert load_model(model.SerializeToString()).graph.node[0].op_type == "Add"
    simple = onnx.parser.parse_model(
        """
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[2] x) => (float[2] y) { y = Relu(x) }
        """
    )
    proto = load_model(gs.import_onnx(simple))
    assert [n.op_type for n in proto.graph.node] == ["Relu"]


def test_save_leaves_only_the_target_with_umask_permissions(tmp_path):
    target = tmp_path / "out.onnx"
    target.write_bytes(b"previous content")
    save_model(_rich_model(), target)
    assert [p.name for p in tmp_path.iterdir()] == ["out.onnx"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    assert onnx.load(str(target)).SerializeToString() == _rich_model().SerializeToString()


def test_save_refuses_an_oversized_model_when_external_data_is_off(tmp_path, monkeypatch):
    from graphopt.ir import model_io

    monkeypatch.setattr(model_io, "TWO_GIB", 64)  # the rich model is a few hundred bytes
    with pytest.raises(SaveError, match="cannot serialize: the model is over 2 GiB"):
        save_model(_rich_model(), tmp_path / "out.onnx", external_data=False)
    assert list(tmp_path.iterdir()) == []


def test_save_switches_to_external_data_when_the_pieces_are_over_the_limit(tmp_path, monkeypatch):
    from graphopt.ir import model_io

    model = _model_with_initializers(3, 256)
    monkeypatch.setattr(model_io, "TWO_GIB", 2048)  # the model is ~3 KB, each tensor ~1 KB
    save_model(model, tmp_path / "out.onnx")
    assert (tmp_path / "out.onnx.data").stat().st_size >= 3 * 256 * 4
    back = onnx.load(str(tmp_path / "out.onnx"))
    for a, b in zip(back.graph.initializer, model.graph.initializer, strict=True):
        np.testing.assert_array_equal(numpy_helper.to_array(a), numpy_helper.to_array(b))


def _model_with_initializers(count: int, size: int) -> onnx.ModelProto:
    """x + w0 + w1 + ... with `count` float initializers of `size` elements, an external-data
    tensor's metadata, value_info and fields after the initializers (doc, sparse, metadata)."""
    nodes, prev = [], "x"
    inits = []
    for i in range(count):
        inits.append(numpy_helper.from_array(np.full(size, i, np.float32), f"w{i}"))
        nodes.append(oh.make_node("Add", [prev, f"w{i}"], [f"s{i}"], name=f"add{i}"))
        prev = f"s{i}"
    nodes.append(oh.make_node("Identity", [prev], ["y"], name="out"))
    graph = oh.make_graph(
        nodes,
        "g",
        [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [size])],
        [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [size])],
        inits,
        doc_string="graph doc",
        value_info=[oh.make_tensor_value_info("s0", onnx.TensorProto.FLOAT, [size])],
    )
    sparse = oh.make_sparse_tensor(
        numpy_helper.from_array(np.array([1.0], np.float32), "sp"),
        numpy_helper.from_array(np.array([0], np.int64), "sp_i"),
        [4],
    )
    graph.sparse_initializer.append(sparse)
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)], doc_string="m")
    onnx.helper.set_model_props(model, {"k": "v"})
    return model


@pytest.mark.parametrize(
    "model",
    [
        pytest.param(_rich_model(), id="rich"),
        pytest.param(_model_with_initializers(5, 1000), id="initializers"),
        pytest.param(oh.make_model(oh.make_graph([], "empty", [], [])), id="empty-graph"),
        pytest.param(
            oh.make_model(
                oh.make_graph(
                    [
                        oh.make_node(
                            "Constant",
                            [],
                            ["c"],
                            value=numpy_helper.from_array(np.arange(5000, dtype=np.float32), "c"),
                        )
                    ],
                    "constant-node",
                    [],
                    [oh.make_tensor_value_info("c", 1, [5000])],
                )
            ),
            id="constant-node-weights",
        ),
        pytest.param(onnx.ModelProto(ir_version=8), id="no-graph"),
    ],
)
def test_serialized_pieces_are_the_serialized_model(model):
    from graphopt.ir.model_io import serialized_pieces

    assert b"".join(serialized_pieces(model)) == model.SerializeToString()


def test_serialized_pieces_keep_unknown_fields():
    from graphopt.ir.model_io import serialized_pieces

    unknown = b"\x98\x06\x01"  # field 99, varint 1: in no onnx.proto message
    for where in ("model", "graph"):
        model = _model_with_initializers(2, 8)
        if where == "model":
            model.MergeFromString(unknown)
        else:
            model.graph.MergeFromString(unknown)
        data = model.SerializeToString()
        assert unknown in data
        assert b"".join(serialized_pieces(model)) == data, where


@pytest.mark.parametrize("field", ["producer_name", "doc_string", "graph.name", "graph.doc_string"])
def test_save_keeps_a_string_field_that_is_not_utf8(tmp_path, field):
    # Latin-1 text in a model or graph string field: protobuf parses it (onnx.proto is proto2)
    # and serializes it, but reads it back as bytes it will not set on a copy.
    model = _model_with_initializers(2, 8)
    del model.graph.sparse_initializer[:]  # (load cannot check those: it reads their .name)
    owner = model.graph if field.startswith("graph.") else model
    setattr(owner, field.removeprefix("graph."), "caf\u00e9")
    data = model.SerializeToString().replace(b"caf\xc3\xa9", b"caf\xe9 ")  # same length
    assert b"caf\xe9 " in data
    try:
        loaded = load(data)
    except LoadError:
        pytest.skip("this protobuf implementation refuses strings that are not UTF-8")
    save_model(loaded.model, tmp_path / "out.onnx")
    assert (tmp_path / "out.onnx").read_bytes() == data


def test_save_writes_every_piece_in_order(tmp_path, monkeypatch):
    from graphopt.ir import model_io

    model = _model_with_initializers(700, 3)  # 2 800+ pieces (nodes and initializers)
    count = len(model_io.serialized_pieces(model))
    assert count > 2 * model_io._IOV_MAX
    batches = -(-count // model_io._IOV_MAX)
    save_model(model, tmp_path / "a.onnx")
    assert (tmp_path / "a.onnx").read_bytes() == model.SerializeToString()

    writev = os.writev
    short = []

    def short_writev(fd, buffers):  # a short write: half of the second buffer goes out
        first, second = bytes(buffers[0]), bytes(buffers[1])
        n = os.write(fd, first + second[: len(second) // 2])
        short.append(n)
        return n

    monkeypatch.setattr(os, "writev", short_writev)
    save_model(model, tmp_path / "b.onnx")
    monkeypatch.setattr(os, "writev", writev)
    assert len(short) == batches == 3  # one per batch
    assert (tmp_path / "b.onnx").read_bytes() == model.SerializeToString()


def test_model_with_a_sparse_initializer_loads_and_optimizes(tmp_path):
    # A sparse initializer is named by its values tensor; reading `.name` of the
    # SparseTensorProto itself raised a bare AttributeError in load and in optimize.
    from graphopt.backends.onnxruntime import run

    sparse = oh.make_sparse_tensor(
        numpy_helper.from_array(np.array([1.5, -2.0], np.float32), "w"),
        numpy_helper.from_array(np.array([1, 3], np.int64), "w_idx"),
        [4],
    )
    graph = oh.make_graph(
        [
            oh.make_node("Add", ["x", "w"], ["a"], name="add"),
            oh.make_node("Identity", ["a"], ["y"], name="id"),
        ],
        "g",
        [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [4])],
        [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [4])],
    )
    graph.sparse_initializer.append(sparse)
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)])
    path = tmp_path / "sparse.onnx"
    path.write_bytes(model.SerializeToString())
    assert len(load(path).model.graph.sparse_initializer) == 1
    out = graphopt.optimize(path)
    assert [n.op_type for n in out.graph.node] == ["Add"]
    x = np.arange(4, dtype=np.float32)
    np.testing.assert_array_equal(run(out, {"x": x})["y"], x + np.array([0, 1.5, 0, -2.0]))
