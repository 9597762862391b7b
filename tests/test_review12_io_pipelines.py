"""What survives `graphopt.optimize(path, pipeline=...)` for every built-in pipeline and
`graphopt optimize IN -o OUT`: a model with every part the I/O contract names (custom opset
domains, a model-local function with an attribute and its own opset imports, doc strings,
producer, metadata, value_info, an If, a sparse initializer, training_info) and its weights in
one external data file in a subfolder, at offsets with lengths."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import onnx.helper as oh
import onnx.parser
import onnxruntime as ort
import pytest
from onnx import TensorProto, numpy_helper

import graphopt
from graphopt.cli import main
from graphopt.ir import load

PIPELINES = ["default", "simplify", "ort-cpu", "ort-cpu-native", "ort-fusions", "tensorrt"]
W = np.arange(64 * 64, dtype=np.float32).reshape(64, 64) / 1000
B = np.linspace(-1, 1, 64).astype(np.float32)
LR = np.full((16, 16), 0.25, np.float32)  # the training algorithm's own weight (1 KiB)
X = np.linspace(-1, 1, 64, dtype=np.float32).reshape(1, 64)


def _scale_function() -> onnx.FunctionProto:
    """local.Scale(x) = x · alpha (attribute, default 2.0), importing opset 17 itself."""
    alpha = onnx.AttributeProto(
        name="value_float", ref_attr_name="alpha", type=onnx.AttributeProto.FLOAT
    )
    constant = oh.make_node("Constant", [], ["a"])
    constant.attribute.append(alpha)
    function = oh.make_function(
        "local",
        "Scale",
        ["x"],
        ["y"],
        [constant, oh.make_node("Mul", ["x", "a"], ["y"])],
        [oh.make_opsetid("", 17)],
    )
    function.attribute_proto.append(oh.make_attribute("alpha", 2.0))
    function.doc_string = "function doc"
    return function


def _model() -> onnx.ModelProto:
    then_g = oh.make_graph(
        [oh.make_node("Relu", ["h"], ["t"])],
        "then",
        [],
        [oh.make_tensor_value_info("t", TensorProto.FLOAT, [1, 64])],
    )
    else_g = oh.make_graph(
        [oh.make_node("Neg", ["h"], ["e"])],
        "else",
        [],
        [oh.make_tensor_value_info("e", TensorProto.FLOAT, [1, 64])],
    )
    sparse = oh.make_sparse_tensor(
        numpy_helper.from_array(np.array([5.0, 7.0], np.float32), "S"),
        numpy_helper.from_array(np.array([3, 10], np.int64), "S_i"),
        [1, 64],
    )
    graph = oh.make_graph(
        [
            oh.make_node("MatMul", ["x", "W"], ["mm"], name="mm"),
            oh.make_node("Add", ["mm", "B"], ["h"], name="add"),
            oh.make_node(
                "If", ["cond"], ["branch"], name="if", then_branch=then_g, else_branch=else_g
            ),
            oh.make_node("Scale", ["branch"], ["scaled"], domain="local", name="scale", alpha=3.0),
            oh.make_node("Add", ["scaled", "S"], ["y"], name="add_sparse"),
        ],
        "main",
        [
            oh.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64]),
            oh.make_tensor_value_info("cond", TensorProto.BOOL, []),
        ],
        [oh.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])],
        [numpy_helper.from_array(W, "W"), numpy_helper.from_array(B, "B")],
        doc_string="graph doc",
        value_info=[oh.make_tensor_value_info("h", TensorProto.FLOAT, [1, 64])],
        sparse_initializer=[sparse],
    )
    model = oh.make_model(
        graph,
        opset_imports=[
            oh.make_opsetid("", 17),
            oh.make_opsetid("local", 1),
            oh.make_opsetid("com.custom", 3),
        ],
        functions=[_scale_function()],
        producer_name="probe",
        producer_version="9.9",
        domain="org.probe",
        model_version=42,
        doc_string="model doc",
        ir_version=9,
    )
    oh.set_model_props(model, {"author": "me", "license": "MIT"})
    training = model.training_info.add()
    training.initialization.CopyFrom(
        oh.make_graph(
            [oh.make_node("Identity", ["lr"], ["lr0"])],
            "init",
            [],
            [oh.make_tensor_value_info("lr0", TensorProto.FLOAT, [16, 16])],
            [numpy_helper.from_array(LR, "lr")],
        )
    )
    training.algorithm.CopyFrom(
        oh.make_graph(
            [oh.make_node("Identity", ["B"], ["B_new"])],
            "algo",
            [],
            [oh.make_tensor_value_info("B_new", TensorProto.FLOAT, [64])],
        )
    )
    training.update_binding.add(key="B", value="B_new")
    return model


def _facts(model: onnx.ModelProto) -> dict:
    return {
        "ir": model.ir_version,
        "producer": (model.producer_name, model.producer_version),
        "domain": (model.domain, model.model_version),
        "docs": (model.doc_string, model.graph.doc_string, model.graph.name),
        "metadata": {p.key: p.value for p in model.metadata_props},
        "opsets": sorted((o.domain, o.version) for o in model.opset_import),
        "functions": [
            (
                f.domain,
                f.name,
                [(a.name, a.f) for a in f.attribute_proto],
                sorted((o.domain, o.version) for o in f.opset_import),
                f.doc_string,
            )
            for f in model.functions
        ],
        "scale alpha": [
            oh.get_attribute_value(a)
            for n in model.graph.node
            if n.op_type == "Scale"
            for a in n.attribute
        ],
        "sparse": [
            (s.values.name, numpy_helper.to_array(s.values).tolist())
            for s in model.graph.sparse_initializer
        ],
        "training": [
            (
                [(b.key, b.value) for b in t.update_binding],
                [numpy_helper.to_array(i).tolist() for i in t.initialization.initializer],
            )
            for t in model.training_info
        ],
    }


EXPECTED = _facts(_model())


def _outputs(model: onnx.ModelProto | Path) -> list[np.ndarray]:
    source = str(model) if isinstance(model, Path) else model.SerializeToString()
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    return [session.run(None, {"x": X, "cond": np.array(c)})[0] for c in (True, False)]


REFERENCE = _outputs(_model())


def _external_in_subfolder(folder: Path) -> Path:
    """The model as folder/m.onnx, W, B and training's lr in weights/w.bin (one file, each at
    a 64-byte aligned offset with its length)."""
    model = _model()
    (folder / "weights").mkdir(parents=True)
    blob = b""
    for tensor in (*model.graph.initializer, *model.training_info[0].initialization.initializer):
        blob += b"\0" * (-len(blob) % 64)
        offset = len(blob)
        blob += tensor.raw_data
        tensor.ClearField("raw_data")
        tensor.data_location = TensorProto.EXTERNAL
        for key, value in (
            ("location", "weights/w.bin"),
            ("offset", offset),
            ("length", len(blob) - offset),
        ):
            tensor.external_data.add(key=key, value=str(value))
    (folder / "weights" / "w.bin").write_bytes(blob)
    path = folder / "m.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def _assert_same(got: list[np.ndarray]) -> None:
    for a, b in zip(got, REFERENCE, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def _locations(path: Path) -> set[str]:
    stored = onnx.load(str(path), load_external_data=False)
    return {
        e.value for t in stored.graph.initializer for e in t.external_data if e.key == "location"
    }


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_every_builtin_pipeline_keeps_what_the_model_carries(tmp_path, pipeline):
    src = _external_in_subfolder(tmp_path)
    out = graphopt.optimize(str(src), pipeline=pipeline)
    assert _facts(out) == EXPECTED
    _assert_same(_outputs(out))


def test_training_info_weights_in_external_data_are_loaded(tmp_path):
    """onnx's loader does not visit training_info graphs; the parent left their tensors in
    the input's data file, which a model written elsewhere does not have."""
    loaded = load(_external_in_subfolder(tmp_path))
    lr = loaded.model.training_info[0].initialization.initializer[0]
    assert lr.data_location == TensorProto.DEFAULT
    np.testing.assert_array_equal(numpy_helper.to_array(lr), LR)


def test_cli_output_in_another_folder_is_complete_there(tmp_path):
    src = _external_in_subfolder(tmp_path / "in")
    out = tmp_path / "elsewhere" / "o.onnx"
    out.parent.mkdir()
    assert main(["optimize", str(src), "-o", str(out)]) == 0
    shutil.rmtree(tmp_path / "in")  # nothing of the input is read again
    assert sorted(p.name for p in out.parent.iterdir()) == ["o.onnx", "o.onnx.data"]
    assert _locations(out) == {"o.onnx.data"}
    _assert_same(_outputs(out))
    assert _facts(load(out).model) == EXPECTED


def test_cli_output_onto_its_input_replaces_the_model_and_keeps_the_old_data_file(tmp_path):
    """In place: the model names its own new data file; the input's (weights/w.bin, which
    another model may share) is left as it was."""
    src = _external_in_subfolder(tmp_path)
    before = (tmp_path / "weights" / "w.bin").read_bytes()
    for _ in range(2):  # and again, over its own data file
        assert main(["optimize", str(src), "-o", str(src)]) == 0
        assert _locations(src) == {"m.onnx.data"}
        _assert_same(_outputs(src))
        assert _facts(load(src).model) == EXPECTED
    assert (tmp_path / "weights" / "w.bin").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.data", "weights"]


def test_cli_refuses_an_output_onto_the_inputs_data_file_and_keeps_it(tmp_path, capsys):
    src = _external_in_subfolder(tmp_path)
    data = tmp_path / "weights" / "w.bin"
    before = data.read_bytes()
    assert main(["optimize", str(src), "-o", str(data)]) == 2
    assert "is an external data file of the input model" in capsys.readouterr().err
    assert data.read_bytes() == before
    _assert_same(_outputs(src))
