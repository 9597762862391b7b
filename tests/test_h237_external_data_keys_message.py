"""The refusal of an unknown external-data key says which keys onnxruntime reads (H237).

b357e69's message listed 'basepath' among the keys it is 'none of' and added '(nor does
onnxruntime)', as if onnxruntime took every key listed: onnxruntime 1.32 refuses 'basepath'
('model format error!'), which onnx reads (ExternalDataInfo) and graphopt takes (its output
saves the tensor without it: onnxruntime runs that). graphopt keeps taking it; the message now
says onnxruntime reads location, offset, length and checksum, and refuses basepath.
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

WEIGHT = np.arange(16, dtype=np.float32).reshape(4, 4)
X = np.linspace(-1, 1, 4, dtype=np.float32).reshape(1, 4)


def _model(folder: Path, entries: dict[str, str]) -> Path:
    """x @ w, w's data in folder/w.bin as `entries` say (location w.bin and those)."""
    w = numpy_helper.from_array(WEIGHT, "w")
    w.ClearField("raw_data")
    w.data_location = onnx.TensorProto.EXTERNAL
    for key, value in {"location": "w.bin", **entries}.items():
        w.external_data.add(key=key, value=value)
    graph = oh.make_graph(
        [oh.make_node("MatMul", ["x", "w"], ["y"], name="mm")],
        "g",
        [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])],
        [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])],
        [w],
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)], ir_version=8)
    (folder / "w.bin").write_bytes(WEIGHT.tobytes())
    path = folder / "m.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def _ort(path: Path) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": X})[0]


def test_the_message_says_onnxruntime_refuses_basepath(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _model(tmp_path, {"source_shape": "4,4"})
    said = (
        f"{path}: tensor 'w' has an external data entry 'source_shape', which is none of "
        "location, offset, length, checksum (the keys onnxruntime reads) and basepath (which "
        "onnx reads, and onnxruntime refuses): graphopt does not support that key, nor does "
        "onnxruntime"
    )
    with pytest.raises(LoadError) as info:
        load(path)
    assert str(info.value) == said
    out = tmp_path / "out.onnx"
    assert main(["optimize", str(path), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(f"error: {said}") and "\n" not in err, err
    assert not out.exists()


@pytest.mark.parametrize(
    "entries",
    [{}, {"offset": "0"}, {"length": "64"}, {"checksum": "0123"}],
    ids=["location", "offset", "length", "checksum"],
)
def test_onnxruntime_reads_the_keys_the_message_says_it_reads(
    tmp_path: Path, entries: dict[str, str]
) -> None:
    np.testing.assert_allclose(_ort(_model(tmp_path, entries)), X @ WEIGHT, rtol=1e-6)


@pytest.mark.parametrize("key", ["basepath", "source_shape"])
def test_onnxruntime_refuses_basepath_and_the_unknown_key(tmp_path: Path, key: str) -> None:
    with pytest.raises(ort.capi.onnxruntime_pybind11_state.Fail, match="model format error"):
        _ort(_model(tmp_path, {key: "."}))


def test_basepath_is_still_taken_and_saved_without_it(tmp_path: Path) -> None:
    """The control: graphopt takes basepath (onnx reads it); what it writes onnxruntime runs."""
    path = _model(tmp_path, {"basepath": "."})
    out = tmp_path / "out.onnx"
    assert main(["optimize", str(path), "-o", str(out), "--pipeline", "default"]) == 0
    np.testing.assert_allclose(_ort(out), X @ WEIGHT, rtol=1e-6)
    saved = onnx.load(str(out), load_external_data=False)
    keys = {e.key for t in saved.graph.initializer for e in t.external_data}
    assert "basepath" not in keys
    np.testing.assert_allclose(
        numpy_helper.to_array(graphopt.optimize(str(path)).graph.initializer[0]), WEIGHT
    )
