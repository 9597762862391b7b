"""Corners of loading a model from a path (H225).

An external-data tensor with an offset but no `length`, in a data file longer than the tensor
(a tensor at an offset of a shared file): onnxruntime reads the tensor's own size from the
offset and runs the model; graphopt's load refused it, because onnx's loader reads the rest of
the file. Now it reads the tensor's size, as onnxruntime does; a file holding fewer bytes is
still a one-line error. A `length` of 0 is none to onnxruntime too (onnx's loader read no
bytes, and the load refused the model).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnx.helper as oh
import onnxruntime as ort
import pytest
from onnx import numpy_helper

import graphopt
from graphopt.cli import main
from graphopt.errors import LoadError
from graphopt.ir import load
from graphopt.ir.model_io import save_model

WEIGHT = np.arange(64 * 64, dtype=np.float32).reshape(64, 64)
X = np.linspace(-1, 1, 64, dtype=np.float32).reshape(1, 64)


def _external_model(folder: Path, entries: dict[str, str], blob: bytes) -> Path:
    """x @ w, w's data in folder/w.bin (`blob`) as the external data `entries` say."""
    w = numpy_helper.from_array(WEIGHT, "w")
    w.ClearField("raw_data")
    w.data_location = onnx.TensorProto.EXTERNAL
    for key, value in entries.items():
        w.external_data.add(key=key, value=value)
    graph = oh.make_graph(
        [oh.make_node("MatMul", ["x", "w"], ["y"], name="mm")],
        "g",
        [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 64])],
        [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 64])],
        [w],
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)], ir_version=8)
    (folder / "w.bin").write_bytes(blob)
    path = folder / "m.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def _ort(path: Path) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": X})[0]


RAW = numpy_helper.from_array(WEIGHT).raw_data


@pytest.mark.parametrize(
    "entries, blob",
    [
        ({"location": "w.bin", "offset": "64"}, b"\1" * 64 + RAW + b"\2" * 100),
        ({"location": "w.bin"}, RAW + b"\2" * 4),
        # a length of 0 is none to onnxruntime (onnx's loader read no bytes: refused)
        ({"location": "w.bin", "offset": "64", "length": "0"}, b"\1" * 64 + RAW + b"\2" * 100),
        ({"location": "w.bin", "length": "0"}, RAW),
    ],
    ids=["offset", "no-offset", "length-0", "length-0-exact"],
)
def test_no_length_in_a_longer_data_file_reads_the_tensors_size(tmp_path, entries, blob):
    src = _external_model(tmp_path, entries, blob)
    np.testing.assert_allclose(_ort(src), X @ WEIGHT, rtol=1e-5)  # onnxruntime runs it
    loaded = load(src)
    np.testing.assert_array_equal(numpy_helper.to_array(loaded.model.graph.initializer[0]), WEIGHT)
    assert loaded.external_data
    # the save writes the tensor with its offset and length; it loads back the same
    out = tmp_path / "out" / "m.onnx"
    out.parent.mkdir()
    save_model(loaded.model, out, external_data=True)
    entry = {
        e.key: e.value
        for e in onnx.load(str(out), load_external_data=False).graph.initializer[0].external_data
    }
    assert entry["length"] == str(WEIGHT.nbytes)
    again = load(out).model.graph.initializer[0]
    np.testing.assert_array_equal(numpy_helper.to_array(again), WEIGHT)
    # and optimize writes a model onnxruntime runs to the same result
    opt = tmp_path / "opt.onnx"
    assert main(["optimize", str(src), "-o", str(opt)]) == 0
    np.testing.assert_allclose(_ort(opt), _ort(src), rtol=1e-5)


@pytest.mark.parametrize("offset, short", [(64, 4), (20000, 0)], ids=["cut-short", "past-end"])
def test_no_length_in_a_data_file_too_short_is_one_line(tmp_path, capsys, offset, short):
    blob = b"\1" * 64 + RAW[: len(RAW) - short]
    src = _external_model(tmp_path, {"location": "w.bin", "offset": str(offset)}, blob)
    with pytest.raises(ort.capi.onnxruntime_pybind11_state.Fail):
        _ort(src)  # onnxruntime refuses it too
    with pytest.raises(LoadError, match=r"needs 16384 bytes, but 'w\.bin' holds only") as info:
        load(src)
    assert "\n" not in str(info.value) and f"after offset {offset}" in str(info.value)
    out = tmp_path / "out.onnx"
    assert main(["optimize", str(src), "-o", str(out)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize("key", ["source_shape", "slice_offset"])
def test_an_external_data_key_neither_reads_is_not_called_damage(tmp_path, capsys, key):
    """An entry of a key neither onnx nor onnxruntime reads: refused in one line that says
    graphopt does not support the key (it said "(a damaged file?)")."""
    src = _external_model(tmp_path, {"location": "w.bin", key: "64,64"}, RAW)
    with pytest.raises(ort.capi.onnxruntime_pybind11_state.Fail, match="model format error"):
        _ort(src)  # onnxruntime 1.32 refuses the key
    with pytest.raises(LoadError) as info:
        load(src)
    message = str(info.value)
    assert f"external data entry {key!r}" in message and "\n" not in message
    assert "graphopt does not support that key" in message and "damaged" not in message
    out = tmp_path / "out.onnx"
    assert main(["optimize", str(src), "-o", str(out)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not out.exists()


def _relu_neg_both_write_t() -> onnx.ModelProto:
    graph = oh.make_graph(
        [
            oh.make_node("Relu", ["x"], ["t"], name="a"),
            oh.make_node("Neg", ["x"], ["t"], name="b"),
            oh.make_node("Relu", ["t"], ["y"], name="c"),
        ],
        "g",
        [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2])],
        [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2])],
    )
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)], ir_version=8)


def _split_writes_t_twice() -> onnx.ModelProto:
    model = _relu_neg_both_write_t()
    del model.graph.node[:2]
    model.graph.node.insert(0, oh.make_node("Split", ["x"], ["t", "t"], name="s", axis=0))
    return model


def _relu_writes_the_input() -> onnx.ModelProto:
    model = _relu_neg_both_write_t()
    model.graph.node[0].output[0] = "x"
    del model.graph.node[1]
    model.graph.node[1].input[0] = "x"
    return model


@pytest.mark.parametrize(
    "make, said",
    [
        (_relu_neg_both_write_t, "tensor 't' is produced by both 'a' and 'b'"),
        (_split_writes_t_twice, "node 's' (Split) writes tensor 't' twice"),
        (_relu_writes_the_input, "tensor 'x' is a graph input and is also produced by 'a'"),
    ],
    ids=["two-nodes", "one-node", "an-input"],
)
def test_a_tensor_written_twice_names_the_models_path(tmp_path, capsys, make, said):
    """The SSA errors said what was written twice but not in which file (optimize, inspect,
    check: load took the model, the index refused it); every other load error names it."""
    path = tmp_path / "m.onnx"
    path.write_bytes(make().SerializeToString())
    expected = f"{path}: {said}; ONNX graphs must be in SSA form"
    for call in (lambda: load(path), lambda: graphopt.optimize(str(path))):
        with pytest.raises(LoadError) as info:
            call()
        assert str(info.value) == expected
    with pytest.raises(LoadError) as info:
        graphopt.optimize(make())
    assert str(info.value) == f"the given ModelProto: {said}; ONNX graphs must be in SSA form"
    out = tmp_path / "out.onnx"
    for argv in (
        ["optimize", str(path), "-o", str(out)],
        ["inspect", str(path)],
        ["check", str(path)],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.endswith(expected) and "\n" not in err, err
    assert not out.exists()


def test_a_training_tensor_of_unknown_type_names_the_models_path(tmp_path, capsys):
    """training_info reading a node output whose type nothing declares or infers (a custom
    op's) is refused, and the refusal names the file as load's other errors do."""
    graph = oh.make_graph(
        [
            oh.make_node("Foo", ["x"], ["t"], name="a", domain="my"),
            oh.make_node("Relu", ["t"], ["y"], name="c"),
        ],
        "g",
        [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2])],
        [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2])],
    )
    opsets = [oh.make_opsetid("", 13), oh.make_opsetid("my", 1)]
    model = oh.make_model(graph, opset_imports=opsets, ir_version=8)
    algorithm = oh.make_graph(
        [oh.make_node("Identity", ["t"], ["u"], name="i")],
        "algorithm",
        [],
        [oh.make_tensor_value_info("u", onnx.TensorProto.FLOAT, [2])],
    )
    model.training_info.add().algorithm.CopyFrom(algorithm)
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(LoadError, match="training_info reads tensor 't'") as info:
        graphopt.optimize(str(path))
    assert str(info.value).startswith(f"{path}: training_info reads tensor 't' of the inference")
    out = tmp_path / "out.onnx"
    assert main(["optimize", str(path), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert f"{path}: training_info reads tensor 't'" in err and "\n" not in err
    assert not out.exists()


def _if_with_then(nodes: list[onnx.NodeProto], inputs=(), inits=()) -> onnx.ModelProto:
    """y = If(c, then: `nodes` -> o, else: Identity(x)); the then body's own `inputs` and
    `inits` as given."""
    info = oh.make_tensor_value_info
    then = oh.make_graph(
        nodes, "then", list(inputs), [info("o", onnx.TensorProto.FLOAT, [2])], list(inits)
    )
    other = oh.make_graph(
        [oh.make_node("Identity", ["x"], ["o2"], name="e")],
        "else",
        [],
        [info("o2", onnx.TensorProto.FLOAT, [2])],
    )
    graph = oh.make_graph(
        [oh.make_node("If", ["c"], ["y"], name="if", then_branch=then, else_branch=other)],
        "g",
        [info("c", onnx.TensorProto.BOOL, []), info("x", onnx.TensorProto.FLOAT, [2])],
        [info("y", onnx.TensorProto.FLOAT, [2])],
    )
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)], ir_version=8)


BODY_TWICE = {
    "two body nodes": (
        _if_with_then(
            [
                oh.make_node("Relu", ["x"], ["t"], name="r"),
                oh.make_node("Neg", ["x"], ["t"], name="n"),
                oh.make_node("Identity", ["t"], ["o"], name="i"),
            ]
        ),
        "node 'n' in a body of 'if' (If) writes tensor 't', which node 'r' of its body writes "
        "already",
    ),
    "one body node": (
        _if_with_then(
            [
                oh.make_node("Split", ["x"], ["t", "t"], name="s", axis=0),
                oh.make_node("Identity", ["x"], ["o"], name="i"),
            ]
        ),
        "node 's' in a body of 'if' (If) writes tensor 't' twice",
    ),
    "a body initializer": (
        _if_with_then(
            [
                oh.make_node("Neg", ["x"], ["k"], name="n"),
                oh.make_node("Identity", ["k"], ["o"], name="i"),
            ],
            inits=[numpy_helper.from_array(np.ones(2, np.float32), "k")],
        ),
        "node 'n' in a body of 'if' (If) writes tensor 'k', which is an initializer of its body",
    ),
    "the scope around": (  # as before
        _if_with_then(
            [
                oh.make_node("Neg", ["x"], ["x"], name="n"),
                oh.make_node("Identity", ["x"], ["o"], name="i"),
            ]
        ),
        "node 'n' in a body of 'if' (If) writes tensor 'x', which the scope around it defines "
        "already",
    ),
}


@pytest.mark.parametrize("case", sorted(BODY_TWICE))
def test_a_body_writing_a_name_twice_says_who_defined_it(tmp_path, capsys, case):
    """A body node writing a name its own body defined already was refused as writing one
    'which the scope around it defines already': wrong for a name defined in the body."""
    model, said = BODY_TWICE[case]
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(ort.capi.onnxruntime_pybind11_state.Fail):
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    expected = f"{path}: {said} (ONNX graphs must be in SSA form)"
    for call in (lambda: load(path), lambda: graphopt.optimize(str(path))):
        with pytest.raises(LoadError) as info:
            call()
        assert str(info.value) == expected
    out = tmp_path / "out.onnx"
    assert main(["optimize", str(path), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(expected) and "\n" not in err
    assert not out.exists()
