""".npy headers and .npz members that graphopt's header check (91cf6b8) let through to numpy.

Found by an adversarial review of feed reading (H176): an archive member that is no .npy array
(numpy hands its bytes over) and a header whose shape holds True raised AttributeError and
TypeError from `optimize --inputs`, `bench --inputs` and `quantize --calib` (tracebacks, exit
1); a shape holding -1 was "Expected (-1, 3) = -3 elements"; a version 3.0 header (np.save
writes it for field names Latin-1 cannot encode) was not read, so one declaring 10^12 values
was allocated before failing, as 91cf6b8 stopped for versions 1.0 and 2.0."""

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
from tests.test_input_fuzz12 import seed_conv
from tests.test_input_fuzz13 import _save, npy_with_header

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


@pytest.mark.parametrize("member", [b"", b"hello"])
def test_an_archive_member_that_is_no_npy_array_is_named(tmp_path: Path, member: bytes) -> None:
    path = tmp_path / "x.npz"
    path.write_bytes(_npz(member))
    with pytest.raises(ValueError) as e:
        load_arrays(path)
    assert str(e.value) == (
        f"member x.npy is no .npy array ({len(member)} bytes without .npy's magic)"
    )


@pytest.mark.parametrize("shape", ["(True, 3)", "(-1, 3)", "(-2, -3)"])
@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_a_shape_no_array_has_is_named(tmp_path: Path, shape: str, suffix: str) -> None:
    member = npy_with_header(HEAD % shape, b"\0" * 64)
    path = tmp_path / f"x{suffix}"
    path.write_bytes(member if suffix == ".npy" else _npz(member))
    within = "member x.npy: " if suffix == ".npz" else ""
    want = (
        f"{within}its .npy header declares shape {shape}, which no array has: the header is damaged"
    )
    with pytest.raises(ValueError, match="^" + re.escape(want) + "$"):
        load_arrays(path)


def test_a_version_3_header_declaring_4_tb_is_refused_before_numpy_allocates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    header = (HEAD % "(1000000000000,)").encode()
    header += b" " * (63 - (12 + len(header)) % 64) + b"\n"
    path = tmp_path / "x.npy"
    path.write_bytes(b"\x93NUMPY\x03\x00" + len(header).to_bytes(4, "little") + header)
    asked: list[str] = []
    monkeypatch.setattr(arrays.np, "load", lambda *a, **k: asked.append("np.load"))
    with pytest.raises(ValueError, match=r"^its .npy header declares a 1000000000000 float32"):
        load_arrays(path)
    assert asked == []


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_a_version_3_file_cut_short_reads_as_versions_1_and_2_do(
    tmp_path: Path, suffix: str
) -> None:
    cut = _npy(X, (3, 0))[:-100]
    path = tmp_path / f"x{suffix}"
    path.write_bytes(cut if suffix == ".npy" else _npz(cut))
    within = "member x.npy: " if suffix == ".npz" else ""
    want = (
        f"{within}its .npy header declares a 1x3x8x8 float32 array (768 bytes) but 668 bytes "
        "follow: the file is cut short or its header damaged"
    )
    with pytest.raises(ValueError, match="^" + re.escape(want) + "$"):
        load_arrays(path)


@pytest.mark.filterwarnings("ignore:Stored array in format 3.0")
def test_whole_version_3_files_load(tmp_path: Path) -> None:
    """What np.save writes as version 3.0 (field names Latin-1 cannot encode), and a float
    array written as 3.0, load with their values."""
    fields = np.array([(1.5, 2)], dtype=[("名", "<f4"), ("b", "<i4")])
    buffer = io.BytesIO()
    np.save(buffer, fields)
    assert buffer.getvalue()[6:8] == b"\x03\x00"
    (tmp_path / "s.npy").write_bytes(buffer.getvalue())
    got = load_arrays(tmp_path / "s.npy")
    assert isinstance(got, np.ndarray) and got["名"][0] == 1.5 and got["b"][0] == 2
    (tmp_path / "x.npz").write_bytes(_npz(_npy(X, (3, 0))))
    archive = load_arrays(tmp_path / "x.npz")
    assert isinstance(archive, dict)
    np.testing.assert_array_equal(archive["x"], X)


@pytest.mark.parametrize(
    ("command", "member", "needle"),
    [
        ("optimize", b"hello", "member x.npy is no .npy array"),
        ("bench", b"", "member x.npy is no .npy array"),
        ("quantize", b"hello", "member x.npy is no .npy array"),
        ("optimize", npy_with_header(HEAD % "(True, 3)", b"\0" * 64), "shape (True, 3)"),
        ("quantize", npy_with_header(HEAD % "(True, 3)", b"\0" * 64), "shape (True, 3)"),
    ],
    ids=["optimize-text", "bench-empty", "quantize-text", "optimize-true", "quantize-true"],
)
def test_the_commands_say_so_in_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    member: bytes,
    needle: str,
) -> None:
    model = _save(seed_conv(), tmp_path)
    feeds = tmp_path / "calib"
    feeds.mkdir()
    (feeds / "a.npz").write_bytes(_npz(member))
    out = tmp_path / "out.onnx"
    argv = {
        "optimize": ["optimize", str(model), "-o", str(out), "--verify"],
        "bench": ["bench", str(model), "--no-progress"],
        "quantize": ["quantize", str(model), "-o", str(out), "--no-progress"],
    }[command]
    argv += ["--calib", str(feeds)] if command == "quantize" else ["--inputs", str(feeds / "a.npz")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err and "a.npz" in err, err
    assert not out.exists()


def _zip_patched(member: bytes, *, flag: int = 0, method: int | None = None) -> bytes:
    """An archive of `member` as x.npy with general-purpose `flag` bits set and its compression
    method replaced, in the local header and in the central directory."""
    data = bytearray(_npz(member))
    central = data.find(b"PK\x01\x02")
    data[6] |= flag
    data[central + 8] |= flag
    if method is not None:
        data[8] = data[central + 10] = method
    return bytes(data)


@pytest.mark.parametrize(
    ("archive", "want"),
    [
        (
            _zip_patched(_npy(X), method=9),  # Deflate64, as Windows' compressed folders write
            "a zip archive Python's zipfile cannot read (That compression method is not "
            "supported); np.savez and np.savez_compressed write ones it reads",
        ),
        (
            _zip_patched(_npy(X), flag=0x1),  # a password-protected zip
            "member x.npy is encrypted; np.savez writes no password",
        ),
    ],
    ids=["deflate64", "encrypted"],
)
def test_an_archive_zipfile_cannot_read_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], archive: bytes, want: str
) -> None:
    """NotImplementedError and RuntimeError from zipfile were tracebacks (exit 1)."""
    path = tmp_path / "x.npz"
    path.write_bytes(archive)
    with pytest.raises(ValueError) as e:
        load_arrays(path)
    assert str(e.value) == want
    model = _save(seed_conv(), tmp_path)
    calib = tmp_path / "calib"
    calib.mkdir()
    path.rename(calib / "a.npz")
    out = tmp_path / "q.onnx"
    assert main(["quantize", str(model), "-o", str(out), "--calib", str(calib)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(f"a.npz: cannot read .npz feed: {want}"), err
    assert not out.exists()


@pytest.mark.parametrize("version", [(1, 0), (3, 0)])
@pytest.mark.parametrize(
    ("header", "want"),
    [
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 1: 2}",
            "its .npy header is not readable ('<' not supported between instances of 'int' "
            "and 'str'): the header is damaged",
        ),
        (
            "{'descr': ',f4', 'fortran_order': False, 'shape': (3,), }",
            "its .npy header's dtype is not readable (invalid syntax)",
        ),
    ],
    ids=["int-key", "comma-dtype"],
)
def test_a_header_numpy_raises_a_type_or_syntax_error_for_is_named(
    tmp_path: Path, version: tuple[int, int], header: str, want: str
) -> None:
    """numpy's reader raised TypeError (sorting the keys) and SyntaxError (parsing the dtype):
    tracebacks (found by mutating saved files, 80,000 cases)."""
    text = header.encode()
    length = 2 if version == (1, 0) else 4
    text += b" " * (63 - (8 + length + len(text)) % 64) + b"\n"
    path = tmp_path / "x.npy"
    head = b"\x93NUMPY" + bytes(version) + len(text).to_bytes(length, "little")
    path.write_bytes(head + text + b"\0" * 64)
    with pytest.raises(ValueError) as e:
        load_arrays(path)
    assert str(e.value) == want


def test_the_member_holding_python_objects_is_named(tmp_path: Path) -> None:
    """np.savez pickles an object array (labels as a list of strings, say): which member of
    the archive was refused was not said."""
    path = tmp_path / "x.npz"
    np.savez(path, x=X, labels=np.array(["cat", None], dtype=object))
    with pytest.raises(ValueError) as e:
        load_arrays(path)
    assert str(e.value) == (
        "member labels.npy holds an array of Python objects, which is not loaded (pickle); "
        "save numeric arrays"
    )
