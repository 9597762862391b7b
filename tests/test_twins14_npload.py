"""What np.load raises is named once (`graphopt.arrays.NP_LOAD_ERRORS`) and said in one way
(`unreadable_reason`): `quant.data` and `distill` each had their own shorter list, so a
calibration archive whose compressed member is damaged (zlib.error) and an empty distillation
target file (EOFError) were tracebacks, and quantize --calib said numpy's words where
`load_arrays` (bench --inputs, distill --data) said more."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import onnx
import pytest

from graphopt.arrays import load_arrays
from graphopt.errors import QuantizeError
from graphopt.quant.data import folder_feeds
from tests.test_input_fuzz12 import seed_conv
from tests.test_input_fuzz13 import feeds_for, npy_with_header, write_calib


def _damaged_compressed_npz(x: np.ndarray) -> bytes:
    """An .npz (np.savez_compressed) whose member's deflate stream is damaged: the archive
    opens, reading the member raises zlib.error."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, x=x)
    data = bytearray(buffer.getvalue())
    data[60:80] = b"\xff" * 20  # inside the compressed bytes, past the local header
    return bytes(data)


def test_quantize_refuses_a_calibration_archive_with_a_damaged_compressed_member(tmp_path):
    model = seed_conv()
    x = feeds_for(model, 0)["x"]
    (tmp_path / "a.npz").write_bytes(_damaged_compressed_npz(x))
    feeds = folder_feeds(tmp_path, model)
    with pytest.raises(QuantizeError) as e:  # was zlib.error, a traceback
        feeds[0]
    message = str(e.value)
    assert message.startswith(f"{tmp_path / 'a.npz'}: cannot read .npz feed: a corrupt .npz")
    assert "decompressing" in message and len(message.splitlines()) == 1
    with pytest.raises(ValueError, match=r"a corrupt \.npz archive: .*decompressing"):
        load_arrays(tmp_path / "a.npz")  # the same words


def test_distill_load_targets_refuses_an_empty_target_file_in_one_line(tmp_path):
    from graphopt.distill import DistillError, load_targets, write_targets

    model = seed_conv()
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    write_calib(model, tmp_path / "data", count=2)
    out = tmp_path / "t"
    write_targets(str(path), tmp_path / "data", out)
    target = next(out.glob("*.npy"))
    target.write_bytes(b"")  # emptied since (a full disk, a truncation)
    with pytest.raises(DistillError, match=rf"{target.name}: cannot read: No data left"):
        load_targets(out)  # was EOFError, a traceback


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("a.npy", b"", "the file is empty"),  # was numpy's "No data left in file"
        ("a.npz", b"", "the file is empty"),
        ("a.npy", None, "holds an array of Python objects"),  # was numpy's "Object arrays ..."
        ("a.npy", "unclosed", "its .npy header is not readable"),
        ("a.npz", b"PK\x03\x04 truncated", "not a .npy or .npz file"),  # was "File is not a zip"
    ],
)
def test_quantize_and_load_arrays_say_the_same_reason(tmp_path, name, data, reason):
    model = seed_conv()
    x = feeds_for(model, 0)["x"]
    path = tmp_path / name
    if data is None:
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif data == "unclosed":
        head = "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 3, 8, 8, }"
        path.write_bytes(npy_with_header(head, x.tobytes()))
    else:
        assert isinstance(data, bytes)
        path.write_bytes(data)
    with pytest.raises(ValueError) as loaded:
        load_arrays(path)
    with pytest.raises(QuantizeError) as fed:
        folder_feeds(tmp_path, model)[0]
    assert str(loaded.value).startswith(reason), loaded.value
    assert str(fed.value) == f"{path}: cannot read {name[-4:]} feed: {loaded.value}"


def test_a_member_declaring_too_many_values_names_the_header(tmp_path):
    head = "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000,), }"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("x.npy", npy_with_header(head, b"\0" * 64))
    path = tmp_path / "a.npz"
    path.write_bytes(buffer.getvalue())
    # refused before numpy allocates the 4 TB the header declares (a MemoryError where the
    # kernel refuses that, "not a .npy file" where it overcommits: the GPU machine's 16 cores)
    said = r"header declares a 1000000000000 float32 array \(4,000,000,000,000 bytes\) but 64 "
    with pytest.raises(ValueError, match=said + "bytes follow: the file is cut short"):
        load_arrays(path)
