"""Reading the `.npy`/`.npz` files the commands take as feeds (`--inputs`, `--calib`, `--data`).

Every way such a file can be unreadable (missing, a folder, empty, truncated, another format, a
corrupt archive, a damaged header) is one `ValueError` saying why in a few words: numpy raised
EOFError for an empty file (a traceback from every caller that caught OSError/ValueError),
BadZipFile for a broken archive, tokenize.TokenError for a header that is no Python literal,
MemoryError for one declaring 10^12 values, and for any other format the advice to load it
with pickle.

What it does not do: load pickled objects (never), or decide what a missing key means (the
callers match arrays to model inputs).
"""

from __future__ import annotations

import tokenize
import zipfile
import zlib
from pathlib import Path

import numpy as np

NOT_NUMPY = "not a .npy or .npz file (np.save and np.savez write them)"
OBJECT_ARRAY = "holds an array of Python objects, which is not loaded (pickle); save numeric arrays"

# what numpy raises for a file it cannot read as .npy/.npz, besides ValueError and OSError
# (TokenError: a header that is not one Python literal, as "(1, 3, 8, 8" unclosed)
_BROKEN = (EOFError, zipfile.BadZipFile, zlib.error, KeyError, tokenize.TokenError)
TOO_BIG = "its header declares an array too big for memory (a damaged header?)"


def load_arrays(path: str | Path) -> np.ndarray | dict[str, np.ndarray]:
    """The array of a `.npy` file, or every array of a `.npz` archive by key (read into memory,
    the file closed), whatever the file's suffix; a one-line `ValueError` when it cannot be
    read."""
    try:
        data = np.load(path, allow_pickle=False)
    except OSError as e:
        raise ValueError(e.strerror or str(e)) from e
    except MemoryError as e:  # numpy allocates what the header declares before reading
        raise ValueError(TOO_BIG) from e
    except EOFError as e:
        raise ValueError("the file is empty" if _empty(path) else f"{NOT_NUMPY}: {e}") from e
    except (ValueError, *_BROKEN) as e:
        if _object_array(e):
            raise ValueError(OBJECT_ARRAY) from e
        raise ValueError(NOT_NUMPY if "pickled" in str(e) else f"{NOT_NUMPY}: {e}") from e
    if isinstance(data, np.ndarray):
        return data
    with data:
        try:
            return {k: data[k] for k in data.files}
        except MemoryError as e:
            raise ValueError(f"a .npz archive whose member {TOO_BIG.removeprefix('its ')}") from e
        except (OSError, ValueError, *_BROKEN) as e:
            if _object_array(e):
                raise ValueError(OBJECT_ARRAY) from e
            raise ValueError(f"a corrupt .npz archive: {e}") from e


def _object_array(e: BaseException) -> bool:
    """numpy's refusal of an array of Python objects (allow_pickle=False)."""
    return isinstance(e, ValueError) and "Object arrays cannot be loaded" in str(e)


def _empty(path: str | Path) -> bool:
    try:
        return Path(path).stat().st_size == 0
    except OSError:
        return False
