"""Loading and saving ONNX models, losslessly and atomically.

`load_model` accepts a path, bytes, an `onnx.ModelProto` (copied, never mutated) or an
onnx-graphsurgeon `Graph`, loads external data, and turns every way a file can be broken into a
one-line `LoadError`. `save_model` writes to a temporary file in the target folder and renames it
into place, so a failed save leaves no partial output; models over 2 GiB, or whose source used
external data, are written with external data beside them, the model and its data file put in
place so that a crash between the steps never leaves a model reading another's data. The
temporaries are named for the saving process (`.graphopt-<pid>-...`): a save removes those
that a killed save (whose process is gone) left in its folder (`remove_stale_temporaries`).

What the pid cannot tell: across pid namespaces (containers sharing a folder) or hosts (a
network file system) a writer's pid reads as gone, or as whichever process here has it (then
kept). A temporary folder is held with a lock while it is written in (`hold_folder`), which
the cleanup respects wherever the folder can be locked, and saves with external data into one
folder put their files in place in turns (`_saves_take_turns`), their cleanup included, so a
save's new data is not swept between its steps. A temporary file carries no lock: one whose
writer elsewhere has not written to it since this process started (a stopped or frozen
container, between its last write and its rename) can be removed under it, and where locks do
not work, a temporary folder too. That write then fails (`save_model`: a `SaveError`, the old
model kept; its rename found nothing, or its data file was gone) or stands with a warning:
never a model put without its data or with another's. Closing the gap would take a lock on
each temporary file held up to its rename (one kernel only), or names that tell namespaces and
hosts apart; neither is done.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import os
import re
import secrets
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Container, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

import numpy as np
import onnx
from google.protobuf.message import DecodeError, EncodeError, Message
from onnx.external_data_helper import (
    ExternalDataInfo,
    load_external_data_for_tensor,
    write_external_data_tensors,
)

try:
    from google.protobuf.unknown_fields import UnknownFieldSet
except ImportError:  # protobuf < 4.22: save serializes in one call
    UnknownFieldSet = None  # type: ignore[assignment,misc]

from graphopt._text import shown, type_name
from graphopt.errors import LoadError, SaveError, first_line
from graphopt.ir.io_names import require_text_graph_names
from graphopt.ir.nodes import default_opset, nested_bodies, subgraphs

log = logging.getLogger("graphopt.ir")

# From IR 4 on, an initializer need not be a graph input; below it every one must be.
IR_NEEDS_INPUTS_FOR_INITIALIZERS = 4

TWO_GIB = 2**31
# the most bytes protobuf parses as one message (not TWO_GIB: tests lower that one, to take a
# small model for one too large to save in one piece)
PARSE_LIMIT = 2**31
_MODEL_GRAPH = 7  # field numbers in onnx.proto: ModelProto.graph, GraphProto.node/.initializer
_GRAPH_NODE = 1
_GRAPH_INITIALIZER = 5
_IOV_MAX = 1024  # buffers per writev call (Linux's IOV_MAX)
# Default-domain opsets graphopt's passes know about: 7 to 28 (onnx 1.23's newest; the changes
# of 26-28 are new ops, new element types, Range's stash_type, Mod's float fmod=0 and
# SpaceToDepth's mode, each checked where a pass reads those ops), and no newer than the
# installed onnx knows (its checker and shape inference refuse the rest).
SUPPORTED_OPSETS = range(7, min(28, onnx.defs.onnx_opset_version()) + 1)
_CONTROL_FLOW = frozenset({"If", "Loop", "Scan", "SequenceMap"})  # standard ops with bodies

ModelLike = (
    Any  # str | os.PathLike | bytes | onnx.ModelProto | onnx_graphsurgeon.Graph | LoadedModel
)


@dataclass
class LoadedModel:
    """A loaded model and what graphopt must remember about its source to save it back."""

    model: onnx.ModelProto
    external_data: bool = False
    source: Path | None = None
    where: str = ""  # how load's errors name the model: its path, or "the given bytes", ...
    data_files: tuple[Path, ...] = ()  # the external data files it was read from (resolved)


def load_model(model: ModelLike, *, copy: bool = True) -> onnx.ModelProto:
    """Return a ModelProto for `model`; the caller's object is never mutated (it is copied)."""
    return load(model, copy=copy).model


def load(
    model: ModelLike, *, copy: bool = True, check_nodes: bool = True, where: str = ""
) -> LoadedModel:
    """Like `load_model`, and also say whether the source kept its weights as external data.

    `check_nodes=False` skips the walk over the nodes that checks every tensor read is defined
    first and every graph output is defined; the caller must then index the model with
    `Graph(loaded.model, check_as=loaded.where)`, which checks the same in its own walk.

    `where`: how errors name a model given as an object (default "the given ModelProto", ...),
    for a caller that loaded it from a path and hands on what it made of it (quantize's
    `prepare` optimizes its opset-upgraded copy: errors name the file).

    A `LoadedModel` is handed over as it is: not copied, not checked again (what its own load
    checked is what holds). The CLI uses this to load once and optimize what it loaded.
    """
    if isinstance(model, LoadedModel):
        return model
    if isinstance(model, str | os.PathLike):
        if not os.fspath(model):  # Path("") is ".": "is a directory" named no problem
            raise LoadError("the model path is empty: give the path of an ONNX file")
        if "\0" in os.fsdecode(model):  # else "no such file"
            raise LoadError(f"{shown(model)}: a path cannot hold a NUL character")
        return _load_path(Path(model), check_nodes)
    return _load_object(model, copy, check_nodes, where)


def _load_object(model: ModelLike, copy: bool, check_nodes: bool, named: str) -> LoadedModel:
    if isinstance(model, onnx.ModelProto):
        where = named or "the given ModelProto"
        check_model_basics(model, where, check_nodes)
        _refuse_unlocated_external_data(model, where)
        if copy:
            out = onnx.ModelProto()
            out.CopyFrom(model)
            model = out
        return LoadedModel(model, where=where)
    if isinstance(model, bytes | bytearray | memoryview):
        where = named or "the given bytes"
        proto = _parse(bytes(model), where)
        check_model_basics(proto, where, check_nodes)
        _refuse_unlocated_external_data(proto, where)
        return LoadedModel(proto, where=where)
    if type(model).__name__ == "Graph" and type(model).__module__.startswith("onnx_graphsurgeon"):
        import onnx_graphsurgeon as gs

        where = named or "the given onnx_graphsurgeon.Graph"
        try:
            proto = gs.export_onnx(model)
        except Exception as e:  # onnx_graphsurgeon raises its own untyped errors
            raise LoadError(f"{where}: onnx_graphsurgeon cannot export it: {first_line(e)}") from e
        check_model_basics(proto, where, check_nodes)
        return LoadedModel(proto, where=where)
    raise LoadError(
        f"cannot load a model from {type(model).__name__}: pass a path, bytes, "
        "onnx.ModelProto or onnx_graphsurgeon.Graph"
    )


def check_nested(proto: onnx.ModelProto, where: str) -> None:
    """What `load` checks of a model's nodes beyond indexing them, for the analyses that index
    a skeleton of a ModelProto themselves (`graphopt.analysis.usedef.as_graph`, `shape_facts`):
    its If/Loop/Scan bodies and its tensors' dims (`_checked_external_tensors`), its local
    functions (`check_model_basics`) and a main-graph node leaving out a required input.
    RegexFullMatch('') in an If branch crashed onnx's shape inference under `fuse_ops(model)`
    and `shape_facts(model)` (a segmentation fault) where a path, bytes or `optimize` said it
    in one line."""
    _checked_external_tensors(proto, where)
    if proto.functions:
        _refuse_left_out_inputs_in_functions(proto, where)
    _refuse_left_out_inputs(proto.graph.node, where, default_opset(proto))


def _refuse_unlocated_external_data(proto: onnx.ModelProto, where: str) -> None:
    """A model given as an object whose tensors still point at external data files (onnx.load
    with load_external_data=False) cannot be read: a file location is relative to the model's
    folder, which an object does not carry (a pass read it relative to the current directory:
    a misleading error, or another file's bytes)."""
    external = _checked_external_tensors(proto, where)
    if external:
        # the entry as written: ExternalDataInfo raises a ValueError on a negative offset
        location = next((e.value for e in external[0].external_data if e.key == "location"), "")
        more = f" (and {len(external) - 1} more)" if len(external) > 1 else ""
        raise LoadError(
            f"{where} keeps tensor {external[0].name!r}{more} in external data {location!r}, "
            "which graphopt cannot locate without the model's path: pass the path, or "
            "onnx.load it with load_external_data=True"
        )


def _load_path(path: Path, check_nodes: bool) -> LoadedModel:
    where = shown(path)  # the path as errors show it: one line, whatever it holds
    if not path.exists():
        raise LoadError(f"{where}: no such file")
    if path.is_dir():
        raise LoadError(f"{where}: is a directory, not an ONNX file")
    # a pipe is read (`graphopt optimize /dev/stdin`, `<(...)`: its open waits for the writer,
    # as `cat` does); a device or socket is refused
    _refuse_special_file(path, f"{where}: ", pipes=True)
    proto = _parse_file(path)
    external = _checked_external_tensors(proto, where)
    if external:
        _refuse_undecodable_external_data(external, where)
        _drop_prepacked_entries(external)
        _refuse_unclear_entries(external, where)
        try:
            stored = [(t, ExternalDataInfo(t)) for t in external]  # cleared by the load
            for location in dict.fromkeys(info.location for _, info in stored):
                data = Path(os.path.normpath(path.parent / location))  # as onnx opens it
                _refuse_missing_data_file(data, location, stored, where)
                _refuse_special_file(data, f"{where}: external data file {location!r} ")
            # checked before the read (onnx reads `length` bytes, else the rest of the file),
            # a missing length set to the tensor's size, as onnxruntime reads it
            sizes: dict[str, int] = {}  # data file sizes by location (one stat each)
            for tensor, info in stored:
                _check_external_size(tensor, info, path, sizes)
            onnx.load_external_data_for_model(proto, str(path.parent))
            for tensor, _ in stored:  # what onnx's loader does not visit: sparse, training
                if tensor.data_location == onnx.TensorProto.EXTERNAL:
                    load_external_data_for_tensor(tensor, str(path.parent))
        except (OSError, ValueError, onnx.checker.ValidationError) as e:
            first = first_line(e)
            raise LoadError(f"{where}: external data could not be loaded: {first}") from e
    check_model_basics(proto, where, check_nodes)
    locations = dict.fromkeys(info.location for _, info in stored) if external else {}
    # one per file, as onnx opens it: normalized first ('sub/../w.bin' is w.bin, wherever a
    # link 'sub' points; resolved first, the input's data file went unnamed and -o could
    # replace it)
    files = tuple(
        Path(os.path.normpath(path.parent / location)).resolve() for location in locations
    )
    return LoadedModel(proto, bool(external), path, where, files)


def _refuse_undecodable_external_data(external: list[onnx.TensorProto], where: str) -> None:
    """A `LoadError` for an external-data tensor whose name or external data entry is not
    UTF-8 text (a flipped byte): protobuf hands it over as bytes, which onnx's loader and the
    data file's path cannot take (a TypeError traceback)."""
    for tensor in external:
        texts = [tensor.name, *(x for e in tensor.external_data for x in (e.key, e.value))]
        bad = next((t for t in texts if not isinstance(t, str)), None)
        if bad is not None:
            what = "name" if bad is texts[0] else "external data entry"
            raise LoadError(
                f"{where}: an external-data tensor's {what} {bad!r} is not UTF-8 text "
                "(a damaged file?)"
            )


def _drop_prepacked_entries(external: list[onnx.TensorProto]) -> None:
    """Drop onnxruntime's `prepacked_*` entries (a model it saved with
    `session.save_external_prepacked_constant_initializers`: its pre-packed copies of a
    weight, a cache it rebuilds), as the load drops every entry of the tensors it reads."""
    for tensor in external:
        kept = [e for e in tensor.external_data if not e.key.startswith("prepacked")]
        if len(kept) < len(tensor.external_data):
            del tensor.external_data[:]
            tensor.external_data.extend(kept)


# the keys of an external data entry that onnxruntime reads (1.32: its prepacked_* aside,
# which the load drops), and those onnx reads (onnx.external_data_helper.ExternalDataInfo),
# graphopt's: onnxruntime refuses 'basepath' ("model format error!"), a key onnx reads and
# its loader does not use; graphopt takes it, and saves the tensor without it
_ORT_DATA_KEYS = ("location", "offset", "length", "checksum")
_DATA_KEYS = frozenset((*_ORT_DATA_KEYS, "basepath"))


def _refuse_unclear_entries(external: list[onnx.TensorProto], where: str) -> None:
    """A `LoadError` for an external-data tensor that names no data file (no 'location'
    entry, or an empty one: the error said the model's folder "is a folder, not a data file")
    or names two (two 'location' entries that differ: onnx.checker reads the first, onnx's
    loader and graphopt's the last, onnxruntime refuses the model; optimize wrote out a model
    reading the last), or has an entry onnx does not know: onnx's loader ignores it (with a
    UserWarning) and onnxruntime refuses the model, so a damaged 'offset' key read another
    tensor's bytes from offset 0, and optimize wrote them out as the weight. Also one of a
    string (or undefined) element type: external data holds raw bytes, which such a tensor
    cannot (onnxruntime refuses the model; the load put the bytes in its raw_data, and
    optimize wrote a model onnx.checker refuses too)."""
    for tensor in external:
        if tensor.data_type in (onnx.TensorProto.STRING, onnx.TensorProto.UNDEFINED):
            kind = type_name(tensor.data_type)
            raise LoadError(
                f"{where}: tensor {tensor.name!r} is kept as external data, which cannot hold "
                f"{'an' if kind == 'undefined' else 'a'} {kind} tensor (onnxruntime refuses the model): "
                "store it inline"
            )
        unknown = next((e.key for e in tensor.external_data if e.key not in _DATA_KEYS), None)
        if unknown is not None:
            # (a flipped byte, or a key another tool writes: either way onnxruntime 1.32
            # refuses it, "model format error!", and onnx's loader ignores it)
            raise LoadError(
                f"{where}: tensor {tensor.name!r} has an external data entry {unknown!r}, which "
                f"is none of {', '.join(_ORT_DATA_KEYS)} (the keys onnxruntime reads) and "
                "basepath (which onnx reads, and onnxruntime refuses): graphopt does not "
                "support that key, nor does onnxruntime"
            )
        locations = [e.value for e in tensor.external_data if e.key == "location"]
        if not any(locations):
            raise LoadError(
                f"{where}: tensor {tensor.name!r} is marked as external data but names no data "
                "file (no 'location' entry)"
            )
        if len(set(locations)) > 1:
            named = " and ".join(map(repr, dict.fromkeys(locations)))
            raise LoadError(
                f"{where}: tensor {tensor.name!r} names two external data files ({named}; "
                "onnx.checker reads the first, onnx.load the last): keep one 'location' entry"
            )


def _refuse_missing_data_file(
    data: Path,
    location: str,
    stored: Sequence[tuple[onnx.TensorProto, ExternalDataInfo]],
    where: str,
) -> None:
    """A `LoadError` naming the model, the first tensor kept in `location` and the file looked
    for when that file (`data`, as onnx opens it) is not there, or is a folder: onnx ≥ 1.17
    said "... should be stored in X, but it is not regular file", its words for both."""
    if data.is_dir() or not data.exists():
        tensor = next(t.name for t, info in stored if info.location == location)
        why = "is a folder, not a data file" if data.is_dir() else "no such file"
        raise LoadError(
            f"{where}: external data could not be loaded: tensor {tensor!r} keeps its data in "
            f"{location!r} ({shown(data)}): {why}"
        )


_SPECIAL_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _refuse_special_file(path: Path, prefix: str, pipes: bool = False) -> None:
    """A `LoadError` (`prefix` + why) when `path`, links followed, is there but is not a regular
    file (nor, with `pipes`, a FIFO): /dev/zero's read never ends (a MemoryError); a FIFO's
    waits for a writer (onnx refuses one as external data anyway). A missing path is left to
    the reader's own message."""
    kind = special_file_kind(path)
    if kind is not None and not (pipes and kind == "a FIFO"):
        raise LoadError(f"{prefix}is not a regular file ({kind})")


def _check_external_size(
    tensor: onnx.TensorProto, info: ExternalDataInfo, path: Path, sizes: dict[str, int]
) -> None:
    """A ValueError when the external data entry of `tensor` (`info`, read before the load)
    does not give the bytes its shape and element type need: a `length` of another size, or,
    without a `length`, a data file that holds fewer after the offset (cut short, or the wrong
    one). Without a `length` (or with a length of 0, which onnxruntime reads as none; onnx's
    loader read no bytes), a data file longer than that (a tensor at an offset of a shared
    file) is read as onnxruntime reads it: the tensor's own size from the offset (onnx's
    loader read the rest of the file, and the load refused it). That length is put in the
    entry, for onnx's loader. `sizes` caches the data files' sizes. A negative dim is refused
    first (its size counted from dims, -24 bytes said the file's length was negative, or two
    negative dims read the bytes of the positive product)."""
    if any(d < 0 for d in tensor.dims):
        raise ValueError(_negative_dim(f"tensor {tensor.name!r}", tensor.data_type, tensor.dims))
    need = _data_bytes(tensor)
    if need is None:
        return
    if info.length:  # onnxruntime reads a length of 0 as none (onnx's loader: 0 bytes)
        got = info.length
    else:
        if info.location not in sizes:
            # onnx opens the location normalized (sub/../w.bin: w.bin; links are refused)
            sizes[info.location] = os.path.getsize(os.path.normpath(path.parent / info.location))
        got = max(sizes[info.location] - (info.offset or 0), 0)
        if got >= need:
            kept = [e for e in tensor.external_data if e.key != "length"]
            del tensor.external_data[:]
            tensor.external_data.extend(kept)
            tensor.external_data.add(key="length", value=str(need))
            return
    if got != need:
        dims = "x".join(map(str, tensor.dims)) or "scalar"
        kind = type_name(tensor.data_type)
        held = f"holds {got}" if info.length else f"holds only {got}"
        after = f" after offset {info.offset}" if info.offset else ""
        raise ValueError(
            f"tensor {tensor.name!r} ({kind} {dims}) needs {need} bytes, but {info.location!r} "
            f"{held} for it{after} (a truncated or wrong data file)"
        )


# element types of fewer bits than a byte, packed with no gap between elements (onnx packs
# them, low bits first): a 6-bit float's 5 elements take 4 bytes, not 5
_PACKED_BITS = {
    getattr(onnx.TensorProto, name): bits
    for name, bits in (
        ("INT4", 4),
        ("UINT4", 4),
        ("FLOAT4E2M1", 4),
        ("INT2", 2),
        ("UINT2", 2),
        ("FLOAT6E2M3", 6),
        ("FLOAT6E3M2", 6),
    )
    if hasattr(onnx.TensorProto, name)
}


def _data_bytes(tensor: onnx.TensorProto) -> int | None:
    """The bytes of `tensor`'s raw data by its shape and element type (None: not a fixed size,
    as strings, or a type this onnx does not know)."""
    count = math.prod(tensor.dims)
    bits = _PACKED_BITS.get(tensor.data_type)
    if bits is not None:
        return (count * bits + 7) // 8
    if tensor.data_type in (onnx.TensorProto.STRING, onnx.TensorProto.UNDEFINED):
        return None
    try:
        itemsize = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)).itemsize
    except (KeyError, TypeError, ValueError):
        return None
    return count * itemsize


def _parse_file(path: Path) -> onnx.ModelProto:
    """The model in the file at `path`, parsed from its bytes read.

    Not from a mapping of its pages (f0a1ede did, to save the read's copy: layout_cdla read +
    parse 8.3 -> 3.4 ms): a file truncated while mapped (rewritten in place by another
    process, as `onnx.save` or a trainer's checkpoint writes it) kills the whole process with
    SIGBUS when the parse touches a page past the new end, where a read gives a short file
    and a `LoadError`."""
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            if stat.S_ISREG(st.st_mode) and st.st_size >= PARSE_LIMIT:
                # (read whole, it said "not an ONNX model (... truncated or another format)")
                raise LoadError(
                    f"{shown(path)}: {st.st_size} bytes, over the 2 GiB protobuf can parse as one "
                    "message: a model that large keeps its weights as external data (save it "
                    "with onnx.save_model(..., save_as_external_data=True))"
                )
            data = f.read()
    except OSError as e:
        raise LoadError(f"{shown(path)}: cannot read: {e.strerror}") from e
    if not data:
        raise LoadError(f"{shown(path)}: empty file, not an ONNX model")
    return _parse(data, shown(path))


def _parse(data: bytes | memoryview, where: str) -> onnx.ModelProto:
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except DecodeError as e:
        raise LoadError(
            f"{where}: not an ONNX model (protobuf decode failed: truncated or another format)"
        ) from e
    if not proto.HasField("graph") or (proto.ir_version == 0 and not proto.opset_import):
        raise LoadError(f"{where}: not an ONNX model (no graph or IR version)")
    return proto


def _negative_dim(what: str, data_type: int, dims: Sequence[int]) -> str:
    """Why a tensor (`what`: "tensor 'w'", ...) with a negative dim in `dims` is refused."""
    kind = type_name(data_type)
    return (
        f"{what} ({kind} {'x'.join(map(str, dims))}) has a negative dim, which no tensor has "
        "(onnx.checker and onnxruntime refuse the model)"
    )


def _checked_external_tensors(proto: onnx.ModelProto, where: str) -> list[onnx.TensorProto]:
    """`_external_tensors(proto)`, and a one-line `LoadError` for a tensor name in an If/Loop/Scan
    body that protobuf handed over as bytes (not UTF-8 in the file: a flipped byte): shape
    inference failed on it with a UnicodeDecodeError, the subgraph passes with a TypeError (bytes
    sorted with str). Bodies are small and the walk passes them anyway; the main graph's names
    are not walked again (its passes carry such a name through). Also for a body giving an
    initializer name twice or declaring an input twice, as `check_model_basics` says of the
    main graph: onnx.checker and onnxruntime refuse such a body, and the subgraph passes folded
    one of the twins into a model both take. And for a node giving one attribute twice (main
    graph, bodies, functions): onnx.checker and onnxruntime refuse it ("appeared multiple
    times"), and constant folding took one of the values (Transpose with perm [1, 0] and
    [0, 1] folded into a model both take). And for a tensor stored in the model (initializer,
    Constant or other attribute tensor, sparse ones; not training_info's, which neither reads)
    with a negative dim: optimize wrote such a model, which onnx.checker and onnxruntime
    refuse, where no pass read the tensor (an external one: `_check_external_size`). And for
    a body's node leaving out an input its op requires (`left_out_input_error`; a body in a
    model-local function: `_refuse_left_out_inputs_in_functions`, at that function's opset)."""
    bodies: list[tuple[onnx.GraphProto, bool]] = []
    twice: list[tuple[onnx.NodeProto, str]] = []
    negative: list[str] = []
    external = _external_tensors(proto, bodies, twice, negative)
    if twice:
        node, name = twice[0]
        raise LoadError(
            f"{where}: node {node.name or node.op_type!r} ({node.op_type}) gives attribute "
            f"{name!r} twice (onnx.checker and onnxruntime refuse the model): keep one"
        )
    if negative:
        raise LoadError(f"{where}: {negative[0]}")
    opset = default_opset(proto) if bodies else 0
    for body, in_function in bodies:
        require_text_graph_names(body, where, LoadError, nested=False)
        _refuse_names_given_twice(body, f"{where}: body {body.name!r}", body=True)
        if not in_function:  # (the main graph's nodes: `check_model_basics`, the Graph's index)
            _refuse_left_out_inputs(body.node, where, opset)
    return external


def _refuse_left_out_inputs(
    nodes: Sequence[onnx.NodeProto], where: str, opset: int, refused_by: str = "onnxruntime"
) -> None:
    """The `left_out_input_error` of the first of `nodes` that leaves out an input its op
    requires at default opset `opset`, raised; a schema is looked up only for a node with a
    "" input."""
    for node in nodes:
        if "" in node.input[:]:  # (sliced: a list built in C, not a Python-level walk)
            for index, name in enumerate(node.input):
                left_out = (
                    None if name else left_out_input_error(where, node, index, opset, refused_by)
                )
                if left_out is not None:
                    raise left_out


def _refuse_functions_without_default_opset(proto: onnx.ModelProto, where: str) -> None:
    """A `LoadError` for a model-local function whose nodes (its bodies' too) hold a
    default-domain op while it imports no default opset: onnxruntime ("No opset registered for
    domain") and onnx.checker refuse the model, which optimize wrote out."""
    for function in proto.functions:
        if any(o.domain in ("", "ai.onnx") for o in function.opset_import):
            continue
        nodes = (n for g in _function_graphs(function) for n in g)
        op = next((n.op_type for n in nodes if n.domain in ("", "ai.onnx")), None)
        if op is not None:
            raise LoadError(
                f"{where}: {_function_id(function)} uses the default-domain op {shown(op)} but "
                "imports no default opset (onnxruntime refuses the model)"
            )


def _function_graphs(function: onnx.FunctionProto) -> list[Sequence[onnx.NodeProto]]:
    """The nodes of model-local function `function` and of each If/Loop/Scan body in it."""
    return [function.node, *(b.node for b in nested_bodies(function, holders_only=True))]


def _function_id(function: onnx.FunctionProto) -> str:
    """How errors name a model-local function: "function 'f' (domain 'd')", its overload
    too where it has one."""
    named = f"function {function.name!r} (domain {function.domain!r}"
    return named + (f", overload {function.overload!r})" if function.overload else ")")


def _refuse_left_out_inputs_in_functions(proto: onnx.ModelProto, where: str) -> None:
    """`_refuse_left_out_inputs` for each model-local function's nodes and its If/Loop/Scan
    bodies' (nested ones too), the error naming the function ("m.onnx: function 'f' (domain
    'd'): node ..."). Read at the default opset the function imports (the last of "" and
    "ai.onnx", as `default_opset` reads a model's; none: the model's), which onnx's shape
    inference reads its body at: RegexFullMatch('') in a function the graph calls crashed it
    (`graphopt inspect` died of a segmentation fault, and optimize wrote the model out), even
    in a model importing opset 13, which has no RegexFullMatch. And at the model's, where it
    differs (onnx.checker refuses that where an op's schema differs between the two), which
    onnxruntime inlines the body at: Resize(x, '', scales) in a function importing 13 is
    refused in a model importing 11. Functions the graph does not call too: onnx.checker
    refuses them."""
    model_opset = default_opset(proto)
    for function in proto.functions:
        named = f"{where}: {_function_id(function)}"
        versions = [o.version for o in function.opset_import if o.domain in ("", "ai.onnx")]
        opsets = dict.fromkeys((versions[-1] if versions else model_opset, model_opset))
        for nodes in _function_graphs(function):
            for opset in opsets:
                _refuse_left_out_inputs(nodes, named, opset, "onnx.checker")


def _external_tensors(
    proto: onnx.ModelProto,
    bodies: list[tuple[onnx.GraphProto, bool]] | None = None,
    twice: list[tuple[onnx.NodeProto, str]] | None = None,
    negative: list[str] | None = None,
) -> list[onnx.TensorProto]:
    """Every initializer and attribute tensor (subgraphs, functions and training_info graphs
    included) that keeps its data in an external file, sparse ones' values and indices too
    (onnxruntime reads those; onnx's loader visits neither these nor training_info). One walk
    reading only tags: no tensor bytes are touched. `bodies` gets every If/Loop/Scan body the
    walk passes (nested ones too), with whether it is in a model-local function; `twice` each
    node (but training_info's) giving an attribute name twice, with that name (~0.15 ms more
    a load of layout_cdla's 1493 nodes); `negative` why each tensor kept in the model (not
    external: `_check_external_size`; not training_info's, which neither onnx.checker nor
    onnxruntime checks) has a negative dim.
    That reads `dims` only, `d and min(d[:])`: upb iterates a repeated field ~3x slower than
    it slices it (~0.7 ms more a load of layout_cdla's 878 Constants)."""
    external = onnx.TensorProto.EXTERNAL
    tensor, tensors = onnx.AttributeProto.TENSOR, onnx.AttributeProto.TENSORS
    graph, graphs = onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS
    sparse, sparses = onnx.AttributeProto.SPARSE_TENSOR, onnx.AttributeProto.SPARSE_TENSORS
    found: list[onnx.TensorProto] = []
    in_function = False  # whether the walk is in a model-local function's nodes

    def in_sparse(items: Any, what: str = "") -> None:
        for s in items:
            found.extend(t for t in (s.values, s.indices) if t.data_location == external)
            if negative is None:
                continue
            named = what or f"sparse tensor {s.values.name!r}"
            if s.dims and min(s.dims[:]) < 0:
                negative.append(_negative_dim(named, s.values.data_type, s.dims))
            for part, t in (("values", s.values), ("indices", s.indices)):
                if t.data_location != external and t.dims and min(t.dims[:]) < 0:
                    negative.append(
                        _negative_dim(f"the {part} tensor of {named}", t.data_type, t.dims)
                    )

    def in_attribute(node: onnx.NodeProto, a: onnx.AttributeProto, t: onnx.TensorProto) -> None:
        """`node`'s attribute `a` holds `t`, stored in the model: its dims checked."""
        if negative is not None:
            d = t.dims
            if d and min(d[:]) < 0:
                what = f"node {node.name or node.op_type!r} ({node.op_type}): the tensor"
                what += f" {t.name!r} of" if t.name else " of"
                negative.append(_negative_dim(f"{what} attribute {a.name!r}", t.data_type, d))

    def in_nodes(nodes: Any) -> None:
        for node in nodes:
            attributes = node.attribute[:]  # a list built in C: ~25% cheaper than iterating
            if twice is not None and len(attributes) > 1:
                names = [a.name for a in attributes]
                if len(set(names)) < len(names):
                    twice.append((node, next(n for i, n in enumerate(names) if n in names[:i])))
            for a in attributes:
                kind = a.type
                if kind == tensor:
                    t = a.t
                    if t.data_location == external:
                        found.append(t)
                    elif negative is not None:  # (inline: a Constant's tensor, on every load)
                        d = t.dims
                        if d and min(d[:]) < 0:
                            in_attribute(node, a, t)
                elif kind == tensors:
                    for t in a.tensors:
                        if t.data_location == external:
                            found.append(t)
                        else:
                            in_attribute(node, a, t)
                elif kind == graph:
                    in_body(a.g)
                elif kind == graphs:
                    for g in a.graphs:
                        in_body(g)
                elif kind in (sparse, sparses):
                    what = f"node {node.name or node.op_type!r} ({node.op_type}): the sparse"
                    what = f"{what} tensor of attribute {a.name!r}"
                    in_sparse((a.sparse_tensor,) if kind == sparse else a.sparse_tensors, what)

    def in_body(g: onnx.GraphProto) -> None:
        if bodies is not None:
            bodies.append((g, in_function))
        in_graph(g)

    def in_graph(g: onnx.GraphProto) -> None:
        if negative is None:
            found.extend(t for t in g.initializer if t.data_location == external)
        else:
            for t in g.initializer:
                if t.data_location == external:
                    found.append(t)
                else:
                    d = t.dims
                    if d and min(d[:]) < 0:
                        negative.append(_negative_dim(f"tensor {t.name!r}", t.data_type, d))
        in_sparse(g.sparse_initializer)
        in_nodes(g.node)

    in_graph(proto.graph)
    in_function = True
    for f in proto.functions:
        in_nodes(f.node)
    in_function = False
    twice = negative = None  # (training_info: onnxruntime does not read it; the checker takes
    # its negative dims)
    for info in proto.training_info:  # onnx's loader does not visit these either
        in_graph(info.initialization)
        in_graph(info.algorithm)
    return found


def check_model_basics(proto: onnx.ModelProto, where: str, check_nodes: bool = True) -> None:
    """Fail early, in one line, on what would otherwise crash a pass later: a `LoadError` that
    names `where` for a default opset graphopt does not support (or none, with default-domain
    ops), the default domain imported at two versions ("" and "ai.onnx"), a graph without
    outputs, an IR version onnx does not know, an initializer name or graph input given twice,
    a model-local function given twice, calling itself, or with a node leaving out an input
    its op requires, and (`check_nodes`) a tensor read or graph output that nothing defines.
    `check_nodes=False`: all but the node walk (`Graph(..., check_as=where)` walks the nodes);
    what `load` checks of any model, and the analyses of a ModelProto they index themselves."""
    _refuse_opset_imported_twice(proto, where)
    opsets = {o.domain or "": o.version for o in proto.opset_import}
    default = opsets.get("", opsets.get("ai.onnx"))
    if default is None:
        if any(n.domain in ("", "ai.onnx") for n in proto.graph.node):
            raise LoadError(
                f"{where}: the model (IR version {proto.ir_version}) uses default-domain ops "
                "but imports no default opset"
            )
    elif default not in SUPPORTED_OPSETS:
        raise LoadError(
            f"{where}: unsupported opset {default} (graphopt supports opsets "
            f"{SUPPORTED_OPSETS.start}..{SUPPORTED_OPSETS.stop - 1}); convert it with "
            "onnx.version_converter first"
        )
    if not proto.graph.output:  # optimize wrote an empty graph onnxruntime cannot load
        raise LoadError(f"{where}: the graph declares no outputs, so it computes nothing")
    _refuse_unknown_ir_version(proto, where)
    _refuse_names_given_twice(proto.graph, where)
    if proto.functions:
        _refuse_functions_given_twice(proto, where)
        _refuse_recursive_functions(proto, where)
        _refuse_left_out_inputs_in_functions(proto, where)
        _refuse_functions_without_default_opset(proto, where)
    if not check_nodes:
        return
    defined = {i.name for i in proto.graph.input} | {t.name for t in proto.graph.initializer}
    defined |= {t.values.name for t in proto.graph.sparse_initializer}
    written_twice = False  # a tensor two nodes write, or one node twice, or an input's name
    opset = default_opset(proto)
    for node in proto.graph.node:
        for index, name in enumerate(node.input):
            if name and name not in defined:
                raise undefined_input_error(where, node, name)
            if not name:
                left_out = left_out_input_error(where, node, index, opset)
                if left_out is not None:
                    raise left_out
        if node.op_type in _CONTROL_FLOW or node.domain not in ("", "ai.onnx"):
            redefined = body_redefinition_error(where, node, defined)  # (bodies: no other op)
            if redefined is not None:
                raise redefined
        outputs = node.output[:]
        if not written_twice and (len(outputs) > 1 or not defined.isdisjoint(outputs)):
            named = [o for o in outputs if o]  # ("": an optional output left out)
            written_twice = len(set(named)) < len(named) or not defined.isdisjoint(named)
        defined.update(outputs)
    for out in proto.graph.output:
        if out.name not in defined:
            raise undefined_output_error(where, out.name)
    if written_twice:
        error = _not_ssa_error(proto, where)
        if error is not None:
            raise error
    # last: inference runs (where a Slice may read a negative dim) on a model whose nodes are
    # checked (`check_nodes=False`: optimize and inspect take such a model as it is)
    from graphopt.analysis.inference_aborts import refuse_aborting_model  # (it imports ir)

    refuse_aborting_model(proto, where)


def _not_ssa_error(proto: onnx.ModelProto, where: str) -> LoadError | None:
    """The error `Graph(proto, check_as=where)` raises for `proto`, whose nodes write a tensor
    twice (two nodes, one node twice, or a graph input's or initializer's name): the same
    words and node names (unnamed nodes named as the index names them), now for every load of
    a path, not only optimize's (inspect, check, quantize and the analyses said it without
    the model's path). Indexed on a copy without the weights' data."""
    from graphopt.ir.graph import Graph  # (graph imports this module)

    skeleton = onnx.ModelProto(ir_version=proto.ir_version)
    skeleton.opset_import.extend(proto.opset_import)
    graph, source = skeleton.graph, proto.graph
    for field in ("input", "output", "value_info", "node"):
        getattr(graph, field).extend(getattr(source, field))
    for t in source.initializer:
        graph.initializer.add(name=t.name, data_type=t.data_type, dims=t.dims)
    for sparse in source.sparse_initializer:
        graph.sparse_initializer.add().values.name = sparse.values.name
    try:
        Graph(skeleton, check_as=where)
    except LoadError as e:
        return e
    return None


def _refuse_functions_given_twice(proto: onnx.ModelProto, where: str) -> None:
    """A `LoadError` for two model-local functions with one id (domain, name and overload):
    onnx.checker ("multiple local functions with the same implementation id") and onnxruntime
    ("Duplicate model-local function identifier") refuse the model, and which body a call
    means is not settled; optimize wrote it out as it was."""
    seen: set[tuple[str, str, str]] = set()
    for f in proto.functions:
        key = (f.domain, f.name, f.overload)
        if key in seen:
            shown_id = (f"{f.domain}::{f.name}" if f.domain else f.name) + (
                f":{f.overload}" if f.overload else ""
            )
            raise LoadError(
                f"{where}: model-local function {shown_id!r} is defined twice (onnx.checker "
                "and onnxruntime refuse the model): keep one"
            )
        seen.add(key)


def _refuse_recursive_functions(proto: onnx.ModelProto, where: str) -> None:
    """A `LoadError` for model-local functions that call each other in a cycle (F calls G, G
    calls F; in their bodies' If/Loop/Scan bodies too): onnx's checker refuses such a model
    ("Model-local functions must not be recursive") and onnxruntime will not load it, but
    optimize wrote it out as if it were fine."""
    key = {(f.domain, f.name, f.overload): f for f in proto.functions}
    calls: dict[tuple[str, str, str], list[tuple[str, str, str]]] = {}
    for k, function in key.items():
        nodes = (n for g in _function_graphs(function) for n in g)
        calls[k] = [c for n in nodes if (c := (n.domain, n.op_type, n.overload)) in key]
    done: set[tuple[str, str, str]] = set()
    for start in calls:
        path: list[tuple[str, str, str]] = []
        on_path: set[tuple[str, str, str]] = set()
        stack: list[tuple[tuple[str, str, str], int]] = [(start, 0)]
        while stack:
            k, i = stack.pop()
            if i == 0:
                if k in on_path:
                    cycle = [*path[path.index(k) :], k]
                    shown_cycle = " -> ".join(f"{d}::{n}" if d else n for d, n, _ in cycle)
                    raise LoadError(
                        f"{where}: model-local functions call each other in a cycle "
                        f"({shown_cycle}); ONNX functions must not be recursive"
                    )
                if k in done:
                    continue
                path.append(k)
                on_path.add(k)
            if i < len(calls[k]):
                stack.append((k, i + 1))
                stack.append((calls[k][i], 0))
            else:
                path.pop()
                on_path.discard(k)
                done.add(k)


def _refuse_opset_imported_twice(proto: onnx.ModelProto, where: str) -> None:
    """A `LoadError` for a model importing the default domain both as "" and as "ai.onnx", at
    different versions: onnxruntime reads the last import of either ("" 11 then ai.onnx 13: a
    Squeeze with an `axes` attribute is refused), onnx.checker the "" one (valid to it), so
    what the model means is not settled. The default domain imported twice under one name
    loads: both read the last import there, as the Graph's index and `default_opset` do."""
    plain = dotted = None
    for o in proto.opset_import:
        if o.domain == "":
            plain = o.version
        elif o.domain == "ai.onnx":
            dotted = o.version
    if plain is not None and dotted is not None and plain != dotted:
        raise LoadError(
            f'{where}: the model imports the default domain as "" at opset {plain} and as '
            f'"ai.onnx" at opset {dotted} (onnxruntime and onnx.checker read different ones): '
            "keep one"
        )


def _refuse_unknown_ir_version(proto: onnx.ModelProto, where: str) -> None:
    """A `LoadError` for an IR version newer than the installed onnx knows (onnx.checker:
    "higher than the checker's"; onnxruntime: "Unsupported model IR version") or below 0 (no
    IR version; the IR < 4 handling passed it by and optimize wrote it back). 0, unset, is
    read as current, as onnxruntime reads it."""
    ir = proto.ir_version
    if ir > onnx.IR_VERSION:
        raise LoadError(
            f"{where}: IR version {ir} is newer than onnx {onnx.__version__} knows (up to "
            f"{onnx.IR_VERSION}): upgrade onnx, or save the model at an IR version it knows"
        )
    if ir < 0:
        raise LoadError(f"{where}: IR version {ir} is no IR version (they count from 1)")


ELEMENT_TYPES = frozenset(onnx.TensorProto.DataType.values())  # (UNDEFINED, 0, too)


def undefined_element_types(graph: onnx.GraphProto) -> list[tuple[str, str, int]]:
    """(kind, name, element type) of each tensor `graph` declares, as a graph input or output
    or in its value_info, whose element type ONNX does not define (99, -5: a damaged file),
    which onnx.checker's full check and onnxruntime refuse ("Invalid tensor data type 99")."""
    declared = (("input", graph.input), ("output", graph.output), ("value_info", graph.value_info))
    return [
        (kind, vi.name, vi.type.tensor_type.elem_type)
        for kind, values in declared
        for vi in values
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type not in ELEMENT_TYPES
    ]


# the attributes of default-domain ops that name an element type (Cast's to; EyeLike's and
# the Random ops' dtype; QuantizeLinear's output_dtype, where 0 is "the zero point's")
TYPE_ATTRIBUTES = frozenset({"to", "dtype", "output_dtype"})


def undefined_type_attributes(graph: onnx.GraphProto) -> Iterator[tuple[onnx.NodeProto, str, int]]:
    """(node, attribute, element type) of each INT `TYPE_ATTRIBUTES` attribute of a
    default-domain node of `graph` or its bodies that names an element type ONNX does not
    define (Cast to=99; a Relu carrying one off its schema too): onnx's inference ("Attribute
    to does not specify a valid type") and onnxruntime refuse the model. A node's bodies come
    before its own attributes."""
    return iter(_undefined_in_nodes(graph)[0])


# the default-domain ops that store a tensor in an attribute: Constant's value (sparse_value),
# ConstantOfShape's value
_TENSOR_HOLDERS = frozenset({"Constant", "ConstantOfShape"})


def undefined_stored_types(graph: onnx.GraphProto) -> Iterator[tuple[str, int]]:
    """(what, element type) of each tensor `graph` or its bodies store, an initializer (dense
    or sparse) or a Constant's or ConstantOfShape's value, whose element type ONNX does not
    define (99) or is UNDEFINED (0): onnxruntime refuses the model ("Tensor 'w' does not have
    valid data type"), onnx.checker too (its full check for 99)."""
    return iter(_undefined_in_nodes(graph)[1])


_Named = tuple[onnx.NodeProto, str, int]


def _undefined_in_nodes(
    graph: onnx.GraphProto,
    named: list[_Named] | None = None,
    stored: list[tuple[str, int]] | None = None,
) -> tuple[list[_Named], list[tuple[str, int]]]:
    """`undefined_type_attributes` and `undefined_stored_types` of `graph`, in one walk driven
    by each attribute's type, read once from a list built in C (a name read only for an INT,
    a tensor's type only for a Constant's or ConstantOfShape's): layout_cdla's 1493 nodes
    ~1.5 ms, where two walks reading every attribute's name took ~13. Every GRAPH/GRAPHS
    attribute is followed (a body on any node)."""
    named = [] if named is None else named
    stored = [] if stored is None else stored
    for t in graph.initializer:
        if not _stored_type_defined(t.data_type):
            stored.append((f"initializer {t.name!r}", t.data_type))
    for s in graph.sparse_initializer:
        if not _stored_type_defined(s.values.data_type):
            stored.append((f"sparse initializer {s.values.name!r}", s.values.data_type))
    for node in graph.node:
        attributes = node.attribute[:]
        if not attributes:
            continue
        own: list[_Named] = []
        for a in attributes:
            kind = a.type
            if kind == _INT:
                if a.name in TYPE_ATTRIBUTES and a.i not in ELEMENT_TYPES:
                    own.append((node, a.name, a.i))
            elif kind in (_TENSOR, _SPARSE_TENSOR):
                op = node.op_type
                if op not in _TENSOR_HOLDERS or node.domain not in ("", "ai.onnx"):
                    continue
                elem = a.t.data_type if kind == _TENSOR else a.sparse_tensor.values.data_type
                if not _stored_type_defined(elem):
                    written = ", ".join(repr(o) for o in node.output if o) or "nothing"
                    what = f"{op} node {node.name or '(unnamed)'!r} writing {written}: the tensor"
                    stored.append((f"{what} its attribute {a.name!r} holds", elem))
            elif kind == _GRAPH:
                _undefined_in_nodes(a.g, named, stored)
            elif kind == _GRAPHS:
                for body in a.graphs:
                    _undefined_in_nodes(body, named, stored)
        if own and node.domain in ("", "ai.onnx"):
            named.extend(own)
    return named, stored


_INT, _TENSOR, _SPARSE_TENSOR, _GRAPH, _GRAPHS = (
    onnx.AttributeProto.INT,
    onnx.AttributeProto.TENSOR,
    onnx.AttributeProto.SPARSE_TENSOR,
    onnx.AttributeProto.GRAPH,
    onnx.AttributeProto.GRAPHS,
)


def _stored_type_defined(elem: int) -> bool:
    """Whether a stored tensor's element type is one ONNX defines (UNDEFINED, 0, is not)."""
    return elem != onnx.TensorProto.UNDEFINED and elem in ELEMENT_TYPES


def refuse_undefined_element_types(graph: onnx.GraphProto, where: str) -> None:
    """A `LoadError` for the first tensor of `undefined_element_types` (a graph input, output
    or value_info), node attribute of `undefined_type_attributes` or stored tensor of
    `undefined_stored_types` (a sparse initializer was written back, exit 0; a ConstantOfShape's
    value failed constant folding with "KeyError: 99"): what `optimize` refuses before it
    writes such a model back (UNDEFINED, 0, declared or named, is a type left to inference, not
    refused; stored, it is). Not `load`'s: `graphopt check` reports it as one of its findings."""
    for kind, name, elem in undefined_element_types(graph)[:1]:
        raise LoadError(
            f"{where}: graph {kind} {name!r} has element type {elem}, which ONNX does not "
            "define (onnx.checker's full check refuses the model)"
        )
    named, stored = _undefined_in_nodes(graph)
    for node, attribute, elem in named[:1]:
        written = ", ".join(repr(o) for o in node.output if o) or "nothing"
        raise LoadError(
            f"{where}: {node.op_type} node {node.name or '(unnamed)'!r} writing {written}: "
            f"attribute {attribute!r} names element type {elem}, which ONNX does not define "
            "(onnx.checker's full check refuses the model)"
        )
    for what, elem in stored[:1]:
        said = (
            "element type 0 (UNDEFINED), which a stored tensor may not have (onnx.checker "
            "refuses the model)"
            if elem == onnx.TensorProto.UNDEFINED
            else f"element type {elem}, which ONNX does not define (onnxruntime refuses the model)"
        )
        raise LoadError(f"{where}: {what} has {said}")


def _refuse_names_given_twice(graph: onnx.GraphProto, where: str, body: bool = False) -> None:
    """A `LoadError` for an initializer name given twice (sparse ones by their values' name)
    or a graph input declared twice: onnx.checker refuses both ("initializer name is not
    unique", "SSA form"), onnxruntime the input and the sparse twins, and of dense twins it
    reads the last, of a dense and a sparse one the sparse, where graphopt's passes read
    another (and wrote both back: a model onnx.checker refuses). An initializer that is also a
    graph input is no twin: an overridable default (IR ≥ 4), or IR < 4's way of listing it."""
    names = [t.name for t in graph.initializer]
    names.extend(s.values.name for s in graph.sparse_initializer)
    twin = _first_twin(names)
    if twin is not None:
        refused = (
            "onnx.checker and onnxruntime refuse the model"
            if body
            else "onnx.checker refuses the model; onnxruntime reads one of them"
        )
        raise LoadError(f"{where}: initializer {twin!r} is given twice ({refused}): keep one")
    twin = _first_twin([i.name for i in graph.input])
    if twin is not None:
        raise LoadError(
            f"{where}: {'body' if body else 'graph'} input {twin!r} is declared twice "
            "(onnx.checker and onnxruntime refuse the model): keep one"
        )


def _first_twin(names: list[str]) -> str | None:
    """The first name of `names` that an earlier one equals (None when all differ)."""
    if len(set(names)) == len(names):
        return None
    seen: set[str] = set()
    for name in names:
        if name in seen:
            return name
        seen.add(name)
    return None


def body_redefinition_error(
    where: str, node: onnx.NodeProto, defined: Container[str], outputs: Sequence[str] = ()
) -> LoadError | None:
    """The error for a node in one of `node`'s If/Loop/Scan bodies (nested ones included) that
    writes a tensor defined before it: by a scope around it (in `defined`, the graph's names
    defined up to `node`, `node`'s own `outputs` excepted, which a body may reuse; or an
    enclosing body's inputs, initializers and earlier node outputs), or by its own body (an
    input, an initializer, an earlier node's output, or the node's own output before).
    onnx.checker ("SSA form") and onnxruntime refuse such a model. None when there is none. A
    body's inputs and initializers may take an outer name (both load that), as may a node
    writing a name the outer graph defines only after `node`."""
    for sub in subgraphs(node):
        found = _redefined(sub, defined, outputs, set())
        if found is not None:
            tensor, writer, before = found
            return LoadError(
                f"{where}: node {writer!r} in a body of {node.name or node.op_type!r} "
                f"({node.op_type}) writes tensor {tensor!r}{before} (ONNX graphs must be in "
                "SSA form)"
            )
    return None


def _redefined(
    body: onnx.GraphProto, defined: Container[str], outputs: Sequence[str], around: set[str]
) -> tuple[str, str, str] | None:
    """(tensor, writer, what defined it before, as the error's words) of the first node of
    `body` (nested bodies first) writing a name `defined` (not one of `outputs`) or `around`
    (the enclosing bodies' names) holds, or one `body` defines before it."""
    own: dict[str, str] = {}  # body's names so far -> what defines them, in the error's words
    for i in body.input:
        own.setdefault(i.name, "is an input of its body")
    for t in body.initializer:
        own.setdefault(t.name, "is an initializer of its body")
    for sparse in body.sparse_initializer:
        own.setdefault(sparse.values.name, "is an initializer of its body")
    local = around | own.keys()
    for inner in body.node:
        for sub in subgraphs(inner):
            found = _redefined(sub, defined, outputs, local)
            if found is not None:
                return found
        writer = inner.name or inner.op_type
        mine: set[str] = set()
        for out in inner.output:  # (one at a time: a node writing [a, a] is caught too)
            if not out:
                continue
            if out in mine:
                return out, writer, " twice"
            if out in own:
                return out, writer, f", which {own[out]}"
            if out in local or (out in defined and out not in outputs):
                return out, writer, ", which the scope around it defines already"
            mine.add(out)
        for out in mine:
            own[out] = f"node {writer!r} of its body writes already"
            local.add(out)
    return None


def undefined_input_error(where: str, node: onnx.NodeProto, tensor: str) -> LoadError:
    """The error for `node` reading `tensor` before anything defines it (an op type with a
    control character, e.g. a flipped byte's form feed, escaped: the message stays one line)."""
    op = node.op_type
    if isinstance(op, str) and not op.isprintable():
        op = repr(op)[1:-1]
    return LoadError(
        f"{where}: node {node.name or node.op_type!r} ({op}) reads tensor "
        f"{tensor!r}, which no node, input or initializer defines (or nodes are not in "
        "topological order)"
    )


def left_out_input_error(
    where: str, node: onnx.NodeProto, index: int, opset: int, refused_by: str = "onnxruntime"
) -> LoadError | None:
    """The error for default-domain `node` leaving out (as "") its input `index`, which its
    schema at `opset` requires, or None where that input is optional (Resize's roi, Clip's
    min) or no schema says. onnxruntime refuses such a model ("input 0 is marked single but
    has an empty string"); onnx's shape inference crashed the process on some (RegexFullMatch,
    EyeLike: a segmentation fault in `graphopt inspect`), and optimize wrote it out.
    `refused_by`: who the message says refuses it (in a model-local function, onnx.checker:
    onnxruntime runs a function the graph does not call, or one whose opset alone requires
    the input)."""
    if node.domain not in ("", "ai.onnx"):
        return None
    try:
        schema = onnx.defs.get_schema(node.op_type, opset, "")
    except onnx.defs.SchemaError:
        return None
    formal = schema.inputs
    if index >= len(formal):
        return None
    param = formal[index]
    if param.option != onnx.defs.OpSchema.FormalParameterOption.Single:
        return None
    op = node.op_type if node.op_type.isprintable() else repr(node.op_type)[1:-1]
    return LoadError(
        f"{where}: node {node.name or op!r} ({op}) leaves out its input {index} "
        f"({param.name!r}), which {op}-{schema.since_version} requires ({refused_by} refuses "
        "the model)"
    )


def undefined_output_error(where: str, output: str) -> LoadError:
    """The error for a graph output that nothing defines."""
    return LoadError(
        f"{where}: graph output {output!r} is not produced by any node, input or initializer"
    )


def default_data_location(path: Path) -> str:
    """The external data file `save_model` writes beside the model at `path` unless told
    another: `<file name>.data`."""
    return f"{path.name}.data"


def save_model(
    model: onnx.ModelProto,
    path: str | os.PathLike[str],
    *,
    external_data: bool | None = None,
    location: str | None = None,
) -> Path:
    """Write `model` to `path` atomically.

    `external_data=None` writes external data only when the model is over 2 GiB (pass the
    source's `LoadedModel.external_data` to keep its choice); the data file is `location`
    (default `<file name>.data`) beside the model, or in a subfolder of the model's folder
    (`weights/m.data`: made if missing; no '..', not absolute), put in place with it as a
    pair: a crash or an error between the steps never leaves the model reading another model's
    data, and no exit leaves a temporary file (`_put_model_and_data`). Sparse initializers and
    training_info tensors go to the data file too only when the model would otherwise stay
    over 2 GiB (onnx.load does not read them from there).

    A `path` that is a symbolic link is written through, as `onnx.save` (and `cp`) do: the file
    it points to is replaced and the link kept; the data file goes beside `path`, where a
    reader that opens `path` looks for it. A device or pipe (`/dev/null`), or a link to an open
    descriptor (`/dev/stdout`, a pipe or `> file` alike: `is_stream`) is written straight
    (`write_atomically`), in one piece: it has no folder for a data file.
    """
    if not isinstance(model, onnx.ModelProto):  # an AttributeError traceback ('graph')
        hint = ": pass its .model" if isinstance(model, LoadedModel) else ""
        raise SaveError(f"save_model takes an onnx.ModelProto, not {type(model).__name__}{hint}")
    if not os.fspath(path):  # Path("") is ".": it said ".: is a folder", a path not given
        raise SaveError("the model path is empty: give a file name for the model")
    if os.fspath(path).endswith(("/", os.sep)):  # Path() drops the slash: "out/" -> "out"
        raise SaveError(f"{shown(path)}: names a folder; give a file name for the model")
    if "\0" in os.fspath(path):  # else "cannot serialize: embedded null byte", or worse
        raise SaveError(f"{shown(path)}: a path cannot hold a NUL character")
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    _refuse_unreadable_external_data(model, path, parent, location or default_data_location(path))
    try:
        stream, target = _save_target(path, parent)
    except OSError as e:  # a name the system will not look up: ENAMETOOLONG, ELOOP
        raise SaveError(f"{shown(path)}: cannot write: {e.strerror or e}") from e
    if stream and external_data:
        log.info(
            "%s is a device, pipe or open descriptor: the model is written in one piece",
            shown(path),
        )
        external_data = None  # unless it is over 2 GiB
    data: Sequence[bytes] | None = None
    if not external_data:
        try:
            # Serializing is the size check: protobuf refuses messages over 2 GiB, and sizing
            # the model first (ByteSize) would cost almost as much as serializing it. A file is
            # written as it is serialized (the check then fails the write, which leaves no
            # file); a device or pipe, which cannot take back what it got, gets it all checked.
            data = serialized_pieces(model)
            if stream:
                data = list(data)
        except (EncodeError, ValueError) as e:
            if external_data is not None or not _over_two_gib(model):
                raise SaveError(f"{shown(path)}: cannot serialize: {e}") from e
            data = None
    if data is None and stream:
        raise SaveError(
            f"{shown(path)}: is a device, pipe or open descriptor, not a file: external data needs a "
            "folder beside it"
        )
    try:
        if data is not None:
            try:
                write_atomically(target, target.parent, data)
                return path
            except Unserializable as e:
                if external_data is not None or not _over_two_gib(model):
                    raise SaveError(f"{shown(path)}: cannot serialize: {e.error}") from e.error
            # over 2 GiB: written with external data, as asked of a model that big
        location = location or default_data_location(path)
        _refuse_data_name(path, location)
        # (a folder that cannot be removed once the pair is in place is no failed save: it
        # said 'cannot write' of a model written whole; a later save removes it as stale)
        with (
            tempfile.TemporaryDirectory(
                prefix=temporary_prefix(), dir=parent, ignore_cleanup_errors=True
            ) as tmp,
            hold_folder(Path(tmp)),
        ):
            (Path(tmp) / location).parent.mkdir(parents=True, exist_ok=True)  # a subfolder
            work = onnx.ModelProto()
            work.CopyFrom(model)
            _move_to_external_data(work, location)
            # the data file first (onnx.save_model would write it too): what stays is sized
            write_external_data_tensors(work, tmp)
            if _over_two_gib(work) and _move_sparse_to_external_data(work, tmp, location):
                log.warning(
                    "%s: sparse initializers are in %s too (over 2 GiB otherwise): onnxruntime "
                    "and graphopt read them there; onnx.load leaves them unread",
                    shown(path),
                    shown(location),
                )
            if _over_two_gib(work) and _move_training_to_external_data(work, tmp, location):
                log.warning(
                    "%s: training_info tensors are in %s too (over 2 GiB otherwise): graphopt "
                    "reads them there; onnx.load leaves them unread",
                    shown(path),
                    shown(location),
                )
            if _over_two_gib(work):
                raise SaveError(f"{shown(path)}: {_kept_inline(work)}")
            with _saves_take_turns(path.parent) as turn:
                kept = _remove_stale_save_temporaries(path, target, location)
                _put_model_and_data(work, Path(tmp), path, target, location)
                if turn:  # no other save is between its steps: `kept` is no save's any more
                    for spare in kept:
                        if not _names_data(target, path, spare):
                            remove_left_behind(spare, "a save that could not name it otherwise")
    except OSError as e:
        raise SaveError(f"{shown(path)}: cannot write: {e.strerror or e}") from e
    except onnx.checker.ValidationError as e:  # a location onnx refuses: '../w.bin', '/w.bin'
        raise SaveError(
            f"{shown(path)}: external data location {location!r}: {first_line(e)}"
        ) from e
    except ValueError as e:  # protobuf refuses > 2 GiB messages
        raise SaveError(f"{shown(path)}: cannot serialize: {e}") from e
    return path


def _refuse_unreadable_external_data(
    model: onnx.ModelProto, path: Path, parent: Path, writes: str
) -> None:
    """A SaveError when an initializer of `model`'s graph still keeps its data in an external
    file (a model from `onnx.load(..., load_external_data=False)`) that is not there relative
    to the folder `parent` the model goes to, or is the data file `writes` a save with external
    data would write over: save_model writes only the data it holds, so the model written
    would point at a file it cannot read (onnx: 'should be stored in .../w.bin, but it is not
    regular file'), or at other bytes. Only the main graph's initializers are looked at (where
    onnx leaves them; a walk over every node's attributes costs ~1 ms a save on layout_cdla)."""
    external = onnx.TensorProto.EXTERNAL
    for tensor in (*model.graph.initializer, *(s.values for s in model.graph.sparse_initializer)):
        if tensor.data_location != external:
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        # (normalized first, as onnx opens it: 'sub/../w.bin' is w.bin wherever a link 'sub' points)
        readable = (
            isinstance(location, str)
            and location
            and Path(os.path.normpath(parent / location)).is_file()
        )
        if not readable or os.path.normpath(location) == os.path.normpath(writes):
            raise SaveError(
                f"{shown(path)}: tensor {tensor.name!r} keeps its data in external file "
                f"{location!r}, which the model saved there could not read: load the model with "
                "its data (graphopt.ir.load(path), or onnx.load(path, load_external_data=True)) "
                "to save it"
            )


def _save_target(path: Path, parent: Path) -> tuple[bool, Path]:
    """Whether `path` is a device or pipe, and the file a save replaces (a link's target);
    a SaveError where its folder is missing or a file, or `path` is a folder (checked before
    anything is written: an external-data file would be left). An OSError where the system
    will not look `path` up (pathlib's is_dir raises ENAMETOOLONG)."""
    if not parent.is_dir():
        what = "is a file, not a folder" if parent.exists() else "does not exist"
        raise SaveError(f"{shown(path)}: folder {shown(parent)} {what}")
    if path.is_dir():
        raise SaveError(f"{shown(path)}: is a folder; give a file name for the model")
    stream = is_stream(path)
    if path.is_symlink() and not stream and link_loop(path):
        # realpath gives up inside the loop: the save replaced one of its links by the model
        raise SaveError(f"{shown(path)}: is a symbolic link loop; give a file name")
    target = Path(os.path.realpath(path)) if path.is_symlink() and not stream else path
    if not target.parent.is_dir():
        raise SaveError(f"{shown(path)}: links to {shown(target)}, whose folder does not exist")
    return stream, target


def link_loop(path: str | os.PathLike[str]) -> bool:
    """Whether following the symbolic link `path` never ends (ELOOP)."""
    try:
        os.stat(path)
    except OSError as e:
        return e.errno == errno.ELOOP
    return False


def _refuse_data_name(path: Path, location: str) -> None:
    """A SaveError when the data file `location` is no file name or relative path inside the
    model's folder (absolute, or with a '..': onnx refuses to read those), goes through a
    folder that is a symbolic link (onnx refuses to read through one: 'kernel rejected path')
    or a file, is the model file `path` itself (the model was written over its data), or its
    name is longer than its folder allows (a model name of 251..255 bytes makes `<name>.data`
    256..260; onnx's own error was 'kernel rejected path'). A subfolder (`weights/m.data`) is
    fine: `_put_model_and_data` makes it. A NUL character, which no file name holds, is refused
    too (the save failed later: 'its data file a b.data went from the save's folder ...')."""
    try:
        location.encode("utf-8")
    except UnicodeEncodeError:  # a name of bytes that are no UTF-8 ('\udcff' in Python)
        raise SaveError(
            f"{shown(path)}: its data file name {location!r} is not UTF-8 text, which a model "
            "cannot name its data by (onnx stores the location as text); give another name"
        ) from None
    if "\0" in location:
        raise SaveError(
            f"{shown(path)}: external data location {location!r} holds a NUL character, which "
            "no file name can"
        )
    posix, native = PurePosixPath(location), Path(location)
    if (
        posix.is_absolute()
        or native.is_absolute()
        or native.anchor
        or ".." in posix.parts
        or ".." in native.parts
        or posix.name in ("", ".")
        or location.endswith(("/", os.sep))
    ):
        raise SaveError(
            f"{shown(path)}: external data location {location!r} is not a file name or a relative "
            "path inside the model's folder (no '..', not absolute)"
        )
    folder = path.parent
    for part in native.parts[:-1]:
        folder = folder / part
        if folder.is_symlink():
            raise SaveError(
                f"{shown(path)}: external data location {location!r} goes through {shown(folder)}, a "
                "symbolic link, which onnx does not read data through; give another location"
            )
        if folder.exists() and not folder.is_dir():
            raise SaveError(
                f"{shown(path)}: external data location {location!r} goes through {shown(folder)}, which "
                "is a file, not a folder"
            )
    name = native.name
    if os.path.normpath(path.parent / location) == os.path.normpath(path):
        raise SaveError(
            f"{shown(path)}: the data file {location!r} is the model file; choose another"
        )
    try:
        limit = os.pathconf(path.parent if str(path.parent) else ".", "PC_NAME_MAX")
    except (AttributeError, OSError, ValueError):  # no pathconf (Windows), or no answer
        limit = 255
    if len(os.fsencode(name)) > limit:
        raise SaveError(
            f"{shown(path)}: its data file name {name!r} is over {limit} bytes, the folder's limit; "
            "give the model a shorter name (or a shorter location)"
        )


def _put_model_and_data(
    work: onnx.ModelProto, tmp: Path, path: Path, target: Path, location: str
) -> None:
    """Move `work` (its tensors marked as external data in `location`, whose bytes are written
    in the folder `tmp`) to `path` (through the link, to `target`) and its data file beside
    `path`, so that at every moment the model at `path` and the data file it names belong
    together: an error or a crash between two steps leaves the old model with its old data,
    or the new with the new, never a model reading another's bytes.

    A data file `location` that does not exist yet goes into place first, then the model. One
    that exists (that of the model replaced, say) is replaced in five steps: the new data under
    a fresh name beside it, the model naming that fresh file, the data file replaced by a hard
    link to the fresh one (a copy where the file system has no links), the model naming
    `location`, and the fresh name removed. A first save whose model cannot be put in place
    removes the data file it put.

    No exit leaves a temporary (`.graphopt-...`) file behind. When the data file cannot be
    replaced (a step after the second fails), or another save replaced it between this one's
    third and fourth steps (two saves to one path at once: the model last put in place is one
    of the two with its own data), the save stands with its data under a name of its own
    (`_data_under_own_name`: m.onnx-1.data), and a warning says so; where that fails too, the
    old model is put back and the save is a SaveError. An interrupt (KeyboardInterrupt, or an
    error that is no OSError) between the steps puts the old model back while the old data
    file is in place, and the new model naming the data file once it is not (`_Swap.settle`).
    A fresh name that cannot be removed at the end (EIO) is moved into `tmp` (`_drop_name`),
    else the model names the fresh file and `location` goes: a data file with two names is
    one onnx.load refuses; where neither can go, a SaveError names the file to remove."""
    data_tmp = tmp / location
    model_tmp = tmp / ".graphopt-model"
    mode = _mode_of(target)
    _write_model_file(work, model_tmp, mode)
    if not data_tmp.exists():  # no tensor was large enough for the data file
        if any(
            e.key == "location" and e.value == location
            for t in _external_tensors(work)
            for e in t.external_data
        ):  # one was: a cleanup took this save for gone (see the module's docstring)
            raise OSError(
                errno.ENOENT, f"its data file {location} went from the save's folder {tmp.name}"
            )
        _put_model_file(model_tmp, path, target)
        return
    # onnx creates the data file 0600; it gets the model file's mode (umask's, or that of the
    # model file replaced)
    data_mode = stat.S_IMODE(os.stat(model_tmp).st_mode)
    os.chmod(data_tmp, data_mode)
    final = path.parent / location
    if not os.path.lexists(final):
        made = make_folders(final.parent)  # a location in a subfolder
        try:
            os.replace(data_tmp, final)
        except BaseException:
            remove_folders(made)
            raise
        try:
            _put_model_file(model_tmp, path, target)
        except BaseException:
            if not _names_data(target, path, final):  # (an interrupt may follow the put)
                final.unlink(missing_ok=True)  # new: no model names it (the old one did not)
                remove_folders(made)
            raise
        return
    if final.is_dir():
        raise SaveError(
            f"{shown(path)}: its data file {shown(final)} is a folder; remove it or choose another name"
        )
    fresh = _fresh_path(final, temporary_prefix(_NEW_DATA))  # a model may name it for good
    fresh_location = (Path(location).parent / fresh.name).as_posix()  # "x" for "./x"
    _relocate_external_data(work, location, fresh_location)
    fresh_model_tmp = tmp / ".graphopt-model-fresh"
    _write_model_file(work, fresh_model_tmp, mode)
    swap = _Swap(path, target, final, fresh, model_tmp, _file_id(final), _file_id(target))
    swap.old_model_stamp = _file_stamp(target)
    swap.old_model = _keep_old_model(target, tmp) if swap.old_model_id else None
    try:
        os.replace(data_tmp, fresh)
        _put_model_file(fresh_model_tmp, path, target)
        # the new model stands, naming `fresh`
        why = None
        replaced = False
        try:
            ours = _replace_by_link(fresh, final, data_mode)
            replaced = True
            _put_model_file(model_tmp, path, target)
            if _file_id(final) != ours:
                # another save replaced the data file since this one did: its model (or a
                # later one) goes in after ours, but ours names its own data again in case it
                # is last
                why = f"{shown(location)} was replaced by another save meanwhile"
                _write_model_file(work, fresh_model_tmp, mode)  # `work` names the fresh file
                _put_model_file(fresh_model_tmp, path, target)
        except OSError as e:
            failed = (
                "was replaced, but the model naming it could not be put in place"
                if replaced
                else "could not be replaced"
            )
            why = why or f"{shown(location)} {failed} ({e.strerror or e})"
        if why is not None:
            try:
                where = _data_under_own_name(work, tmp, swap, fresh_location, mode)
            except OSError as e:
                if not swap.can_go_back():  # the fresh file stays: the model names it
                    _one_name(fresh, final, tmp)
                    log.warning(
                        "%s: saved with its data in %s: %s", shown(path), shown(fresh.name), why
                    )
                    return
                swap.settle()  # the old model with its old data
                raise SaveError(
                    f"{shown(path)}: cannot write: {why}, nor could its data be named "
                    f"{swap.tried.name if swap.tried else '?'} ({e.strerror or e}); the old "
                    "model is kept"
                ) from e
            log.warning("%s: saved with its data in %s: %s", shown(path), shown(where), why)
            return
    except BaseException as e:
        swap.settle()
        if swap.put_back:  # (a copy put back is a new file: its identity says nothing)
            setattr(e, OLD_MODEL_PUT_BACK, True)
        raise
    # the model names `location` now: the fresh name is a second name of its data file, which
    # onnx.load refuses ('multiple hard links'); it stayed where it could not be unlinked
    if _drop_name(fresh, tmp) is None:
        return
    # the model names the fresh file again, and the data file `location` goes: a pair whose
    # data file has one name, under the fresh one (as where the data file cannot be replaced)
    _write_model_file(work, fresh_model_tmp, mode)  # (`work` names the fresh file)
    _put_model_file(fresh_model_tmp, path, target)
    error = _drop_name(final, tmp)
    if error is None:
        log.warning(
            "%s: saved with its data in %s: its second name %s could not be removed",
            shown(path),
            shown(fresh.name),
            shown(location),
        )
        return
    raise SaveError(
        f"{shown(path)}: the model is written, but its data file has two names, {shown(final)} "
        f"and {shown(fresh)}, neither of which could be removed ({error.strerror or error}); "
        f"onnx.load refuses such a file: remove {shown(final)}"
    )


def _drop_name(name: Path, tmp: Path) -> OSError | None:
    """Remove the file name `name` (a second name of a data file, a spare hard link): unlinked,
    tried twice, else renamed into the save's temporary folder `tmp`, which goes with the
    save's end (a rename is another call, which may succeed where an unlink failed: EIO, EBUSY
    on a network share). None once it is gone; else the first error. A data file whose spare
    name stays has two links, which onnx.load refuses ('multiple hard links, indicating a
    potential hardlink attack'), though onnxruntime reads it."""
    first: OSError | None = None
    for _ in range(2):
        try:
            name.unlink(missing_ok=True)
            return None
        except OSError as e:
            first = first or e
    try:
        os.replace(name, _fresh_path(tmp / "spare"))
        return None
    except OSError as e:
        log.debug("%s: could not be moved into %s either (%s)", shown(name), shown(tmp), e)
    return first


_TURN_WAIT = 60.0  # seconds a save waits for another save into its folder to finish


@contextlib.contextmanager
def _saves_take_turns(folder: Path) -> Iterator[bool]:
    """Saves with external data into `folder` put their files in place one at a time: an
    exclusive `flock` on the folder, held while the model and its data file go into place
    (other processes' saves and this process's other threads wait for it). Without it, two
    saves to one path interleaved their steps: the one whose data file was replaced by the
    other's meanwhile put its model naming its data under a name of its own (m.onnx-1.data),
    and when the other's model went in after that, nothing named that file any more. Where
    the system has no flock (Windows), the folder takes none (a network file system), or
    another save holds it over `_TURN_WAIT` seconds, the save goes on without its turn, the
    interleaving left to `_put_model_and_data` (a warning, a name of its own). Yields whether
    the save has its turn."""
    with _folder_lock(folder, exclusive=True, wait=_TURN_WAIT) as held:
        if held is False:
            log.warning(
                "%s: another save there took over %.0f s; not waiting for it",
                shown(folder),
                _TURN_WAIT,
            )
        yield held is True


def missing_folders(folder: Path) -> list[Path]:
    """`folder` and the folders above it that are not there, outermost first: those
    `make_folders` makes. Also graphopt.quant.cache's `missing_folders` (the folders a cache's
    write makes, for `put_back` to remove)."""
    missing = []
    while not os.path.lexists(folder) and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing[::-1]


def make_folders(folder: Path) -> list[Path]:
    """Make `folder` and the folders above it that do not exist; those made, outermost first
    (none made when this fails). Also graphopt.quant.cache's `write` (a cache's folders)."""
    made: list[Path] = []
    try:
        for each in missing_folders(folder):
            each.mkdir()
            made.append(each)
    except BaseException:
        remove_folders(made)
        raise
    return made


def remove_folders(made: Sequence[Path]) -> None:
    """Remove the folders `make_folders` made, innermost first, as far as they are empty.
    Also graphopt.quant.cache's `write` and `put_back` (a failed run's cache folders)."""
    for folder in reversed(made):
        try:
            folder.rmdir()
        except OSError:
            return


# An attribute `_put_model_and_data` sets on the exception (a Ctrl-C) that interrupted it after
# putting the old model back: the file at the path is the old model, but where it was kept as a
# copy (no hard links) it is a new file, and the CLI, which tells "wrote" from "nothing was
# written" by the file's identity (commands._common.save_output), said "wrote".
OLD_MODEL_PUT_BACK = "graphopt_old_model_put_back"


@dataclass
class _Swap:
    """What `_put_model_and_data` needs to leave a consistent pair, and no temporary file,
    when it is interrupted between its steps of replacing a model and an existing data file.
    Where it stands is read from the files themselves (an interrupt can come just after a
    rename, before any note of it could be taken)."""

    path: Path
    target: Path
    final: Path  # the data file replaced
    fresh: Path  # the new data under a fresh name, which the model put in step two names
    model_tmp: Path  # the new model naming `final`, until it is put
    old_data_id: tuple[int, int] | None  # which file `final` was
    old_model_id: tuple[int, int] | None  # which file `target` was (None: there was none)
    old_model: Path | None = None  # a link to (or copy of) it; None: it could not be kept
    own: Path | None = None  # the data's own name on the warning path, once made
    tried: Path | None = None  # the own name tried last
    settled: bool = False
    put_back: bool = False  # `settle` left the old model (or none, as before) at `path`
    # (device, inode, mtime, size) of the old model: an inode freed once the new model replaced
    # it may be a later file's, so "the same file" is told by all four
    old_model_stamp: tuple[int, int, int, int] | None = None

    def can_go_back(self) -> bool:
        """Whether the old pair can be put back: the old data file is still in place and the
        old model was none or is kept."""
        return _file_id(self.final) == self.old_data_id and (
            self.old_model_id is None or self.old_model is not None
        )

    def settle(self) -> None:
        """The old model put back while the old data file is in place, else the new model
        naming the data file (where it is not put yet); then the fresh and own names the model
        at `path` does not name are removed. Once; best effort: an error here leaves the pair
        as it stands (consistent at every step)."""
        if self.settled:
            return
        self.settled = True
        try:
            if _file_id(self.final) == self.old_data_id:
                if self.old_model_id is None:  # no model was there: none is
                    self.target.unlink(missing_ok=True)
                    self.put_back = True
                elif _file_stamp(self.target) == self.old_model_stamp:
                    self.put_back = True  # (interrupted before the new model was put)
                elif self.old_model is not None:
                    if self.target != self.path and _file_id(self.old_model) == self.old_model_id:
                        # the kept link renamed back, the file itself (as where no link is):
                        # its bytes written through the link made a new file, which the CLI
                        # took for the new model (commands._common.file_identity)
                        os.replace(self.old_model, self.target)
                    else:
                        _put_model_file(self.old_model, self.path, self.target)
                    self.put_back = True
            elif self.model_tmp.exists():
                _put_model_file(self.model_tmp, self.path, self.target)
            spares = [self.fresh, self.own]
            tried = self.tried
            if tried and self.own is None and _file_id(tried) in (_file_id(self.fresh), None):
                spares.append(tried)  # linked to the fresh file just before the interrupt
            for spare in spares:
                if spare is not None and not _names_data(self.target, self.path, spare):
                    spare.unlink(missing_ok=True)
        except OSError as e:
            log.warning("%s: the interrupted save could not tidy up (%s)", shown(self.path), e)


def _names_data(target: Path, path: Path, data: Path, unreadable: bool = False) -> bool:
    """Whether the model file at `target` (saved as `path`) names the data file `data` (False
    where there is none, or it is no model; `unreadable` where it cannot be read: EIO, EMFILE,
    EACCES, so that a cleanup keeps what it cannot tell)."""
    model = onnx.ModelProto()
    try:
        model.ParseFromString(target.read_bytes())
    except FileNotFoundError:
        return False
    except OSError:
        return unreadable
    except DecodeError:
        return False
    want = os.path.normpath(data)
    return any(
        os.path.normpath(path.parent / ExternalDataInfo(t).location) == want
        for t in _external_tensors(model)
    )


def _keep_old_model(target: Path, tmp: Path) -> Path | None:
    """A hard link in `tmp` to the model file at `target` (a copy where links fail), for an
    interrupted save to put back; None where it could be neither linked nor copied (a full
    disk: the save goes on, without a way back)."""
    kept = tmp / ".graphopt-model-old"
    try:
        os.link(target, kept)
    except OSError:  # no hard links, or another file system (a link's target)
        try:
            shutil.copy2(target, kept)
        except OSError:
            kept.unlink(missing_ok=True)
            return None
    return kept


def _replace_by_link(fresh: Path, final: Path, mode: int) -> tuple[int, int] | None:
    """Replace the file `final` by a hard link to `fresh` (a copy with permission bits `mode`
    where the file system has no links); its file id."""
    link = _fresh_path(final)
    try:
        try:
            os.link(fresh, link)
        except OSError:  # a file system without hard links (FAT, some network shares)
            shutil.copyfile(fresh, link)
            os.chmod(link, mode)
        ours = _file_id(link)
        os.replace(link, final)
    except BaseException:
        link.unlink(missing_ok=True)  # a copy cut short (a full disk) goes too
        raise
    return ours


def _data_under_own_name(
    work: onnx.ModelProto, tmp: Path, swap: _Swap, fresh_location: str, mode: int | None
) -> str:
    """Give the new data, under the fresh temporary name that the model at `swap.path` names
    (`fresh_location`), a name of its own beside the data file `swap.final` it was to replace
    (`<stem>-<n><suffix>`: m.onnx.data -> m.onnx-1.data) and put the model naming that in
    place, so that no temporary file stays; that name. An OSError when this fails, the model
    naming the fresh file still and the own name removed.

    The own name is made a hard link to the fresh file, then the model naming it is put in
    place, then the fresh name removed: the pair belongs together at every step. Without hard
    links the own name is reserved (an empty file), and the fresh file renamed onto it just
    before the model naming it is put: a crash between those two renames leaves a model
    naming a file that is gone (an error when it is read, never another model's bytes)."""
    fresh = swap.fresh
    own_location = ""
    try:
        own, linked = _claim_own_name(fresh, swap)
        own_location = (Path(fresh_location).parent / own.name).as_posix()
        _relocate_external_data(work, fresh_location, own_location)
        own_model_tmp = tmp / ".graphopt-model-own"
        _write_model_file(work, own_model_tmp, mode)
        if linked:
            _put_model_file(own_model_tmp, swap.path, swap.target)
        else:
            os.replace(fresh, own)
            try:
                _put_model_file(own_model_tmp, swap.path, swap.target)
            except BaseException:
                if not _names_data(swap.target, swap.path, own):
                    os.replace(own, fresh)  # the model names the fresh file still
                raise
    except OSError:
        if own_location:
            _relocate_external_data(work, own_location, fresh_location)
        if swap.own is not None:
            swap.own.unlink(missing_ok=True)
            swap.own = None
        raise
    error = _drop_name(fresh, tmp)
    if error is not None:  # the model names `own`: the fresh name is a spare link
        log.warning(
            "%s: could not remove %s (%s)", shown(swap.path), shown(fresh), error.strerror or error
        )
    _one_name(own, swap.final, tmp)
    return own.name


def _one_name(data: Path, final: Path, tmp: Path) -> None:
    """Remove `final` when it is another name of the data file `data` (the data file was
    replaced by a link to the new data, but the model naming it could not be put): onnx.load
    refuses a data file with two names ('multiple hard links, indicating a potential hardlink
    attack'). The old data is gone already; no model names `final` for the new. (`tmp`: the
    save's temporary folder, where a name that cannot be unlinked is moved, `_drop_name`.)"""
    if _file_id(final) == _file_id(data) is not None:
        error = _drop_name(final, tmp)
        if error is not None:
            log.warning(
                "%s: could not remove %s (%s)", shown(data), shown(final), error.strerror or error
            )


def _claim_own_name(fresh: Path, swap: _Swap) -> tuple[Path, bool]:
    """A name no file had, `<stem>-<n><suffix>` of the data file `swap.final`'s name, in its
    folder, made a hard link to `fresh` (True) or, where the file system has no links, an
    empty file reserving it (False); recorded in `swap.own`."""
    final = swap.final
    stem, suffix = final.stem, final.suffix
    for n in range(1, 1000):
        short = stem
        while len(os.fsencode(f"{short}-{n}{suffix}")) > 255:  # a folder's usual limit
            short = short[:-1]
        own = final.parent / f"{short}-{n}{suffix}"
        swap.tried = own
        try:
            os.link(fresh, own)
        except FileExistsError:
            continue
        except OSError:  # no hard links: reserve the name
            try:
                os.close(os.open(own, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            except FileExistsError:
                continue
            swap.own = own
            return own, False
        swap.own = own
        return own, True
    raise OSError(f"no free name for {final.name} in {final.parent}")


def _file_stamp(path: Path) -> tuple[int, int, int, int] | None:
    """(device, inode, mtime in ns, size) of the file at `path` (None: there is none)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size


def _file_id(path: Path) -> tuple[int, int] | None:
    """The (device, inode) of the file at `path`: which file it is, whatever its name (None:
    there is none)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _write_model_file(model: onnx.ModelProto, file: Path, mode: int | None) -> None:
    """`model` (its external data written already) serialized to `file`, with permission bits
    `mode` (None: the umask's). Not by `onnx.save_model`, which walks every tensor of the model
    again to write external data there is none left to write (~3 ms a call on ppocr_det)."""
    with open(file, "wb") as f:
        _write(f, serialized_pieces(model))
    if mode is not None:  # a file replaced keeps its mode (as onnx.save's open keeps it)
        os.chmod(file, mode)


def _put_model_file(file: Path, path: Path, target: Path) -> None:
    """Rename the model `file` onto `path`, or write it through the link `path` to `target`."""
    if target == path:
        os.replace(file, path)
    else:  # the link's target may be on another file system
        write_atomically(target, target.parent, file.read_bytes())


def _fresh_path(beside: Path, prefix: str | None = None) -> Path:
    """A name no file has, in the folder of `beside`, ending in its name (`_temporary_name`)."""
    for _ in range(100):
        fresh = beside.parent / _temporary_name(beside.name, prefix)
        if not os.path.lexists(fresh):
            return fresh
    raise OSError(f"no free temporary file name in {beside.parent}")


def _temporary_name(name: str, prefix: str | None = None) -> str:
    """A fresh hidden name, `prefix` (default `temporary_prefix()`: `.graphopt-<pid>-`) + 12 hex
    digits + `-` + (at most the first 200 bytes of) `name`: a file name of up to 255 bytes
    (the prefix at most 26), as its folder allows, whatever `name`'s length (`name` itself may
    be 255)."""
    return f"{prefix or temporary_prefix()}{secrets.token_hex(6)}-{_cut(name)}"


def _cut(name: str) -> str:
    """At most the first 200 bytes of `name` (bytes as the file system has them), cut between
    characters, not inside one: bytes cut from a character are no UTF-8, which APFS refuses in
    a file name and protobuf in the external data location that names the file."""
    short = name
    while len(os.fsencode(short)) > 200:
        short = short[:-1]
    return short


def create_fresh(parent: Path, name: str, prefix: str | None = None) -> tuple[int, Path]:
    """A new file in `parent` under a `_temporary_name` of `name`, created exclusively:
    (its descriptor, open for writing; its path)."""
    for _ in range(100):
        tmp = parent / _temporary_name(name, prefix)
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue
    raise OSError(f"no free temporary file name in {parent}")


# Every temporary a save makes beside its output is named for its process, so that a later
# save into the same folder can tell what a killed one left (SIGKILL, a power cut: no process
# tidies up after those) from what a save under way is writing: `.graphopt-<pid>-<12 hex>-
# <name>`, a file renamed into place (`write_atomically`'s, `_replace_by_link`'s);
# `.graphopt-<pid>-<8 characters>`, the folder a save with external data writes in; and
# `.graphopt-data-<pid>-<12 hex>-<name>`, new external data beside the data file <name> it
# replaces, which the saved model names for good where the data cannot get a name of its own
# (`_put_model_and_data`): only a save of that model's data file removes it, and only once no
# model at its path names it. Before pids (7618498) the same were `.graphopt-<12 hex>-<name>`
# (a file renamed into place, a hard link to new data, or new data that a model names for good)
# and `.graphopt-<8 characters>` (the folder): see `remove_stale_temporaries` for when those go.
_TEMPORARY = ".graphopt-"
_NEW_DATA = "data-"
_PID = r"([1-9][0-9]{0,9})"  # a pid's digits: a 12-hex-digit name never reads as one
_STALE_FILE = re.compile(rf"\.graphopt-{_PID}-[0-9a-f]{{12}}-.+", re.DOTALL)
_STALE_FOLDER = re.compile(rf"\.graphopt-{_PID}-[a-z0-9_]{{8}}")  # tempfile's 8 characters
_STALE_DATA = re.compile(rf"\.graphopt-data-{_PID}-[0-9a-f]{{12}}-(.+)", re.DOTALL)
_OLD_FILE = re.compile(r"\.graphopt-[0-9a-f]{12}-(.+)", re.DOTALL)  # no pid: 12 hex, then -
_OLD_FOLDER = re.compile(r"\.graphopt-[a-z0-9_]{8}")
STARTED = time.time()  # (about) when this process started: graphopt.ir's import
STALE_ANYWAY = 24 * 3600.0  # seconds: no save takes a day (where no pid can be checked)


def temporary_prefix(kind: str = "") -> str:
    """`.graphopt-` + `kind` + this process's pid + `-`: how a temporary of this process begins."""
    return f"{_TEMPORARY}{kind}{os.getpid()}-"


@contextlib.contextmanager
def temporary_file_with_external_data(
    model: onnx.ModelProto, name: str = "model.onnx"
) -> Iterator[Path]:
    """The path of `model` saved with external data into a fresh temporary folder (under
    TMPDIR), removed with all in it when the block ends: a model over 2 GiB, which onnx's
    checker and shape inference and onnxruntime take only from a file. A `SaveError` that
    names the temporary folder where it cannot be written (a full or small TMPDIR: the error
    named only a `.graphopt-...` path)."""
    with tempfile.TemporaryDirectory(prefix=temporary_prefix()) as folder:
        path = Path(folder) / name
        try:
            save_model(model, path, external_data=True)
        except SaveError as e:
            raise SaveError(
                f"cannot write the temporary copy a model over 2 GiB is read from into "
                f"{shown(tempfile.gettempdir())} (TMPDIR): {e}"
            ) from e
        yield path


def made_by_this_user(st: os.stat_result) -> bool:
    """Whether the file whose status is `st` belongs to the user this process runs as (always,
    where the system has no user ids): the stale-temporary cleanups remove only those, so that
    root (or a member of a group-writable folder) never removes another user's files."""
    getuid = getattr(os, "getuid", None)
    return getuid is None or st.st_uid == getuid()


def process_gone(pid: int, changed: float) -> bool:
    """Whether the process `pid`, whose temporary was last changed at `changed`, is gone.
    POSIX: no process has that pid (one that has it, whoever's, counts as the writer, alive);
    elsewhere, where a pid cannot be probed safely (os.kill ends a Windows process), the
    temporary is a day old. This process is never gone."""
    if pid == os.getpid():
        return False
    if os.name != "posix":
        return time.time() - changed > STALE_ANYWAY
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError, OSError):  # another user's: alive
        return False
    return False


def remove_stale_temporaries(
    folder: Path, data_name: str | None = None, named: Callable[[Path], bool] | None = None
) -> list[Path]:
    """Remove from `folder` the temporaries that saves killed before they could tidy up left
    there, and return them. One counts only when its name is a save's (see above; new external
    data only where `data_name` is the data file's name it ends in and `named`, whether a
    model names it, says no), it is a file (a folder for the folder's name) and no link, it is
    this user's (`made_by_this_user`), it was last changed before this process started, and its
    process is gone (`process_gone`, as `graphopt.realmodels` judges a killed download's), and,
    for a folder, no save holds it (`hold_folder`: a pid of another pid namespace reads as
    gone): a save under way in another process is never touched. Best effort: one that cannot
    be removed is left, with a log line; nothing here fails a save.

    A name from before pids (7618498) has no process to ask: it counts, with all the rest
    above, once it was last changed over a day ago (`STALE_ANYWAY`): no save takes a day, so
    an old graphopt still running owns it only if it wrote nothing there for a day. For the
    folder (`.graphopt-<8 characters>`) that is enough: those saves put the model and its data
    beside the folder, and no model names a file in it. A file (`.graphopt-<12 hex>-<name>`)
    may be new data that a model names for good (such a save's warning path, or one killed
    after putting the model naming it and before replacing the data file), and its name does
    not tell it from a model written whole: it counts only as new data does, where its <name>
    is `data_name` and `named` says no. The others stay (a killed inline save's model): no
    reader of this folder alone can show that no model names them."""
    removed: list[Path] = []
    try:
        entries = [e for e in os.scandir(folder) if e.name.startswith(_TEMPORARY)]
    except (OSError, ValueError):
        return removed
    for entry in entries:
        kind = _temporary_kind(entry.name, data_name)
        if kind is None:
            continue
        pid, is_folder, is_data = kind
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not (stat.S_ISDIR(st.st_mode) if is_folder else stat.S_ISREG(st.st_mode)):
            continue
        if st.st_mtime >= STARTED or not made_by_this_user(st):
            continue
        if not (_stale_without_pid(st) if pid is None else process_gone(pid, st.st_mtime)):
            continue
        path = Path(entry.path)
        if is_folder and folder_held_elsewhere(path):  # a save under way in another namespace
            continue
        if is_data and (named is None or named(path)):
            continue  # a model names it: its data
        if remove_left_behind(path, "a save that did not finish", folder=is_folder):
            removed.append(path)
    return removed


def _temporary_kind(name: str, data_name: str | None) -> tuple[int | None, bool, bool] | None:
    """What the entry `name` in a folder is, if a save's temporary (see above): (the pid of
    the save, None for a name from before pids; whether it is a folder; whether it may be new
    data that a model names, which counts only where `data_name` is the name it ends in)."""
    if match := _STALE_FILE.fullmatch(name):
        return int(match[1]), False, False
    if match := _STALE_FOLDER.fullmatch(name):
        return int(match[1]), True, False
    if _OLD_FOLDER.fullmatch(name):
        return None, True, False
    if data_name is None:
        return None
    if (match := _STALE_DATA.fullmatch(name)) and match[2] == _cut(data_name):
        return int(match[1]), False, True
    if (match := _OLD_FILE.fullmatch(name)) and match[1] in (_cut(data_name), data_name):
        return None, False, True  # (before 4bc7093 <name> was not cut)
    return None


@contextlib.contextmanager
def _folder_lock(
    folder: Path, *, exclusive: bool, wait: float = 0.0, nofollow: bool = False
) -> Iterator[bool | None]:
    """A `flock` on the folder `folder` (exclusive, or shared), tried without blocking until
    `wait` seconds have passed (once, for 0), held until the block ends. Yields True when it is
    held, False when another open file holds it (all along), None where there can be no lock:
    no flock (Windows), a folder that cannot be opened (gone, another user's; with `nofollow`,
    a link) or a file system that takes no locks."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield None
        return
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    if nofollow:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(folder, flags)
    except OSError:
        yield None
        return
    held: bool | None = None
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
                held = True
                break
            except BlockingIOError:
                held = False
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.01)
            except OSError:  # no locks on this file system
                held = None
                break
        yield held
    finally:
        os.close(fd)  # (the lock goes with it)


@contextlib.contextmanager
def hold_folder(folder: Path) -> Iterator[None]:
    """Hold a shared `flock` on the temporary folder `folder` (a save's, a download's:
    `graphopt.realmodels`) while it is written in, for `folder_held_elsewhere`. A pid says
    nothing across pid namespaces (containers sharing a folder: another container's save has a
    pid this process cannot see, and it was taken for gone while it wrote its external data,
    minutes long for a large model, in a folder last changed when the data file was made); a
    lock on the folder does, on one kernel and on a network file system that takes locks.
    Where there are no locks (Windows, such a file system), a no-op."""
    with _folder_lock(folder, exclusive=False):
        yield


def folder_held_elsewhere(folder: Path) -> bool:
    """Whether a process holds `folder` (`hold_folder`): it cannot be locked exclusively now.
    False where it cannot be opened (another user's, a link) or locked at all (no locks
    there): the pid alone judges then."""
    with _folder_lock(folder, exclusive=True, nofollow=True) as held:
        return held is False


def remove_left_behind(path: Path, by: str, folder: bool = False) -> bool:
    """Remove the file `path` (with `folder`, the folder and all it holds) that `by` ("a save
    that did not finish", "a download that did not finish") left; False, with a log line,
    where it cannot be."""
    try:
        if folder:
            shutil.rmtree(path)
        else:
            path.unlink()
    except OSError as e:
        log.info("cannot remove %s, left by %s: %s", shown(path), by, e)
        return False
    log.info("removed %s, left by %s", shown(path), by)
    return True


def _remove_stale_save_temporaries(path: Path, target: Path, location: str) -> list[Path]:
    """Before a save with external data: the temporaries killed saves left beside the model
    `path` (at `target`, a link's) and its data file `location` removed, that model's new
    external data among them where the model there does not name it. Returns the new external
    data that the model there names (`_put_model_and_data` kept it there, or a save was killed
    between its steps), which this save removes once its model is in place."""
    final = Path(os.path.normpath(path.parent / location))
    for folder in dict.fromkeys((path.parent, target.parent)):
        if folder != final.parent:
            remove_stale_temporaries(folder)
    remove_stale_temporaries(
        final.parent, final.name, lambda d: _names_data(target, path, d, unreadable=True)
    )
    try:
        entries = list(os.scandir(final.parent))
    except OSError:
        return []
    kept = []
    for entry in entries:
        kind = _temporary_kind(entry.name, final.name)
        if kind is None or not kind[2] or not entry.is_file(follow_symlinks=False):
            continue
        if kind[0] is None:  # before pids: as `remove_stale_temporaries` judges it
            try:
                if not _stale_without_pid(entry.stat(follow_symlinks=False)):
                    continue
            except OSError:
                continue
        if _names_data(target, path, Path(entry.path)):
            kept.append(Path(entry.path))
    return kept


def _stale_without_pid(st: os.stat_result) -> bool:
    """Whether a temporary from before pids, whose status is `st`, is this user's and was last
    changed over a day ago (`STALE_ANYWAY`), before this process started: no save under way
    owns it."""
    changed = st.st_mtime
    return changed < STARTED and time.time() - changed > STALE_ANYWAY and made_by_this_user(st)


def _relocate_external_data(model: onnx.ModelProto, old: str, new: str) -> None:
    """Point every tensor of `model` stored in external data file `old` at `new` (sparse
    initializers' values and indices too)."""
    for tensor in _external_tensors(model):
        for entry in tensor.external_data:
            if entry.key == "location" and entry.value == old:
                entry.value = new


def _move_to_external_data(model: onnx.ModelProto, location: str) -> None:
    """Mark every dense tensor of 1 KiB or more (initializers and node attributes such as
    Constant values, in subgraphs and functions too) to be written to `location`, as onnx's
    `convert_model_to_external_data(all_tensors_to_one_file=True, size_threshold=1024,
    convert_attribute=True)` does, minus its check that `location` does not exist relative to
    the current directory (the file is written in a temporary folder; an older copy at the
    target is replaced), and plus the tensors that keep their values in typed fields
    (`float_data`, ...: paddle2onnx writes them so), which it leaves inline: they are rewritten
    as the same values in `raw_data` first, else a model over 2 GiB could stay over 2 GiB."""
    from onnx.external_data_helper import set_external_data

    for tensor in _dense_tensors(model):
        if tensor.data_type == onnx.TensorProto.STRING or not isinstance(tensor.name, str):
            continue  # strings cannot be external data; onnx's writer takes only a text name
        _typed_fields_to_raw_data(tensor)
        if tensor.HasField("raw_data") and len(tensor.raw_data) >= 1024:
            set_external_data(tensor, location)


def _typed_fields_to_raw_data(tensor: onnx.TensorProto) -> None:
    """Rewrite a tensor of 1 KiB or more that keeps its values in typed fields (`float_data`,
    ...) as the same values in `raw_data`, which external data can hold; a segment, a string
    tensor, a type whose bytes numpy would change, and a tensor numpy cannot read (an undefined
    or unknown data type, more or fewer values than its dims hold) are left as they are, inline,
    as onnx's own converter leaves every tensor with typed fields (numpy's TypeError, KeyError or
    ValueError escaped `save_model` as a traceback)."""
    from onnx import numpy_helper

    if (
        tensor.HasField("raw_data")
        or tensor.data_location == onnx.TensorProto.EXTERNAL
        or tensor.HasField("segment")  # onnx cannot read a segment: its fields stay
        or tensor.data_type == onnx.TensorProto.STRING
    ):
        return
    try:
        values = numpy_helper.to_array(tensor)
        raw = numpy_helper.from_array(values)  # little-endian bytes, whatever the dtype
    except (TypeError, KeyError, ValueError):
        return
    if values.nbytes < 1024 or raw.data_type != tensor.data_type:
        return
    for field in _TYPED_FIELDS:
        tensor.ClearField(field)
    tensor.raw_data = raw.raw_data


def _move_sparse_to_external_data(model: onnx.ModelProto, folder: str, location: str) -> bool:
    """Write the values and indices (1 KiB or more) of every sparse initializer of `model`'s
    graph and its If/Loop/Scan bodies to the data file `location` in `folder`, after what is
    there; whether any was. onnxruntime and `load` read them back; onnx's own loader does not
    visit sparse tensors (`onnx.load` leaves them in the file), which is why only a model over
    2 GiB gets them there. Sparse node attributes stay inline."""
    moved = False
    for graph in (model.graph, *nested_bodies(model.graph)):
        for sparse in graph.sparse_initializer:
            for tensor in (sparse.values, sparse.indices):
                moved = _tensor_to_external_data(tensor, folder, location) or moved
    return moved


def _move_training_to_external_data(model: onnx.ModelProto, folder: str, location: str) -> bool:
    """Write the dense tensors (1 KiB or more) of `model`'s training_info graphs to the data
    file `location` in `folder`, after what is there; whether any was. graphopt's `load` reads
    them back; onnx's writer and loader do not visit training_info (`onnx.load` leaves them in
    the file; onnx.checker and onnxruntime accept them there), which is why only a model over
    2 GiB gets them there."""
    moved = False
    for tensor in _training_tensors(model):
        if tensor.data_type != onnx.TensorProto.STRING:
            moved = _tensor_to_external_data(tensor, folder, location) or moved
    return moved


def _tensor_to_external_data(tensor: onnx.TensorProto, folder: str, location: str) -> bool:
    """Append `tensor`'s data (1 KiB or more, typed fields made raw first) to the data file
    `location` in `folder` and point the tensor at it; whether it was moved."""
    from onnx.external_data_helper import save_external_data, set_external_data

    if not isinstance(tensor.name, str):  # not UTF-8: onnx's writer takes only a text name
        return False
    _typed_fields_to_raw_data(tensor)
    if not tensor.HasField("raw_data") or len(tensor.raw_data) < 1024:
        return False
    set_external_data(tensor, location)
    save_external_data(tensor, folder)
    tensor.ClearField("raw_data")
    return True


def _training_tensors(model: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    """The dense tensors of `model`'s training_info graphs (initialization and algorithm, and
    their If/Loop/Scan bodies): initializers and `TENSOR`/`TENSORS` node attributes."""
    kinds = onnx.AttributeProto
    for info in model.training_info:
        for top in (info.initialization, info.algorithm):
            for graph in (top, *nested_bodies(top)):
                yield from graph.initializer
                for node in graph.node:
                    for a in node.attribute:
                        if a.type == kinds.TENSOR:
                            yield a.t
                        elif a.type == kinds.TENSORS:
                            yield from a.tensors


_TYPED_FIELDS = ("float_data", "int32_data", "int64_data", "double_data", "uint64_data")


def _dense_tensors(model: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    """Every tensor of `model` that external data can hold, as onnx's `_get_all_tensors`
    walks them: the initializers and the `TENSOR`/`TENSORS` attributes of every node, in the
    graph, its If/Loop/Scan bodies and the model's functions, minus the initializers of bodies
    inside functions, which onnx's writer does not visit (marked external, they kept their
    `raw_data` too: a model onnx's checker and onnxruntime refuse). Sparse tensors are not
    among them: onnx neither writes nor loads their values as external data."""
    kinds = onnx.AttributeProto

    def in_nodes(nodes: Any, initializers: bool) -> Iterator[onnx.TensorProto]:
        for node in nodes:
            for a in node.attribute:
                if a.type == kinds.TENSOR:
                    yield a.t
                elif a.type == kinds.TENSORS:
                    yield from a.tensors
                elif a.type == kinds.GRAPH:
                    yield from in_graph(a.g, initializers)
                elif a.type == kinds.GRAPHS:
                    for g in a.graphs:
                        yield from in_graph(g, initializers)

    def in_graph(graph: onnx.GraphProto, initializers: bool) -> Iterator[onnx.TensorProto]:
        if initializers:
            yield from graph.initializer
        yield from in_nodes(graph.node, initializers)

    yield from in_graph(model.graph, True)
    for function in model.functions:
        yield from in_nodes(function.node, False)


def _kept_inline(model: onnx.ModelProto) -> str:
    """Why `model`, its dense, sparse and training_info tensors in external data, is still over
    2 GiB, and what to do: the largest tensor that must stay inline (a sparse node attribute,
    a string tensor, or sparse initializer pieces under 1 KiB each), named, or else the
    graph's own size."""
    attribute = "make it a sparse initializer or a dense tensor (those go to external data)"
    found: list[tuple[int, str, str]] = []
    for graph in (model.graph, *nested_bodies(model.graph)):
        found += [
            (_size(s), f"sparse initializer {s.values.name!r}", "store it dense")
            for s in graph.sparse_initializer
        ]
        for node in graph.node:
            found += [
                (
                    _size(a.sparse_tensor),
                    f"node {node.name!r}'s sparse tensor {a.name!r}",
                    attribute,
                )
                for a in node.attribute
                if a.type == onnx.AttributeProto.SPARSE_TENSOR
            ]
    found += [
        (_size(t), f"string tensor {t.name!r}", "split it or keep the strings outside the model")
        for t in (*_dense_tensors(model), *_training_tensors(model))
        if t.data_type == onnx.TensorProto.STRING
    ]
    if not found:
        return "over 2 GiB even with its tensors in external data (its nodes and names alone)"
    size, what, remedy = max(found, key=lambda item: item[0])
    return (
        f"over 2 GiB even with its tensors in external data: {what} ({size} bytes) must stay "
        f"inline (onnx stores no such tensor as external data); {remedy}"
    )


def _size(message: Message) -> int:
    """`message`'s serialized size (2 GiB where protobuf cannot size it)."""
    try:
        return message.ByteSize()
    except EncodeError:
        return TWO_GIB


def write_atomically(path: Path, parent: Path, data: bytes | Sequence[bytes]) -> None:
    """Write `data` (bytes, or pieces written one after another) to a fresh file beside `path`
    (mode per umask, or that of the file it replaces, as `open` keeps it), then rename it into
    place.

    A `path` that is a device or a pipe (`/dev/null`, `/dev/stdout`, a FIFO) is written
    straight, as `open` does: there is no file to keep whole, and a rename onto it would
    replace the device node itself (as root: /dev/null becomes a regular file). A `path` that
    is a symbolic link is written through, as `open` does: the file it points to is replaced
    (its temporary file beside it, one file system) and the link kept."""
    if is_stream(path):
        with open(path, "wb") as f:
            _write(f, data)
        return
    if path.is_symlink():
        path = Path(os.path.realpath(path))
        parent = path.parent
    remove_stale_temporaries(parent)
    fd, tmp = create_fresh(parent, path.name)
    try:
        mode = _mode_of(path)
        with os.fdopen(fd, "wb") as f:
            _write(f, data)
        if mode is not None:  # a private (0600) model stays private
            os.chmod(tmp, mode)  # (not os.fchmod: Windows has it only from Python 3.13)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _mode_of(path: Path) -> int | None:
    """The permission bits of the file at `path`, None if there is none."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except (OSError, ValueError):
        return None


def is_stream(path: Path) -> bool:
    """Whether `path` (its links followed) exists and is neither a regular file nor a folder:
    a character or block device, a pipe or a socket; or is a link to a process's open file
    (`/dev/stdout`, `/dev/fd/1`, `/proc/self/fd/1`), whatever that file is: its reader reads
    what the descriptor points at (`> out.onnx`), not a file beside the link. Written through
    the link as a file, the model was renamed onto the shell's file and its data went to
    `/dev/stdout.data`, where no reader of out.onnx looks."""
    return special_file_kind(path) is not None or (os.path.exists(path) and _open_file_link(path))


_FD_FOLDER = re.compile(r"/proc/[0-9]+(/task/[0-9]+)?/fd")  # a process's open files


def _open_file_link(path: Path) -> bool:
    """Whether following the links from `path` passes through a process's `fd` folder."""
    hop = os.path.abspath(path)
    for _ in range(40):  # (the kernel's own limit on links followed)
        if _FD_FOLDER.fullmatch(os.path.realpath(os.path.dirname(hop))):
            return True
        try:
            link = os.readlink(hop)
        except (OSError, ValueError):  # not a link (any more), or a NUL byte
            return False
        hop = os.path.normpath(os.path.join(os.path.dirname(hop), link))
    return False


def special_file_kind(path: str | os.PathLike[str]) -> str | None:
    """What `path` (its links followed) is when it is there but neither a regular file nor a
    folder: "a FIFO", "a character device", "a block device", "a socket" (or "a special
    file"); None for a regular file, a folder, or nothing there (a path the system refuses
    too: a NUL byte in it)."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    return next((kind for test, kind in _SPECIAL_KINDS if test(mode)), "a special file")


def _write(f: BinaryIO, data: bytes | Sequence[bytes]) -> None:
    if isinstance(data, bytes | bytearray | memoryview):
        f.write(data)
    else:
        _write_pieces(f, data)


def _write_pieces(f: BinaryIO, pieces: Sequence[bytes]) -> None:
    """Write `pieces` in order: `os.writev` in batches where there is one (no copy through the
    file's buffer; ~1.5 ms less than `writelines` for layout_cdla's 420 pieces). A
    `ModelPieces` serializes its pieces as it writes them (`ModelPieces.write_to`)."""
    if isinstance(pieces, ModelPieces):
        pieces.write_to(f)
        return
    writev = getattr(os, "writev", None)
    if writev is None:
        f.writelines(pieces)
        return
    f.flush()
    fd = f.fileno()
    for start in range(0, len(pieces), _IOV_MAX):
        _writev(fd, pieces[start : start + _IOV_MAX])


def _writev(fd: int, chunk: Sequence[bytes]) -> None:
    """Write `chunk` (at most `_IOV_MAX` pieces) at `fd`'s offset with one `os.writev`, the
    rest of a short write piece by piece (`os.write` each where there is no writev)."""
    writev = getattr(os, "writev", None)
    written = writev(fd, chunk) if writev is not None else 0
    for piece in chunk:
        if written >= len(piece):
            written -= len(piece)
            continue
        # a short write (allowed, though not seen on regular files): the rest one by one
        _write_all(fd, memoryview(piece)[written:])
        written = 0


def _write_all(fd: int, view: memoryview) -> None:
    while view:
        view = view[os.write(fd, view) :]


def serialized_pieces(model: onnx.ModelProto) -> ModelPieces:
    """`model.SerializeToString()` as pieces whose concatenation is those same bytes: each node
    and each initializer of the graph serialized on its own, with its field key and length in
    front (the protobuf wire format of a repeated field), and the other model and graph fields
    around them in small messages of their own.

    Why: serializing the model in one call builds its bytes in a buffer that protobuf doubles
    as it fills, first-touching ~1.6× the model's size in fresh pages; a tensor at a time reuses
    the same few pages (layout_cdla, 7 MB: save 18.7 → 11.2 ms, ~2 900 → ~10 page faults).
    Nodes are serialized one by one, not copied into a message, so weights held by Constant
    nodes are not copied either. Written to a file (`ModelPieces.write_to`), the pieces are
    serialized as they are written, about a megabyte at a time, not all held at once.

    A model or graph with fields this protobuf does not know (a newer onnx.proto), or with a
    string field that is not UTF-8, is serialized in one call: those could not be placed or
    copied here. Raises ValueError when the model would be over 2 GiB, as protobuf does
    (read as a sequence: then; written to a file: while it is written, wrapped in an
    `Unserializable`).
    """
    return ModelPieces(model)


# Bytes of pieces a streamed save serializes before it writes them (`ModelPieces.write_to`):
# the same few pages serve every batch, where holding all of a model's pieces first-touched its
# size in fresh pages (ppocr_det, 4.7 MB, in optimize + save: ~890 -> ~150 page faults).
_BATCH_BYTES = 1 << 20


class Unserializable(ValueError):
    """A model `ModelPieces.write_to` could not serialize (`error`: protobuf's EncodeError, or
    the ValueError of a model over 2 GiB); the file written so far is left to its caller. A
    ValueError, as protobuf's refusal of a model over 2 GiB is, and says what `error` says."""

    def __init__(self, error: Exception):
        super().__init__(str(error))
        self.error = error


class ModelPieces(Sequence[bytes]):
    """`serialized_pieces(model)`: read as a sequence, the pieces, all serialized at the first
    read; written to a seekable file with `write_to`, serialized a batch at a time."""

    def __init__(self, model: onnx.ModelProto):
        self.model = model
        self._list: list[bytes] | None = None

    def _pieces(self) -> list[bytes]:
        if self._list is None:
            self._list = _all_pieces(self.model)
        return self._list

    def __len__(self) -> int:
        return len(self._pieces())

    def __getitem__(self, index: Any) -> Any:
        return self._pieces()[index]

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._pieces())

    def write_to(self, f: BinaryIO) -> None:
        """Write the model's bytes to `f` from its position on. A seekable file gets the graph's
        pieces in batches of about `_BATCH_BYTES`, from where they go once the model's fields
        before the graph and the graph's length (a varint, its width guessed from the weights'
        sizes; written again at the width the length needs where the guess was wrong) are in
        front of them, which are written last. A file that cannot seek, a model that is not
        split so (see `serialized_pieces`) or whose weights alone reach 2 GiB get every piece
        serialized first. An `Unserializable` where protobuf refuses the model or it is over
        2 GiB."""
        # (a file opened to append writes wherever it ends, not where this seeks)
        seekable = f.seekable() and "a" not in getattr(f, "mode", "")
        parts = None if self._list is not None or not seekable else _model_parts(self.model)
        estimate = 0 if parts is None else _estimated_graph_size(*parts[1:4])
        if parts is not None and estimate < TWO_GIB:  # (weights of 2 GiB: refused before writing)
            head, graph, middle, after, tail = parts
            f.flush()
            fd = f.fileno()
            origin = os.lseek(fd, 0, os.SEEK_CUR)
            width = len(_varint(estimate))
            for _ in range(2):  # the second time at the width the first one's length needs
                os.lseek(fd, origin + len(head) + 1 + width, os.SEEK_SET)
                size = _write_batches(fd, graph, middle, after)
                if len(_varint(size)) == width:
                    if len(head) + 1 + width + size + len(tail) >= TWO_GIB:
                        raise Unserializable(ValueError(_OVER_TWO_GIB))
                    os.lseek(fd, origin, os.SEEK_SET)
                    _write_all(fd, memoryview(head + _field_key(_MODEL_GRAPH) + _varint(size)))
                    os.lseek(fd, 0, os.SEEK_END)
                    _write_all(fd, memoryview(tail))
                    return
                width = len(_varint(size))
                os.ftruncate(fd, origin)
            os.lseek(fd, origin, os.SEEK_SET)  # (a length that changed between two writes)
        try:
            pieces = self._pieces()
        except (EncodeError, ValueError) as e:
            raise Unserializable(e) from e
        _write_pieces(f, pieces)


_OVER_TWO_GIB = "the model is over 2 GiB, protobuf's limit for one message"


def _model_parts(model: onnx.ModelProto) -> tuple[bytes, Any, bytes, bytes, bytes] | None:
    """(the model's fields before its graph, serialized; the graph; the graph's fields between
    its nodes and initializers, and after them, serialized; the model's fields after the
    graph, serialized), or None where the model is serialized in one call (see
    `serialized_pieces`)."""
    graph = model.graph
    if not model.HasField("graph") or _unknown_fields(model) or _unknown_fields(graph):
        return None
    try:
        head, tail = _fields_between(model, 0, _MODEL_GRAPH), _fields_between(model, _MODEL_GRAPH)
        middle = _fields_between(graph, _GRAPH_NODE, _GRAPH_INITIALIZER)
        after = _fields_between(graph, _GRAPH_INITIALIZER)
        # (these hold no weights: serializing them cannot be over 2 GiB)
        return (
            head.SerializeToString(),
            graph,
            middle.SerializeToString(),
            after.SerializeToString(),
            tail.SerializeToString(),
        )
    except UnicodeError:
        # A string field that is not UTF-8 (e.g. a Latin-1 doc_string): protobuf parses and
        # serializes it, but reads it back as bytes that it refuses to set on the copy.
        return None


def _graph_pieces(graph: Any, middle: bytes, after: bytes) -> Iterator[bytes]:
    """The graph's serialization in pieces: each node (key and length in front), the fields
    between nodes and initializers, each initializer, the fields after them."""
    for number, messages, then in (
        (_GRAPH_NODE, graph.node, middle),
        (_GRAPH_INITIALIZER, graph.initializer, after),
    ):
        key = _field_key(number)
        for message in messages:
            data = message.SerializeToString()
            yield key + _varint(len(data))
            yield data
        yield then


def _all_pieces(model: onnx.ModelProto) -> list[bytes]:
    """`serialized_pieces(model)`, every piece serialized now (ValueError: over 2 GiB)."""
    parts = _model_parts(model)
    if parts is None:
        return [model.SerializeToString()]
    head, graph, middle, after, tail = parts
    body = list(_graph_pieces(graph, middle, after))
    size = sum(map(len, body))
    pieces = [head, _field_key(_MODEL_GRAPH) + _varint(size), *body, tail]
    if size >= TWO_GIB or sum(map(len, pieces)) >= TWO_GIB:
        raise ValueError(_OVER_TWO_GIB)
    return pieces


def _write_batches(fd: int, graph: Any, middle: bytes, after: bytes) -> int:
    """Write `_graph_pieces(graph, middle, after)` at `fd`'s offset, about `_BATCH_BYTES` (at
    most `_IOV_MAX` pieces) at a time, each batch dropped once written; return their bytes. An
    `Unserializable` where protobuf refuses a piece or they reach 2 GiB (what is written
    stays)."""
    total = held = 0
    batch: list[bytes] = []
    try:
        for piece in _graph_pieces(graph, middle, after):
            batch.append(piece)
            held += len(piece)
            if held >= _BATCH_BYTES or len(batch) >= _IOV_MAX:
                _writev(fd, batch)
                total += held
                batch, held = [], 0
                if total >= TWO_GIB:
                    raise ValueError(_OVER_TWO_GIB)
    except (EncodeError, ValueError) as e:
        raise Unserializable(e) from e
    _writev(fd, batch)
    total += held
    if total >= TWO_GIB:
        raise Unserializable(ValueError(_OVER_TWO_GIB))
    return total


def _estimated_graph_size(graph: Any, middle: bytes, after: bytes) -> int:
    """About the bytes of `graph` serialized (only the width of its length's varint is taken
    from it): its weights' elements at their sizes (4 bytes where it is not one of these), and
    some bytes a node."""
    size = len(middle) + len(after) + 64 * len(graph.node)
    itemsize = _ITEM_BYTES.get
    for tensor in graph.initializer:
        # (a malformed negative dim made the estimate negative: no varint has a width for it)
        size += max(math.prod(tensor.dims), 0) * itemsize(tensor.data_type, 4) + 32
    return size


_ITEM_BYTES = {
    onnx.TensorProto.DOUBLE: 8,
    onnx.TensorProto.INT64: 8,
    onnx.TensorProto.UINT64: 8,
    onnx.TensorProto.FLOAT16: 2,
    onnx.TensorProto.BFLOAT16: 2,
    onnx.TensorProto.INT16: 2,
    onnx.TensorProto.UINT16: 2,
    onnx.TensorProto.INT8: 1,
    onnx.TensorProto.UINT8: 1,
    onnx.TensorProto.BOOL: 1,
}


def _fields_between(message: Message, low: int, high: int = 2**29) -> Any:
    """A new message of `message`'s type holding copies of its set fields numbered strictly
    between `low` and `high`."""
    out = type(message)()
    for fd, value in message.ListFields():
        if not low < fd.number < high:
            continue
        field = getattr(out, fd.name)
        if hasattr(field, "extend"):  # repeated
            field.extend(value)
        elif hasattr(field, "CopyFrom"):  # a message
            field.CopyFrom(value)
        else:
            setattr(out, fd.name, value)
    return out


def _unknown_fields(message: Message) -> bool:
    """Whether `message` itself holds fields its schema does not know (True if this protobuf
    cannot tell)."""
    if UnknownFieldSet is None:
        return True
    return len(UnknownFieldSet(message)) > 0


def _field_key(number: int) -> bytes:
    """The key of a length-delimited field (wire type 2)."""
    return _varint(number << 3 | 2)


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _over_two_gib(model: onnx.ModelProto) -> bool:
    try:
        return model.ByteSize() >= TWO_GIB
    except EncodeError:  # protobuf cannot even size messages over 2 GiB
        return True


def weights_as_constants(model: onnx.ModelProto) -> None:
    """An IR < 4 model (its initializers must also be graph inputs) in place at the IR version
    its opsets need (at least 4), its initializers no longer listed as inputs: weights, as
    onnxruntime (which refuses to feed them at IR < 4) and TensorRT take them. Passes and
    quantization can then fold and scale them and add initializers of their own, which IR < 4
    would need as inputs too (onnx.checker refuses them otherwise). The model's other inputs
    and outputs are kept; a warning names the inputs that went (IR < 4 lets a runtime feed
    them)."""
    initializers = {t.name for t in model.graph.initializer}
    kept = [vi for vi in model.graph.input if vi.name not in initializers]
    dropped = [vi.name for vi in model.graph.input if vi.name in initializers]
    del model.graph.input[:]
    model.graph.input.extend(kept)
    needed = onnx.helper.find_min_ir_version_for(list(model.opset_import), True)
    ir = max(needed, IR_NEEDS_INPUTS_FOR_INITIALIZERS)
    if dropped:
        log.warning(
            "IR %d model raised to IR %d: its %d weights (%s%s) are constants now, not inputs",
            model.ir_version,
            ir,
            len(dropped),
            ", ".join(map(shown, dropped[:3])),
            ", ..." if len(dropped) > 3 else "",
        )
    elif model.ir_version != ir:  # (H186: an IR 2 model was written at IR 8 without a word)
        why = (
            f"its opset imports need IR {needed}"
            if needed == ir
            else "below IR 4 every initializer a pass adds would have to be a graph input"
        )
        if model.ir_version < 3:  # onnx.checker refuses it, onnxruntime runs it
            why += " (IR 1 and 2 have no opset imports; onnx.checker refuses a model that has)"
        # an INFO line (-v): the written model is a valid one of the same values, and a
        # warning before a command's one-line error made that error two lines
        log.info("IR %d model raised to IR %d: %s", model.ir_version, ir, why)
    model.ir_version = ir
