"""External data corners of loading a model (H233, review of H225's 300495c and a93323e).

- A 6-bit float tensor (float6e2m3, float6e3m2: onnx packs them with no gap, 5 elements in 4
  bytes) kept as external data was counted at a byte an element: a correct `length` was refused
  ('needs 5 bytes, but ... holds 4'), and without one the load read the next byte of a shared
  data file into the tensor.
- An external tensor with a negative dim: its size counted from dims was put in as the length
  ('External data length must be non-negative, got -24', a length the file does not have), or,
  with two negative dims, the positive product was read and the model loaded, and optimize
  wrote a model onnx.checker and onnxruntime refuse.
"""

from __future__ import annotations

from pathlib import Path

import ml_dtypes
import numpy as np
import onnx
import onnx.helper as oh
import onnxruntime as ort
import pytest
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator

from graphopt.cli import main
from graphopt.errors import LoadError
from graphopt.ir import load
from graphopt.ir.model_io import save_model

FLOAT6 = {"float6e2m3": ml_dtypes.float6_e2m3fn, "float6e3m2": ml_dtypes.float6_e3m2fn}


def _external(
    folder: Path,
    tensor: onnx.TensorProto,
    entries: dict[str, str],
    blob: bytes,
    opset: int = 13,
    ir: int = 8,
) -> Path:
    """y = Cast(w, float); w's data in folder/w.bin (`blob`) as the external data `entries` say."""
    w = onnx.TensorProto()
    w.CopyFrom(tensor)
    w.ClearField("raw_data")
    w.data_location = onnx.TensorProto.EXTERNAL
    for key, value in entries.items():
        w.external_data.add(key=key, value=value)
    graph = oh.make_graph(
        [oh.make_node("Cast", [w.name], ["y"], name="c", to=onnx.TensorProto.FLOAT)],
        "g",
        [],
        [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, list(tensor.dims))],
        [w],
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset)], ir_version=ir)
    (folder / "w.bin").write_bytes(blob)
    path = folder / "m.onnx"
    path.write_bytes(model.SerializeToString())
    return path


@pytest.mark.parametrize("kind", sorted(FLOAT6))
@pytest.mark.parametrize("length", [True, False], ids=["length", "no-length"])
def test_a_six_bit_float_tensor_reads_its_packed_bytes(tmp_path, kind, length):
    dtype = FLOAT6[kind]
    values = np.array([1, 2, 3, 0, 1], dtype=dtype)
    raw = numpy_helper.from_array(values, "w").raw_data
    assert len(raw) == 4  # 5 x 6 bits: onnx packs them with no gap
    entries = {"location": "w.bin", "offset": "7"}
    if length:
        entries["length"] = "4"
    # a shared data file: other bytes before and after the tensor's
    src = _external(
        tmp_path,
        numpy_helper.from_array(values, "w"),
        entries,
        b"\5" * 7 + raw + b"\x3f" * 9,
        28,
        13,
    )
    model = onnx.load(str(src))
    onnx.checker.check_model(model, full_check=True)
    (expected,) = ReferenceEvaluator(model).run(None, {})  # (onnxruntime has no float6)
    np.testing.assert_array_equal(expected, values.astype(np.float32))
    w = load(src).model.graph.initializer[0]
    assert w.raw_data == raw  # its 4 bytes, not 5 (no byte of what follows it)
    np.testing.assert_array_equal(numpy_helper.to_array(w).astype(np.float32), expected)


@pytest.mark.parametrize("kind", sorted(FLOAT6))
def test_a_six_bit_float_tensor_saves_and_loads_back(tmp_path, kind):
    """2001 elements: 1501 bytes (not a whole number of 4-byte groups), written as external
    data with that length, and read back the same."""
    dtype = FLOAT6[kind]
    values = (np.arange(2001) % 7).astype(dtype)
    tensor = numpy_helper.from_array(values, "w")
    assert len(tensor.raw_data) == 1501
    src = _external(tmp_path, tensor, {"location": "w.bin"}, tensor.raw_data, 28, 13)
    loaded = load(src)
    assert loaded.model.graph.initializer[0].raw_data == tensor.raw_data
    out = tmp_path / "out" / "m.onnx"
    out.parent.mkdir()
    save_model(loaded.model, out, external_data=True)
    entry = {
        e.key: e.value
        for e in onnx.load(str(out), load_external_data=False).graph.initializer[0].external_data
    }
    assert entry["length"] == "1501"
    assert load(out).model.graph.initializer[0].raw_data == tensor.raw_data
    onnx.checker.check_model(onnx.load(str(out)), full_check=True)


def test_a_six_bit_float_data_file_too_short_is_still_refused(tmp_path):
    """(Refused on the parent too, then as 'needs 5 bytes'.)"""
    values = np.array([1, 2, 3, 0, 1], dtype=ml_dtypes.float6_e2m3fn)
    raw = numpy_helper.from_array(values, "w").raw_data
    src = _external(
        tmp_path, numpy_helper.from_array(values, "w"), {"location": "w.bin"}, raw[:3], 28, 13
    )
    with pytest.raises(LoadError, match=r"needs 4 bytes, but 'w\.bin' holds only 3"):
        load(src)


@pytest.mark.parametrize("dims", [[-2, 3], [-2, -3]], ids=["one-negative", "two-negative"])
def test_an_external_tensor_with_a_negative_dim_is_one_clear_line(tmp_path, capsys, dims):
    weight = numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(2, 3), "w")
    tensor = onnx.TensorProto()
    tensor.CopyFrom(weight)
    del tensor.dims[:]
    tensor.dims.extend(dims)
    src = _external(tmp_path, tensor, {"location": "w.bin"}, weight.raw_data + b"zz")
    with pytest.raises(ort.capi.onnxruntime_pybind11_state.Fail):
        ort.InferenceSession(str(src), providers=["CPUExecutionProvider"])
    shown = "x".join(map(str, dims))
    with pytest.raises(LoadError) as info:
        load(src)
    message = str(info.value)
    assert message.startswith(f"{src}: ") and "\n" not in message
    assert f"tensor 'w' (float {shown}) has a negative dim" in message
    assert "length" not in message  # the file gives none
    out = tmp_path / "out.onnx"
    assert main(["optimize", str(src), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "has a negative dim" in err
    assert not out.exists()


@pytest.mark.parametrize("kind", ["INT4", "UINT4"])
def test_control_a_four_bit_tensor_of_odd_count_reads_as_onnxruntime_does(tmp_path, kind):
    """(Passes on the parent too.) 7 elements in 4 bytes at an offset, no length."""
    data_type = getattr(onnx.TensorProto, kind)
    values = np.arange(1, 8).astype(oh.tensor_dtype_to_np_dtype(data_type))
    tensor = numpy_helper.from_array(values, "w")
    assert len(tensor.raw_data) == 4
    src = _external(
        tmp_path,
        tensor,
        {"location": "w.bin", "offset": "3"},
        b"\5" * 3 + tensor.raw_data + b"\x77" * 5,
        21,
        10,
    )
    session = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"])
    (ran,) = session.run(None, {})
    w = load(src).model.graph.initializer[0]
    assert w.raw_data == tensor.raw_data
    np.testing.assert_array_equal(numpy_helper.to_array(w).astype(np.float32), ran)
