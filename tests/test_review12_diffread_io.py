"""Review 12 (diff read of 117ad52, 4bc7093): `save_model` with external data, cases the
pairing left open.

- Two saves to one path at once: A's data replaced by B's between A's rename of the data file
  and of its model left A's model reading B's data for good.
- A first save (no data file yet) whose model cannot be put in place left its new data file
  beside the old model.
- A temporary name cut at 200 bytes of a name in the middle of a character is no valid UTF-8
  (macOS's APFS refuses such names; Windows cannot even decode them).
- A `location` onnx refuses ('../w.bin', an absolute path) was onnx's ValidationError, not a
  SaveError.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import onnx
import onnx.parser
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from graphopt.errors import SaveError
from graphopt.ir import save_model

X = np.linspace(-2, 2, 32 * 32, dtype=np.float32).reshape(32, 32)


def _model(op: str, weight: np.ndarray, pad: int) -> onnx.ModelProto:
    """y = op(x, w); a `pad`-float initializer before w puts w at another offset per model."""
    model = onnx.parser.parse_model(f"""
<ir_version: 8, opset_import: ["" : 17]>
g (float[32,32] x) => (float[32,32] y) {{ y = {op}(x, w) }}
""")
    model.graph.initializer.append(numpy_helper.from_array(np.zeros(pad, np.float32), "pad"))
    model.graph.initializer.append(numpy_helper.from_array(weight, "w"))
    return model


A_W = np.ones((32, 32), np.float32)
B_W = np.arange(32 * 32, dtype=np.float32).reshape(32, 32) / 100
A = _model("Add", A_W, 256)
B = _model("Mul", B_W, 512)


def _which(path: Path) -> str:
    """'A' or 'B': the complete model the file at `path` and its data are (fails the test
    for a mixed pair)."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    y = session.run(None, {"x": X})[0]
    if np.array_equal(y, X + A_W):
        return "A"
    if np.array_equal(y, X * B_W):
        return "B"
    raise AssertionError(f"{path.name} reads another model's data: y[0, :3] = {y[0, :3]}")


@pytest.mark.slow
def test_a_save_whose_data_file_another_save_replaced_meanwhile_keeps_its_own_data(
    tmp_path, monkeypatch
):
    """A's hard link goes onto m.onnx.data, then B saves completely (its data onto
    m.onnx.data, its model), then A puts its model naming m.onnx.data: B's bytes. A must see
    that the data file is no longer its own and leave its model naming its fresh file."""
    path = tmp_path / "m.onnx"
    save_model(B, path, external_data=True)  # a data file exists: the five steps run
    data = tmp_path / "m.onnx.data"
    real_replace = os.replace
    state = {"b_saved": False}

    def then_b_saves(src, dst, *args, **kwargs):  # type: ignore[no-untyped-def]
        real_replace(src, dst, *args, **kwargs)
        if Path(dst) == data and not state["b_saved"]:
            state["b_saved"] = True
            save_model(B, path, external_data=True)

    monkeypatch.setattr(os, "replace", then_b_saves)
    save_model(A, path, external_data=True)
    monkeypatch.undo()
    assert state["b_saved"]
    assert _which(path) in ("A", "B")  # a pair either way, not A's model on B's data


def test_a_first_save_whose_model_cannot_be_put_leaves_no_data_file(tmp_path, monkeypatch):
    path = tmp_path / "m.onnx"
    save_model(A, path, external_data=False)  # an inline model: no data file yet
    real_replace = os.replace

    def model_refused(src, dst, *args, **kwargs):  # type: ignore[no-untyped-def]
        if Path(dst) == path:
            raise OSError(errno.EACCES, "Permission denied")
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", model_refused)
    with pytest.raises(SaveError, match="Permission denied"):
        save_model(B, path, external_data=True)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]
    assert _which(path) == "A"


@pytest.mark.parametrize("external", [False, True])
def test_temporary_names_cut_a_long_name_at_a_character_not_in_one(tmp_path, monkeypatch, external):
    """A file system that takes only UTF-8 names (APFS) refuses a name cut inside a
    character: simulated by refusing such names with EILSEQ, as APFS does."""
    real_open = os.open

    def utf8_names_only(file, *args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            os.fsencode(file).decode("utf-8")
        except UnicodeDecodeError:
            raise OSError(errno.EILSEQ, "Illegal byte sequence", file) from None
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(os, "open", utf8_names_only)
    # 'a' + 'é' (2 bytes) * 110: byte 200 falls inside an 'é'
    path = tmp_path / ("a" + "é" * 110 + ".onnx")
    save_model(A, path, external_data=external)
    save_model(B, path, external_data=external)
    monkeypatch.undo()
    assert _which(path) == "B"
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [path.name] + [path.name + ".data"] * external


@pytest.mark.parametrize("location", ["../w.bin", "/tmp/w.bin"])
def test_a_location_onnx_refuses_is_a_save_error(tmp_path, location):
    path = tmp_path / "m.onnx"
    with pytest.raises(SaveError, match=r"m\.onnx: .*location"):
        save_model(A, path, external_data=True, location=location)
    assert list(tmp_path.iterdir()) == []


def test_a_long_name_cut_inside_a_character_saves_over_its_external_data(tmp_path):
    """Without any simulation: the fresh data file's name went into the model as its external
    data location, a str holding a lone surrogate that protobuf cannot encode ('cannot
    serialize: ... surrogates not allowed' on the second save)."""
    path = tmp_path / ("a" + "é" * 110 + ".onnx")
    save_model(A, path, external_data=True)
    save_model(B, path, external_data=True)
    assert _which(path) == "B"
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name, path.name + ".data"]


def test_a_save_over_external_data_walks_the_tensors_for_onnx_once(tmp_path, monkeypatch):
    """117ad52 wrote the model file twice with onnx.save_model, which walks every tensor to
    write external data each time (none was left: save_model had written it): three walks per
    save over a model (~3 ms each on ppocr_det), where one writes the data."""
    import onnx.external_data_helper as helper

    path = tmp_path / "m.onnx"
    save_model(A, path, external_data=True)
    walks = []
    real = helper._get_all_tensors

    def counted(model):  # type: ignore[no-untyped-def]
        walks.append(1)
        return real(model)

    monkeypatch.setattr(helper, "_get_all_tensors", counted)
    save_model(B, path, external_data=True)
    monkeypatch.undo()
    assert len(walks) == 1
    assert _which(path) == "B"


def test_a_model_name_whose_data_file_name_is_too_long_is_a_save_error(tmp_path):
    """A 251..255-byte model name saved inline (4bc7093) makes `<name>.data` over 255 bytes:
    onnx's ValidationError ('kernel rejected path') came out of save_model as it was."""
    path = tmp_path / ("m" * 250 + ".onnx")
    save_model(A, path, external_data=False)
    with pytest.raises(SaveError, match=r"data file name .* is over 255 bytes"):
        save_model(B, path, external_data=True)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    assert _which(path) == "A"


@pytest.mark.parametrize("location", ["m.onnx", "./m.onnx"])
def test_a_location_naming_the_model_file_itself_is_refused(tmp_path, location):
    """The model was written over its own data: a model that does not load, saved without a
    word (a second save then warned that another save had replaced the data file)."""
    path = tmp_path / "m.onnx"
    save_model(A, path, external_data=False)
    with pytest.raises(SaveError, match="is the model file"):
        save_model(B, path, external_data=True, location=location)
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]
    assert _which(path) == "A"
