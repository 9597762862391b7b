"""Review 13: an external data `location` in a subfolder of the model's folder
(`weights/m.data`) was refused with onnx's raw 'Cannot open external data for tensor w (kernel
rejected path)'. onnx.load, onnx.checker and onnxruntime read such a model, so save_model
makes the subfolder and writes the data there (atomically, as beside the model); a location
onnx cannot read (absolute, '..', through a symbolic link) is one SaveError line of ours."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import onnx
import onnx.parser
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from graphopt.errors import SaveError
from graphopt.ir import load_model, save_model

X = np.linspace(-2, 2, 32 * 32, dtype=np.float32).reshape(32, 32)
OLD_W = np.ones((32, 32), np.float32)
NEW_W = np.arange(32 * 32, dtype=np.float32).reshape(32, 32) / 100


def _model(op: str, weight: np.ndarray) -> onnx.ModelProto:
    model = onnx.parser.parse_model(f"""
<ir_version: 8, opset_import: ["" : 17]>
g (float[32,32] x) => (float[32,32] y) {{ y = {op}(x, w) }}
""")
    model.graph.initializer.append(numpy_helper.from_array(weight, "w"))  # 4 KiB: external
    return model


OLD = _model("Add", OLD_W)
NEW = _model("Mul", NEW_W)


def _which(path: Path) -> str:
    """'old' or 'new', as onnx.load, onnx.checker, onnxruntime and graphopt's load read the
    model at `path`; fails the test for a mixed pair or one that does not load."""
    onnx.checker.check_model(str(path), full_check=True)
    w = numpy_helper.to_array(onnx.load(str(path)).graph.initializer[0])
    ours = numpy_helper.to_array(load_model(path).graph.initializer[0])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    y = session.run(None, {"x": X})[0]
    assert np.array_equal(w, ours)
    if np.array_equal(y, X + OLD_W) and np.array_equal(w, OLD_W):
        return "old"
    if np.array_equal(y, X * NEW_W) and np.array_equal(w, NEW_W):
        return "new"
    raise AssertionError(f"{path.name} reads another model's data: y[0, :3] = {y[0, :3]}")


def _location(path: Path) -> str:
    stored = onnx.load(str(path), load_external_data=False)
    (location,) = {
        e.value for e in stored.graph.initializer[0].external_data if e.key == "location"
    }
    return location


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


@pytest.mark.parametrize(
    ("location", "data"),
    [
        ("weights/m.data", "weights/m.data"),
        ("./weights/m.data", "weights/m.data"),
        ("a/b/m.data", "a/b/m.data"),
    ],
)
def test_a_location_in_a_subfolder_is_made_and_saved_over(tmp_path, location, data):
    path = tmp_path / "m.onnx"
    save_model(OLD, path, external_data=True, location=location)
    assert _which(path) == "old"
    folders = [p.as_posix() for p in Path(data).parents if str(p) != "."]
    assert _files(tmp_path) == sorted(["m.onnx", data, *folders])
    save_model(NEW, path, external_data=True, location=location)  # over the pair
    assert _which(path) == "new"
    assert _files(tmp_path) == sorted(["m.onnx", data, *folders])


def test_a_subfolder_that_exists_is_used(tmp_path):
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "other.bin").write_bytes(b"kept")
    path = tmp_path / "m.onnx"
    save_model(NEW, path, external_data=True, location="weights/m.data")
    assert _which(path) == "new" and _location(path) == "weights/m.data"
    assert _files(tmp_path) == ["m.onnx", "weights", "weights/m.data", "weights/other.bin"]


def test_the_warning_path_keeps_the_data_in_the_subfolder(tmp_path, monkeypatch, caplog):
    path = tmp_path / "m.onnx"
    save_model(OLD, path, external_data=True, location="weights/m.data")
    data = tmp_path / "weights" / "m.data"
    real_replace = os.replace

    def refused(src, dst, *args, **kwargs):  # type: ignore[no-untyped-def]
        if Path(dst) == data:
            raise OSError(13, "Permission denied")
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", refused)
    with caplog.at_level(logging.WARNING, logger="graphopt.ir"):
        save_model(NEW, path, external_data=True, location="weights/m.data")
    monkeypatch.undo()
    assert _which(path) == "new" and _location(path) == "weights/m-1.data"
    assert _files(tmp_path) == ["m.onnx", "weights", "weights/m-1.data", "weights/m.data"]


def test_a_failed_first_save_removes_the_subfolder_it_made(tmp_path, monkeypatch):
    path = tmp_path / "m.onnx"
    real_replace = os.replace

    def full(src, dst, *args, **kwargs):  # type: ignore[no-untyped-def]
        if Path(dst) == path:
            raise OSError(28, "No space left on device")
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(SaveError, match="No space left on device"):
        save_model(NEW, path, external_data=True, location="a/b/m.data")
    monkeypatch.undo()
    assert _files(tmp_path) == []


@pytest.mark.parametrize(
    "location",
    ["../w.bin", "/tmp/w.bin", "weights/../../w.bin", "weights/", ".", "weights/.."],
)
def test_a_location_outside_the_folder_is_one_line_of_ours(tmp_path, location):
    path = tmp_path / "m.onnx"
    with pytest.raises(SaveError) as caught:
        save_model(NEW, path, external_data=True, location=location)
    message = str(caught.value)
    assert "\n" not in message and "kernel rejected" not in message
    assert "not a file name or a relative path inside the model's folder" in message
    assert _files(tmp_path) == []


def test_an_empty_location_is_the_default(tmp_path):
    path = tmp_path / "m.onnx"
    save_model(NEW, path, external_data=True, location="")
    assert _which(path) == "new" and _location(path) == "m.onnx.data"


def test_a_location_through_a_symbolic_link_is_refused(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "weights").symlink_to("real")
    path = tmp_path / "m.onnx"
    with pytest.raises(SaveError, match=r"goes through .*weights, a symbolic link") as caught:
        save_model(NEW, path, external_data=True, location="weights/m.data")
    assert "\n" not in str(caught.value)
    assert _files(tmp_path) == ["real", "weights"]


def test_a_location_through_a_file_is_refused(tmp_path):
    (tmp_path / "weights").write_bytes(b"a file")
    path = tmp_path / "m.onnx"
    with pytest.raises(SaveError, match=r"goes through .*weights, which is a file"):
        save_model(NEW, path, external_data=True, location="weights/m.data")
    assert _files(tmp_path) == ["weights"]


def test_a_real_detector_saved_with_its_data_in_a_subfolder(tmp_path):
    """layout_cdla (PP-PicoDet) optimized and saved with its weights in weights/; onnxruntime
    gives the same outputs as for the model saved inline."""
    import graphopt
    from graphopt.realmodels import fetch_model, model_inputs

    optimized = graphopt.optimize(fetch_model("layout_cdla"))
    inline, split = tmp_path / "inline.onnx", tmp_path / "split.onnx"
    save_model(optimized, inline)
    save_model(optimized, split, external_data=True, location="weights/split.data")
    assert (tmp_path / "weights" / "split.data").stat().st_size > 1_000_000
    assert split.stat().st_size < 100_000
    onnx.checker.check_model(str(split), full_check=True)
    feed = model_inputs("layout_cdla", 1)[0]
    want = ort.InferenceSession(str(inline), providers=["CPUExecutionProvider"]).run(None, feed)
    got = ort.InferenceSession(str(split), providers=["CPUExecutionProvider"]).run(None, feed)
    for a, b in zip(want, got, strict=True):
        assert np.array_equal(a, b)
    loaded, kept = load_model(split).graph.initializer, onnx.load(str(inline)).graph.initializer
    assert [t.name for t in loaded] == [t.name for t in kept]
    for a, b in zip(loaded, kept, strict=True):
        assert np.array_equal(numpy_helper.to_array(a), numpy_helper.to_array(b))
