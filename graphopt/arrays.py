"""Reading the `.npy`/`.npz` files the commands take as feeds (`--inputs`, `--calib`, `--data`).

Every way such a file can be unreadable (missing, a folder, empty, truncated, another format, a
corrupt archive, a damaged header) is one `ValueError` saying why in a few words: numpy raised
EOFError for an empty file (a traceback from every caller that caught OSError/ValueError),
BadZipFile for a broken archive, tokenize.TokenError for a header that is no Python literal,
MemoryError for one declaring 10^12 values, and for any other format the advice to load it
with pickle. `NP_LOAD_ERRORS` and `unreadable_reason` serve the modules that call np.load
themselves (`graphopt.quant.data` reads only the archive members it feeds; `graphopt.distill`
memory-maps its targets).

What it does not do: load pickled objects (never), or decide what a missing key means (the
callers match arrays to model inputs).
"""

from __future__ import annotations

import ast
import math
import os
import re
import struct
import tokenize
import zipfile
import zlib
from pathlib import Path
from typing import IO

import numpy as np

from graphopt._text import shown
from graphopt.errors import first_line

NOT_NUMPY = "not a .npy or .npz file (np.save and np.savez write them)"
OBJECT_ARRAY = "holds an array of Python objects, which is not loaded (pickle); save numeric arrays"

# What np.load raises for a file it cannot read as .npy/.npz, and what reading an .npz member
# raises, named once (`load_arrays`, `graphopt.quant.data` and `graphopt.distill` catch it):
# OSError and ValueError; EOFError for an empty file; BadZipFile, zlib.error and KeyError for a
# broken archive or member; tokenize's TokenError for a .npy header that is not one Python
# literal, as "(1, 3, 8, 8" unclosed; MemoryError for a header declaring 10^12 values (numpy
# allocates what the header declares before reading); SyntaxError for a header's dtype numpy's
# parser cannot read (',f4'); NotImplementedError for a member zipfile cannot read (Deflate64,
# as Windows' "compressed folder" writes, or a zip version it does not know). All were
# tracebacks (H176).
NP_LOAD_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    ValueError,
    EOFError,
    zipfile.BadZipFile,
    zlib.error,
    KeyError,
    tokenize.TokenError,
    MemoryError,
    SyntaxError,
    NotImplementedError,
)


def load_arrays(path: str | Path) -> np.ndarray | dict[str, np.ndarray]:
    """The array of a `.npy` file, or every array of a `.npz` archive by key (read into memory,
    the file closed), whatever the file's suffix; a one-line `ValueError` when it cannot be
    read (`unreadable_reason`, `short_of_declared`)."""
    try:
        data = load_checked(path)
    except NP_LOAD_ERRORS as e:
        raise ValueError(unreadable_reason(e, path)) from e
    if isinstance(data, np.ndarray):
        return native_byte_order(data)
    with data:
        try:
            return {k: native_byte_order(member_checked(data, k)) for k in data.files}
        except NP_LOAD_ERRORS as e:
            raise ValueError(unreadable_reason(e, path, member=True)) from e


class UnreadableArray(ValueError):
    """graphopt's own finding that a .npy file or .npz member cannot be read: its text is the
    reason, as `unreadable_reason` gives it."""


class DeclaredBeyondData(UnreadableArray):
    """A .npy header declaring more bytes of array data than follow it, or a shape no array
    has."""


def load_checked(path: str | Path) -> np.ndarray | np.lib.npyio.NpzFile:
    """`np.load(path, allow_pickle=False)` after `short_of_declared`: a .npy file whose header
    declares more data than the file holds raises `DeclaredBeyondData` before numpy allocates
    what the header declares (10^12 values: a MemoryError where the kernel refuses 4 TB, a 4 TB
    allocation and then "not a .npy file" where it overcommits; the GPU machine's run of the
    suite did not see the MemoryError)."""
    try:
        with open(path, "rb") as f:
            reason = short_of_declared(f, os.fstat(f.fileno()).st_size)
    except OSError:
        reason = None  # np.load says why, in its own words
    if reason:
        raise DeclaredBeyondData(reason)
    return np.load(path, allow_pickle=False)


def member_checked(archive: np.lib.npyio.NpzFile, key: str) -> np.ndarray:
    """`archive[key]` after `short_of_declared` on that member (`load_checked`'s check)."""
    zipped = archive.zip
    if zipped is None:  # (closed: reading the member says so)
        return archive[key]
    name = key if key in zipped.namelist() else f"{key}.npy"
    try:
        info = zipped.getinfo(name)
    except KeyError:
        return archive[key]  # (numpy names the missing member)
    if info.flag_bits & 0x1:  # (zipfile's RuntimeError 'password required': a traceback)
        raise UnreadableArray(f"member {shown(name)} is encrypted; np.savez writes no password")
    try:
        with zipped.open(info) as stream:
            reason = short_of_declared(stream, info.file_size)
    except NP_LOAD_ERRORS:
        reason = None  # reading the member says why
    if reason:
        raise DeclaredBeyondData(f"member {shown(name)}: {reason}")
    try:
        value = archive[key]
    except ValueError as e:  # (which member of the archive: not said)
        if _object_array(e):
            raise UnreadableArray(f"member {shown(name)} {OBJECT_ARRAY}") from e
        raise
    if not isinstance(value, np.ndarray):  # numpy hands a member without the .npy magic over
        # as its bytes (b'' for an empty one): "'bytes' object has no attribute 'dtype'", a
        # traceback from every caller
        raise UnreadableArray(
            f"member {shown(name)} is no .npy array ({len(value):,} bytes without .npy's magic)"
        )
    return value


# what numpy's header readers (and `_read_header_3_0`) raise besides np.load's errors (a header
# that is a literal of the wrong shape: a list for the dict, a string for the shape)
_HEADER_ERRORS: tuple[type[BaseException], ...] = (
    *NP_LOAD_ERRORS,
    SyntaxError,
    TypeError,
    struct.error,
)


def short_of_declared(stream: IO[bytes], size: int) -> str | None:
    """Why the .npy data in `stream` (`size` bytes from its start) cannot be what its header
    declares, or None: not a .npy stream of a header version numpy reads (1.0, 2.0, 3.0; np.load
    then says what it is), or as long as declared (or longer). A shape holding a negative
    number or True is named here: numpy read (-1, 3) as "Expected (-1, 3) = -3 elements"
    and (True, 3) raised a TypeError (a traceback)."""
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
        elif version == (3, 0):
            shape, dtype = _read_header_3_0(stream)
        else:
            return None
        start = stream.tell()
    except TypeError as e:  # (np.load raises it again, a traceback: a key of the header's dict
        # that is no string, {..., 1: 2}, made numpy's sorted(keys) fail)
        return f"its .npy header is not readable ({e}): the header is damaged"
    except _HEADER_ERRORS:
        return None
    if not all(type(d) is int and d >= 0 for d in shape):
        return f"its .npy header declares shape {shape}, which no array has: the header is damaged"
    if dtype.hasobject:
        return None  # refused as pickled objects
    declared = math.prod(shape) * dtype.itemsize
    held = size - start
    if declared <= held:
        return None
    return (
        f"its .npy header declares a {'x'.join(map(str, shape)) or 'scalar'} {dtype} array "
        f"({declared:,} bytes) but {held:,} bytes follow: the file is cut short or its "
        "header damaged"
    )


def _read_header_3_0(stream: IO[bytes]) -> tuple[tuple[int, ...], np.dtype]:  # type: ignore[type-arg]
    """(shape, dtype) of a version 3.0 header, read after the magic: 2.0's layout in UTF-8,
    which np.save writes for field names Latin-1 cannot encode and numpy has no public reader
    for (unread, a 3.0 header declaring 10^12 values was allocated before failing). Longer than
    numpy's limit, or no header dict: ValueError (np.load says why); numpy's TypeError where
    numpy's reader raises one."""
    (length,) = struct.unpack("<I", stream.read(4))
    if length > 10_000:  # (numpy's max_header_size: np.load refuses it, saying so)
        raise ValueError("header too long")
    header = ast.literal_eval(stream.read(length).decode("utf-8"))
    if not isinstance(header, dict):
        raise ValueError("no .npy header")
    sorted(header)  # (as numpy's reader: a TypeError for keys of two types, {..., 1: 2})
    if set(header) != {"descr", "fortran_order", "shape"} or not isinstance(header["shape"], tuple):
        raise ValueError("no .npy header")
    return header["shape"], np.lib.format.descr_to_dtype(header["descr"])


def native_byte_order(array: np.ndarray) -> np.ndarray:
    """`array` with the same values in this machine's byte order: a file saved big-endian
    (`>f4`, by another machine or `astype('>f4')`) was fed to onnxruntime as it was, which
    reads the bytes as its own order (NaN and garbage for float32), and `--verify` refused it
    as "x is >f4, but the model's input x is float32"."""
    if array.dtype.isnative:
        return array
    return array.astype(array.dtype.newbyteorder("="))


def unreadable_reason(error: BaseException, path: str | Path, *, member: bool = False) -> str:
    """Why numpy could not read the file at `path` as .npy/.npz, in a few words, from `error`
    (one of `NP_LOAD_ERRORS`, raised by `np.load` or, `member`, by reading a member of the
    archive it opened). Never numpy's advice to load a file of another format as a pickle."""
    if isinstance(error, UnreadableArray):
        return str(error)
    if isinstance(error, ValueError) and _SHORT_READ.search(str(error)):  # (a size misstated)
        return f"the file is cut short: {first_line(error)}"
    if isinstance(error, MemoryError):
        return (
            f"its .npy header declares an array larger than memory ({first_line(error)}): a "
            "damaged header?"
        )
    if isinstance(error, tokenize.TokenError):
        return f"its .npy header is not readable ({error.args[0] if error.args else error})"
    if isinstance(error, SyntaxError):
        return f"its .npy header's dtype is not readable ({error.msg})"
    if isinstance(error, NotImplementedError):
        return (
            f"a zip archive Python's zipfile cannot read ({first_line(error)}); np.savez and "
            "np.savez_compressed write ones it reads"
        )
    if _object_array(error):
        return OBJECT_ARRAY
    if member:
        return f"a corrupt .npz archive: {first_line(error)}"
    if isinstance(error, EOFError) and _empty(path):
        return "the file is empty"
    if isinstance(error, OSError):
        return error.strerror or first_line(error)
    return NOT_NUMPY if "pickled" in str(error) else f"{NOT_NUMPY}: {first_line(error)}"


# numpy's words for array data shorter than its header declares (np.fromfile on a file, reading
# an archive member in chunks)
_SHORT_READ = re.compile(r"Failed to read all data for array|EOF: reading array data")


def _object_array(e: BaseException) -> bool:
    """numpy's refusal of an array of Python objects (allow_pickle=False)."""
    return isinstance(e, ValueError) and "Object arrays cannot be loaded" in str(e)


def _empty(path: str | Path) -> bool:
    try:
        return Path(path).stat().st_size == 0
    except OSError:
        return False
