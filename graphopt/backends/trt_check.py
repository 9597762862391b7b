"""Static TensorRT compatibility check: will TensorRT's ONNX parser take this model?

`check_tensorrt(model, version=10)` reads the model, never runs or imports TensorRT, and returns
`Finding`s — `error` where the parser (or the builder) of that TensorRT version would refuse
the model or change its meaning, `warning` where it would accept it with a caveat (a dynamic
input without an optimization profile, DOUBLE cast down, a Q/DQ pair that only costs
precision). Rules, with the table they read in `graphopt.backends.trt_support`:

- opset: outside the range that version's operators.md documents, a warning (the parser
  refuses no opset: it only warns below 7, and imports newer ones with the op versions it knows);
- domains: ops outside the standard domain (e.g. onnxruntime's `com.microsoft` FusedConv) need a
  TensorRT plugin, unless their op type has a built-in importer: the parser looks importers up
  by op type alone (parseNode, ModelImporter.cpp), so `com.microsoft::Gelu` is imported as ONNX
  Gelu and judged here as that op (a warning where the two ops' meanings are not known to agree,
  `trt_support.SAME_AS_ONNX`), and so is a call of a model-local function named like one; an
  error where the op is known to mean something else (`trt_support.differs_from_onnx`:
  com.microsoft Attention, onnxruntime's NCHWc and NHWC layout ops) or the node fits no version
  of the ONNX op (an attribute, input or output it has not: `_onnx_misfit`);
- model-local functions: the parser imports a call's body node by node in the caller's scope
  (LocalFunctionImporter), so each call is inlined before the rules run
  (`_inline_functions`: attribute references bound, calls inside calls followed) and a
  finding in a body names the calls it sits in (`Block 'b' function body > node 'e' (Einsum)`);
  a call with another number of inputs than its function is refused;
- ops: every op is in the parser's support matrix; attribute restrictions (Resize modes,
  Pad, pooling dilations, TopK, ScatterND reduction, constant `axes` inputs (computed ones that
  fold at build time from 10.7/10.8 for Squeeze, Unsqueeze and CumSum), outputs the importer
  does not make (MaxPool's Indices, ...), ...);
- dtypes: no STRING / 16-bit integer / complex tensors; UINT8 only at the network boundary;
  network inputs and outputs are tensors that declare their element type (no sequence,
  optional, map or sparse tensor, no output declared by name alone);
- Q/DQ (explicit quantization): quantized type INT8 (FP8/INT4/FP4 where that version has them),
  a constant zero point of 0 (also Constant → Cast), constant positive scales (+inf: a
  warning), per-channel scales only on constant weights (stored quantized behind a DQ, or float
  behind a Q → DQ pair), with an explicit `axis` (the parser's default is 0, ONNX's 1), on the
  axis TensorRT scales for the Conv / ConvTranspose / Gemm / MatMul reading them directly
  (`_weight_axes`), activations per-tensor, every Q followed by a DQ and every DQ
  fed by a Q or a constant, Q/DQ pairs in front of ops TensorRT runs in INT8; a pair split by
  an If (Q outside, DQ in a branch) is refused at the DQ: the parser passes the quantized
  tensor in through an IIfConditionalInputLayer, and a conditional carries no quantized type
  (a Loop body reads it directly, an If on a constant is imported inline: both fine); so is a
  branch handing a Q's output out (an IIfConditionalOutputLayer);
- dynamic input dimensions need an optimization profile (`shapes`), and dims several inputs
  name alike (a dim_param) profile ranges that overlap;
- If/Loop/Scan bodies: the parser imports each body with the same importers (`parseGraph` per
  body, onnx-tensorrt 10.1 GA), so every body is checked, recursively, with the rules above, as
  a model of its own (`_body_model`): the body's nodes and initializers, the constants it reads
  from the scopes around it as its initializers, the other names it reads as typed inputs (a
  computed `axes` is followed out into the scope that computes it). A finding there names the
  path of enclosing nodes (`If 'c' then_branch > node 'y' (Relu)`). Body-specific rules, from
  importIf/importLoop/importScan and NvInfer.h (TensorRT 11.1): an If whose condition is a
  constant imports only the branch it selects (the other is not checked); then/else must have
  the same number of outputs, and outputs of the same rank (before 10.11 the same shape too:
  known dimensions that differ are an error, a dimension known on one side only a warning)
  unless the condition folds at build time (from constants, static shapes, ranks; one read from
  an input's values or a dynamic dimension does not, `_check_branch_ranks`); a Loop
  needs a trip limit (a trip count below 2^31-1 or a condition), and without a trip count its
  body may not read the iteration number and its scan outputs are 1024 long, and a carried
  value must keep its shape (`_check_carried_shapes`); Scan-8 takes no
  `sequence_lens`; the parser refuses nodes nested more than 24 bodies deep.

What it does not do: run shape inference beyond ONNX's own, or promise that a build succeeds
(tactics, memory and plugins are decided on the GPU). It does not model 10.15's plugin override
(the kENABLE_PLUGIN_OVERRIDE parser flag, or a node's `plugin_namespace` attribute, puts a
registered plugin before the built-in importer), nor the parser's lookup of local functions by
name alone (a call whose domain differs from its function's is judged a plugin here).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from graphopt._text import escaped, type_name
from graphopt.analysis.shapes import ShapeFacts, shape_facts
from graphopt.backends import trt_support as table
from graphopt.backends.trt_support import TrtVersion, parse_version
from graphopt.errors import LoadError
from graphopt.ir import Graph, load
from graphopt.ir.graph import outer_references, tensor_value
from graphopt.ir.io_names import as_text
from graphopt.ir.model_io import (  # (_data_bytes: as commands.inspect reads it)
    ELEMENT_TYPES,
    TYPE_ATTRIBUTES,
    ModelLike,
    _data_bytes,
    undefined_element_types,
)
from graphopt.ir.nodes import BODY_HOLDERS, constant_tensor, subgraphs
from graphopt.ir.values import declared_dims
from graphopt.subgraphs import model_header

QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})


@dataclass(frozen=True)
class Finding:
    """One reason TensorRT would refuse (`error`) or caveat (`warning`) the model. `message`,
    `op` and `scope` say the model's strings (dim params, domains, op types) escaped as `repr`
    writes them, unquoted: `str` is one line; `node` and `output` are the names as they are."""

    severity: str  # "error" | "warning"
    rule: str  # short kebab-case rule id, e.g. "unsupported-op", "qdq-zero-point"
    message: str
    node: str = ""  # the node's name in the model ("" for a nameless node)
    op: str = ""
    output: str = ""  # the node's first output, where its name does not tell it apart
    # the enclosing nodes' bodies, outermost first ("If 'c' then_branch > Loop 'l' body"); ""
    # for the main graph
    scope: str = ""

    def __str__(self) -> str:
        where = ""
        if self.node:
            where = f"node {self.node!r} ({self.op})"
        elif self.op:
            where = f"unnamed {self.op} node"
        if where and self.output:
            where += f" writing {self.output!r}"
        if self.scope:
            where = f"{self.scope} > {where}" if where else self.scope
        return f"{self.severity}: [{self.rule}] {where + ': ' if where else ''}{self.message}"


def check_tensorrt(
    model: ModelLike,
    version: int | str | TrtVersion = 10,
    *,
    shapes: Mapping[str, object] | None = None,
    progress: Callable[[int, int], object] | None = None,
) -> list[Finding]:
    """Findings for building `model` with TensorRT `version` (10, 11, "10.8", ...).

    `shapes`: names of inputs that will get an optimization profile (e.g. the keys of
    `graphopt.backends.tensorrt.parse_shapes(...)`); their dynamic dimensions are not reported.
    Given with their ranges (`parse_shapes`' result), ranges that do not overlap for a dim the
    inputs name alike are an error (`_named_dims_apart`).
    `progress`: called as `progress(checked, total)` over the per-node walk of the graph's
    `total` nodes (local functions' calls inlined; bodies not counted): (0, total) when it
    starts, after indexing and shape inference, then every `PROGRESS_EVERY` nodes, and
    (total, total) when the whole check is done.
    """
    ver = parse_version(version)
    loaded = load(model, copy=False)
    proto = loaded.model
    _refuse_damaged_tensors(proto.graph, loaded.where)
    nodes = list(proto.graph.node)
    given = [n.name for n in nodes]
    if any(isinstance(name, bytes) for name in given) or _calls_functions(proto, ver):
        # protobuf cannot set a name back that is not UTF-8 (it hands it over as bytes), and
        # inlining the calls of local functions rewrites the graph: a copy for either
        copied = onnx.ModelProto()
        copied.CopyFrom(proto)
        proto, nodes, given = copied, [], []
    try:
        findings = _Checker(proto, ver, set(shapes or ()), progress=progress).run()
        return findings + _named_dims_apart(proto, shapes or {})
    finally:  # indexing names nameless nodes and renames repeated names: not the caller's model
        for node, name in zip(nodes, given, strict=True):
            node.name = name


PROGRESS_EVERY = 128  # nodes between two calls of check_tensorrt's `progress`


def _refuse_damaged_tensors(graph: onnx.GraphProto, where: str, owner: str = "") -> None:
    """A `LoadError` for the first tensor `graph` or its bodies store (an initializer, a
    sparse one's values or indices, a Constant's or ConstantOfShape's value) whose data does
    not make its shape and element type (`_damaged_data`): onnxruntime refuses the model
    ("raw_data size (12 bytes) does not match expected size", "data field count (3) does not
    match"), and check said "0 errors" unless a rule happened to read the tensor (then this
    error, worded by numpy). `owner`: the node whose body `graph` is."""
    # ("m.onnx: in a body of If 'if': tensor 'w' (float 2) needs 8 bytes ...")
    at = "".join(f"{part}: " for part in (where, owner and f"in a body of {owner}") if part)
    stored = list(graph.initializer)
    for s in graph.sparse_initializer:
        stored += [s.values, s.indices]
    for t in stored:
        damage = _damaged_data(t)
        if damage is not None:
            raise LoadError(f"{at}tensor {t.name!r} {damage}")
    for s in graph.sparse_initializer:
        misfit = _sparse_misfit(s)
        if misfit is not None:
            raise LoadError(f"{at}sparse initializer {s.values.name!r} {misfit}")
    for node in graph.node:
        default = node.domain in ("", "ai.onnx")
        if default and node.op_type in ("Constant", "ConstantOfShape"):
            for a in node.attribute:
                held = [a.t] if a.type == onnx.AttributeProto.TENSOR else []
                if a.type == onnx.AttributeProto.SPARSE_TENSOR:
                    held = [a.sparse_tensor.values, a.sparse_tensor.indices]
                for t in held:
                    damage = _damaged_data(t)
                    if damage is not None:
                        written = ", ".join(repr(o) for o in node.output if o) or "nothing"
                        label = (
                            f"{node.op_type} node {node.name or '(unnamed)'!r} writing {written}"
                        )
                        raise LoadError(
                            f"{at}{label}: the tensor its attribute {a.name!r} holds {damage}"
                        )
        elif node.op_type in BODY_HOLDERS or not default:
            for body in subgraphs(node):
                _refuse_damaged_tensors(body, where, f"{node.op_type} {node.name or '(unnamed)'!r}")


def _sparse_misfit(s: onnx.SparseTensorProto) -> str | None:
    """How sparse tensor `s`'s values and indices (each whole: `_damaged_data`) do not make a
    sparse tensor of its dims, else None: values that are not one-dim, indices of another type
    than int64 or of another shape than [NNZ] (linear) or [NNZ, rank], an index out of range.
    onnxruntime refuses each ("indices outer dimension should match the number of non-zero
    values", "index is out of bounds"), onnx.checker too; check said "0 errors". Reads the
    indices (a sparse tensor's are few)."""
    values, indices, dims = s.values, s.indices, list(s.dims)
    if len(values.dims) != 1:
        return f"has values of shape {list(values.dims)}, where ONNX takes one-dim values"
    nnz = values.dims[0]
    if indices.data_type != onnx.TensorProto.INT64:
        return f"has {type_name(indices.data_type)} indices, where ONNX takes int64"
    if list(indices.dims) not in ([nnz], [nnz, len(dims)]):
        return (
            f"has indices of shape {list(indices.dims)}, where its {nnz} values need "
            f"[{nnz}] or [{nnz}, {len(dims)}]"
        )
    if _kept_elsewhere(indices) or nnz == 0:
        return None
    index = tensor_value(indices).reshape(nnz, -1)
    bounds = [math.prod(dims)] if index.shape[1] == 1 else dims
    if ((index < 0) | (index >= np.asarray(bounds, dtype=np.int64))).any():
        return f"has an index out of its dims {dims} (a damaged model)"
    return None


# the typed field each element type keeps its values in, and how many numbers an element takes
# there (ONNX's TensorProto; 4-, 2- and 6-bit types, packed, are not judged)
_TYPED_FIELDS = {
    onnx.TensorProto.FLOAT: ("float_data", 1),
    onnx.TensorProto.COMPLEX64: ("float_data", 2),
    onnx.TensorProto.DOUBLE: ("double_data", 1),
    onnx.TensorProto.COMPLEX128: ("double_data", 2),
    onnx.TensorProto.INT64: ("int64_data", 1),
    onnx.TensorProto.UINT32: ("uint64_data", 1),
    onnx.TensorProto.UINT64: ("uint64_data", 1),
    onnx.TensorProto.STRING: ("string_data", 1),
    **{
        getattr(onnx.TensorProto, name): ("int32_data", 1)
        for name in (
            "INT32", "INT16", "INT8", "UINT16", "UINT8", "BOOL", "FLOAT16", "BFLOAT16",
            "FLOAT8E4M3FN", "FLOAT8E4M3FNUZ", "FLOAT8E5M2", "FLOAT8E5M2FNUZ", "FLOAT8E8M0",
        )
        if hasattr(onnx.TensorProto, name)
    },
}  # fmt: skip


def _damaged_data(t: onnx.TensorProto) -> str | None:
    """How stored tensor `t`'s data does not make its dims and element type ("(float 2) needs
    8 bytes of raw data, but holds 12"), else None: raw data of another size, a typed field
    of another count (none at all included), a STRING tensor in raw_data. Not judged: data
    kept elsewhere (external data, read and checked by the load; segments), an element type
    ONNX does not define (an onnx-invalid finding of its own), negative dims (the load refuses
    them), packed types' typed fields. Lengths only, the cheap comparison first (common_det's
    20 MB of weights: ~4 ms): no value is read."""
    elem, count = t.data_type, math.prod(t.dims)
    if t.HasField("raw_data"):
        bits = _element_bits(elem)
        got = len(t.raw_data)
        if bits is not None and got == (count * bits + 7) // 8:
            return None
        if elem == onnx.TensorProto.STRING:
            return (
                f"{_stored_kind(t)} keeps its strings in raw_data, which ONNX keeps in string_data"
            )
        if bits is None or _kept_elsewhere(t) or count < 0:
            return None
        need = (count * bits + 7) // 8
        return (
            f"{_stored_kind(t)} needs {need} byte{'s' * (need != 1)} of raw data, but holds "
            f"{got} (a damaged model)"
        )
    field, per = _TYPED_FIELDS.get(elem, ("", 0))
    if not field:
        return None
    got = len(getattr(t, field))
    if got == count * per or _kept_elsewhere(t) or count < 0:
        return None
    return f"{_stored_kind(t)} needs {count * per} values in {field}, but holds {got} (a damaged model)"


@functools.cache
def _element_bits(elem: int) -> int | None:
    """The bits an element of type `elem` takes in raw data (`model_io._data_bytes`: 4-bit
    types packed), None for STRING and types ONNX does not define."""
    if not _tensor_type_defined(elem):
        return None
    bytes_of_eight = _data_bytes(onnx.TensorProto(data_type=elem, dims=[8]))
    return bytes_of_eight  # (8 elements: their bytes are the bits of one)


def _kept_elsewhere(t: onnx.TensorProto) -> bool:
    """Whether `t`'s data is kept outside the tensor: external data, or a segment of a larger
    one."""
    return t.data_location == onnx.TensorProto.EXTERNAL or t.HasField("segment")


def _stored_kind(t: onnx.TensorProto) -> str:
    """'(float 2x3)', as the load's errors show a tensor."""
    return f"({type_name(t.data_type)} {'x'.join(map(str, t.dims)) or 'scalar'})"


def _named_dims_apart(model: onnx.ModelProto, shapes: Mapping[str, object]) -> list[Finding]:
    """Errors for a dim name several inputs share (a dim_param) whose profile ranges in
    `shapes` (values with `min` and `max` dims, as `parse_shapes` gives them) do not overlap:
    the parser names those dims alike (ITensor::setDimensionName, from each input's
    dim_params) and TensorRT's builder requires their profile intervals to overlap and their
    sizes to be equal at run time (sampleNamedDimensions, TensorRT 10.x). Profiles given as
    names alone say nothing of ranges."""
    if not isinstance(shapes, Mapping):  # (names only, as the API takes them too)
        return []
    spans: dict[str, list[tuple[str, int, int]]] = {}  # dim name -> (input, min, max)
    for vi in model.graph.input:
        given = shapes.get(vi.name)
        low, high = getattr(given, "min", None), getattr(given, "max", None)
        dims = declared_dims(vi)
        if low is None or high is None or dims is None or len(dims) != len(low):
            continue
        for dim, a, b in zip(dims, low, high, strict=False):
            if isinstance(dim, str):
                spans.setdefault(dim, []).append((vi.name, int(a), int(b)))
    findings = []
    for dim, ranges in spans.items():
        if max(a for _, a, _ in ranges) <= min(b for _, _, b in ranges):
            continue
        spanned = ", ".join(f"{name!r} {a}..{b}" for name, a, b in ranges)
        # paddle2onnx's '?' for every dynamic dim: an image's height and width named alike
        apart = (
            ", or names of their own: the tensorrt pipeline's name-unknown-dims gives them "
            "(graphopt optimize --pipeline tensorrt)"
            if dim == "?"
            else ""
        )
        message = (
            f"inputs share dimension {dim!r}, to which the profiles give ranges that do not "
            f"overlap ({spanned}); TensorRT's builder requires dims named alike to overlap in "
            f"the profile (and to be equal at run time): give them one range{apart}"
        )
        findings.append(Finding("error", "dynamic-shape", escaped(message)))
    return findings


# the graph attributes each control-flow op requires (ONNX's schemas)
_BODIES = {"If": ("then_branch", "else_branch"), "Loop": ("body",), "Scan": ("body",)}


def errors(findings: Sequence[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity == "error"]


class _Checker:
    def __init__(
        self,
        model: onnx.ModelProto,
        version: TrtVersion,
        profiled: set[str],
        *,
        parent: _Checker | None = None,
        scope: str = "",
        outer: frozenset[str] = frozenset(),
        conditional: bool = False,
        levels: int = 0,
        progress: Callable[[int, int], object] | None = None,
    ):
        """`parent`, `scope`, `outer`: for a body's model (`_body_model`), the checker of the
        scope around it, the path of enclosing bodies, and the names its inputs take from the
        scopes around it (not the body's own inputs). `conditional`: the body is a branch of an
        If the parser imports as an IIfConditional (its condition is no constant). `levels`:
        the local-function calls between the body's owner and the scope around it.
        `progress`: `check_tensorrt`'s, for the main graph's checker."""
        self.model = model
        self.progress = progress
        self.version = version
        self.profiled = profiled
        self.parent = parent
        self.scope = scope
        self.outer = outer
        self.conditional = conditional
        self.depth: int = 0 if parent is None else parent.depth + levels + 1
        self._boundary: set[str] | None = None
        self.findings: list[Finding] = []
        # the nodes inlined from local functions: id -> the calls they come through, and
        # their number
        self.calls: dict[int, str] = {}
        self.call_levels: dict[int, int] = {}
        self._inline_functions()
        # The names the model gives its nodes: `Graph` names nameless ones and renames repeats
        # (`Relu_3`), names a finding must not show, as the model has no such node.
        self._nodes = list(model.graph.node)  # alive, so that each keeps its id
        self.given = {id(n): n.name for n in self._nodes}
        counts = Counter(self.given.values())
        self.ambiguous = {name for name, k in counts.items() if k > 1} | {""}
        self.graph = Graph(model)
        # (inferred over this index: shape_facts(model) indexed a skeleton copy of the model
        # again, ~1.8 s of 7.6 s on an 80k-node model, for the same facts)
        self.facts: ShapeFacts = shape_facts(self.graph)
        self.functions = {(f.domain, f.name) for f in model.functions}

    def add(
        self,
        severity: str,
        rule: str,
        message: str,
        node: Any = None,
        *,
        calls: str | None = None,
    ) -> None:
        """A finding, on `node` where given. `calls`: for a node met before the graph is indexed
        (`_inline_functions`), the local-function calls it sits in; its own name then tells it
        apart unless it has none."""
        # A dim param, a domain, an op type or a function's name is the model's string, which
        # may hold a newline (valid ONNX): the message, the op and the scope say each one escaped
        # (`escaped`: the text around them is printable, and a name quoted by `!r` is escaped
        # already), so that every finding is one line. `node`, `output`: the names as they are.
        message = escaped(message)
        if node is None:
            self.findings.append(Finding(severity, rule, message))
            return
        if calls is None:
            given = self.given.get(id(node), node.name)
            distinct = given not in self.ambiguous
            calls = self.calls.get(id(node), "")
        else:
            given = node.name
            distinct = bool(given)
        op = f"{node.domain}::{node.op_type}" if node.domain else node.op_type
        output = "" if distinct else next((o for o in node.output if o), "")
        # (as_text: a name that is not UTF-8 in the file comes as bytes)
        scope = escaped(self._within(calls))
        finding = Finding(severity, rule, message, as_text(given), escaped(op), output, scope)
        self.findings.append(finding)

    def scope_of(self, node: onnx.NodeProto) -> str:
        """The path of enclosing bodies, and of the local-function calls `node` was inlined
        from."""
        return self._within(self.calls.get(id(node), ""))

    def _within(self, calls: str) -> str:
        """This body's scope followed by the local-function calls `calls`."""
        return f"{self.scope} > {calls}" if self.scope and calls else self.scope or calls

    def _inline_functions(self) -> None:
        """Replace each call of a model-local function in this graph by the function's body, as
        TensorRT's parser imports it (LocalFunctionImporter, onnx-tensorrt 9.0 .. 10.1 GA: each
        body node through parseNode, the function's inputs bound to the caller's tensors, its
        attribute references to the caller's attributes or the function's defaults), so that
        every rule judges the body where it runs: its ops, Q/DQ pairs across the call, UINT8
        at the network boundary. Calls inside calls are inlined too; the function's own value
        names are kept unless the graph already has them. `calls`, `call_levels`: id(inlined
        node) -> the path of calls it came through (`scope_of`), and their number (nesting
        levels, as the parser counts them). The parser's own refusals: a call with another
        number of inputs than the function ("LocalFunction has an unexpected number of
        inputs"), and calls nested past its 24-level limit (it counts each call as a level);
        its quirk: a function input named like a tensor the call's scope already has is bound
        to that tensor, not to the call's input (an error: the model's meaning changes)."""
        functions = {(f.domain, f.name): f for f in self.model.functions}
        g = self.model.graph
        if not functions or not any(_local_function(n, functions, self.version) for n in g.node):
            return
        taken = _value_names(g)
        have = {o.domain for o in self.model.opset_import}
        for f in functions.values():  # the body's ops are read under the model's opsets
            for o in f.opset_import:
                if o.domain not in have:
                    self.model.opset_import.add().CopyFrom(o)
                    have.add(o.domain)
        # (node, the calls it came through, how many)
        placed: list[tuple[onnx.NodeProto, str, int]] = []

        def fresh(name: str) -> str:
            k, out = 1, name
            while out in taken:
                out, k = f"{name}__{k}", k + 1
            taken.add(out)
            return out

        def expand(
            node: onnx.NodeProto,
            path: str,
            active: tuple[Any, ...],
            written: onnx.NodeProto,
            visible: set[str],
        ) -> None:
            """Place `node` (`written`: as its function's body writes it, names not yet
            renamed; `visible`: the names the parser holds tensors for in that scope)."""
            f = _local_function(node, functions, self.version)
            if f is None:
                placed.append((node, path, len(active)))
                return
            level = self.depth + len(active) + 1
            where = f"{path} > " if path else ""
            if (f.domain, f.name) in active or level > table.MAX_NESTED_BODIES:
                why = (
                    f"function {f.domain}::{f.name} calls itself"
                    if (f.domain, f.name) in active
                    else f"its body sits {level} levels deep"
                )
                self.add(
                    "error",
                    "nested-bodies",
                    f"{why}; TensorRT's parser imports each call as a nesting level and "
                    f"refuses nodes nested more than {table.MAX_NESTED_BODIES} levels deep",
                    node,
                    calls=path,
                )
                placed.append((node, path, len(active)))  # (check_node passes it as a call)
                return
            if len(node.input) != len(f.input):
                self.add(
                    "error",
                    "local-function",
                    f"the call gives {len(node.input)} inputs and function {f.domain}::{f.name} "
                    f"takes {len(f.input)}; TensorRT's parser needs as many (it refuses "
                    '"LocalFunction has an unexpected number of inputs")',
                    node,
                    calls=path,
                )
            for formal, actual in zip(f.input, written.input, strict=False):
                if formal and actual and formal != actual and formal in visible:
                    self.add(
                        "error",
                        "local-function",
                        f"function {f.domain}::{f.name} names its input {formal!r}, a tensor "
                        f"the call's scope already has: TensorRT's parser then reads that "
                        f"tensor, not the call's input {actual!r} (\"does not correspond to an "
                        'outside scope name. Behavior may be incorrect"); rename the input',
                        node,
                        calls=path,
                    )
            names = {formal: actual for formal, actual in zip(f.input, node.input, strict=False)}
            passed: list[tuple[str, str]] = []  # (input, output) a function hands out as is
            for k, formal in enumerate(f.output):
                actual = node.output[k] if k < len(node.output) else ""
                if formal in names:
                    passed.append((names[formal], actual or fresh(formal)))
                else:
                    names[formal] = actual or fresh(formal)
            attrs = {a.name: a for a in f.attribute_proto}
            attrs.update((a.name, a) for a in node.attribute)
            inner = f"{where}{_label(node, node.name, True)} function body"
            inside = visible | set(f.input)
            for body_node in f.node:
                copied = onnx.NodeProto()
                copied.CopyFrom(body_node)
                _bind_attributes(copied, attrs)
                for out in copied.output:
                    if out and out not in names:
                        names[out] = fresh(out)
                _rename_values(copied, names)
                expand(copied, inner, (*active, (f.domain, f.name)), body_node, inside)
                inside.update(body_node.output)
            for source, out in passed:
                placed.append((onnx.helper.make_node("Identity", [source], [out]), inner, 0))

        visible = {v.name for v in g.input} | {t.name for t in g.initializer}
        for node in list(g.node):  # (in order: ONNX keeps a graph's nodes sorted)
            expand(node, "", (), node, visible)
            visible.update(node.output)
        kept = [node for node, _, _ in placed]
        del g.node[:]
        g.node.extend(kept)
        self._inlined = list(g.node)  # alive, so that each keeps its id
        for node, (_, path, levels) in zip(self._inlined, placed, strict=True):
            if path:
                self.calls[id(node)] = path
                self.call_levels[id(node)] = levels

    def run(self) -> list[Finding]:
        self.check_bodies()
        if self.parent is None:  # a body has no opset of its own, and no network inputs
            self.check_opset()
            self.check_io()
            self.check_initializers(self.model.graph)
        order = self.graph.toposort()
        report = self.progress
        if report is not None:
            report(0, len(order))
        for checked, node in enumerate(order, 1):
            self.check_node(node)
            if report is not None and checked % PROGRESS_EVERY == 0 and checked < len(order):
                report(checked, len(order))
        self.check_qdq()
        self.check_subgraphs()
        if report is not None:
            report(len(order), len(order))
        return self.findings

    # -- model level -------------------------------------------------------------------------

    def check_bodies(self) -> None:
        """An If/Loop/Scan without the graph attributes ONNX requires of it (onnx.checker:
        "Required attribute 'body' is missing"): nothing TensorRT's parser can import."""
        for node in self._nodes:
            needed = _BODIES.get(node.op_type) if self.imports_as_onnx(node) else None
            given = {a.name for a in node.attribute if a.type == onnx.AttributeProto.GRAPH}
            missing = [name for name in needed or () if name not in given]
            if missing:
                self.add("error", "onnx-invalid", f"{node.op_type} has no {missing[0]}", node)

    def check_opset(self) -> None:
        opset = self.graph.opset_version("") or self.graph.opset_version("ai.onnx")
        low, high = table.opset_range(self.version)
        if opset and opset > high:  # the parser refuses no opset: each importer reads what it knows
            self.add(
                "warning",
                "opset",
                f"default-domain opset {opset} is above the range TensorRT {self.version} "
                f"documents ({low}..{high}); its parser imports it with the newest op versions it "
                "knows, so converting it with onnx.version_converter is the tested path",
            )
        elif opset and opset < low:  # the parser takes it: it only logs a warning below 7
            self.add(
                "warning",
                "opset",
                f"default-domain opset {opset} is below the range TensorRT {self.version} "
                f"documents ({low}..{high}); its parser imports it, but converting it with "
                "onnx.version_converter is the tested path",
            )

    def check_io(self) -> None:
        inits = set(self.graph.initializers)
        for vi in self.model.graph.input:
            if vi.name in inits:
                self._check_declared_default(vi, self.graph.initializers[vi.name])
                continue
            if not self._check_boundary_type(vi, "input"):  # (no dims to speak of)
                continue
            dims = vi.type.tensor_type.shape.dim
            # a dim_value of 0 is a fixed empty dim: the parser keeps it (convertOnnxDims,
            # importerUtils.hpp 10.1 GA: -1 only for a dim_param, a negative dim_value, or a dim
            # with neither), and neither --shapes (0 < min) nor the model lets a profile change it
            dynamic = [
                i for i, d in enumerate(dims) if not (d.HasField("dim_value") and d.dim_value >= 0)
            ]
            if not vi.type.tensor_type.HasField("shape"):
                dynamic = [-1]
            if dynamic and vi.name not in self.profiled:
                from graphopt.backends.tensorrt import shape_spec

                shown = ", ".join(str(d) for d in declared_dims(vi, unknown="?") or ())
                self.add(
                    "warning",
                    "dynamic-shape",
                    f"input {vi.name!r} has dynamic dimensions [{shown or 'unknown rank'}]; the "
                    "engine needs an optimization profile, e.g. --shapes "
                    + shape_spec(vi.name, "MIN,OPT,MAX"),
                )
            self._check_boundary_dtype(vi, "input")
        for vi in self.model.graph.output:
            if self._check_boundary_type(vi, "output"):
                self._check_boundary_dtype(vi, "output")
        for kind, name, elem in undefined_element_types(self.model.graph):
            if kind == "value_info":  # (the inputs' and outputs' are said above)
                self.add(
                    "error",
                    "onnx-invalid",
                    f"value_info {name!r} has element type {elem}, which ONNX does not define: "
                    "the model is not valid ONNX (onnx.checker's full check refuses it); "
                    "declare one of onnx.TensorProto.DataType, or drop the entry",
                )

    def _check_declared_default(self, vi: onnx.ValueInfoProto, init: onnx.TensorProto) -> None:
        """An onnx-invalid error where graph input `vi`, which initializer `init` gives a
        default value (IR < 4 exports, `keep_initializers_as_inputs`), declares another element
        type, rank or fixed dim than the initializer has: onnxruntime refuses the model ("Data
        in initializer 'w' has element type tensor(float) but usage of initializer in graph
        expects tensor(int64)", "Shape of initializer w does not match. {3} != {2}"), and check
        said "0 errors" (TensorRT's parser imports the initializer and reads no declaration)."""
        if not vi.type.HasField("tensor_type") or not _tensor_type_defined(init.data_type):
            return
        tensor = vi.type.tensor_type
        stored = (
            f"its initializer is {type_name(init.data_type)} [{', '.join(map(str, init.dims))}]"
        )
        said = ""
        if tensor.elem_type != init.data_type:
            said = f"element type {type_name(tensor.elem_type)}"
        elif tensor.HasField("shape"):  # (a dim_param, or a negative dim, fits any size)
            dims = tensor.shape.dim
            if len(dims) != len(init.dims) or any(
                d.HasField("dim_value") and 0 <= d.dim_value != n
                for d, n in zip(dims, init.dims, strict=False)
            ):
                said = f"shape [{', '.join(map(str, declared_dims(vi, unknown='?') or ()))}]"
        if said:
            self.add(
                "error",
                "onnx-invalid",
                f"graph input {vi.name!r} declares {said}, but {stored} (its default value): "
                "onnxruntime refuses the model; declare the initializer's element type and "
                "shape",
            )

    def check_initializers(self, graph: onnx.GraphProto) -> None:
        """An onnx-invalid error for each initializer of `graph` (this checker's graph, or the
        body it was made from: not the constants `_body_model` lends it from around), dense or
        sparse, whose element type ONNX does not define (99: "0 errors", where onnx.checker's
        full check says "Invalid tensor data type 99" and onnxruntime "Tensor 'w' does not have
        valid data type") or is UNDEFINED (onnx.checker: "UNDEFINED is not allowed")."""
        dense = [(t.name, t.data_type) for t in graph.initializer]
        sparse = [(t.values.name, t.values.data_type) for t in graph.sparse_initializer]
        for kind, tensors in (("initializer", dense), ("sparse initializer", sparse)):
            for name, elem in tensors:
                if _tensor_type_defined(elem):
                    continue
                message = (
                    f"{kind} {name!r} has {_undefined_tensor_type(elem)}: the model is not "
                    "valid ONNX; store it as one of onnx.TensorProto.DataType, or drop it"
                )
                self.findings.append(
                    Finding("error", "onnx-invalid", escaped(message), scope=escaped(self.scope))
                )

    def _check_boundary_type(self, vi: onnx.ValueInfoProto, kind: str) -> bool:
        """Whether graph input or output `vi` declares a tensor of some element type; an error
        where not: the parser makes each network input and output of the element type its
        declaration gives (importInput, and the outputs' convertDtype in
        ModelImporter::importModel, onnx-tensorrt 10.1 GA), and refuses one it cannot convert,
        which a sequence, optional, map or sparse tensor, or a declaration without a type,
        reads as (UNDEFINED: "Failed to convert ONNX date type to TensorRT data type")."""
        which = vi.type.WhichOneof("value")
        if which == "tensor_type" and vi.type.tensor_type.elem_type:
            return True
        if which in _NOT_TENSORS:
            what = f"is {_NOT_TENSORS[which]}, not a tensor: TensorRT's network {kind}s are tensors"
        else:
            what = (
                f"declares no element type: TensorRT's parser gives a network {kind} the type "
                "its declaration names and refuses one without (declare it, e.g. with "
                "onnx.shape_inference.infer_shapes)"
            )
        self.add("error", "dtype", f"graph {kind} {vi.name!r} {what}")
        return False

    def _check_boundary_dtype(self, vi: onnx.ValueInfoProto, kind: str) -> None:
        elem = vi.type.tensor_type.elem_type
        name = _dtype_name(elem)
        if elem not in ELEMENT_TYPES:  # (99: "0 errors"; onnx.checker: "Invalid tensor data type")
            self.add(
                "error",
                "onnx-invalid",
                f"graph {kind} {vi.name!r} has element type {elem}, which ONNX does not define: "
                "the model is not valid ONNX (onnx.checker's full check refuses it); declare one of "
                "onnx.TensorProto.DataType",
            )
        elif name in table.UNSUPPORTED_DTYPES:
            self.add(
                "error",
                "dtype",
                f"graph {kind} {vi.name!r} is {name}, which TensorRT has no type for",
            )
        elif name == "DOUBLE":
            self.add(
                "warning", "dtype", f"graph {kind} {vi.name!r}: {table.DTYPE_CAVEATS['DOUBLE']}"
            )

    # -- node level --------------------------------------------------------------------------

    def imports_as_onnx(self, node: onnx.NodeProto) -> bool:
        """Whether TensorRT's parser imports `node` with its ONNX importer: a standard-domain
        node, or one of another domain whose op type has a built-in importer (the parser looks
        importers up by op type alone, `table.has_builtin_importer`)."""
        return node.domain in table.STANDARD_DOMAINS or table.has_builtin_importer(
            node.op_type, self.version
        )

    def check_node(self, node: onnx.NodeProto) -> None:
        if node.domain not in table.STANDARD_DOMAINS and self.imports_as_onnx(node):
            if not self._check_renamed_domain(node):  # else judged as the ONNX op it imports as
                return
        elif node.domain not in table.STANDARD_DOMAINS:
            if (node.domain, node.op_type) in self.functions:
                return  # model-local function: the parser inlines its body
            if node.domain in table.PLUGIN_DOMAINS:
                hint = "register the TensorRT plugin"
            elif node.domain == "com.microsoft" or node.domain.startswith(_ORT_DOMAIN_PREFIXES):
                # onnxruntime's ops, which graphopt's ort-* pipelines write
                hint = "optimize with a TensorRT pipeline (e.g. --pipeline tensorrt) instead"
            else:  # a user's op: no pipeline of graphopt's rewrites it (the advice looped)
                hint = (
                    f"register a TensorRT plugin named {node.op_type!r} (the parser looks one "
                    "up by the op's name) or write the op in standard ONNX ops"
                )
            severity = "warning" if node.domain in table.PLUGIN_DOMAINS else "error"
            self.add(
                severity,
                "custom-domain",
                f"op {node.domain}::{node.op_type} is not standard ONNX; TensorRT's parser needs "
                f"a plugin for it: {hint}",
                node,
            )
            return
        support = table.op_support(node.op_type, self.version)
        if support == "no":
            self.add(
                "error",
                "unsupported-op",
                f"TensorRT {self.version}'s ONNX parser does not support {node.op_type}",
                node,
            )
            return
        if support == "unknown":
            self.add(
                "warning",
                "unlisted-op",
                f"{node.op_type} is not in TensorRT's ONNX support matrix; the parser may reject it",
                node,
            )
        self._check_dtypes(node)
        mistyped = _mistyped_attribute(node)
        if mistyped is not None:  # (the rules below read the attribute as its ONNX type)
            self.add(
                "error",
                "onnx-invalid",
                f"{mistyped}: the model is not valid ONNX (onnx.checker refuses it); give the "
                "attribute its ONNX type",
                node,
            )
            return
        undefined = _undefined_type_attribute(node)
        if undefined is not None:  # (Cast to=99: "0 errors", and onnxruntime refuses the model)
            self.add(
                "error",
                "onnx-invalid",
                f"{undefined}, which ONNX does not define: the model is not valid ONNX "
                "(onnx.checker's full check refuses it); give one of onnx.TensorProto.DataType",
                node,
            )
            return
        misfit = _constant_of_shape_misfit(self, node)
        if misfit is not None:  # ("0 errors", and onnxruntime refuses the model)
            self.add(
                "error",
                "onnx-invalid",
                f"{misfit}: the model is not valid ONNX (onnxruntime refuses it)",
                node,
            )
            return
        untyped = _undefined_tensor_attribute(node)
        if untyped is not None:  # (Constant value of type 99: "0 errors")
            self.add(
                "error",
                "onnx-invalid",
                f"{untyped}: the model is not valid ONNX; store the tensor as one of "
                "onnx.TensorProto.DataType",
                node,
            )
            return
        rule = _ATTRIBUTE_RULES.get(node.op_type)
        if rule is not None:
            for found in rule(self, node):  # a message (an error) or (severity, message)
                severity, message = found if isinstance(found, tuple) else ("error", found)
                self.add(severity, "unsupported-attribute", message, node)
        if node.op_type in table.SINGLE_OUTPUT_OPS:
            for message in _extra_outputs(self, node):
                self.add("error", "unsupported-attribute", message, node)

    def _check_renamed_domain(self, node: onnx.NodeProto) -> bool:
        """An op of another domain named like an op with a built-in importer: TensorRT's parser
        imports it with that importer (parseNode dispatches on the op type alone, ModelImporter.cpp
        10.1 GA lines 155-167), not as a plugin, nor as a model-local function of that name. Its
        meaning there is the ONNX op's: an error where the op is known to mean something else
        (`table.differs_from_onnx`: com.microsoft Attention, the NCHWc ops) or the node does not
        fit ONNX's op (`_onnx_misfit`: an attribute, input or output no version of it has; the
        importer ignores what it does not read, or fails), no finding where the two are known
        to agree (`table.SAME_AS_ONNX`, e.g. com.microsoft Gelu), else a warning. Whether the
        node is then judged by the ONNX op's rules (not after an error: it is no such op)."""
        key = (node.domain, node.op_type)
        same = table.SAME_AS_ONNX.get(key)
        if same is not None and all(a.name in same for a in node.attribute):
            return True
        unused = (
            f" (the model's function {node.domain}::{node.op_type} is not used)"
            if key in self.functions
            else ""
        )
        why = table.differs_from_onnx(*key) or _onnx_misfit(node)
        if why is not None:
            self.add(
                "error",
                "custom-domain",
                f"TensorRT's parser imports {node.domain}::{node.op_type} as ONNX {node.op_type} "
                f"(it looks importers up by op type whatever the domain{unused}), but {why}: "
                "the engine would not compute this node; optimize with a TensorRT pipeline (e.g. "
                "--pipeline tensorrt) instead",
                node,
            )
            return False
        self.add(
            "warning",
            "custom-domain",
            f"TensorRT's parser imports {node.domain}::{node.op_type} as ONNX {node.op_type}: "
            f"it looks importers up by op type whatever the domain{unused}, so the node gets "
            f"ONNX {node.op_type}'s inputs, attributes and meaning; check that they are "
            f"{node.domain}'s",
            node,
        )
        return True

    def _check_dtypes(self, node: onnx.NodeProto) -> None:
        boundary = self.boundary()
        # an initializer has no producer to judge its type (a STRING one read: "0 errors");
        # Q/DQ's quantized types are check_qdq's
        weights = () if node.op_type in QDQ_OPS else dict.fromkeys(node.input)
        for read in weights:
            if read and read in self.graph.initializers:
                name = _dtype_name(self.graph.initializers[read].data_type)
                if name in table.UNSUPPORTED_DTYPES:
                    self.add(
                        "error",
                        "dtype",
                        f"input {read!r}, an initializer, is {name}, which TensorRT has no type "
                        "for",
                        node,
                    )
        for out in node.output:
            if not out:
                continue
            name = _dtype_name(self.facts.dtype(out))
            if name in table.UNSUPPORTED_DTYPES:
                self.add(
                    "error",
                    "dtype",
                    f"output {out!r} is {name}, which TensorRT has no type for",
                    node,
                )
            elif name == "UINT8" and out not in boundary and node.op_type != "QuantizeLinear":
                self.add("error", "dtype", f"output {out!r}: {table.DTYPE_CAVEATS['UINT8']}", node)

    def boundary(self) -> set[str]:
        """Where a UINT8 tensor may be: the network's inputs and outputs, and the outputs of
        the bodies around (parseGraph adds each body's outputs to the names its UINT8 check
        reads, onnx-tensorrt 10.1 GA)."""
        if self._boundary is None:
            names = {vi.name for vi in self.model.graph.output}
            if self.parent is None:
                names.update(vi.name for vi in self.model.graph.input)
            else:
                names |= self.parent.boundary()
            self._boundary = names
        return self._boundary

    def const(self, name: str) -> np.ndarray | None:
        """The value TensorRT's parser imports for `name` as weights, else None: an initializer
        (also one the graph lists as an input, as IR < 4 models and
        `keep_initializers_as_inputs` exports do: onnx-tensorrt's importInputs skips those) or a
        `Constant` node's output. A tensor whose data does not fit its dims and type is a
        `LoadError` naming it (the parser cannot import it either)."""
        if not name:
            return None
        init = self.graph.initializers.get(name)
        try:
            if init is not None and self.graph.is_graph_input(name):
                return None if init.HasField("segment") else tensor_value(init)
            return self.graph.constant(name)
        except ValueError as e:  # e.g. raw_data of another size than the dims say
            where = f" (in {self.scope})" if self.scope else ""
            raise LoadError(f"tensor {name!r}{where} cannot be read: {e}") from None

    def is_constant(self, name: str) -> bool:
        """Whether TensorRT imports `name` as weights (see `const`)."""
        init = self.graph.initializers.get(name)
        if init is not None and self.graph.is_graph_input(name):
            return not init.HasField("segment")
        return self.graph.is_constant(name)

    def input(self, node: onnx.NodeProto, index: int) -> str:
        return node.input[index] if len(node.input) > index else ""

    # -- If/Loop/Scan bodies -------------------------------------------------------------------

    def check_subgraphs(self) -> None:
        """Check each body of each If/Loop/Scan with every rule, as `parseGraph` imports it with
        the same importers, after the owner's body-specific rules. An If/Loop/Scan of another
        domain is imported as the ONNX op (`imports_as_onnx`); other ops of other domains with
        graph attributes are plugins (check_node): the parser imports no body of theirs."""
        for node in self.graph.toposort():
            if node.op_type not in _BODIES or not self.imports_as_onnx(node):
                continue
            bodies = {a.name: a.g for a in node.attribute if a.type == onnx.AttributeProto.GRAPH}
            chosen = list(_BODIES[node.op_type])
            if node.op_type == "If":
                chosen = self._check_if(node, bodies)
            elif node.op_type == "Loop" and "body" in bodies:
                self._check_loop(node, bodies["body"])
            elif node.op_type == "Scan":
                self._check_scan(node)
            checked: dict[str, _Checker] = {}
            for label in chosen:
                body = bodies.get(label)
                if body is None:
                    continue  # check_bodies: onnx-invalid
                deep = self.depth + self.call_levels.get(id(node), 0) + 1
                if deep > table.MAX_NESTED_BODIES and len(body.node):
                    self.add(
                        "error",
                        "nested-bodies",
                        f"its {label} sits {deep} bodies deep; TensorRT's parser "
                        f"refuses nodes nested more than {table.MAX_NESTED_BODIES} bodies deep",
                        node,
                    )
                    continue
                sub = self._body_checker(node, label, body, conditional=len(chosen) == 2)
                if sub is not None:
                    sub.check_initializers(body)
                    self.findings.extend(sub.run())
                    checked[label] = sub
                    if node.op_type == "Loop":
                        self._check_carried_shapes(node, sub)
            if len(checked) == 2:
                self._check_branch_ranks(node, checked["then_branch"], checked["else_branch"])

    def _body_checker(
        self, node: onnx.NodeProto, label: str, body: onnx.GraphProto, *, conditional: bool
    ) -> _Checker | None:
        """The checker of `node`'s body `label`; `conditional`: a branch of an If imported as
        an IIfConditional (both branches)."""
        around = self.scope_of(node)
        given = self.given.get(id(node), node.name)
        named = _label(node, given, given not in self.ambiguous)
        scope = (f"{around} > " if around else "") + f"{named} {label}"
        model, outer = self._body_model(body)
        if node.op_type == "Loop":
            self._type_loop_states(node, model.graph)
        try:
            return _Checker(
                model,
                self.version,
                set(),
                parent=self,
                scope=scope,
                outer=outer,
                conditional=node.op_type == "If" and conditional,
                levels=self.call_levels.get(id(node), 0),
            )
        except LoadError as e:  # e.g. two nodes of the body writing one name
            self.add("error", "onnx-invalid", f"its {label}: {e}", node)
            return None

    def _body_model(self, body: onnx.GraphProto) -> tuple[onnx.ModelProto, frozenset[str]]:
        """M(B): a copy of `body` under this model's IR version, opsets and functions; each
        name it reads from the scopes around it an initializer where TensorRT imports it as
        weights there (an initializer or a Constant's output: the parser's name scopes keep
        outer weights visible), else an input typed from this scope's shape facts. Also the
        names of those inputs."""
        model = model_header(self.model)
        g = model.graph
        g.CopyFrom(body)
        outer = []
        for name in sorted(outer_references(body)):
            tensor = self._weights(name)
            if tensor is not None:
                init = g.initializer.add()
                init.CopyFrom(tensor)
                init.name = name
                continue
            dtype, shape = self.facts.dtype(name), self.facts.shape(name)
            if dtype:
                dims = (
                    None
                    if shape is None
                    else [d if isinstance(d, int | str) else None for d in shape]
                )
                g.input.append(onnx.helper.make_tensor_value_info(name, dtype, dims))
            else:
                g.input.add().name = name
            outer.append(name)
        return model, frozenset(outer)

    def _type_loop_states(self, node: onnx.NodeProto, g: onnx.GraphProto) -> None:
        """Give a Loop body's carried inputs (v_k, body input k >= 2) the shapes of their initial
        values where known, the body's element types kept: the first iteration, which TensorRT's
        IRecurrenceLayer fixes for all (`_check_carried_shapes`)."""
        for k in range(2, min(len(g.input), len(node.input))):
            vi, shape = g.input[k], self.facts.shape(node.input[k])
            if shape is None or not vi.type.HasField("tensor_type"):
                continue
            dims = [d if isinstance(d, int | str) else None for d in shape]
            elem = vi.type.tensor_type.elem_type or self.facts.dtype(node.input[k]) or 0
            vi.CopyFrom(onnx.helper.make_tensor_value_info(vi.name, elem, dims))

    def _check_carried_shapes(self, node: onnx.NodeProto, body: _Checker) -> None:
        """NvInfer.h (TensorRT 11.1), IRecurrenceLayer input 1, the next value: it "must have
        the same dimensions as input 0", the initial value (onnx-tensorrt's matrix, 10.1 GA:
        "The shape of Loop carried dependencies must be the same across all loop
        iterations"). With the carried inputs typed as their initial values, a body output
        v_k' of another rank, or with a known dimension that differs from the initial value's,
        changes shape in the first iteration already."""
        g = body.model.graph
        for k in range(2, min(len(node.input), len(g.output) + 1)):
            before = self.facts.shape(node.input[k])
            after = body.facts.shape(g.output[k - 1].name)
            if before is None or after is None:
                continue
            differ = len(before) != len(after) or any(
                isinstance(a, int) and isinstance(b, int) and a != b
                for a, b in zip(before, after, strict=True)
            )
            if differ:
                shown = [
                    ", ".join("?" if d is None else str(d) for d in x) for x in (before, after)
                ]
                self.add(
                    "error",
                    "loop-carried",
                    f"loop-carried value {node.input[k]!r} is [{shown[0]}] and the body makes it "
                    f"[{shown[1]}] ({g.output[k - 1].name!r}); TensorRT needs a carried value to "
                    "keep its shape across iterations",
                    node,
                )
                return

    def _weights(self, name: str) -> onnx.TensorProto | None:
        """The tensor TensorRT imports as weights for `name` in this scope (see `const`)."""
        if not self.is_constant(name):
            return None
        init = self.graph.initializers.get(name)
        if init is not None:
            return init
        producer = self.graph.producer_node(name)
        if producer is not None and producer.op_type == "Constant":
            return constant_tensor(producer)  # (None for sparse and string values)
        return None

    def producer_in_scope(self, name: str) -> tuple[_Checker, onnx.NodeProto] | None:
        """The node writing `name` as this scope sees it (in a scope around it, for a name a
        body reads from outside), with the checker of its scope."""
        producer = self.graph.producer_node(name)
        if producer is not None:
            return self, producer
        if self.parent is not None and name in self.outer:
            return self.parent.producer_in_scope(name)
        return None

    def _conditional_between(self, around: _Checker) -> bool:
        """Whether this body is, or sits in, a branch of an If imported as an IIfConditional
        inside the scope `around` (an IIfConditionalInputLayer for each tensor read from
        there: ConditionalHelpers.cpp addConditionalInputLayer, onnx-tensorrt 10.1 GA). A Loop
        body reads outer tensors directly, and an If on a constant is imported inline."""
        c: _Checker | None = self
        while c is not None and c is not around:
            if c.conditional:
                return True
            c = c.parent
        return False

    def _check_if(self, node: onnx.NodeProto, bodies: dict[str, onnx.GraphProto]) -> list[str]:
        """The If's own rules; the branches the parser imports (importIf, onnx-tensorrt 10.1
        GA): only the one a constant condition selects ("For constant conditions, parse only
        the selected subgraph"), else both."""
        then, other = bodies.get("then_branch"), bodies.get("else_branch")
        if then is not None and other is not None and len(then.output) != len(other.output):
            self.add(  # the parser's static checker (checkIf) and importIf
                "error",
                "if-branches",
                f"then_branch has {len(then.output)} outputs and else_branch "
                f"{len(other.output)}; TensorRT needs the same number",
                node,
            )
        cond = self.const(self.input(node, 0))
        if cond is not None and np.asarray(cond).size == 1:
            return ["then_branch" if bool(np.asarray(cond).ravel()[0]) else "else_branch"]
        return ["then_branch", "else_branch"]

    def _check_branch_ranks(self, node: onnx.NodeProto, then: _Checker, other: _Checker) -> None:
        """NvInfer.h (TensorRT 11.1), IIfConditional: "Corresponding output tensors from the
        true/false subgraphs have the same type and rank"; addOutput: "The ranks of the two
        tensors must be equal unless the condition is a build-time constant". A condition that
        folds from constants, static shapes and ranks (PyTorch's `if x.dim() == 3` exports: Size
        of a Shape) is one. One that reads an input's values, or a dynamic dimension, is not:
        the parser's addOutput refuses the If ("IIfConditionalOutputLayer inputs must have the
        same shape. Shapes are [3,-1,-1] and [1,3,-1,-1]" for an Equal of dynamic dims,
        xiuqhou/Salience-DETR#27, 2024-07; PINTO0309/PINTO_model_zoo#439, 2024-11). Past an op
        this check does not follow (a body's output, a random op): a warning.

        Before 10.11 the same holds for the shapes: NvInfer.h of 10.0 .. 10.10 says "have the
        same type and shape" (and, from 10.4, addOutput: "The shapes of the two tensors must be
        equal unless the condition is a build-time constant"); 10.11 (NVIDIA/TensorRT 9255eb39)
        relaxed both to the rank. NVIDIA/TensorRT#4558 (2025-08): DINOv3's rope_embed If, whose
        outputs are [2] and [1], fails on 10.3 ("IIfConditionalOutputLayer inputs must have the
        same shape. Shapes are [2] and [1].") and builds on 10.13 (`_IF_SHAPES_RELAXED_SINCE`).
        The parser itself compares nothing (importIf, onnx-tensorrt 10.1 GA, hands each pair to
        addOutput), so what TensorRT requires is the header's equality: a dimension known on one
        side and unknown on the other (a dynamic dimension, or one ONNX's shape inference does
        not know) is equal only if TensorRT proves it, which this check cannot tell: a warning,
        where two known dimensions that differ are an error."""
        # (proven, message, the axes known on one side only) per output pair that differs
        found: list[tuple[bool, str, list[int]]] = []
        for a, b in zip(then.model.graph.output, other.model.graph.output, strict=False):
            ra, rb = then.facts.rank(a.name), other.facts.rank(b.name)
            if ra is None or rb is None:
                continue
            if ra != rb:
                found.append(
                    (
                        True,
                        f"then_branch output {a.name!r} has rank {ra} and else_branch output "
                        f"{b.name!r} rank {rb}; TensorRT needs the same rank unless the condition "
                        "is a build-time constant",
                        [],
                    )
                )
                continue
            if self.version >= _IF_SHAPES_RELAXED_SINCE:
                continue
            sa, sb = then.facts.shape(a.name), other.facts.shape(b.name)
            proven = _known_dims_differ(sa, sb)
            one_sided = _dims_known_on_one_side(sa, sb)
            if not proven and not one_sided:
                continue
            message = (
                f"then_branch output {a.name!r} is [{_dims(sa)}] and else_branch output "
                f"{b.name!r} [{_dims(sb)}]; TensorRT {self.version} needs the same shape unless "
                f"the condition is a build-time constant ({_IF_SHAPES_RELAXED_SINCE}+ only the "
                "same rank)"
            )
            found.append((proven, message, [] if proven else one_sided))
        if not found:
            return
        proven, message, one_sided = next((f for f in found if f[0]), found[0])
        kind, where = _build_time_value(self, self.input(node, 0))
        if kind == "constant":
            return
        if kind == "runtime":
            message = f"{message}, and it reads {where!r}"
        elif kind == "dynamic":
            message = f"{message}, and it reads the dynamic shape of {where!r}"
        else:
            message = f"{message}: it comes from {where}, which this check cannot tell"
        if one_sided:
            message += (
                f"; dimension {one_sided[0]} is known on one side only: equal only where TensorRT "
                "proves it when it parses the If, which this check cannot tell"
            )
        severity = "error" if proven and kind in ("runtime", "dynamic") else "warning"
        self.add(severity, "if-branches", message, node)

    def _check_loop(self, node: onnx.NodeProto, body: onnx.GraphProto) -> None:
        """importLoop (onnx-tensorrt 10.1 GA): a trip count that is an INT64 constant of at
        least INT32_MAX is dropped; without a trip count the parser defines no iteration number
        for the body and makes each scan output 1024 long ("the scan outputs must not be used
        in the rest of the model"), and without a condition no body condition input; NvInfer.h
        (ILoop::addTripLimit): "It is an error to not add at least one trip limiter"."""
        trip, cond = self.input(node, 0), self.input(node, 1)
        m = self.const(trip) if trip else None
        dropped = (
            m is not None
            and m.dtype == np.int64
            and m.size >= 1
            and int(m.ravel()[0]) >= table.LOOP_MAX_TRIP_COUNT
        )
        counted = bool(trip) and not dropped
        why = "no trip count" if not trip else f"trip count {trip!r} >= 2^31-1, which it drops"
        if not counted and not cond:
            self.add(
                "error",
                "loop-trip-limit",
                f"{why} and no condition: TensorRT needs a trip count or a condition to end "
                "the loop",
                node,
            )
        read = _reads(body)
        unset = [] if counted else [(0, "iteration number")]
        if not cond:
            unset.append((1, "condition"))
        for k, what in unset:
            name = body.input[k].name if len(body.input) > k else ""
            if name and name in read:
                self.add(
                    "error",
                    "loop-body",
                    f"the body reads its {what} input {name!r}, which TensorRT's parser "
                    f"defines only for a Loop {'with a trip count' if k == 0 else 'with a condition'}"
                    + (f" ({why})" if k == 0 else "")
                    + " (the node reading it is refused: input not registered)",
                    node,
                )
        if not counted:
            states = max(len(node.input) - 2, 0)
            used = [
                o
                for o in node.output[states:]
                if o and (self.graph.consumer_nodes(o) or self.graph.is_graph_output(o))
            ]
            if used:
                self.add(
                    "error",
                    "loop-scan-output",
                    f"scan output {used[0]!r} of a Loop with {why}: TensorRT makes it "
                    f"{table.LOOP_DUMMY_SCAN_LENGTH} iterations long whatever the loop runs "
                    "(scan output length cannot be dynamic); give a trip count",
                    node,
                )

    def _check_scan(self, node: onnx.NodeProto) -> None:
        """importScan (onnx-tensorrt 10.1 GA): "TensorRT doesn't support sequence_lens input"
        (Scan-8, whose first input it is)."""
        if self.graph.opset_version("") == 8 and self.input(node, 0):
            self.add(
                "error",
                "unsupported-attribute",
                f"Scan (opset 8) sequence_lens {self.input(node, 0)!r} is not supported; leave "
                "it empty",
                node,
            )

    # -- Q/DQ --------------------------------------------------------------------------------

    def check_qdq(self) -> None:
        for node in self.graph.toposort():
            if node.op_type not in QDQ_OPS or not self.imports_as_onnx(node):
                continue
            if _mistyped_attribute(node) is not None:  # check_node (or the renamed-domain check)
                continue
            if not node.output or not node.output[0]:
                self.add(
                    "error",
                    "onnx-invalid",
                    f"{node.op_type} has no output: the model is not valid ONNX (onnx.checker "
                    "refuses it)",
                    node,
                )
                continue
            self._check_quant_type(node)
            self._check_zero_point(node)
            self._check_scale(node)
            self._check_pairing(node)

    def _quant_type(self, node: onnx.NodeProto) -> str:
        zp = self.input(node, 2)
        if zp:
            if zp in self.graph.initializers:
                return _dtype_name(self.graph.initializers[zp].data_type)
            if self.facts.dtype(zp):
                return _dtype_name(self.facts.dtype(zp))
        if node.op_type == "QuantizeLinear":
            out_dtype = self.graph.attr(node, "output_dtype", 0)
            return _dtype_name(out_dtype) if out_dtype else "UINT8"  # ONNX default without zp
        x = self.input(node, 0)
        if x in self.graph.initializers:
            return _dtype_name(self.graph.initializers[x].data_type)
        return _dtype_name(self.facts.dtype(x)) if self.facts.dtype(x) else "UINT8"

    def _check_quant_type(self, node: onnx.NodeProto) -> None:
        qtype = self._quant_type(node)
        since = table.QUANT_TYPES.get(qtype)
        if since is None:
            extra = (
                " (TensorRT would quantize as INT8 instead, changing the values)"
                if qtype == "UINT8"
                else ""
            )
            allowed = ", ".join(t for t, v in table.QUANT_TYPES.items() if v <= self.version)
            self.add(
                "error",
                "qdq-type",
                f"quantized type {qtype} is not supported by TensorRT {self.version}{extra}; use "
                f"{allowed} (graphopt quantize --target tensorrt emits INT8)",
                node,
            )
        elif since > self.version:
            self.add(
                "error",
                "qdq-type",
                f"quantized type {qtype} needs TensorRT {since} or newer",
                node,
            )
        elif qtype == "INT4" and self.graph.attr(node, "block_size", 0) == 0:
            self.add(
                "warning",
                "qdq-type",
                "TensorRT supports INT4 only as blocked weight quantization",
                node,
            )
        elif qtype == "INT8" and self.graph.attr(node, "block_size", 0):
            self.add(
                "error",
                "qdq-block",
                "TensorRT supports blocked quantization only for INT4, FP8 and FP4",
                node,
            )

    def _check_zero_point(self, node: onnx.NodeProto) -> None:
        zp = self.input(node, 2)
        if not zp:
            return
        value = self.const(zp)
        producer = self.graph.producer_node(zp)
        if value is None and producer is not None and producer.op_type == "Cast":
            value = self.const(self.input(producer, 0))  # NvInfer.h: Constant -> Cast -> Q is fine
        if value is None:
            self.add(
                "error",
                "qdq-zero-point",
                f"zero point {zp!r} is not a constant; TensorRT needs a constant zero point of 0",
                node,
            )
        elif not _numeric(value):
            return  # (a STRING zero point: its quantized type is refused, _check_quant_type)
        elif np.any(value.astype(np.float64) != 0):
            self.add(
                "error",
                "qdq-zero-point",
                f"zero point {zp!r} is not all 0 (TensorRT only supports symmetric quantization)",
                node,
            )

    def _check_scale(self, node: onnx.NodeProto) -> None:
        scale_name = self.input(node, 1)
        scale = self.const(scale_name)
        if scale is None:
            self.add(
                "error",
                "qdq-scale",
                f"scale {scale_name!r} is not a constant; TensorRT needs build-time scales",
                node,
            )
            return
        if not _numeric(scale) or scale.size == 0:
            what = "holds no value" if _numeric(scale) else "is a string tensor"
            self.add(
                "error",
                "qdq-scale",
                f"scale {scale_name!r} {what}; TensorRT needs float scales, one per tensor or "
                "one per channel",
                node,
            )
            return
        values = scale.astype(np.float64)
        if not np.all(values > 0):  # NaN fails too: the parser's check is `x > 0`
            bad = values[~(values > 0)].ravel()[:3]
            self.add(
                "error",
                "qdq-scale",
                f"scale {scale_name!r} must be positive; found {', '.join(map(str, bad))}",
                node,
            )
        elif not np.all(np.isfinite(values)):  # TensorRT takes it; the model computes inf/NaN
            self.add(
                "warning",
                "qdq-scale",
                f"scale {scale_name!r} holds inf: TensorRT accepts it (it checks scale > 0 only), "
                "and the values it dequantizes are inf or NaN",
                node,
            )
        if scale.size <= 1 or self.graph.attr(node, "block_size", 0):
            return
        root = self._weight_root(node)
        if root is None:
            self.add(
                "error",
                "qdq-per-channel",
                "per-channel scales on an activation: TensorRT quantizes activations per tensor only",
                node,
            )
            return
        if self.graph.attr(node, "axis") is None:
            self.add(
                "error",
                "qdq-per-channel",
                "per-channel scales without an axis attribute: ONNX reads axis 1, TensorRT's "
                "parser axis 0; give the axis",
                node,
            )
            return
        axis = int(self.graph.attr(node, "axis", 1))
        rank = self.facts.rank(root)
        if rank is not None and axis < 0:
            axis += rank
        for consumer, weight in self._weight_readers(node):
            judged = _weight_axes(self.graph, consumer, weight, rank)
            if judged is None or axis == judged[0]:
                continue
            doubtful = axis in judged[1]
            self.add(
                "warning" if doubtful else "error",
                "qdq-per-channel",
                f"per-channel weight scales on axis {axis}; TensorRT scales {consumer.op_type} "
                f"{as_text(consumer.name)!r} weights on axis {judged[0]}"
                + (
                    " (NVIDIA: its deconvolution kernels take per-input-channel scales; whether "
                    "TensorRT 10/11 also take axis 1 is unconfirmed)"
                    if doubtful
                    else ""
                ),
                node,
            )
            return

    def _weight_root(self, node: onnx.NodeProto) -> str | None:
        """The constant weight a Q or DQ (de)quantizes, else None (an activation): the DQ of
        stored INT8 weights, or the Q and DQ of float weights (QAT exports: w → Q → DQ → Conv)."""
        x = self.input(node, 0)
        if self.is_constant(x):
            return x
        producer = self.graph.producer_node(x)
        if node.op_type != "DequantizeLinear" or producer is None:
            return None
        w = self.input(producer, 0)
        return w if producer.op_type == "QuantizeLinear" and self.is_constant(w) else None

    def _weight_readers(self, node: onnx.NodeProto) -> list[tuple[onnx.NodeProto, str]]:
        """(consumer, dequantized weight) for the ops reading a weight's DQ; through the DQ for a Q."""
        dqs = [node]
        if node.op_type == "QuantizeLinear":
            dqs = [
                c
                for c in self.graph.consumer_nodes(node.output[0])
                if c.op_type == "DequantizeLinear"
            ]
        return [(c, dq.output[0]) for dq in dqs for c in self.graph.consumer_nodes(dq.output[0])]

    def _check_pairing(self, node: onnx.NodeProto) -> None:
        out = node.output[0]
        consumers = self.graph.consumer_nodes(out)
        if node.op_type == "QuantizeLinear":
            strays: list[onnx.NodeProto] = []
            for c in consumers:
                if c.op_type == "DequantizeLinear":
                    continue
                if c.op_type in _BODIES and self.imports_as_onnx(c) and out not in c.input:
                    # read inside its bodies only: the DQs there judge the pair (_check_pairing)
                    strays.extend(
                        r for r in _body_readers(c, out) if r.op_type != "DequantizeLinear"
                    )
                else:
                    strays.append(c)
            if not strays and self.graph.is_graph_output(out) and self.conditional:
                self.add(
                    "error",
                    "qdq-pair",
                    f"its output {out!r} leaves the If branch quantized: TensorRT's parser makes "
                    f"it an IIfConditionalOutputLayer's input, and {_CONDITIONAL_TYPES}; "
                    "dequantize it in the branch",
                    node,
                )
            elif strays or self.graph.is_graph_output(out):
                self.add(
                    "error",
                    "qdq-pair",
                    "a QuantizeLinear must feed only DequantizeLinear nodes (TensorRT runs "
                    "quantized tensors only between a Q and its DQ)"
                    + (
                        f"; it feeds {strays[0].op_type} {as_text(strays[0].name)!r}"
                        if strays
                        else ""
                    ),
                    node,
                )
            return
        x = self.input(node, 0)
        found = self.producer_in_scope(x)  # (a body's DQ may read a Q of the scope around it)
        scope, producer = found if found is not None else (self, None)
        from_q = producer is not None and producer.op_type == "QuantizeLinear"
        if not from_q and not self.is_constant(x):
            self.add(
                "error",
                "qdq-pair",
                f"DequantizeLinear input {x!r} comes from neither a QuantizeLinear nor a constant",
                node,
            )
            return
        if not from_q:
            return  # a weight DQ: TensorRT folds it into the consumer
        if producer is not None and scope is not self and self._conditional_between(scope):
            self.add(
                "error",
                "qdq-pair",
                f"DequantizeLinear reads {x!r}, which QuantizeLinear "
                f"{as_text(producer.name)!r} quantizes outside the If whose branch this is: "
                "TensorRT's parser passes it into the branch through an IIfConditionalInputLayer, "
                f"and {_CONDITIONAL_TYPES}; put the DequantizeLinear in front of the If or the "
                "QuantizeLinear into the branch",
                node,
            )
        for c in consumers:
            if c.op_type not in table.INT8_COMPUTE_OPS:
                self.add(
                    "warning",
                    "qdq-placement",
                    f"Q/DQ pair in front of {c.op_type} {as_text(c.name)!r}, which TensorRT runs in "
                    "floating point: the pair only costs precision",
                    node,
                )
        if producer is not None:
            source = scope.graph.producer_node(self.input(producer, 0))
            if source is not None and source.op_type in ("Conv", "ConvTranspose"):
                epilogue = [c for c in consumers if c.op_type in table.CONV_EPILOGUE_OPS]
                if epilogue:
                    self.add(
                        "warning",
                        "qdq-placement",
                        f"Q/DQ between {source.op_type} {as_text(source.name)!r} and "
                        f"{epilogue[0].op_type}: TensorRT cannot fuse the pair into the convolution",
                        node,
                    )


# -- attribute rules: each yields messages for one op type ---------------------------------


def _resize(c: _Checker, node: onnx.NodeProto) -> list[str]:
    out = []
    mode = _s(c.graph.attr(node, "mode", b"nearest"))
    if mode not in table.RESIZE_MODES:
        out.append(f"Resize mode {mode!r} is not supported")
    if c.graph.opset_version("") >= 11:
        ctm = _s(c.graph.attr(node, "coordinate_transformation_mode", b"half_pixel"))
        if ctm not in table.RESIZE_COORDINATE_MODES:
            out.append(
                f"Resize coordinate_transformation_mode {ctm!r} is not supported (TensorRT takes "
                f"{', '.join(sorted(table.RESIZE_COORDINATE_MODES))})"
            )
        nearest = _s(c.graph.attr(node, "nearest_mode", b"round_prefer_floor"))
        if mode == "nearest" and nearest not in table.RESIZE_NEAREST_MODES:
            out.append(f"Resize nearest_mode {nearest!r} is not supported")
        if ctm == "tf_half_pixel_for_nn" and nearest != "round_prefer_floor":  # onnxOpCheckers
            out.append(
                f"Resize tf_half_pixel_for_nn takes nearest_mode 'round_prefer_floor' only, not "
                f"{nearest!r}"
            )
    if c.graph.attr(node, "antialias", 0):
        out.append("Resize antialias is not supported")
    axes = c.graph.attr(node, "axes")
    rank = c.facts.rank(c.input(node, 0))
    scales = c.input(node, 2)
    computed = bool(scales) and c.const(scales) is None  # the matrix's Restrictions column
    if axes and rank and computed and [int(a) % rank for a in axes] != list(range(rank)):
        out.append(
            f"Resize axes {list(axes)} with computed scales: TensorRT needs the axes "
            f"0..{rank - 1} in order when scales is a tensor input"
        )
    policy = _s(c.graph.attr(node, "keep_aspect_ratio_policy", b"stretch"))
    if policy != "stretch":
        out.append(f"Resize keep_aspect_ratio_policy {policy!r} is not supported (only 'stretch')")
    out += _resize_outer_scales(c, node, mode, axes, rank)
    return out


def _resize_outer_scales(
    c: _Checker, node: onnx.NodeProto, mode: str, axes: Any, rank: int | None
) -> list[str]:
    """Constant linear / cubic scales other than 1 outside the innermost 3 / 2 axes, which the
    importer refuses (table.RESIZE_INNERMOST_AXES); `sizes` (opset 11+) skips that check."""
    innermost = table.RESIZE_INNERMOST_AXES.get(mode)
    opset = c.graph.opset_version("")
    if innermost is None or (opset >= 11 and c.input(node, 3)):
        return []
    name = c.input(node, 2 if opset >= 11 else 1)
    scales = c.const(name) if name else None
    if scales is None or scales.size == 0 or not _numeric(scales):
        return []
    given = [float(v) for v in np.asarray(scales, dtype=np.float64).ravel()]
    full = given
    if axes:  # the importer spreads them over the input's rank
        if not rank or len(axes) != len(given):
            return []
        full = [1.0] * rank
        for axis, value in zip(axes, given, strict=True):
            full[int(axis) % rank] = value
    return _outer_scales(node, mode, given, full, innermost)


def _outer_scales(
    node: onnx.NodeProto, mode: str, given: list[float], full: list[float], innermost: int
) -> list[str]:
    if any(v != 1.0 for v in full[: max(len(full) - innermost, 0)]):
        return [
            f"{node.op_type} {mode} with scales {given}: TensorRT's parser resizes {mode} only "
            f"on the innermost {innermost} axes (scale 1 on the others)"
        ]
    return []


def _upsample(c: _Checker, node: onnx.NodeProto) -> list[str]:
    """Upsample (opset 7-9) linear / bilinear: importUpsample (10.1 GA) runs the same
    canUseNDResize check on constant scales (input 1 from opset 9, the attribute before)."""
    mode = _s(c.graph.attr(node, "mode", b"nearest"))
    if mode not in ("linear", "bilinear"):
        return []
    name = c.input(node, 1)
    scales = c.const(name) if name else c.graph.attr(node, "scales")
    if scales is None or not _numeric(np.asarray(scales)):
        return []
    given = [float(v) for v in np.asarray(scales, dtype=np.float64).ravel()]
    return _outer_scales(node, mode, given, given, table.RESIZE_INNERMOST_AXES["linear"])


def _pad(c: _Checker, node: onnx.NodeProto) -> list[str]:
    out = []
    mode = _s(c.graph.attr(node, "mode", b"constant"))
    if mode not in table.PAD_MODES:
        out.append(f"Pad mode {mode!r} is not supported")
    axes = c.input(node, 3)
    if axes and c.const(axes) is None and c.version < table.PAD_TENSOR_AXES_SINCE:
        out.append(
            f"Pad axes must be a constant before TensorRT {table.PAD_TENSOR_AXES_SINCE} "
            "(no dynamic axes for Pad)"
        )
    # No limit on reflect padding: TensorRT repeats the reflection (SampleMode::kREFLECT).
    return out


def _slice(c: _Checker, node: onnx.NodeProto) -> list[str]:
    axes = c.input(node, 3)
    if axes and c.const(axes) is None and c.version < table.SLICE_TENSOR_AXES_SINCE:
        return [
            f"Slice axes must be a constant before TensorRT {table.SLICE_TENSOR_AXES_SINCE} "
            "(no dynamic axes for Slice)"
        ]
    return []


def _pool(c: _Checker, node: onnx.NodeProto) -> list[str]:
    out = []
    rank = c.facts.rank(c.input(node, 0))
    ranks = (4, 5) if node.op_type == "LpPool" else (3, 4, 5)  # 1-D is pooled as 2-D
    if rank is not None and rank not in ranks:
        out.append(f"{node.op_type} on a rank-{rank} input: TensorRT pools 2-D or 3-D only")
    dilations = c.graph.attr(node, "dilations")
    if dilations and any(d != 1 for d in dilations):
        out.append(f"{node.op_type} dilations {list(dilations)}: TensorRT needs them all 1")
    return out  # MaxPool's Indices: _extra_outputs


def _topk(c: _Checker, node: onnx.NodeProto) -> list[str | tuple[str, str]]:
    out: list[str | tuple[str, str]] = []
    if c.graph.attr(node, "sorted", 1) != 1:  # see the comment after table.TOPK_MAX_K
        out.append(
            (
                "warning",
                "TopK sorted=0: TensorRT's support matrix says sorted must be 1; its parser "
                "ignores the attribute and returns the values sorted (an order sorted=0 allows)",
            )
        )
    k_name = c.input(node, 1)
    k = c.const(k_name)  # a computed K is fine: the parser feeds it to the TopK layer as a tensor
    if k is not None:
        values = np.asarray(k).ravel()
        if values.dtype.kind not in "iu":  # (a float K, NaN too, or a string: int() raised)
            kind = _dtype_name(c.facts.dtype(k_name)) or str(values.dtype)
            out.append(f"TopK K {k_name!r} is {kind}: ONNX's TopK takes an INT64 K")
        elif values.size != 1:
            out.append(f"TopK K must be one value; the constant {k_name!r} has {values.size}")
        elif int(values[0]) > table.TOPK_MAX_K:  # see table.TOPK_MAX_K: 3840 itself is fine
            out.append(
                f"TopK K={int(values[0])}: TensorRT's TopK layer takes K up to {table.TOPK_MAX_K} "
                f"(NvInfer.h; its ONNX support matrix says below {table.TOPK_MAX_K})"
            )
    return out


_TENSOR_AXES_SINCE = {
    "Squeeze": table.SQUEEZE_TENSOR_AXES_SINCE,
    "Unsqueeze": table.SQUEEZE_TENSOR_AXES_SINCE,
    "CumSum": table.CUMSUM_TENSOR_AXIS_SINCE,
    "OneHot": table.ONEHOT_TENSOR_DEPTH_SINCE,
}
# ops whose output values TensorRT cannot know at build time whatever their inputs
_NONDETERMINISTIC = frozenset(
    {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial"}
)
_SUBGRAPH_OPS = frozenset({"If", "Loop", "Scan"})
# what TensorRT's operator reference (If, 10.6 and the current text) lists for a conditional's
# inputs and outputs: no quantized type (a Q/DQ pair split by an If, `_check_pairing`)
_CONDITIONAL_TYPES = (
    "a conditional's inputs and outputs are bool, int32, float16, float32 or bfloat16 "
    "(TensorRT's operator reference, If), not a quantized type"
)
# NvInfer.h 10.11 (NVIDIA/TensorRT 9255eb39): an If's two outputs need the same rank, not the
# same shape (`_check_branch_ranks`)
_IF_SHAPES_RELAXED_SINCE = TrtVersion(10, 11)


def _known_dims_differ(a: Sequence[object] | None, b: Sequence[object] | None) -> bool:
    """Whether two shapes of one rank have a dimension known on both sides that differs."""
    if a is None or b is None or len(a) != len(b):
        return False
    return any(
        isinstance(x, int) and isinstance(y, int) and x != y for x, y in zip(a, b, strict=True)
    )


def _dims_known_on_one_side(a: Sequence[object] | None, b: Sequence[object] | None) -> list[int]:
    """The axes where one of two shapes of one rank has a known dimension and the other not."""
    if a is None or b is None or len(a) != len(b):
        return []
    return [
        k
        for k, (x, y) in enumerate(zip(a, b, strict=True))
        if isinstance(x, int) != isinstance(y, int)
    ]


def _dims(shape: Sequence[object] | None) -> str:
    return ", ".join(str(d) if isinstance(d, int | str) else "?" for d in shape or ())


def _resolvable_axes(
    c: _Checker, node: onnx.NodeProto, name: str, attr: str
) -> list[str | tuple[str, str]]:
    """A computed `attr` from the versions that take one (_TENSOR_AXES_SINCE): TensorRT must
    resolve it to a constant at build time. An error where it reads a network input's values, a
    warning where it reads a dynamic dimension (resolved only if TensorRT can bound it) or an
    op whose values this check does not follow, nothing where it folds from constants and
    static shapes."""
    kind, where = _build_time_value(c, name)
    if kind == "runtime":
        return [
            f"{node.op_type} {attr} {name!r} depends on the values of {where!r} at run time; "
            "TensorRT needs it resolvable to a constant when it builds the engine"
        ]
    if kind == "dynamic":
        return [
            (
                "warning",
                f"{node.op_type} {attr} {name!r} is computed from the dynamic shape of {where!r}; "
                "TensorRT builds only if it resolves it to a constant",
            )
        ]
    if kind == "unknown":
        return [
            (
                "warning",
                f"{node.op_type} {attr} {name!r} comes from {where}; TensorRT needs it resolvable "
                "to a constant at build time, which this check cannot tell",
            )
        ]
    return []


def _build_time_value(c: _Checker, name: str) -> tuple[str, str]:
    """("constant", "") where `name` folds from constants and static shapes; ("runtime", input)
    where it reads a network input's values; ("dynamic", tensor) where it reads a dynamic
    dimension; ("unknown", what) past a subgraph op or a random op."""
    rank = {"constant": 0, "dynamic": 1, "unknown": 2, "runtime": 3}
    seen: dict[str, tuple[str, str]] = {}

    def visit(t: str) -> tuple[str, str]:
        if not t or c.const(t) is not None:
            return "constant", ""
        if t in seen:
            return seen[t]
        seen[t] = ("constant", "")  # a cycle cannot occur in a valid graph
        producer = c.graph.producer_node(t)
        if producer is None and c.parent is not None and t in c.outer:
            found = _build_time_value(c.parent, t)  # computed in a scope around the body
        elif producer is None and c.graph.is_graph_input(t):
            found = ("runtime", t)
        elif producer is None:
            found = ("unknown", f"tensor {t!r}, which nothing in the graph produces")
        elif producer.op_type in ("Shape", "Size"):
            x = c.input(producer, 0)
            of_shape = c.graph.producer_node(x)  # a Shape's own shape is [rank]: known in TensorRT
            ranked = of_shape is not None and of_shape.op_type == "Shape"
            found = ("constant", "") if ranked or c.facts.is_static(x) else ("dynamic", x)
        elif producer.op_type in _SUBGRAPH_OPS or producer.op_type in _NONDETERMINISTIC:
            found = ("unknown", f"{producer.op_type} {as_text(producer.name)!r}")
        else:
            found = ("constant", "")
            for i in producer.input:
                got = visit(i)
                if rank[got[0]] > rank[found[0]]:
                    found = got
        seen[t] = found
        return found

    return visit(name)


def _constant_axes(index: int, attr: str = "axes"):  # type: ignore[no-untyped-def]
    def rule(c: _Checker, node: onnx.NodeProto) -> list[str | tuple[str, str]]:
        name = c.input(node, index)
        since = _TENSOR_AXES_SINCE.get(node.op_type)
        if name and c.const(name) is None and since is not None and c.version >= since:
            return _resolvable_axes(c, node, name, attr)
        if name and c.const(name) is None:
            newer = f" (a computed one needs TensorRT {since}+)" if since is not None else ""
            kind, where = _build_time_value(c, name) if since is not None else ("", "")
            if kind == "runtime":  # from `since` on it is refused as well: no upgrade helps
                newer = (
                    f" (a computed one needs TensorRT {since}+, and one that depends on the "
                    f"values of {where!r} at run time no version takes)"
                )
            return [f"{node.op_type} {attr} must be an initializer or a Constant{newer}"]
        if (
            node.op_type == "Squeeze"
            and not name
            and c.graph.attr(node, "axes") is None
            and c.version < table.SQUEEZE_WITHOUT_AXES_SINCE
            and not c.facts.is_static(c.input(node, 0))
        ):
            return [
                "Squeeze without axes on a dynamic shape needs TensorRT "
                f"{table.SQUEEZE_WITHOUT_AXES_SINCE}+ (give the axes)"
            ]
        return []

    return rule


def _deform_conv(c: _Checker, node: onnx.NodeProto) -> list[str]:
    out = []
    rank = c.facts.rank(c.input(node, 0))
    if rank is not None and rank not in (3, 4):
        out.append(f"DeformConv on a rank-{rank} input: TensorRT takes 1-D or 2-D spatial dims")
    pads = list(c.graph.attr(node, "pads", []) or [])
    half = len(pads) // 2
    if pads[:half] != pads[half:]:
        out.append(f"DeformConv pads {pads}: TensorRT needs the same begin and end padding")
    return out


def _batch_norm(c: _Checker, node: onnx.NodeProto) -> list[str]:
    if c.graph.attr(node, "training_mode", 0):  # onnx-tensorrt's onnxOpCheckers refuses it
        return ["BatchNormalization training_mode must be 0"]
    return []


def _einsum(c: _Checker, node: onnx.NodeProto) -> list[str]:
    equation = _s(c.graph.attr(node, "equation", b""))
    bad = sorted({ch for ch in equation if not ("a" <= ch <= "z" or ch in "->., ")})
    if bad:  # onnxOpCheckers: "Invalid character(s) in Einsum equation", capitals included
        return [
            f"Einsum equation {equation!r}: TensorRT takes lowercase subscripts only, not {''.join(bad)!r}"
        ]
    if c.version < table.EINSUM_DIAGONAL_SINCE:
        for term in equation.split("->")[0].split(","):
            letters = [ch for ch in term if "a" <= ch <= "z"]
            repeated = sorted({ch for ch in letters if letters.count(ch) > 1})
            if repeated:
                return [
                    f"Einsum equation {equation!r} takes a diagonal ({repeated[0]!r} repeated in "
                    f"one operand), which TensorRT supports from {table.EINSUM_DIAGONAL_SINCE}"
                ]
    return []


def _scatter_nd(c: _Checker, node: onnx.NodeProto) -> list[str]:
    reduction = _s(c.graph.attr(node, "reduction", b"none"))
    return [] if reduction == "none" else [f"ScatterND reduction {reduction!r} is not supported"]


def _dropout(c: _Checker, node: onnx.NodeProto) -> list[str]:
    flag = c.input(node, 2)
    if flag:
        value = c.const(flag)
        values = None if value is None else np.asarray(value).ravel()
        if values is not None and values.size != 1:
            return [f"Dropout training_mode must be one value; {flag!r} has {values.size}"]
        if values is None or bool(values[0]):
            return ["Dropout training_mode must be a constant False"]
    return []


def _lstm(c: _Checker, node: onnx.NodeProto) -> list[str]:
    out = []
    if c.graph.attr(node, "input_forget", 0):
        out.append("LSTM input_forget must be 0")
    if c.graph.attr(node, "layout", 0):
        out.append("LSTM layout must be 0")
    return out


def _extra_outputs(c: _Checker, node: onnx.NodeProto) -> list[str]:
    """The outputs past Y of an op whose importer makes Y only (table.SINGLE_OUTPUT_OPS): a named
    one, used or not, in every version; an unnamed ("") slot before table.UNNAMED_EXTRA_OUTPUTS_SINCE."""
    what = table.SINGLE_OUTPUT_OPS[node.op_type]
    extra = list(node.output[1:])
    named = [o for o in extra if o]
    if named:
        return [f"{node.op_type}: {what} output(s) are not supported; leave {named[0]!r} unnamed"]
    if extra and c.version < table.UNNAMED_EXTRA_OUTPUTS_SINCE:
        return [
            f"{node.op_type}: TensorRT {c.version} counts its {len(extra)} unnamed output slot(s) "
            f"past Y as outputs it does not make ({table.UNNAMED_EXTRA_OUTPUTS_SINCE}+ skips "
            "them); drop the trailing empty names"
        ]
    return []


def _constant(c: _Checker, node: onnx.NodeProto) -> list[str]:
    bad = [
        a.name
        for a in node.attribute
        if a.name in ("sparse_value", "value_string", "value_strings")
    ]
    return [f"Constant {bad[0]} is not supported"] if bad else []


def _grid_sample(c: _Checker, node: onnx.NodeProto) -> list[str]:
    out = []
    rank = c.facts.rank(c.input(node, 0))
    if rank is not None and rank != 4 and not (rank == 5 and c.version >= TrtVersion(11, 2)):
        out.append(f"GridSample on a rank-{rank} input is not supported")
    mode = c.graph.attr(node, "mode")
    if mode is not None and _s(mode) not in table.GRID_SAMPLE_MODES:  # see GRID_SAMPLE_MODES
        fix = {
            "linear": "leave mode out (its default is linear there too)",
            "cubic": "TensorRT's parser takes cubic only as opset 16-19's 'bicubic'",
        }.get(_s(mode), "use 'bilinear', 'nearest' or 'bicubic'")
        out.append(
            f"GridSample mode {_s(mode)!r}: TensorRT's parser knows only 'bilinear', 'nearest' "
            f"and 'bicubic' and samples any other mode nearest-neighbour; {fix}"
        )
    return out


def _dynamic_dims(c: _Checker, name: str, axes: Sequence[int] | None = None) -> list[int]:
    """The axes (all, or `axes`) of `name` whose dimension is symbolic (a dynamic dimension of
    the network); [] where the shape or the dimension is unknown to the shape facts."""
    shape = c.facts.shape(name)
    if shape is None:
        return []
    picked = range(len(shape)) if axes is None else [a % len(shape) for a in axes if shape]
    return [a for a in picked if isinstance(shape[a], str)]


def _eye_like(c: _Checker, node: onnx.NodeProto) -> list[str]:
    """importEyeLike (onnxOpImporters.cpp 10.1 GA): "Eyelike does not work for dynamically
    shaped tensors"; the 10.15 matrix: "`input` must have static dimensions"."""
    if _dynamic_dims(c, c.input(node, 0)):
        return ["EyeLike on an input with dynamic dimensions: TensorRT needs them static"]
    return []


def _hardmax(c: _Checker, node: onnx.NodeProto) -> list[str]:
    """The 10.15 matrix: "`axis` dimension of input must be a build-time constant" (importHardmax,
    10.1 GA, makes a OneHot layer of that depth; below opset 13 it first flattens the input
    to 2-D at `axis`, so the depth is the product of the dimensions from `axis` on)."""
    x = c.input(node, 0)
    old = c.graph.opset_version("") < 13
    axis = int(c.graph.attr(node, "axis", 1 if old else -1))
    rank = c.facts.rank(x)
    axes = [axis] if not old or rank is None else list(range(axis % max(rank, 1), rank))
    if _dynamic_dims(c, x, axes):
        return [f"Hardmax axis {axis} is a dynamic dimension: TensorRT needs it at build time"]
    return []


def _stft(c: _Checker, node: onnx.NodeProto) -> list[str]:
    """The 10.15 matrix: "`frame_step` and `window` must be an initializer. Input must be
    real-valued" (a signal whose last dimension is 1, not 2)."""
    out = [
        f"STFT {what} must be an initializer or a Constant"
        for index, what in ((1, "frame_step"), (2, "window"))
        if c.input(node, index) and c.const(c.input(node, index)) is None
    ]
    shape = c.facts.shape(c.input(node, 0))
    if shape and shape[-1] == 2:
        out.append("STFT of a complex signal (last dimension 2): TensorRT takes real ones only")
    return out


def _attention(c: _Checker, node: onnx.NodeProto) -> list[str]:
    """The 10.15 matrix: "`past_key`, `past_value` and `nonpad_kv_seqlen` inputs are
    unsupported. `present_key`, `present_value` and `qk_matmul_output` outputs are unsupported.
    `qk_matmul_output_mode` and `softcap` attributes are unsupported"; importAttention (the
    10.14-era onnxOpImporters.cpp) refuses past_key / past_value and any node with more than
    one output slot ("TensorRT only supports Attention nodes with one output"), unnamed ones
    included, and reads no input past the fifth."""
    out = [
        f"Attention input {what} is not supported"
        for index, what in ((4, "past_key"), (5, "past_value"), (6, "nonpad_kv_seqlen"))
        if c.input(node, index)
    ]
    if len(node.output) > 1:
        out.append(
            "Attention: TensorRT makes Y only (no present_key, present_value, qk_matmul_output); "
            "give the node one output"
        )
    for attr in ("qk_matmul_output_mode", "softcap"):
        if c.graph.attr(node, attr, 0):
            out.append(f"Attention {attr} is not supported")
    return out


def _tensor_scatter(c: _Checker, node: onnx.NodeProto) -> list[str]:
    """The 10.15 matrix: "`past_cache` and `update` must be 4D. `axis` must be -2"."""
    out = []
    ranks = [c.facts.rank(c.input(node, i)) for i in (0, 1)]
    for what, rank in zip(("past_cache", "update"), ranks, strict=True):
        if rank is not None and rank != 4:
            out.append(f"TensorScatter {what} is rank {rank}: TensorRT needs 4-D")
    axis = int(c.graph.attr(node, "axis", -2))
    if axis not in (-2, 2) or (axis == 2 and ranks[0] not in (None, 4)):
        out.append(f"TensorScatter axis {axis}: TensorRT takes axis -2 only")
    return out


_REDUCE_OPS = [op for op in table.SUPPORTED_OPS_10 if op.startswith("Reduce")]

_ATTRIBUTE_RULES: dict[str, Any] = {
    "Resize": _resize,
    "Upsample": _upsample,
    "Pad": _pad,
    "Slice": _slice,
    "MaxPool": _pool,
    "AveragePool": _pool,
    "LpPool": _pool,
    "TopK": _topk,
    "Squeeze": _constant_axes(1),
    "Unsqueeze": _constant_axes(1),
    "CumSum": _constant_axes(1, "axis"),
    "OneHot": _constant_axes(1, "depth"),
    "ScatterND": _scatter_nd,
    "BatchNormalization": _batch_norm,
    "DeformConv": _deform_conv,
    "Einsum": _einsum,
    "Dropout": _dropout,
    "LSTM": _lstm,
    "Constant": _constant,
    "GridSample": _grid_sample,
    "EyeLike": _eye_like,
    "Hardmax": _hardmax,
    "STFT": _stft,
    "Attention": _attention,
    "TensorScatter": _tensor_scatter,
    **{op: _constant_axes(1) for op in _REDUCE_OPS},
}


def _onnx_misfit(node: onnx.NodeProto) -> str | None:
    """What of `node` (of another domain) no version of the ONNX op of its type has: an
    attribute (or one of another type), more inputs or outputs than it takes, fewer inputs than
    it needs; None where it fits one of them, or ONNX has no such op. The parser's importer reads
    the ONNX op's inputs and attributes by position and name: com.microsoft Range without its
    optional delta fails (`inputs.at(2)`, onnxOpImporters.cpp 10.1 GA), an NCHWc Conv's
    `activation` or a fourth input is dropped in silence."""
    signature = _onnx_signature(node.op_type)
    if signature is None:
        return None
    attributes, least, most, outputs = signature
    onnx_op = f"ONNX {node.op_type}"
    for a in node.attribute:
        if a.name not in attributes:
            return f"{onnx_op} has no attribute {a.name!r}"
        kind = onnx.AttributeProto.AttributeType.Name(a.type)
        if kind not in attributes[a.name]:
            kinds = " or ".join(sorted(attributes[a.name]))
            return f"its attribute {a.name!r} is {kind}, {onnx_op}'s {kinds}"
    given = _up_to_last_named(node.input)
    if given > most:
        return f"it has {given} inputs and {onnx_op} takes at most {most}"
    if given < least:
        return f"it has {given} inputs and {onnx_op} needs at least {least}"
    written = _up_to_last_named(node.output)
    if written > outputs:
        return f"it has {written} outputs and {onnx_op} at most {outputs}"
    return None


def _mistyped_attribute(node: onnx.NodeProto) -> str | None:
    """What attribute of `node` has a type no version of the ONNX op of its type gives it (a
    STRING `axis`, a FLOAT `sorted`), else None. The rules read each attribute as its ONNX type:
    `int(b'a')` was a ValueError, a traceback from `graphopt check`. Attributes ONNX's op has not
    are left to the other rules (`_onnx_misfit` for another domain's op)."""
    signature = _onnx_signature(node.op_type)
    if signature is None:
        return None
    attributes = signature[0]
    for a in node.attribute:
        kinds = attributes.get(a.name)
        if kinds is None:
            continue
        kind = onnx.AttributeProto.AttributeType.Name(a.type)
        if kind not in kinds:
            return f"attribute {a.name!r} is {kind}, ONNX {node.op_type}'s {' or '.join(sorted(kinds))}"
    return None


def _undefined_type_attribute(node: onnx.NodeProto) -> str | None:
    """What type-naming INT attribute (`model_io.TYPE_ATTRIBUTES`) of ONNX op `node` names an element
    type ONNX does not define (Cast to=99), else None: onnx's inference ("Attribute to does
    not specify a valid type") and onnxruntime refuse the model."""
    if _onnx_signature(node.op_type) is None:
        return None
    for a in node.attribute:
        if (
            a.name in TYPE_ATTRIBUTES
            and a.type == onnx.AttributeProto.INT
            and a.i not in ELEMENT_TYPES
        ):
            return f"attribute {a.name!r} names element type {a.i}"
    return None


def _constant_of_shape_misfit(c: _Checker, node: onnx.NodeProto) -> str | None:
    """What of ConstantOfShape `node` ONNX's op does not allow, else None: a `value` of other
    than one element and one dim (onnxruntime: "The value attribute of ConstantOfShape must be
    a single-element tensor", "Attribute expected to have a one-dim tensor"), or a constant shape with a negative size ("shape input tensor
    must have non-negative elements"). Both refused by onnxruntime; check said "0 errors"."""
    if node.op_type != "ConstantOfShape" or node.domain not in ("", "ai.onnx"):
        return None
    for a in node.attribute:
        if a.name == "value" and a.type == onnx.AttributeProto.TENSOR and a.t.dims != [1]:
            return (
                f"attribute 'value' has shape [{', '.join(map(str, a.t.dims))}], where ONNX's "
                "ConstantOfShape takes a tensor of one element and one dim (shape [1])"
            )
    shape = c.const(c.input(node, 0))
    if shape is not None and shape.dtype.kind in "iu" and (shape < 0).any():
        sizes = ", ".join(map(str, shape.reshape(-1).tolist()))
        return f"its shape {c.input(node, 0)!r} is [{sizes}], a negative size"
    return None


def _undefined_tensor_attribute(node: onnx.NodeProto) -> str | None:
    """Which tensor attribute of ONNX op `node` (Constant's value, ConstantOfShape's, sparse
    or not) holds a tensor of an element type ONNX does not define (99) or UNDEFINED, else
    None: onnx's inference ("Invalid tensor data type 99") and onnxruntime refuse the model."""
    if _onnx_signature(node.op_type) is None:
        return None
    kinds = onnx.AttributeProto
    for a in node.attribute:
        tensors = {
            kinds.TENSOR: [a.t],
            kinds.TENSORS: list(a.tensors),
            kinds.SPARSE_TENSOR: [a.sparse_tensor.values],
            kinds.SPARSE_TENSORS: [s.values for s in a.sparse_tensors],
        }.get(a.type, [])
        for t in tensors:
            if not _tensor_type_defined(t.data_type):
                return (
                    f"attribute {a.name!r} holds a tensor of {_undefined_tensor_type(t.data_type)}"
                )
    return None


def _tensor_type_defined(elem: int) -> bool:
    """Whether a stored tensor's element type is one ONNX defines, UNDEFINED (0) not included."""
    return elem != onnx.TensorProto.UNDEFINED and elem in ELEMENT_TYPES


def _undefined_tensor_type(elem: int) -> str:
    """'element type 99, which ONNX does not define (...)', or what UNDEFINED (0) is, with who
    refuses it."""
    if elem == onnx.TensorProto.UNDEFINED:
        return (
            "element type 0 (UNDEFINED), which a stored tensor may not have (onnx.checker "
            "refuses it)"
        )
    return f"element type {elem}, which ONNX does not define (onnxruntime refuses it)"


def _numeric(value: np.ndarray) -> bool:
    """Whether a constant's values are numbers (a STRING initializer's are Python strings)."""
    return value.dtype.kind not in "OSU"


def _up_to_last_named(names: Sequence[str]) -> int:
    """How many inputs or outputs a node has up to its last named one (trailing '' are
    omitted optionals)."""
    count = len(names)
    while count and not names[count - 1]:
        count -= 1
    return count


@functools.cache
def _onnx_signature(op_type: str) -> tuple[dict[str, set[str]], int, int, int] | None:
    """What any version of ONNX `op_type` accepts, over all its versions: attribute names with
    their types, the fewest inputs one needs, the most inputs and outputs one takes; None where
    ONNX has no such op."""
    schemas = _onnx_schemas().get(op_type)
    if not schemas:
        return None
    attributes: dict[str, set[str]] = {}
    for s in schemas:
        for name, attribute in s.attributes.items():
            kind = str(attribute.type).rsplit(".", 1)[-1]  # "AttrType.INT" (the stub has no .name)
            attributes.setdefault(name, set()).add(kind)
    least = min(s.min_input for s in schemas)
    return attributes, least, max(s.max_input for s in schemas), max(s.max_output for s in schemas)


@functools.cache
def _onnx_schemas() -> dict[str, list[onnx.defs.OpSchema]]:
    """Every version of every ONNX op's schema (the default domain), by op type."""
    by_type: dict[str, list[onnx.defs.OpSchema]] = {}
    for schema in onnx.defs.get_all_schemas_with_history():
        if schema.domain in table.STANDARD_DOMAINS:
            by_type.setdefault(schema.name, []).append(schema)
    return by_type


def _body_readers(node: onnx.NodeProto, name: str) -> list[onnx.NodeProto]:
    """The nodes in `node`'s bodies, at any depth, that read `name` from outside, and `node`
    itself where a body hands `name` out as its output."""
    found: list[onnx.NodeProto] = []
    for body in subgraphs(node):
        if any(o.name == name for o in body.output):
            found.append(node)
        for inner in body.node:
            if name in inner.input:
                found.append(inner)
            found.extend(_body_readers(inner, name))
    return found


def _local_function(
    node: onnx.NodeProto,
    functions: Mapping[tuple[str, str], onnx.FunctionProto],
    version: TrtVersion,
) -> onnx.FunctionProto | None:
    """The model-local function TensorRT `version`'s parser imports `node` as (an op of another
    domain than ONNX's, named by a function of the model), else None: not where the op type has
    a built-in importer, which the parser takes first (`table.has_builtin_importer`)."""
    if node.domain in table.STANDARD_DOMAINS or table.has_builtin_importer(node.op_type, version):
        return None
    return functions.get((node.domain, node.op_type))


def imports_qdq(model: onnx.ModelProto, version: int | str | TrtVersion = 10) -> bool:
    """Whether TensorRT `version`'s parser imports a QuantizeLinear or DequantizeLinear of
    `model` (explicit quantization): in the main graph, in an If/Loop/Scan body at any depth
    (the parser imports each body with the same importers), or in the body of a model-local
    function a node there calls (the parser inlines each call, calls inside calls too)."""
    ver = parse_version(version)
    functions = {(f.domain, f.name): f for f in model.functions}
    seen: set[tuple[str, str]] = set()  # functions looked into (a call of itself ends there)

    def holds(nodes: Sequence[onnx.NodeProto]) -> bool:
        for node in nodes:
            if node.op_type in QDQ_OPS and (
                node.domain in table.STANDARD_DOMAINS
                or table.has_builtin_importer(node.op_type, ver)
            ):
                return True
            if any(holds(body.node) for body in subgraphs(node)):
                return True
            f = _local_function(node, functions, ver) if functions else None
            if f is not None and (f.domain, f.name) not in seen:
                seen.add((f.domain, f.name))
                if holds(f.node):
                    return True
        return False

    return holds(model.graph.node)


def _calls_functions(model: onnx.ModelProto, version: TrtVersion) -> bool:
    """Whether the main graph calls a model-local function (`_Checker._inline_functions`)."""
    functions = {(f.domain, f.name): f for f in model.functions}
    return bool(functions) and any(_local_function(n, functions, version) for n in model.graph.node)


def _label(node: onnx.NodeProto, name: str | bytes, distinct: bool) -> str:
    """`node` as a scope names it: `If 'name'`, and by its first output too where its name
    (`name`, as the model gives it) does not tell it apart (`distinct`) or it has none."""
    text = as_text(name)
    what = f"{node.op_type} {text!r}" if text else f"unnamed {node.op_type}"
    if distinct and text:
        return what
    output = next((o for o in node.output if o), "")
    return f"{what} writing {output!r}" if output else what


def _value_names(graph: onnx.GraphProto) -> set[str]:
    """Every value name `graph` and its bodies define or read."""
    names = {v.name for v in itertools.chain(graph.input, graph.output, graph.value_info)}
    names.update(t.name for t in graph.initializer)
    for node in graph.node:
        names.update(node.input[:])
        names.update(node.output[:])
        for sub in subgraphs(node):
            names |= _value_names(sub)
    names.discard("")
    return names


_GRAPH_TYPES = (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)


def _bind_attributes(node: onnx.NodeProto, attrs: Mapping[str, onnx.AttributeProto]) -> None:
    """Replace `node`'s references to a function's attributes (`ref_attr_name`, also in the
    bodies of its nodes) by the caller's attribute or the function's default; a reference to
    one neither gives is dropped (the attribute is absent)."""
    if not any(a.ref_attr_name or a.type in _GRAPH_TYPES for a in node.attribute):
        return
    kept = []
    for a in node.attribute:
        if a.ref_attr_name:
            given = attrs.get(a.ref_attr_name)
            if given is None:
                continue
            bound = onnx.AttributeProto()
            bound.CopyFrom(given)
            bound.name = a.name
            kept.append(bound)
            continue
        for g in [a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs):
            for inner in g.node:
                _bind_attributes(inner, attrs)
        kept.append(a)
    copies = []
    for a in kept:
        c = onnx.AttributeProto()
        c.CopyFrom(a)
        copies.append(c)
    del node.attribute[:]
    node.attribute.extend(copies)


def _rename_values(node: onnx.NodeProto, names: Mapping[str, str]) -> None:
    """Rename `node`'s inputs and outputs, and the names its bodies read, by `names`."""
    node.input[:] = [names.get(i, i) if i else i for i in node.input]
    node.output[:] = [names.get(o, o) if o else o for o in node.output]
    for sub in subgraphs(node):
        for inner in sub.node:
            _rename_values(inner, names)
        for value in itertools.chain(sub.input, sub.output):
            value.name = names.get(value.name, value.name)


def _reads(body: onnx.GraphProto) -> set[str]:
    """The names `body` reads: its nodes' inputs, its nested bodies' outer reads, its outputs."""
    read = {o.name for o in body.output}
    for node in body.node:
        read.update(node.input[:])
        for sub in subgraphs(node):
            read |= outer_references(sub)
    read.discard("")
    return read


def _s(value: Any) -> str:
    """A string attribute's text; bytes that are not UTF-8 (ONNX's checker lets them through)
    escaped, so they are reported as a value TensorRT does not take, not raised."""
    return value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else str(value)


# domains of onnxruntime's own ops (com.microsoft is one too): what an ort-* pipeline writes
_ORT_DOMAIN_PREFIXES = ("com.microsoft.", "com.ms.")

# the kinds of type a value can have besides a tensor (TypeProto's `value`), as said in findings
_NOT_TENSORS = {
    "sequence_type": "a sequence",
    "optional_type": "an optional",
    "map_type": "a map",
    "sparse_tensor_type": "a sparse tensor",
}


def _dtype_name(elem_type: int | None) -> str:
    if not elem_type:
        return ""
    try:
        return onnx.TensorProto.DataType.Name(elem_type)
    except ValueError:
        return str(elem_type)


def summary(findings: Sequence[Finding]) -> str:
    n_err = sum(f.severity == "error" for f in findings)
    n_warn = len(findings) - n_err
    return f"{n_err} error{'s' * (n_err != 1)}, {n_warn} warning{'s' * (n_warn != 1)}"


__all__ = ["Finding", "check_tensorrt", "errors", "summary"]


def _weight_axes(
    graph: Graph, consumer: onnx.NodeProto, weight: str, rank: int | None
) -> tuple[int, frozenset[int]] | None:
    """(the per-channel axis TensorRT takes, axes only warned of) for `weight` where `consumer`
    reads it as the weight (input 1) of a linear op, else None: through a Transpose, Reshape or
    Cast the axis is not judged (pytorch-quantization exports DQ(axis 0) → Transpose → MatMul).

    Conv: K of KCRS, axis 0 (NvInfer.h, IQuantizeLayer: "a 4D KCRS weights input and K
    (dimension 0) as the quantization axis"; the parser's default). Gemm/MatMul: the output
    columns, whose scales factor out of the integer product. ConvTranspose ([C_in, C_out/g, ...]):
    axis 0, the input channels: NVIDIA said so (NVIDIA/TensorRT#2380, 2022-12-02: "the kernels
    assume per-input-channel quant for ConvTranspose ... We don't support per-output-channel
    quant for ConvTranspose"; #1694: axis 1 gave wrong results; #1519: it failed to build) and
    ModelOpt exports axis 0 (modelopt/torch/quantization/tensor_quant.py,
    QUANT_DESC_8BIT_CONVTRANSPOSE*_WEIGHT_PER_CHANNEL); but the last pytorch-quantization sync
    (NVIDIA/TensorRT 2332a719, 10.2 GA) set its default back to axis 1 without a word. No 10.x or
    11.x text settles it, so axis 1 is a warning and axis 0 fine."""
    op = consumer.op_type
    if len(consumer.input) < 2 or consumer.input[1] != weight:
        return None
    if op == "Conv":
        return 0, frozenset()
    if op == "ConvTranspose":
        return 0, frozenset({1})
    if op == "Gemm":
        return (0 if graph.attr(consumer, "transB", 0) else 1), frozenset()
    if op == "MatMul" and rank is not None and rank >= 2:
        return rank - 1, frozenset()  # B is [..., K, N]
    return None
