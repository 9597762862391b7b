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

import tokenize
import zipfile
import zlib
from pathlib import Path

import numpy as np

from graphopt.errors import first_line

NOT_NUMPY = "not a .npy or .npz file (np.save and np.savez write them)"
OBJECT_ARRAY = "holds an array of Python objects, which is not loaded (pickle); save numeric arrays"

# What np.load raises for a file it cannot read as .npy/.npz, and what reading an .npz member
# raises, named once (`load_arrays`, `graphopt.quant.data` and `graphopt.distill` catch it):
# OSError and ValueError; EOFError for an empty file; BadZipFile, zlib.error and KeyError for a
# broken archive or member; tokenize's TokenError for a .npy header that is not one Python
# literal, as "(1, 3, 8, 8" unclosed; MemoryError for a header declaring 10^12 values (numpy
# allocates what the header declares before reading).
NP_LOAD_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    ValueError,
    EOFError,
    zipfile.BadZipFile,
    zlib.error,
    KeyError,
    tokenize.TokenError,
    MemoryError,
)


def load_arrays(path: str | Path) -> np.ndarray | dict[str, np.ndarray]:
    """The array of a `.npy` file, or every array of a `.npz` archive by key (read into memory,
    the file closed), whatever the file's suffix; a one-line `ValueError` when it cannot be
    read (`unreadable_reason`)."""
    try:
        data = np.load(path, allow_pickle=False)
    except NP_LOAD_ERRORS as e:
        raise ValueError(unreadable_reason(e, path)) from e
    if isinstance(data, np.ndarray):
        return native_byte_order(data)
    with data:
        try:
            return {k: native_byte_order(data[k]) for k in data.files}
        except NP_LOAD_ERRORS as e:
            raise ValueError(unreadable_reason(e, path, member=True)) from e


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
    if isinstance(error, MemoryError):
        return (
            f"its .npy header declares an array larger than memory ({first_line(error)}): a "
            "damaged header?"
        )
    if isinstance(error, tokenize.TokenError):
        return f"its .npy header is not readable ({error.args[0] if error.args else error})"
    if _object_array(error):
        return OBJECT_ARRAY
    if member:
        return f"a corrupt .npz archive: {first_line(error)}"
    if isinstance(error, EOFError) and _empty(path):
        return "the file is empty"
    if isinstance(error, OSError):
        return error.strerror or first_line(error)
    return NOT_NUMPY if "pickled" in str(error) else f"{NOT_NUMPY}: {first_line(error)}"


def _object_array(e: BaseException) -> bool:
    """numpy's refusal of an array of Python objects (allow_pickle=False)."""
    return isinstance(e, ValueError) and "Object arrays cannot be loaded" in str(e)


def _empty(path: str | Path) -> bool:
    try:
        return Path(path).stat().st_size == 0
    except OSError:
        return False
