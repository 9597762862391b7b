"""TensorRT calibration caches: write ours, read TensorRT's (or ours), exactly.

Format (what TensorRT's `IInt8Calibrator::writeCalibrationCache` produces and polygraphy and
pytorch-quantization read): a first line `TRT-<version>-<Calibrator>` (e.g.
`TRT-8601-EntropyCalibration2`), then one line per tensor `name: <hex>` where `<hex>` is the
hex digits of the big-endian IEEE float32 scale (`amax / 127`): 8 as graphopt writes them,
TensorRT without leading zeros (it writes `name: 0` for a tensor it could not calibrate, e.g.
a Shuffle of a constant). Such a zero scale is read as missing (`loads`), but `retag` keeps
every line, those `name: 0` lines too: a cache handed back to TensorRT under another header says
what TensorRT wrote. Any other scale that is not a positive normal float32 (negative, -0,
subnormal, infinite, NaN: neither TensorRT nor graphopt writes one, and a subnormal scale
overflows `x / s`) is a `QuantizeError` naming the tensor and its line when reading; those were
dropped, or (subnormal) taken, without a word; `dumps` refuses the same scales when writing
(and writes a +0 scale as TensorRT's `name: 0`). Lines are sorted by tensor name, so equal
scales give equal bytes. Lines end at '\\n' alone, as TensorRT reads them (a '\\r' before it,
of a file copied through Windows, is read as space after the scale; a file whose lines end in
'\\r' alone is refused): a tensor name may hold any other character, '\\r', '\\f', '\\x85' and
U+2028 too, and one that would not read back as one line (empty, or holding a '\\n') is
refused when writing (spaces around it are written, as TensorRT writes them, and read
back); a line that is not `name: <1 to 8 hex digits>` is
a `QuantizeError` naming its line number in the file when reading, and so is a last line of
fewer than 8 digits with no line break after it (a file cut short inside a scale: a scale of
7 digits is a normal float32, ~1e-36, and was taken), and a tensor listed twice with two
scales (the last was taken; the same scale twice is fine). A name is all before the line's
LAST ':' (a hex scale holds none), read as written, spaces around it kept: TensorRT writes
`<name>: <hex>` with the name as the network has it, so tensor 'a:0' (tf2onnx names tensors
so) is the line `a:0: 3c010a14` (DeepStream's TrafficCamNet cal_trt.bin, which TensorRT
builds from, starts `input_1:0: 3c010a14`) and tensor 'x ' is `x : 3c010a14`; `dumps` writes
them so too, and any name `writable_name` takes reads back as written. Where a model lacks
such a tensor but has it without the spaces (`  x: 3c010a14`, an indented line),
`spaced_name` names the line. (onnxruntime's TensorRT execution provider reads a TensorRT
cache otherwise, with `trt_int8_use_native_calibration_table`: its ReadDynamicRange, in
tensorrt_execution_provider_utils.h, takes the name up to the FIRST ':' and the scale from
the text up to the next ':', checking neither, so it reads `a:0: 3c010a14` as tensor 'a' with
scale 0 (a range of 2^-127·127, as its bit conversion reads 0) and gives 'a:0' none: no line
can name 'a:0' to it. TensorRT and this module read the name up to the last ':'.)
"""

from __future__ import annotations

import logging
import os
import re
import stat
import string
import struct
from collections.abc import Sequence
from itertools import compress, count, repeat
from operator import itemgetter
from pathlib import Path
from typing import NamedTuple

import numpy as np

from graphopt._text import shown as text_shown
from graphopt.errors import QuantizeError, first_line
from graphopt.ir.model_io import special_file_kind

log = logging.getLogger("graphopt.quant.cache")

DEFAULT_HEADER = "TRT-8601-EntropyCalibration2"
SIDECAR = ".graphopt.json"  # a cache's sidecar's name: the cache's plus this (`sidecar.SUFFIX`)
DEFAULT_VERSION = 8601  # written when TensorRT is not installed
ALGORITHMS = {
    "entropy": "EntropyCalibration2",
    "minmax": "MinMaxCalibration",
    "percentile": "LegacyCalibration",
    "mse": "LegacyCalibration",
}


def tensorrt_version_number(version: str | None = None) -> int:
    """NV_TENSORRT_VERSION of a version string ('8.6.1' → 8601, '10.3.0' → 100300), of the
    installed `tensorrt` when None, or DEFAULT_VERSION when it is not installed.

    trtexec refuses a cache whose header names another TensorRT version."""
    if version is None:
        try:
            import tensorrt  # type: ignore[import-not-found]
        except ImportError:
            return DEFAULT_VERSION
        except Exception as e:  # an install whose import fails otherwise (libnvinfer missing:
            # OSError): quantize needs no TensorRT, and this ended it in a traceback (H221)
            log.warning(
                "TensorRT cannot be imported (%s: %s): the cache is headed for TensorRT %s",
                type(e).__name__,
                first_line(e),
                DEFAULT_VERSION,
            )
            return DEFAULT_VERSION
        problem = installed_version_problem(tensorrt)
        if problem is not None:  # (it was 'TensorRT cannot be imported (AttributeError: ...)'
            # for a module that imported, or a QuantizeError for a version no one gave)
            log.warning("%s: the cache is headed for TensorRT %s", problem, DEFAULT_VERSION)
            return DEFAULT_VERSION
        version = tensorrt.__version__
    match = re.match(r"(\d+)(?:\.(\d+))?(?:\.(\d+))?", version.strip())
    if match is None:
        raise QuantizeError(f"TensorRT version {version!r} is not a version like 10.3.0")
    # a component that does not start with a digit ends the number ('10.x.1' was read as 10.1)
    major, minor, patch = (int(g) if g else 0 for g in match.groups())
    return major * (10000 if major >= 10 else 1000) + minor * 100 + patch


def installed_version_problem(module: object) -> str | None:
    """What is wrong with the `__version__` of an imported `tensorrt` module, or None when it
    is a version string ('10.3.0'): missing (a folder named tensorrt on the Python path imports
    as an empty namespace package; a stub), not a string, or not starting with a number."""
    where = getattr(module, "__file__", None) or next(iter(getattr(module, "__path__", [])), "?")
    version = getattr(module, "__version__", None)
    if not hasattr(module, "__version__"):
        said = "has no __version__"
    elif not isinstance(version, str):
        said = f"has a __version__ that is no string ({type(version).__name__})"
    elif not re.match(r"\d", version.strip()):
        said = f"has a __version__ {shown(version)} that is no version like 10.3.0"
    else:
        return None
    return (
        f"'import tensorrt' finds {where}, which {said}: not TensorRT's Python package, or a "
        "broken install of it"
    )


def refuse_loose_trt_version(version: str | None, option: str = "--trt-version") -> None:
    """QuantizeError for a TensorRT version (`option`'s value) that is not 1 to 4 whole numbers separated by dots,
    minor and patch below 100 (a pip suffix, b6 or .post1, allowed): the cache's header reads
    a version's leading numbers, and '10.x', '10..3', '1e3' and '10.100' were written as
    TRT-100000, TRT-100000, TRT-1000 and TRT-110000 without a word (a TensorRT of another
    version skips that cache)."""
    if version is None:
        return
    match = re.fullmatch(
        r"(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:\.\d+)?(?:(?:a|b|rc)\d+|\.post\d+)?", version.strip()
    )
    if match is None or any(part is not None and int(part) > 99 for part in match.groups()[1:]):
        raise QuantizeError(
            f"{option}: TensorRT version {version!r} is not a version like 10.3.0 (whole "
            "numbers separated by dots)"
        )


def header(
    method: str,
    version: str | None = None,
    algorithm: str | None = None,
    number: int | None = None,
) -> str:
    """`TRT-<version>-<algorithm>`, the cache's first line: `method`'s algorithm, or `algorithm`
    (that of the cache the scales were read from, `header_algorithm`) when given; the TensorRT
    `version`, else `number` (that cache's, `header_version`: TensorRT refuses a cache naming
    another version, so a cache rewritten from one keeps it), else the installed TensorRT's."""
    name = algorithm or ALGORITHMS.get(method, ALGORITHMS["entropy"])
    value = number if version is None and number is not None else tensorrt_version_number(version)
    return f"TRT-{value}-{name}"


def header_algorithm(line: str) -> str | None:
    """The calibrator named by a cache's first line ('TRT-8601-EntropyCalibration2' →
    'EntropyCalibration2'); None when the line is not `TRT-<number>-<name>`."""
    match = re.fullmatch(r"TRT-\d+-(\S+)", line.strip())
    return match.group(1) if match else None


def header_version(line: str) -> int | None:
    """The TensorRT version number a cache's first line names ('TRT-8401-EntropyCalibration2'
    → 8401); None when the line is not `TRT-<number>-<name>`."""
    match = re.fullmatch(r"TRT-(\d+)-\S+", line.strip())
    return int(match.group(1)) if match else None


def format_scale(scale: float | np.floating) -> str:
    return struct.pack(">f", float(np.float32(scale))).hex()


def parse_scale(text: str) -> np.float32:
    """The float32 whose bits are the hex number `text`: 1 to 8 hex digits, leading zeros
    optional (TensorRT writes its scales unpadded: `0`, `3c010a14`); ValueError for anything
    else ('12 34 56', '+1234567', nine digits)."""
    if not 1 <= len(text) <= 8 or any(c not in string.hexdigits for c in text):
        raise ValueError(f"{text!r} is not 1 to 8 hex digits")
    return np.float32(struct.unpack(">f", int(text, 16).to_bytes(4, "big"))[0])


def dumps(scales: dict[str, np.float32], header: str = DEFAULT_HEADER) -> str:
    """The cache text for `scales` (tensor → float32 scale). A scale of +0 is written as
    TensorRT writes a tensor it has no scale for, `name: 0`; any other scale that is no
    positive normal float32 (`scale_problem`: negative, -0, subnormal, infinite, NaN) is a
    `QuantizeError` naming the tensor: those were written (`7fc00000` for NaN, `00000000`
    for 0) into a cache that `loads`, and TensorRT, then refuse or misread."""
    lines = [header]
    for name in sorted(scales):
        if not writable_name(name):
            raise QuantizeError(f"tensor name {name!r} cannot be written to a calibration cache")
        scale = np.float32(scales[name])
        if _no_scale(scale):
            lines.append(f"{name}: 0")
            continue
        problem = scale_problem(scale)
        if problem is not None:
            raise QuantizeError(
                f"tensor {shown(name)}: {problem}, so it cannot be written to a calibration "
                "cache; a scale is a positive normal float32"
            )
        lines.append(f"{name}: {format_scale(scale)}")
    return "\n".join(lines) + "\n"


def writable_name(name: str) -> bool:
    """Whether `dumps` writes a line for tensor `name`: one that reads back as that name, on
    one line. Spaces around it are kept both ways ('x : 3c010a14' is tensor 'x ', as TensorRT
    writes it): a model with such a tensor (a valid ONNX name) could not be quantized with a
    cache, and a cache rewritten from TensorRT's lost its line."""
    # (TensorRT, and `_lines`, end a line at '\n' alone: '\r', '\f', '\x85' or U+2028 in a
    # name are read back as written; they were refused, as str.splitlines() breaks at them)
    return bool(name) and "\n" not in name


def with_listed(text: str, scales: dict[str, np.float32]) -> dict[str, np.float32]:
    """`scales` and every other tensor the cache text `text` lists (TensorRT's `name: 0` as
    +0, which `dumps` writes back so), for a cache rewritten from the one read: TensorRT's
    cache has a scale for each tensor of its network, graphopt's for those it quantizes, and
    a TensorRT reading the rewritten cache found no scale for the rest (`quantize --cache-in
    T --cache T` left 3 of a cache's 7 lines)."""
    return {**_table(text, "calibration cache").listed, **scales}  # (each one read: writable)


def write(path: str | Path, scales: dict[str, np.float32], header: str = DEFAULT_HEADER) -> None:
    """Write the cache atomically (temporary file and rename; the mode follows the umask), its
    missing folders made first (and removed again when the write fails)."""
    from graphopt.ir.model_io import make_folders, remove_folders, write_atomically

    target = Path(path)
    data = dumps(scales, header).encode()
    made: list[Path] = []
    try:
        made = make_folders(target.parent)
        write_atomically(target, target.parent, data)
    except BaseException as e:
        remove_folders(made)
        if isinstance(e, OSError):
            raise QuantizeError(f"{path}: cannot write calibration cache: {e.strerror or e}") from e
        raise
    warn_of_colons(path, scales)  # (of a cache that is there)


def warn_of_colons(path: str | Path, scales: dict[str, np.float32]) -> None:
    """One warning where a tensor name holds ':' (tf2onnx's 'input_1:0'): TensorRT and `loads`
    read a line's name up to its last ':', onnxruntime's TensorRT execution provider (with
    `trt_int8_use_native_calibration_table`) up to its first, so it gives such a tensor no
    scale and another name ('input_1') a scale of 0: a cache that is right for TensorRT is
    silently wrong there (module docstring)."""
    colons = sorted(name for name in scales if ":" in name)
    if colons:
        first = colons[0]
        log.warning(
            "%s: %s ':' (%s%s): TensorRT reads them, but onnxruntime's TensorRT execution "
            "provider takes a cache line's name up to its first ':' (its line for %s gives "
            "tensor %s a wrong scale, and %s none); rename them in the model for that runtime",
            text_shown(path),
            "1 tensor name holds" if len(colons) == 1 else f"{len(colons)} tensor names hold",
            shown(first),
            ", ..." if len(colons) > 1 else "",
            shown(first),
            shown(first.split(":", 1)[0]),
            shown(first),
        )


def missing_folders(path: str | Path) -> list[Path]:
    """The folders above `path` that are not there (outermost first): those a `write` of it
    makes, for `put_back` to remove again."""
    from graphopt.ir.model_io import missing_folders as missing_above

    return missing_above(Path(path).parent)


def name_max(folder: str | Path) -> int:
    """How many bytes a file name in `folder` may have (PC_NAME_MAX; 255 where the system does
    not say, as on Windows)."""
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (AttributeError, OSError, ValueError):
        return 255


def name_too_long(
    path: str | Path, folder: str | Path | None = None
) -> tuple[str, int, int, Path] | None:
    """(name, its bytes, the limit, the folder) for the first name of `path` below `folder`
    (the folders still to make, then the file's) that is longer than `folder` takes
    (`name_max`); None when each fits. `folder`: an existing folder `path` is under; by
    default its nearest existing ancestor. The one check of `check_writable`
    (graphopt.commands._common) and of the sidecar's `refuse_unwritable`."""
    target = Path(path)
    if folder is None:
        folder = target.parent
        while not os.path.isdir(folder) and folder != folder.parent:
            folder = folder.parent
    where = Path(folder)
    limit = name_max(where)
    for name in target.parts[len(where.parts) :]:
        size = len(os.fsencode(name))
        if size > limit:
            return name, size, limit, where
    return None


def bytes_before(path: str | Path | None) -> bytes | None:
    """The bytes of the regular file at `path` (a cache a run is about to write, or its
    sidecar), for `put_back`; None when there is none (or it cannot be read)."""
    if not path or not os.path.isfile(path):
        return None
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def put_back(path: str | Path | None, previous: bytes | None, made: Sequence[Path] = ()) -> None:
    """Undo a write of `path` by a run that failed after it (`previous`: `bytes_before`): a
    file that was there gets its bytes back, a new one goes (through a link: the file it
    points to), and so do the folders `made` for it (`missing_folders` before the write), as
    far as they are empty: a failed `quantize --cache new/c.cache` left `new/` behind. A device
    or pipe is left alone (it was written straight), so is a file that still holds `previous`
    (a run that failed before writing it). Best effort: the run's own error is the news, so an
    OSError here leaves the file as the run wrote it. `path` None: the folders alone (those of
    files put back before)."""
    from graphopt.ir.model_io import is_stream, remove_folders, write_atomically

    if path and not is_stream(Path(path)) and bytes_before(path) != previous:
        target = Path(os.path.realpath(path)) if os.path.islink(path) else Path(path)
        try:
            if previous is None:
                target.unlink(missing_ok=True)
            else:
                write_atomically(target, target.parent, previous)
        except OSError:
            pass
    remove_folders(made)


def entries(text: str, where: str = "calibration cache") -> tuple[str, list[tuple[str, str]]]:
    """(header, [(tensor, hex digits)]) from cache text, in the file's order, every line
    checked: the digits as written (`0` for a tensor TensorRT has no scale for)."""
    table = _table(text, where)
    return table.head, list(zip(table.names, table.digits, strict=True))


class _Table(NamedTuple):
    """A cache text's lines, read (`_table`)."""

    head: str  # the header, stripped
    names: list[str]  # each tensor line's name, in the file's order
    digits: list[str]  # its hex digits as written
    scales: np.ndarray  # its float32 scale
    listed: dict[str, np.float32]  # tensor → its scale (a tensor listed twice: the same)


_HEX_DIGITS = re.compile(r"[0-9A-Fa-f]*")  # (string.hexdigits, ASCII only, as parse_scale takes)


def _table(text: str, where: str) -> _Table:
    """Cache text read, every line checked. A name is all before the line's last ':' (the hex
    digits hold none), as TensorRT writes it: `a:0: 3c010a14` is tensor 'a:0'.

    Column by column (`_read_columns`); where a line is wrong, `_read_by_line` finds the first
    and says what is wrong with it."""
    lines = list(filter(str.strip, _lines(text)))  # (blank lines skipped)
    head = _header_line(lines[0] if lines else None, text, where)
    read = _read_columns(lines[1:])
    names, digits, scales, listed = read if read is not None else _read_by_line(text, where)
    if names and not text.endswith(("\n", "\r")) and len(digits[-1]) < 8 and digits[-1] != "0":
        # (the last line cut: '3d83edfa' as '3d83edf', a normal float32 1e-36, was taken)
        raise QuantizeError(
            f"{where}: line {_line_numbers(text)[-1]}: tensor {shown(names[-1])}: the file ends "
            f"inside its scale {digits[-1]!r} ({len(digits[-1])} hex digits, no line break after "
            "it): it was cut short; write the cache again"
        )
    return _Table(head, names, digits, scales, listed)


def _read_columns(
    body: list[str],
) -> tuple[list[str], list[str], np.ndarray, dict[str, np.float32]] | None:
    """(names, hex digits, float32 scales, tensor → scale) of a cache's tensor lines (`body`),
    or None when one of them is wrong: not `name: <1 to 8 hex digits>`, or a tensor listed
    again with another scale. Each string method is mapped over all the lines, and all their
    digits, padded to 8, are checked by one regular expression and read by one
    `bytes.fromhex`: a loop in Python over the lines read a million in 9 s."""
    parts = list(map(str.rpartition, body, repeat(":")))
    names = list(map(itemgetter(0), parts))
    digits = list(map(str.strip, map(itemgetter(2), parts)))
    if "" in map(itemgetter(1), parts) or "" in names or "" in digits:  # (no ':', no name)
        return None
    padded = "".join(map(str.zfill, digits, repeat(8)))  # (zfill never shortens: a 9th digit
    # makes it longer)
    if len(padded) != 8 * len(digits) or _HEX_DIGITS.fullmatch(padded) is None:
        return None
    scales = np.frombuffer(bytes.fromhex(padded), dtype=">f4").astype(np.float32)
    listed = dict(zip(names, scales, strict=True))
    if len(listed) < len(names):  # a tensor listed twice: fine with the same scale
        first = {name: i for i, name in reversed(list(enumerate(names)))}  # its first line's
        for i, name in enumerate(names):
            j = first[name]
            if j != i and digits[j] != digits[i] and scales[j] != scales[i]:
                return None
    return names, digits, scales, listed


def _line_numbers(text: str) -> list[int]:
    """The line numbers in the file of cache text's lines that are not blank: the header's,
    then each tensor line's (`_table`'s order)."""
    return list(compress(count(1), map(str.strip, _lines(text))))


def _lines(text: str) -> list[str]:
    """Cache text's lines, split at '\\n' alone, as TensorRT reads them: str.splitlines() also
    split at '\\r', '\\v', '\\f', '\\x1c'-'\\x1e', '\\x85', U+2028 and U+2029, so a tensor name
    holding one was two lines to graphopt and one to TensorRT. A CRLF line keeps its '\\r',
    which the scale's digits are stripped of (a name ends at the line's last ':')."""
    return text.split("\n")


def _header_line(first: str | None, text: str, where: str) -> str:
    """The header, cache text's first line that is not blank (`first`), stripped; a
    `QuantizeError` when it is no `TRT-` line."""
    if first is not None and first.startswith("\ufeffTRT-"):  # (TensorRT reads no BOM: a
        # header '\ufeffTRT-...' is another calibrator's, and it skips the cache)
        raise QuantizeError(
            f"{where}: starts with a byte order mark (U+FEFF, an editor's) before its 'TRT-' "
            "header, which TensorRT does not read as its header; save it without one"
        )
    if first is not None and first.startswith("TRT-") and "\r" in first.strip():
        # (lines ending in '\r' alone, an old Mac editor's, are one line to TensorRT: the
        # header, then the scales, were read as lines by str.splitlines())
        raise QuantizeError(
            f"{where}: its 'TRT-' header line holds a carriage return ('\\r'): a calibration "
            "cache's lines end at '\\n', which TensorRT reads them by; save it with '\\n' "
            "(or '\\r\\n') line ends"
        )
    if first is None or not first.startswith("TRT-"):
        hint = ""
        if '"graphopt-calibration-sidecar"' in text[:200]:  # (a sidecar's "format", first)
            hint = "; it is graphopt's sidecar of a cache" + (
                f": give the cache, {shown(where[: -len(SIDECAR)])}"
                if where.endswith(SIDECAR)
                else ""
            )
        raise QuantizeError(
            f"{where}: not a TensorRT calibration cache (no 'TRT-' header line){hint}"
        )
    return first.strip()


def _read_by_line(
    text: str, where: str
) -> tuple[list[str], list[str], np.ndarray, dict[str, np.float32]]:
    """`_read_columns` line by line, for cache text with a wrong tensor line: a `QuantizeError`
    naming the first, its line number in the file and what is wrong with it."""
    lines = _lines(text)
    names: list[str] = []
    digits: list[str] = []
    seen: dict[str, tuple[int, str]] = {}  # tensor → (line, digits) of its first line
    for number in _line_numbers(text)[1:]:
        name, sep, value = lines[number - 1].rpartition(":")
        value = value.strip()
        if not sep or not name or not 1 <= len(value) <= 8:
            raise QuantizeError(f"{where}: line {number}: expected 'tensor: <1 to 8 hex digits>'")
        try:
            parse_scale(value)
        except ValueError as e:
            raise QuantizeError(f"{where}: line {number}: {e}") from e
        first = seen.setdefault(name, (number, value))
        if first[1] != value and parse_scale(first[1]) != parse_scale(value):
            # (which one a reader takes is its own choice: graphopt took the last)
            raise QuantizeError(
                f"{where}: line {number}: tensor {shown(name)} is listed again with another "
                f"scale ({value}; line {first[0]}: {first[1]}); keep one of the two lines"
            )
        names.append(name)
        digits.append(value)
    scales = np.array([parse_scale(value) for value in digits], dtype=np.float32)
    return names, digits, scales, dict(zip(names, scales, strict=True))


def _usable_scales(scales: np.ndarray) -> np.ndarray:
    """Which of `scales` are positive normal float32s (`scale_problem` None), as a mask."""
    return np.isfinite(scales) & (scales >= TINY)


def _no_scales(scales: np.ndarray) -> np.ndarray:
    """Which of `scales` are TensorRT's `name: 0` (+0, not -0: `_no_scale`), as a mask."""
    return scales.view(np.uint32) == 0


def loads(text: str, where: str = "calibration cache") -> tuple[str, dict[str, np.float32]]:
    """(header, tensor → scale) from cache text; a tensor TensorRT has no scale for (its
    `name: 0`, a zero scale) is left out; any other scale that is no positive normal float32
    is a `QuantizeError` naming the tensor (`scale_problem`)."""
    table = _table(text, where)
    usable = _usable_scales(table.scales)
    wrong = ~(usable | _no_scales(table.scales))
    if wrong.any():
        i = int(np.argmax(wrong))
        raise QuantizeError(
            f"{where}: line {_line_numbers(text)[i + 1]}: tensor {shown(table.names[i])}: "
            f"{scale_problem(table.scales[i])}; a scale is a positive normal float32 (TensorRT "
            "writes 0 for a tensor it has no scale for)"
        )
    if usable.all():
        return table.head, table.listed
    return table.head, {name: table.listed[name] for name in compress(table.names, usable)}


TINY = float(np.finfo(np.float32).tiny)  # the least normal float32: a scale below it is no scale


def scale_problem(scale: np.float32) -> str | None:
    """Why `scale` is no quantization scale ('scale inf is not finite', '... is not positive',
    '... is subnormal': `x / s` overflows, and a flush-to-zero unit reads it as 0); None for a
    positive normal float32."""
    if np.isfinite(scale) and scale >= TINY:
        return None
    kind = "not finite" if not np.isfinite(scale) else "subnormal" if scale > 0 else "not positive"
    return f"scale {float(scale)} is {kind}"


def _no_scale(scale: np.float32) -> bool:
    """TensorRT's `name: 0`: +0, the one scale a cache may hold for "none" (not -0)."""
    return bool(scale == 0 and not np.signbit(scale))


def shown(name: str, limit: int = 80) -> str:
    """`name` as an error message shows it: quoted, escaped (one line), cut after `limit`
    characters (a cache or sidecar may name a tensor in a megabyte)."""
    if len(name) <= limit:
        return repr(name)
    return f"{name[:limit]!r}... ({len(name)} characters)"


def retag(text: str, tag: str, where: str = "calibration cache") -> str:
    """Cache text with its header replaced by `tag` and every tensor line kept, in its order
    and with its digits, TensorRT's `name: 0` lines included (`loads` drops those)."""
    _, items = entries(text, where)
    return "\n".join([tag, *(f"{name}: {value}" for name, value in items)]) + "\n"


def spaced_name(path: str | Path, missing: set[str]) -> str | None:
    """Why the cache at `path` gives no scale for a tensor of `missing` (the model's tensors it
    has no line for): a line naming it with spaces before or after ('  x: 3c010a14', an
    indented line, read as tensor '  x'), or None. Said only for a tensor the model lacks with
    the spaces: a model may have a tensor 'x ', which TensorRT writes as 'x : ...'."""
    try:
        text = read_text_file(path, "calibration cache")
        names = _table(text, str(path)).names
    except QuantizeError:
        return None
    for i, name in enumerate(names):
        if name != name.strip() and name.strip() in missing:
            number = _line_numbers(text)[i + 1]
            return (
                f"{path}: line {number}: tensor name {shown(name)} has spaces before or after "
                "it, which a cache reader keeps as part of the name, so it names no tensor "
                f"{shown(name.strip())}; remove them"
            )
    return None


def listed_without_scale(path: str | Path) -> set[str]:
    """The tensors a cache file lists with no usable scale (TensorRT's `name: 0`); empty when
    it cannot be read."""
    try:
        table = _table(read_text_file(path, "calibration cache"), str(path))
    except QuantizeError:
        return set()
    usable = set(compress(table.names, _usable_scales(table.scales)))
    return {name for name in table.names if name not in usable}


def read(path: str | Path) -> tuple[str, dict[str, np.float32]]:
    return loads(read_text_file(path, "calibration cache"), str(path))


MAX_TEXT_BYTES = 256 << 20  # a cache of a million tensors is ~50 MB


def read_text_file(
    path: str | Path,
    what: str,
    limit: int = MAX_TEXT_BYTES,
    error: type[Exception] = QuantizeError,
) -> str:
    """The UTF-8 text of the regular file at `path` (a cache, a preprocessing spec, a
    distillation manifest); a `QuantizeError` (or `error`) naming `what` for anything else. A
    device or a FIFO is refused before it is opened: `--cache-in /dev/zero` read until memory
    ran out (a MemoryError, or the OOM killer), and a FIFO without a writer blocked the open
    for ever. So is a file over `limit` bytes."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise error(f"{path}: cannot read {what}: {e.strerror or e}") from e
    if not stat.S_ISREG(st.st_mode):
        kind = (
            "a folder"
            if stat.S_ISDIR(st.st_mode)
            else f"not a regular file ({special_file_kind(path) or 'a special file'})"
        )
        raise error(f"{path}: cannot read {what}: it is {kind}")
    if st.st_size > limit:
        raise error(
            f"{path}: cannot read {what}: {st.st_size} bytes, more than such a file holds "
            f"({limit >> 20} MiB at most)"
        )
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise error(f"{path}: cannot read {what}: {e.strerror or e}") from e
    if len(data) > limit:  # grown since the stat
        raise error(f"{path}: cannot read {what}: more than {limit >> 20} MiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise error(
            f"{path}: cannot read {what}: not UTF-8 text ({e.reason} at byte {e.start})"
        ) from e
