"""A .npy file or .npz member holding less data than its header declares.

Found by running the suite on the GPU machine (16 cores, 128 GiB, a kernel that overcommits):
numpy allocated the 4 TB a damaged header declared and then failed to read it, and graphopt
called the file "not a .npy or .npz file". A file cut short (a copy interrupted, a full disk)
was called that everywhere. Now the header is read first and such a file is named for what it
is, before numpy allocates anything."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

from graphopt import arrays
from graphopt.arrays import load_arrays
from graphopt.cli import main
from tests.test_input_fuzz13 import npy_with_header

X = np.arange(192, dtype=np.float32).reshape(1, 3, 8, 8)
HEAD = "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }"


def _npy(array: np.ndarray, version: tuple[int, int] | None = None) -> bytes:
    buffer = io.BytesIO()
    if version is None:
        np.save(buffer, array)
    else:
        np.lib.format.write_array(buffer, array, version=version)
    return buffer.getvalue()


def _npz(member: bytes, name: str = "x.npy") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr(name, member)
    return buffer.getvalue()


CUT = "its .npy header declares a 1x3x8x8 float32 array (768 bytes) but 668 bytes follow"


@pytest.mark.parametrize("version", [(1, 0), (2, 0)])
def test_a_npy_file_cut_short_is_named_so(tmp_path: Path, version: tuple[int, int]) -> None:
    path = tmp_path / "x.npy"
    path.write_bytes(_npy(X, version)[:-100])
    with pytest.raises(ValueError) as e:
        load_arrays(path)
    assert str(e.value) == CUT + ": the file is cut short or its header damaged"


def test_a_npz_member_cut_short_is_named_so(tmp_path: Path) -> None:
    path = tmp_path / "x.npz"
    path.write_bytes(_npz(_npy(X)[:-100]))
    with pytest.raises(ValueError, match="^member x.npy: " + re.escape(CUT)):
        load_arrays(path)


def test_a_version_3_npy_cut_short_is_named_so(tmp_path: Path) -> None:
    """Version 3.0 (no public header reader in numpy) is read by graphopt.arrays (H176)."""
    path = tmp_path / "x.npy"
    path.write_bytes(_npy(X, (3, 0))[:-100])
    with pytest.raises(ValueError) as e:
        load_arrays(path)
    assert str(e.value) == CUT + ": the file is cut short or its header damaged"


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_a_header_declaring_4_tb_is_refused_before_numpy_allocates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    member = npy_with_header(HEAD % "(1000000000000,)", b"\0" * 64)
    path = tmp_path / f"x{suffix}"
    path.write_bytes(member if suffix == ".npy" else _npz(member))
    real_load = np.load
    asked: list[str] = []

    def allocating_read(*args: object, **kwargs: object) -> object:
        asked.append("np.load")
        return real_load(*args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(arrays.np, "load", allocating_read)
    with pytest.raises(ValueError, match=r"declares a 1000000000000 float32 array"):
        load_arrays(path)
    # the .npy is refused before np.load; the archive is opened (its directory only) and the
    # member refused before it is read
    assert asked == ([] if suffix == ".npy" else ["np.load"])


def test_whole_files_and_longer_ones_still_load(tmp_path: Path) -> None:
    for name, data in (
        ("a.npy", _npy(X)),
        ("b.npy", _npy(X) + b"trailing bytes numpy ignores"),
        ("c.npz", _npz(_npy(X))),
        ("d.npz", _npz(_npy(X), name="x")),  # a member without the .npy suffix
        ("e.npy", _npy(np.float32(2.5))),  # a 0-d array: the header's shape is ()
        ("f.npy", _npy(np.zeros((0, 3), np.float32))),
    ):
        (tmp_path / name).write_bytes(data)
        got = load_arrays(tmp_path / name)
        want = {"x": X} if name in ("c.npz", "d.npz") else None
        if want is not None:
            assert isinstance(got, dict)
            np.testing.assert_array_equal(got["x"], X)
        else:
            assert isinstance(got, np.ndarray)
    e = load_arrays(tmp_path / "e.npy")
    assert isinstance(e, np.ndarray) and e.shape == () and float(e) == 2.5


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_quantize_names_a_calibration_file_cut_short(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], suffix: str
) -> None:
    from tests.test_input_fuzz13 import _save, seed_conv

    model = seed_conv()
    path = _save(model, tmp_path)
    calib = tmp_path / "calib"
    calib.mkdir()
    x = np.zeros(tuple(d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim))
    whole = _npy(x.astype(np.float32))
    (calib / f"a{suffix}").write_bytes(whole[:-8] if suffix == ".npy" else _npz(whole[:-8]))
    out = tmp_path / "q.onnx"
    argv = ["quantize", str(path), "-o", str(out), "--calib", str(calib), "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    member = "member x.npy: " if suffix == ".npz" else ""
    assert f"cannot read {suffix} feed: {member}its .npy header declares a" in err
    assert "the file is cut short or its header damaged" in err
    assert not out.exists()
