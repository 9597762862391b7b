"""The graphopt sidecar of a TensorRT calibration cache: what the cache cannot hold.

A TensorRT calibration cache (`graphopt.quant.cache`) holds one scale per tensor, nothing else,
and stays byte for byte what TensorRT writes. A model quantized from it alone (`quantize
--cache-in`) differs from the model of the run that wrote it wherever that run chose more than
scales: the nodes it kept float (its accuracy search, `keep_nodes`, the stem), and on target
`onnxruntime` the uint8 activations' zero points (the cache's symmetric `amax / 127` is not the
asymmetric `(hi - lo) / 255`). The run that writes `model.cache` therefore also writes
`model.cache.graphopt.json`, and a run that reads the cache reads it when it is there:

    {"format": "graphopt-calibration-sidecar", "version": 1, "graphopt": "0.1.0",
     "model_sha256": <the float model's graph, `model_digest`>, "model_digest": 2,
     "cache_sha256": <the cache file's bytes>, "scales_sha256": <its scales, `scales_digest`>,
     "target": "tensorrt", "pipeline": {"name": "tensorrt", "sha256": <the files it loads>},
     "pipeline_digest": 3,
     "stem": [node, ...], "keep_nodes": [node, ...],
     "accuracy_search": {"groups": [group, ...], "nodes": [node, ...]},
     "reduce_range": true,                                        (only when the run had it)
     "activations": {tensor: [<8 hex digits: float32 scale>, <zero point>]}}   (onnxruntime)

The name is the cache's plus `.graphopt.json`, beside the file a linked cache points to
(TensorRT and polygraphy read the cache only; an engine's sidecar is `<engine>.json`,
`graphopt.backends.tensorrt`). Per-channel weight axes are not recorded: they follow from the
model and the target. Whether the run quantized its weights to 7 bits (`reduce_range`) is: the
cache's activation scales mean the same either way (weights are not in it), but the accuracy
search chose its float groups for those weights, so a run reading the cache takes it unless
it is given (as `keep_stem`); absent, as in the sidecars before it, it was off. A sidecar written for another model, beside another cache (rewritten
since with other scales: a cache TensorRT wrote again with the same ones, under its own header,
unpadded and with tensors of its own, is the same), for another target or after another
optimize pipeline (`pipeline_identity`: the nodes it names are another graph's, even where the
names match; a pipeline file, a built-in's too, counts with the files its `include:`s read, its
`rules:` files and, where it runs rules, graphopt's built-in rule files) is not applied
(`mismatch`: the caller warns, as TensorRT does for a cache it cannot use, and the run goes on
with the cache's scales alone). Older sidecars lack fields: without "model_digest" the model's
digest took the initializers in file order, and is compared with that; without "pipeline" the
pipeline is not compared; without "pipeline_digest" the pipeline's sha256 is of its own file
alone, and is compared with that of the run's pipeline file alone; with "pipeline_digest" 2 it
left out the built-in rule files (and a built-in pipeline's includes), and is compared likewise.
A damaged one (not JSON, a key twice, wrong types, zero points for target tensorrt, a scale that
is not a positive normal float32, not UTF-8, not a regular file, over `MAX_BYTES`) or one of a
newer format is a `QuantizeError`. What it does not do: check that the node names exist in the
model (the quantizer does, against the model as optimized).
"""

from __future__ import annotations

import hashlib
import json
import os
import string
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from graphopt.errors import QuantizeError
from graphopt.quant import cache as cache_io

SUFFIX = cache_io.SIDECAR  # ".graphopt.json"
FORMAT = "graphopt-calibration-sidecar"
VERSION = 1
MODEL_DIGEST = 2  # how `model_digest` names a model: 2, initializers in name order
# how "pipeline"'s sha256 names the pipeline (`pipeline_identity`): 3, every file loading and
# running it reads, graphopt's built-in rule files too; 2, every file loading it reads, a
# built-in its file alone (`files_sha256`); 1 (the first sidecars that recorded it: no
# "pipeline_digest"), its own file's bytes
PIPELINE_DIGEST = 3
# a name list and a table of zero points (~70 bytes a tensor: 230,000 of them); the writer
# refuses more (`encode`), before the cache is written, so that no run writes what none reads
MAX_BYTES = 16 << 20
WHAT = "calibration cache sidecar"
MAX_DIGITS = 20  # a version or a zero point: no whole number in a sidecar is longer


@dataclass
class Sidecar:
    """What a later run reading the cache needs to make the same model (see the module)."""

    model_sha256: str
    cache_sha256: str
    target: str
    stem: list[str] = field(default_factory=list)
    keep_nodes: list[str] = field(default_factory=list)
    search_groups: list[str] = field(default_factory=list)
    search_nodes: list[str] = field(default_factory=list)
    activations: dict[str, tuple[np.float32, int]] = field(default_factory=dict)
    graphopt_version: str = ""
    scales_sha256: str = ""  # of the scales written (`scales_digest`); "" in the first sidecars
    # how model_sha256 was taken (`model_digest`): 1 in the first sidecars, initializers in
    # file order; 2, initializers by name
    model_digest: int = MODEL_DIGEST
    # the optimize pipeline's (name, sha256) (`pipeline_identity`); None: not recorded (older)
    pipeline: tuple[str, str] | None = None
    # what that sha256 covers (`PIPELINE_DIGEST`): 1 in the first sidecars, its file alone
    pipeline_digest: int = PIPELINE_DIGEST
    # the run's int8 weights were 7-bit (quantize's `reduce_range`); False where not recorded
    reduce_range: bool = False

    def float_nodes(self) -> set[str]:
        return {*self.stem, *self.keep_nodes, *self.search_nodes}

    def mismatch(
        self,
        model_sha256: str,
        cache_sha256: str,
        target: str,
        scales_sha256: str | None = None,
        *,
        file_order_sha256: str | None = None,
        pipeline: tuple[str, str] | None = None,
    ) -> str | None:
        """Why this sidecar does not describe a run on the model and cache with these digests
        for `target`; None when it does. The cache is the one written when its bytes are, or
        (`scales_sha256`: `scales_digest` of its scales of the tensors the run quantizes) when
        its scales are: TensorRT writes a cache it read again under its own header, its hex
        unpadded, with scales of tensors graphopt does not quantize. `model_sha256` is the
        model's `model_digest`; a first sidecar's (`model_digest` 1: written before the
        initializers' order was left out) is compared with `file_order_sha256`
        (`file_order_digest`), or, when not given, with `model_sha256` (equal where the
        initializers are in name order): first sidecars still apply. `pipeline`: the run's
        `pipeline_identity`, compared where both are known (older sidecars do not say); a
        sidecar that digested its pipeline otherwise (`pipeline_digest` 1: its own file alone;
        2: without graphopt's built-in rule files) is compared with the digest its way of the
        run's pipeline files, what it recorded."""
        if self.model_digest == 1 and file_order_sha256 is not None:
            model_sha256 = file_order_sha256
        elif self.model_digest not in (1, MODEL_DIGEST):
            return (
                f"it names its model by a digest this graphopt does not take (model_digest "
                f"{self.model_digest}); quantize with the graphopt that wrote it"
            )
        if self.model_sha256 != model_sha256:
            return "it was written for another model (its graph's sha256 differs)"
        same_scales = bool(self.scales_sha256) and self.scales_sha256 == scales_sha256
        if self.cache_sha256 != cache_sha256 and not same_scales:
            return "it was written beside another cache (the cache's scales were rewritten since)"
        if self.target != target:
            return f"it was written for target {self.target}, this run quantizes for {target}"
        if self.pipeline is not None and pipeline is not None:
            if self.pipeline_digest in (1, 2):  # what it took then, of the run's files now
                if pipeline[1]:  # (("none", ""), an unreadable file: no file to digest)
                    pipeline = pipeline_identity(pipeline[0], target, digest=self.pipeline_digest)
            elif self.pipeline_digest != PIPELINE_DIGEST:
                return (
                    f"it names its optimize pipeline by a digest this graphopt does not take "
                    f"(pipeline_digest {self.pipeline_digest}); quantize with the graphopt "
                    "that wrote it"
                )
            return _other_pipeline(self.pipeline, pipeline)
        return None


def _other_pipeline(written: tuple[str, str], run: tuple[str, str]) -> str | None:
    """Why a sidecar written after pipeline `written` does not describe a run after `run`
    ((name, sha256) each, `pipeline_identity`); None for the same pipeline: the same bytes
    (a built-in's name and its file's path are one), or no pipeline both times."""
    (name, digest), (run_name, run_digest) = written, run
    if digest == run_digest and (digest or name == run_name):
        return None
    if name != run_name:
        return (
            f"it was written for optimize pipeline {shown(name, 200)}, this run optimizes with "
            f"{shown(run_name, 200)} (its choices name another graph's nodes)"
        )
    return (
        f"it was written for optimize pipeline {shown(name, 200)} as its file read then "
        f"(sha256 {digest[:12]}), this run's reads otherwise ({run_digest[:12]})"
    )


def pipeline_identity(
    pipeline: str | bool | None,
    target: str,
    *,
    whole: bool = True,
    digest: int = PIPELINE_DIGEST,
) -> tuple[str, str]:
    """(name, sha256) of the optimize pipeline a quantize run on `target` takes before
    quantizing (its `pipeline` option, `graphopt.quant.api.prepare`): a built-in's name, or a
    YAML file's path as given, with the sha256 of what loading and running it reads
    (`files_sha256`), as `digest` (`PIPELINE_DIGEST`) takes it: 3, the file, the files its
    `include:`s read, its and their `rules:` files, and graphopt's built-in rule files
    (`patterns/*.yaml`) where one of its passes runs rules (a built-in pipeline the same way:
    the sidecar's graphopt version is recorded, not compared, and an edited built-in rule
    renames the nodes it fuses); 2, the same without the built-in rule files, a built-in
    pipeline its file's bytes alone; 1 (or `whole` False), the file's bytes alone. None: the
    built-in the target starts from (`tensorrt` for target tensorrt, else `default`); False:
    ("none", ""), no pipeline. A file that cannot be read or loaded is ("<path>", ""),
    compared by name: the run's optimize said why already."""
    from graphopt._resources import builtin_dir
    from graphopt.errors import GraphoptError
    from graphopt.pipeline import pipeline_files

    if pipeline is False:
        return "none", ""
    if pipeline is None or pipeline is True:
        pipeline = "tensorrt" if target == "tensorrt" else "default"
    if not whole:
        digest = 1
    name = str(pipeline)
    path = Path(name)
    try:
        builtins = builtin_dir("passes")
        builtin = builtins / f"{name}.yaml"
        if name == path.name and builtin.is_file():  # (load_pipeline: built-ins first)
            path = builtin
        is_builtin = path.resolve().parent == builtins.resolve()
        if digest == 1 or (digest == 2 and is_builtin):
            return name, _file_sha256(path)
        files = pipeline_files(path)
        if digest != 2:
            files += _builtin_rule_files(path)
        return name, files_sha256(files)
    except (OSError, ValueError, RuntimeError, GraphoptError):
        return name, ""


def _builtin_rule_files(path: Path) -> list[tuple[str, Path]]:
    """("builtin-rules", file) for each of graphopt's built-in rule files, when the pipeline
    file `path` has a pass that runs rules (`fuse-patterns`, `fold-batchnorm`,
    `fuse-activations`, ...: every such pass loads them all, `graphopt.patterns.rule_set`);
    none otherwise."""
    from graphopt.passes.fuse_patterns import FusePatterns
    from graphopt.patterns import builtin_rule_files
    from graphopt.pipeline import load_pipeline

    steps = load_pipeline(path).pass_steps()
    if not any(isinstance(step.pass_, FusePatterns) for step in steps):
        return []
    return [("builtin-rules", file) for file in builtin_rule_files()]


def _file_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read(cache_io.MAX_TEXT_BYTES)).hexdigest()


def files_sha256(files: list[tuple[str, Path]]) -> str:
    """sha256 of the pipeline files `files` ((role, path) each, `pipeline.pipeline_files`):
    of the first one's bytes when it is the only one (equal to its `pipeline_digest` 1), else
    of each one's role, length and bytes in order. The paths are not digested: where a file
    lies does not change what it makes (the pipeline's text names its includes and rules)."""
    if len(files) == 1:
        return _file_sha256(files[0][1])
    h = hashlib.sha256()
    for role, path in files:
        with open(path, "rb") as f:
            data = f.read(cache_io.MAX_TEXT_BYTES)
        h.update(f"{role}:{len(data)};".encode())
        h.update(data)
    return h.hexdigest()


def graphopt_version() -> str:
    import graphopt

    return str(graphopt.__version__)


def path_of(cache: str | Path) -> Path:
    """The sidecar's path: the cache's plus `.graphopt.json`; of the file a link points to for
    a cache that is a link. The cache is written through the link (`write_atomically`), so its
    sidecar goes beside it: it was put beside the link, and `--cache-in` on the file itself
    found none."""
    path = os.fspath(cache)
    if os.path.islink(path):
        path = os.path.realpath(path)
    return Path(f"{path}{SUFFIX}")


def text_sha256(text: str) -> str:
    """sha256 of `text` as UTF-8: of the cache file it was read from or is written to."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def scales_digest(scales: dict[str, np.float32]) -> str:
    """sha256 of `scales` (tensor → float32 scale) as `name: <8 hex digits>` lines in name
    order: equal for equal scales however a cache writes them."""
    h = hashlib.sha256()
    for name in sorted(scales):
        h.update(f"{len(name)}:{name}: {cache_io.format_scale(scales[name])}\n".encode())
    return h.hexdigest()


def model_digest(model: onnx.ModelProto, *, ordered: bool = False) -> str:
    """sha256 of what `model` computes: its opset imports, local functions and graph (nodes,
    initializers, inputs, outputs), each part serialized on its own (a model over 2 GB cannot
    be serialized whole), length-prefixed. Value infos, metadata, the producer, every
    doc_string (an exporter's source lines, a tool's note) and where a tensor's bytes were
    stored (`_incidental`) are left out: a model re-saved by another tool, with its
    documentation edited, or with its weights moved to or from an external data file keeps
    its digest (each made it 'another model': ppocr_det's 51 nodes quantized came back as 74).
    So is the initializers' order (dense and sparse, taken in name order: names are unique,
    and a tool re-saving a model may sort them; common_det shuffled was 'another model'),
    unless `ordered` (file order: the digest of the first sidecars, `model_digest` 1, equal
    to this one where the file has them in name order). The inputs' and outputs' order
    counts (the model's signature), and so does the nodes': unnamed nodes are named by
    position (`graphopt.ir.load`), and the sidecar names nodes. Node names count. The weights
    count by their bytes: a model is digested as `graphopt.ir.load` makes it, external data
    read in."""
    h = hashlib.sha256()

    def part(tag: str, message: Any) -> None:
        if next(_incidental(message), None) is not None:  # a copy without them
            bare = type(message)()
            bare.CopyFrom(message)  # (the caller's model is not touched)
            message = bare
            for inner, name in list(_incidental(message)):
                inner.ClearField(name)
        data = message.SerializeToString(deterministic=True)
        h.update(f"{tag}:{len(data)};".encode())
        h.update(data)

    for opset in sorted(model.opset_import, key=lambda o: (o.domain, o.version)):
        part("opset", opset)
    for function in model.functions:
        part("function", function)
    graph = model.graph
    initializers: Iterable[Any] = graph.initializer
    sparse: Iterable[Any] = graph.sparse_initializer
    if not ordered:  # (a stable sort: two of one name, invalid, keep their order)
        initializers = sorted(initializers, key=lambda t: t.name)
        sparse = sorted(sparse, key=lambda t: t.values.name)
    for tag, items in (
        ("input", graph.input),
        ("output", graph.output),
        ("initializer", initializers),
        ("sparse", sparse),
        ("node", graph.node),
    ):
        for item in items:
            part(tag, item)
    return h.hexdigest()


def file_order_digest(model: onnx.ModelProto, digest: str | None = None) -> str:
    """`model_digest(model, ordered=True)`, what the first sidecars (`model_digest` 1) hold;
    `digest` (the model's `model_digest`) when given and the file has its initializers in
    name order already (the two are then equal: no second pass over the weights)."""
    graph = model.graph
    names = [t.name for t in graph.initializer]
    sparse = [t.values.name for t in graph.sparse_initializer]
    if digest is not None and names == sorted(names) and sparse == sorted(sparse):
        return digest
    return model_digest(model, ordered=True)


def _incidental(message: Any) -> Iterator[tuple[Any, str]]:
    """(message, field name) for each field in `message` (itself and the messages in it:
    nodes, attributes, subgraphs, functions, value infos, tensors) that says how the model is
    documented or stored, not what it computes: a doc_string; a tensor's `data_location` and
    `external_data` entries (onnx's loader sets data_location DEFAULT explicitly once it has
    read the bytes into raw_data, and leaves a sparse tensor's entries). A tensor's data is
    not read."""
    if isinstance(message, onnx.TensorProto):
        if message.doc_string:
            yield message, "doc_string"
        if message.HasField("data_location"):
            yield message, "data_location"
        if len(message.external_data):
            yield message, "external_data"
        return
    for descriptor, value in message.ListFields():
        if descriptor.name == "doc_string":
            yield message, "doc_string"
        elif descriptor.message_type is not None:
            for item in [value] if hasattr(value, "DESCRIPTOR") else value:
                yield from _incidental(item)


def dumps(sidecar: Sidecar) -> str:
    data: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "graphopt": sidecar.graphopt_version,
        "model_sha256": sidecar.model_sha256,
        "model_digest": sidecar.model_digest,
        "cache_sha256": sidecar.cache_sha256,
        **({"scales_sha256": sidecar.scales_sha256} if sidecar.scales_sha256 else {}),
        "target": sidecar.target,
        **(
            {
                "pipeline": {"name": sidecar.pipeline[0], "sha256": sidecar.pipeline[1]},
                "pipeline_digest": sidecar.pipeline_digest,
            }
            if sidecar.pipeline is not None
            else {}
        ),
        "stem": sidecar.stem,
        "keep_nodes": sidecar.keep_nodes,
        "accuracy_search": {"groups": sidecar.search_groups, "nodes": sidecar.search_nodes},
        # (only when on: a run without it writes the sidecar it wrote before the option was)
        **({"reduce_range": True} if sidecar.reduce_range else {}),
    }
    if sidecar.activations:
        data["activations"] = {
            t: [cache_io.format_scale(s), int(z)]
            for t, (s, z) in sorted(sidecar.activations.items())
        }
    return json.dumps(data, indent=1, ensure_ascii=False) + "\n"


def encode(cache: str | Path, sidecar: Sidecar) -> bytes:
    """The bytes of `sidecar` as `write` writes them beside `cache`; a `QuantizeError` when they
    are more than `read` takes (`MAX_BYTES`): a table of ~230,000 zero points was written and
    then refused by every run reading it."""
    data = dumps(sidecar).encode("utf-8")
    if len(data) > MAX_BYTES:
        raise QuantizeError(
            f"{path_of(cache)}: cannot write {WHAT}: {len(data)} bytes ({len(sidecar.activations)} "
            f"zero points, {len(sidecar.float_nodes())} float nodes), more than a sidecar holds "
            f"({MAX_BYTES >> 20} MiB, what graphopt reads back); quantize without a cache, or "
            "for target tensorrt (no zero points to record)"
        )
    return data


def refuse_unwritable(cache: str | Path, sidecar: Sidecar | None = None) -> None:
    """A `QuantizeError` when no sidecar can be written for `cache`: its path (links followed)
    holds a folder, a FIFO, a device or a socket (a sidecar is a file that a later run reads, and a
    FIFO's write waited for a reader for ever: `quantize --cache F` with a FIFO at
    F.graphopt.json hung), or its name, or that of a folder to make for it, is longer than its
    folder takes (the cache's name may fit and the sidecar's, 14 bytes longer, not: found only
    once the model was made; a folder's name too long was found when the cache was written,
    after calibrating), or (`sidecar` given) its bytes are more than a sidecar holds
    (`encode`)."""
    from graphopt.ir.model_io import special_file_kind

    target = path_of(cache)
    kind = "a folder" if os.path.isdir(target) else special_file_kind(target)
    if kind is not None:  # (its name follows the cache's: no other name to give it)
        raise QuantizeError(
            f"{target}: cannot write {WHAT}: it is {kind}, not a regular file; remove it, or "
            "give the cache another name"
        )
    too_long = cache_io.name_too_long(target)  # (its folders may be made later)
    if too_long is not None:
        name, size, limit, _ = too_long
        if name != target.name:  # (one of the cache's folders to make: said before calibrating)
            raise QuantizeError(
                f"{target}: cannot write {WHAT}: the folder name {shown(name, 40)} in its path "
                f"is {size} bytes, more than {limit}; give the cache a shorter path"
            )
        raise QuantizeError(
            f"{target}: cannot write {WHAT}: its name is {size} bytes, more than {limit} (the "
            f"cache's name plus {SUFFIX}); give the cache a shorter name"
        )
    if sidecar is not None:
        encode(cache, sidecar)


def write(cache: str | Path, sidecar: Sidecar) -> None:
    """Write the sidecar of `cache` atomically (never into a FIFO or device, never more bytes
    than `read` takes)."""
    from graphopt.ir.model_io import write_atomically

    refuse_unwritable(cache)
    data = encode(cache, sidecar)
    target = path_of(cache)
    try:
        write_atomically(target, target.parent, data)
    except OSError as e:
        raise QuantizeError(f"{target}: cannot write {WHAT}: {e.strerror or e}") from e


def read(cache: str | Path) -> Sidecar | None:
    """The sidecar of `cache`; None when there is none (nothing at its path, a dangling link
    too: a name on its own is no sidecar). Anything else that is not a sidecar this graphopt
    reads is a `QuantizeError` naming the file."""
    path = path_of(cache)
    if not os.path.exists(path):
        return None
    return loads(cache_io.read_text_file(path, WHAT, MAX_BYTES), str(path))


def loads(text: str, where: str) -> Sidecar:
    """The sidecar in `text`, every field checked; `where` names it in errors."""

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not a number JSON allows")

    def whole(digits: str) -> int:
        # (Python's own limit, 4300 digits, is worded as advice on sys.set_int_max_str_digits)
        if len(digits.lstrip("-")) > MAX_DIGITS:
            raise _Refused(f"a number of {len(digits.lstrip('-'))} digits")
        return int(digits)

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        # json keeps the last of two equal keys: another reader may keep the first
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise _Refused(f"key {shown(key)} appears twice in one object")
            out[key] = value
        return out

    try:
        data = json.loads(text, parse_constant=refuse, parse_int=whole, object_pairs_hook=unique)
    except _Refused as e:
        raise QuantizeError(f"{where}: not a {WHAT} ({e})") from e
    except (ValueError, RecursionError) as e:  # JSONDecodeError is a ValueError
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise QuantizeError(f"{where}: not a {WHAT} (not JSON: {reason})") from e
    return _checked(data, where)


class _Refused(ValueError):
    """What `loads` refuses in text that is JSON: a key twice in an object, a huge number."""


shown = cache_io.shown  # a name in an error message: quoted, one line, cut


def _checked(data: object, where: str) -> Sidecar:
    def fail(problem: str) -> QuantizeError:
        return QuantizeError(f"{where}: not a {WHAT} ({problem})")

    if not isinstance(data, dict):
        raise fail(f"a JSON {type(data).__name__}, not an object")
    if data.get("format") != FORMAT:
        raise fail(f"'format' is not {FORMAT!r}")
    version = data.get("version")
    if type(version) is not int:
        raise fail("'version' is not a whole number")
    if version > VERSION:  # what it holds besides may mean what this graphopt cannot do
        writer = data.get("graphopt")
        by = f" ({shown(writer, 20)})" if isinstance(writer, str) and writer else ""
        raise QuantizeError(
            f"{where}: {WHAT} format version {version}, written by a newer graphopt{by}; this "
            f"one ({graphopt_version()}) reads version {VERSION}: quantize with that graphopt, "
            "or delete the sidecar to take the cache's scales alone"
        )
    if version != VERSION:
        raise fail(f"'version' is {version}: sidecar versions start at 1")

    def text(key: str, value: object, hexa: int | None = None) -> str:
        if not isinstance(value, str):
            raise fail(f"{key!r} is not a string")
        if hexa is not None and (
            len(value) != hexa or any(c not in string.hexdigits for c in value)
        ):
            raise fail(f"{key!r} is not {hexa} hex digits")
        return value

    def names(key: str, value: object) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise fail(f"{key!r} is not a list of names")
        return list(value)

    target = text("target", data.get("target"))
    from graphopt.quant.placement import TARGETS

    if target not in TARGETS:
        raise fail(f"'target' {target!r} is none of {', '.join(TARGETS)}")
    search = data.get("accuracy_search", {})
    if not isinstance(search, dict):
        raise fail("'accuracy_search' is not an object")
    activations = data.get("activations", {})
    if not isinstance(activations, dict):
        raise fail("'activations' is not an object")
    if activations and target != "onnxruntime":  # int8 symmetric: the cache's scales say it all
        raise fail(
            f"'activations' (uint8 zero points) with target {target}; only onnxruntime has them"
        )
    params: dict[str, tuple[np.float32, int]] = {}
    for tensor, value in activations.items():
        if (
            not isinstance(value, list)
            or len(value) != 2
            or not isinstance(value[0], str)
            or type(value[1]) is not int
            or not 0 <= value[1] <= 255
        ):
            raise fail(f"activation {shown(tensor)} is not [<hex scale>, <zero point 0..255>]")
        try:
            scale = cache_io.parse_scale(value[0])
        except ValueError as e:
            raise fail(f"activation {shown(tensor)}: {e}") from e
        problem = cache_io.scale_problem(scale)
        if problem is not None:
            raise fail(f"activation {shown(tensor)}: {problem}")
        params[tensor] = (scale, value[1])
    pipeline = None  # (absent in older sidecars: not compared)
    if "pipeline" in data:
        given = data["pipeline"]
        if not isinstance(given, dict) or set(given) != {"name", "sha256"}:
            raise fail("'pipeline' is not an object of 'name' and 'sha256'")
        digest_text = text("pipeline.sha256", given["sha256"])
        if digest_text:
            text("pipeline.sha256", digest_text, 64)
        pipeline = (text("pipeline.name", given["name"]), digest_text)
    pipeline_digest = data.get("pipeline_digest", 1)  # (absent: its file alone)
    if type(pipeline_digest) is not int or pipeline_digest < 1:
        raise fail("'pipeline_digest' is not a whole number from 1")
    reduce_range = data.get("reduce_range", False)  # (absent: off, or written before it was)
    if type(reduce_range) is not bool:
        raise fail("'reduce_range' is not true or false")
    digest = data.get("model_digest", 1)  # (absent in the first sidecars: file order)
    if type(digest) is not int or digest < 1:
        raise fail("'model_digest' is not a whole number from 1")
    return Sidecar(
        model_sha256=text("model_sha256", data.get("model_sha256"), 64),
        model_digest=digest,
        pipeline=pipeline,
        pipeline_digest=pipeline_digest,
        cache_sha256=text("cache_sha256", data.get("cache_sha256"), 64),
        scales_sha256=(
            text("scales_sha256", data["scales_sha256"], 64) if "scales_sha256" in data else ""
        ),
        target=target,
        stem=names("stem", data.get("stem", [])),
        keep_nodes=names("keep_nodes", data.get("keep_nodes", [])),
        search_groups=names("accuracy_search.groups", search.get("groups", [])),
        search_nodes=names("accuracy_search.nodes", search.get("nodes", [])),
        activations=params,
        graphopt_version=text("graphopt", data.get("graphopt", "")),
        reduce_range=reduce_range,
    )
