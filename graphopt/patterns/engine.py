"""The pattern matcher and rewriter: finds a rule's target in a `Graph` and replaces it.

Matching starts at candidate anchor nodes (the target's last node, looked up in an index by
op type) and walks producers backwards with backtracking: commutative operands are tried in
both orders, constants match by value within a tolerance, optional inputs may be absent, and a
variable used twice must be the same tensor. A structural match then passes the preconditions
every rule shares (intermediates have no consumer outside the match and are not graph outputs,
size-one constants cannot broadcast a result to a higher rank, every replacement op exists at the
model's opset) and the rule's own named checks; only then is anything computed or mutated.

`Matcher` is the generic matcher, used by `--explain` because it says why a partial match
failed; outside it, the runner uses each target's compiled matcher (`graphopt.patterns.compiled`),
which finds the same matches in the same order.

What it does not do: choose which rules run (see `graphopt.passes.fuse_patterns`), or know any
op's meaning beyond commutativity and rank (checks and computations carry that).
"""

from __future__ import annotations

import itertools
import logging
import math
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

from graphopt.ir import Graph
from graphopt.patterns.rules import Absent, AttrRef, Literal, Pattern, PatternNode, Rule, Var

log = logging.getLogger("graphopt.patterns")

COMMUTATIVE = frozenset(
    {"Add", "Mul", "Max", "Min", "Sum", "Mean", "And", "Or", "Xor", "Equal", "BitwiseAnd",
     "BitwiseOr", "BitwiseXor"}
)  # fmt: skip

# Ops whose output has the rank of their first input (used to prove constants don't broadcast).
RANK_OF_FIRST_INPUT = frozenset(
    {"Relu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "LeakyRelu", "Elu", "Selu", "Clip",
     "Exp", "Log", "Sqrt", "Abs", "Neg", "Erf", "Softplus", "Mish", "Gelu", "Swish", "Identity",
     "BatchNormalization", "InstanceNormalization", "LayerNormalization", "Softmax", "Cast",
     "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "LRN", "Dropout", "Resize",
     "Upsample", "Reciprocal", "Floor", "Ceil", "Round", "Sign", "Tan", "Sin", "Cos",
     "ThresholdedRelu", "Softsign", "Celu", "QuickGelu", "FusedConv", "LogSoftmax", "Hardmax",
     # data movement that keeps the rank (else a wrong value_info's rank was taken for them)
     "Transpose", "Slice", "Pad", "Tile", "DepthToSpace", "SpaceToDepth"}
)  # fmt: skip
# Inputs the spec makes scalars (Clip's min and max, "tensor(T)" of empty shape); onnxruntime
# also takes shape [1] and refuses any other shape when the node runs: a rewrite that reads one
# of rank 2 or more as a number would turn a model that fails into one that runs.
SCALAR_INPUTS: dict[str, tuple[int, ...]] = {"Clip": (1, 2)}
# Ops whose output has the largest rank of their inputs. PRelu too: the spec broadcasts its
# slope one way (the output is x's shape), but neither onnx's checker nor onnxruntime holds it to
# that, and onnxruntime broadcasts both ways (x[2, 3], slope [1, 1, 1]: [1, 2, 3]).
RANK_OF_BROADCAST = frozenset(
    {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Where", "PRelu"}
)
_REDUCTIONS = frozenset(
    {"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
     "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare", "ArgMax", "ArgMin"}
)  # fmt: skip


_MISSING = object()


# What a run reads of a node: (node, op_type, domain, inputs, outputs); see `Facts.io`.
NodeIO = tuple[onnx.NodeProto, str, str, tuple[str, ...], tuple[str, ...]]


class Refuse(Exception):
    """Raised by a check or computation that refuses a match; the message is the reason."""


# ---------------------------------------------------------------------------- facts


class Facts:
    """Per-run caches over a graph: constant values, ranks, schema defaults."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self._values: dict[str, np.ndarray | None] = {}
        self._scalars: dict[str, float | None] = {}
        self._ranks: dict[str, int | None] = {}
        self._metas: dict[str, tuple[np.dtype | None, int] | None] = {}
        self._io: dict[int, NodeIO] = {}
        self._declared: dict[str, int] | None = None
        # (domain, name) of the model-local functions: a call of one is no op the rank rules
        # know, whatever it is named (a com.microsoft "Concat" that unsqueezes)
        self._functions = frozenset((f.domain, f.name) for f in graph.model.functions)
        # initializer → (its TensorProto, the little-endian C-order array its bytes become):
        # computed constants written over spare ones, held until `write_held` writes them into
        # the graph (a weight folded twice is written once; a fold that reads it again reads
        # the array, not bytes copied back out of the protobuf)
        self._held: dict[str, tuple[onnx.TensorProto, np.ndarray]] = {}

    def hold(self, tensor: str, proto: onnx.TensorProto, value: np.ndarray) -> None:
        """Initializer `tensor` (`proto`, of `value`'s dtype and shape) holds `value` from now
        on: what this run reads of it, and what `write_held` writes into it. `value` must be
        C-contiguous and little-endian; what reads it here gets a read-only view."""
        self.forget(tensor)
        view = value.view()
        view.flags.writeable = False
        self._values[tensor] = view
        self._held[tensor] = (proto, value)

    def write_held(self) -> None:
        """Write every held value (`hold`) into its initializer, when that is still the tensor
        it was held for (one a rewrite dropped since is not written)."""
        held = self._held
        if not held:
            return
        self._held = {}
        graph = self.graph
        initializers = graph.initializers
        for tensor, (proto, value) in held.items():
            if initializers.get(tensor) is proto:
                graph.write_raw_data(tensor, value.tobytes())

    def value(self, tensor: str) -> np.ndarray | None:
        """`Graph.constant(tensor)`, read once per run (raw float/int initializers directly)."""
        values = self._values
        if tensor in values:
            return values[tensor]
        raw = self._raw(tensor)
        value: np.ndarray | None
        if raw is not None:
            init, dtype = raw
            value = np.frombuffer(init.raw_data, dtype).reshape(init.dims[:])
        else:
            value = self.graph.constant(tensor)
        values[tensor] = value
        return value

    def _raw(self, tensor: str) -> tuple[onnx.TensorProto, np.dtype] | None:
        """(initializer, native dtype) when constant `tensor` is an initializer whose value is
        its own little-endian `raw_data` (no external data, no segment, no graph input)."""
        graph = self.graph
        init = graph.initializers.get(tensor)
        if init is None:
            return None
        dtype = _NATIVE_RAW.get(init.data_type)
        if (
            dtype is None
            or not init.HasField("raw_data")
            or init.data_location == onnx.TensorProto.EXTERNAL
            or init.HasField("segment")
            or graph.is_graph_input(tensor)
        ):
            return None
        return init, dtype

    def layout(self, tensor: str) -> np.ndarray | None:
        """An array with the dtype and shape of constant `tensor` whose values are not its
        values (zeros, read-only): for computations that read only those. Where reading the
        dtype and shape would not be cheaper, the value itself."""
        if tensor in self._values:
            return self._values[tensor]
        raw = self._raw(tensor)
        if raw is not None:  # the cases `value` reads with one frombuffer; no bytes copied here
            init, dtype = raw
            shape = tuple(init.dims[:])
            # every element is the one zero of `_ZEROS` (read-only bytes: a read-only array);
            # ~1 µs where np.broadcast_to costs ~5
            return np.ndarray(shape, dtype, buffer=_ZEROS, strides=(0,) * len(shape))
        return self.value(tensor)

    def scalar(self, tensor: str) -> float | None:
        """The value of a one-element floating-point constant as a float (None otherwise)."""
        scalars = self._scalars
        if tensor in scalars:
            return scalars[tensor]
        value = self.value(tensor)
        result = None
        if value is not None and value.size == 1 and value.dtype.kind == "f":
            result = float(value.reshape(()).astype(np.float64))
        scalars[tensor] = result
        return result

    def dtype(self, tensor: str) -> np.dtype | None:
        """The numpy dtype of a constant tensor, read from its proto (no conversion)."""
        meta = self._constant_meta(tensor)
        return None if meta is None else meta[0]

    def constant_rank(self, tensor: str) -> int | None:
        """The rank of a constant tensor, read from its proto (no conversion)."""
        meta = self._constant_meta(tensor)
        return None if meta is None else meta[1]

    def _constant_meta(self, tensor: str) -> tuple[np.dtype | None, int] | None:
        """(dtype, rank) of a constant tensor from its initializer or Constant node; None if
        `tensor` is not a constant (or is a Constant whose payload is not a plain tensor).
        Cached: checks and ranks ask for the same weights again (float_constant, then the
        rank of a Conv output)."""
        metas = self._metas
        if tensor in metas:
            return metas[tensor]
        meta = metas[tensor] = self._read_constant_meta(tensor)
        return meta

    def _read_constant_meta(self, tensor: str) -> tuple[np.dtype | None, int] | None:
        graph = self.graph
        init = graph.initializers.get(tensor)
        if init is not None:
            if graph.is_graph_input(tensor):
                return None
            return _np_dtype(init.data_type), len(init.dims)
        node = graph.producer_node(tensor)
        if node is None or node.op_type != "Constant" or node.domain not in ("", "ai.onnx"):
            return None
        for a in node.attribute:
            if a.name == "value":
                return _np_dtype(a.t.data_type), len(a.t.dims)
            if a.name in _CONSTANT_SCALAR_ATTRS:
                return _CONSTANT_SCALAR_ATTRS[a.name]
        return None

    def io(self, node: onnx.NodeProto, name: str | None = None) -> NodeIO:
        """(node, op_type, domain, inputs, outputs) of `node`, read from the protobuf once per
        run: a run only adds and removes nodes, it never edits one. (Matching, the
        preconditions, ranks and the edit read the same nodes: a cached read costs ~0.1 µs,
        the protobuf's ~1 µs.) `name`: given only by callers that took `node` from the graph
        as `graph.nodes[name]` (its name is then not read from the protobuf)."""
        entry = self._io.get(id(node))
        if entry is None or entry[0] is not node:  # the entry holds the node: ids stay unique
            graph = self.graph
            if name is None:
                name = node.name
                in_graph = graph.nodes.get(name) is node
            else:
                in_graph = True
            if in_graph:  # the graph's index has its wiring
                inputs, outputs = graph.inputs_of(name), graph.outputs_of(name)
            else:
                inputs, outputs = tuple(node.input[:]), tuple(node.output[:])
            entry = (node, node.op_type, node.domain, inputs, outputs)
            self._io[id(node)] = entry
        return entry

    def op_of(self, node: onnx.NodeProto) -> tuple[str, str]:
        """(op_type, domain) of `node`, without reading (or caching) its inputs and outputs:
        for the many nodes that are only looked at to be rejected by op."""
        entry = self._io.get(id(node))
        if entry is not None and entry[0] is node:
            return entry[1], entry[2]
        return node.op_type, node.domain

    def forget(self, tensor: str) -> None:
        self._held.pop(tensor, None)
        self._values.pop(tensor, None)
        self._scalars.pop(tensor, None)
        self._ranks.pop(tensor, None)
        self._metas.pop(tensor, None)

    def declared_rank(self, tensor: str) -> int | None:
        return self._declared_ranks().get(tensor)

    def _declared_ranks(self) -> dict[str, int]:
        if self._declared is None:
            g = self.graph.proto
            self._declared = {}
            for vi in itertools.chain(g.input, g.output, g.value_info):
                tt = vi.type.tensor_type
                if vi.type.HasField("tensor_type") and tt.HasField("shape"):
                    self._declared[vi.name] = len(tt.shape.dim)
        return self._declared

    def rank(self, tensor: str, depth: int = 0) -> int | None:
        """The rank of `tensor` when it can be proven cheaply; None otherwise: a graph input's
        declared rank (runtimes refuse a feed of another), else what the nodes prove. Never a
        value_info's or a graph output's: no runtime checks those, and a stale one (a = Sinh(x)
        of a rank-3 x declared rank 2) made MatMul(a, W) + c a Gemm onnxruntime cannot run; an
        op the nodes say nothing of leaves the rank unknown. Cached per run."""
        ranks = self._ranks
        if tensor in ranks:
            return ranks[tensor]
        declared = (self._declared if self._declared is not None else self._declared_ranks()).get(
            tensor
        )
        r: int | None = declared
        if declared is None or not self.graph.is_graph_input(tensor):
            r = self._proven_rank(tensor, depth)
        ranks[tensor] = r
        return r

    def _proven_rank(self, tensor: str, depth: int) -> int | None:
        graph = self.graph
        init = graph.initializers.get(tensor)
        if init is not None:
            return None if graph.is_graph_input(tensor) else len(init.dims)
        producer = graph.producer.get(tensor)
        if producer is None:
            return None
        _, op, domain, inputs, outputs = self.io(graph.nodes[producer], producer)
        if op == "Constant":
            return self.constant_rank(tensor)
        if depth > 200 or domain not in ("", "ai.onnx", "com.microsoft"):
            return None
        if self._functions and (domain, op) in self._functions:
            return None
        if outputs[0] != tensor:
            return None
        ranks = self._ranks
        if op in ("Conv", "ConvTranspose", "FusedConv") and len(inputs) > 1:
            w = self.constant_rank(inputs[1])
            if w is not None:
                return w
            return self.rank(inputs[0], depth + 1)
        if op in RANK_OF_FIRST_INPUT:
            first = inputs[0]
            return ranks[first] if first in ranks else self.rank(first, depth + 1)
        if op in RANK_OF_BROADCAST:
            best: int | None = -1
            for i in inputs:
                if not i:
                    continue
                r = ranks[i] if i in ranks else self.rank(i, depth + 1)
                if r is None:
                    best = None  # every input is still ranked (and cached), as before
                elif best is not None:
                    best = max(best, r)
            return best if best != -1 else None
        if op in ("Gemm", "Flatten"):
            return 2
        if op == "Reshape" and len(inputs) > 1:  # the output has one dim per target element
            return self._length(inputs[1], depth + 1)  # Reshape(x, Shape(y)): y's rank
        if op == "Shape" and domain in ("", "ai.onnx"):
            return 1
        if op == "Expand" and domain in ("", "ai.onnx") and len(inputs) > 1:
            # broadcast of the input to the target: the larger of the two ranks
            target, source = self._length(inputs[1], depth + 1), self.rank(inputs[0], depth + 1)
            return None if target is None or source is None else max(target, source)
        if op == "Concat":
            return self.rank(inputs[0], depth + 1)
        if domain in ("", "ai.onnx") and op in ("MatMul", "Gather", "Squeeze", "Unsqueeze"):
            return self._indexing_rank(op, graph.nodes[producer], inputs, depth)
        kept = op in _REDUCTIONS and graph.attr(graph.nodes[producer], "keepdims", 1)
        if kept and domain in ("", "ai.onnx"):  # keepdims (the default) keeps the rank
            return self.rank(inputs[0], depth + 1)
        return None

    def _length(self, tensor: str, depth: int) -> int | None:
        """The element count of a 1-D tensor of dims (a Reshape target), by its nodes: a
        constant, Shape(x) of an x of proven rank, and an integer Cast, a Concat, a Gather by
        constant indices, a Slice by constant bounds or an Unsqueeze of a 0-d tensor of such
        (paddle2onnx's flatten: Concat(Slice(Shape(x), 0:1), [-1]))."""
        value = self.value(tensor)
        if value is not None:
            return value.size if value.ndim == 1 else None
        graph = self.graph
        producer = graph.producer.get(tensor)
        if producer is None or depth > 200:
            return None
        node = graph.nodes[producer]
        _, op, domain, inputs, outputs = self.io(node, producer)
        if domain not in ("", "ai.onnx") or not inputs or not inputs[0] or outputs[0] != tensor:
            return None
        if op == "Shape":
            rank = self.rank(inputs[0], depth + 1)
            if rank is None:
                return None
            return len(range(rank)[graph.attr(node, "start", 0) : graph.attr(node, "end")])
        if op == "Cast":
            return self._length(inputs[0], depth + 1)
        if op == "Unsqueeze":  # of a 0-d tensor (Gather(Shape(x), 0)): one element
            return 1 if self.rank(tensor, depth + 1) == 1 else None
        if op == "Concat":
            if graph.attr(node, "axis") not in (0, -1):
                return None
            total = 0
            for t in inputs:
                n = self._length(t, depth + 1) if t else None
                if n is None:
                    return None
                total += n
            return total
        length = self._length(inputs[0], depth + 1)
        if length is None:
            return None
        if op == "Gather" and len(inputs) == 2 and graph.attr(node, "axis", 0) in (0, -1):
            indices = self.value(inputs[1])
            return indices.size if indices is not None and indices.ndim == 1 else None
        if op == "Slice":
            from graphopt.analysis.fold_kernels import (
                Unsupported,
                node_slice_parameters,
                onnx_slice,
            )
            from graphopt.analysis.shapes import disputed_slice_end

            params = node_slice_parameters(node, self.value, graph.opset_version(""))
            if params is None or len(params[0]) != 1 or params[2][0] not in (0, -1):
                return None
            starts, ends, _, steps = params
            if disputed_slice_end(ends[0], steps[0]):
                return None  # onnxruntime's length and ONNX's differ
            try:
                return len(range(length)[onnx_slice(length, starts[0], ends[0], steps[0])])
            except Unsupported:
                return None
        return None

    def _indexing_rank(
        self, op: str, node: onnx.NodeProto, inputs: tuple[str, ...], depth: int
    ) -> int | None:
        """The output rank of MatMul (numpy's: a 1-D operand loses its axis), Gather (data's
        rank + indices' − 1), and Squeeze / Unsqueeze with their axes given."""
        first = self.rank(inputs[0], depth + 1) if inputs and inputs[0] else None
        if first is None:
            return None
        if op in ("MatMul", "Gather"):
            second = self.rank(inputs[1], depth + 1) if len(inputs) > 1 and inputs[1] else None
            if second is None or first < 1 or (op == "MatMul" and second < 1):
                return None
            if op == "Gather":
                return first + second - 1
            return max(first, second) - (min(first, second) == 1)
        if len(inputs) > 1 and inputs[1]:
            axes = self.value(inputs[1])
        else:
            axes = self.graph.attr(node, "axes")
        count = None if axes is None else np.asarray(axes).size
        if not count:  # Squeeze without axes removes the dims of size 1, however many
            return None
        return first + count if op == "Unsqueeze" else first - count


# Raw little-endian data types read with one frombuffer on a little-endian machine (what
# `Graph.constant` returns for them, without its dispatch); other cases go through it.
_NATIVE_RAW: dict[int, np.dtype] = (
    {
        onnx.TensorProto.FLOAT: np.dtype(np.float32),
        onnx.TensorProto.DOUBLE: np.dtype(np.float64),
        onnx.TensorProto.FLOAT16: np.dtype(np.float16),
        onnx.TensorProto.INT64: np.dtype(np.int64),
        onnx.TensorProto.INT32: np.dtype(np.int32),
    }
    if sys.byteorder == "little"
    else {}
)

_ZEROS = bytes(16)  # one zero element of any dtype in _NATIVE_RAW (`Facts.layout`)

_NP_DTYPES: dict[int, np.dtype | None] = {}

# Constant's list/scalar attributes: (dtype, rank) of the tensor they make.
_CONSTANT_SCALAR_ATTRS: dict[str, tuple[np.dtype, int]] = {
    "value_float": (np.dtype(np.float32), 0),
    "value_floats": (np.dtype(np.float32), 1),
    "value_int": (np.dtype(np.int64), 0),
    "value_ints": (np.dtype(np.int64), 1),
}


def _np_dtype(data_type: int) -> np.dtype | None:
    if data_type not in _NP_DTYPES:
        try:
            _NP_DTYPES[data_type] = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(data_type))
        except (KeyError, TypeError, ValueError):
            _NP_DTYPES[data_type] = None
    return _NP_DTYPES[data_type]


_SCHEMA_DEFAULTS: dict[tuple[str, str, int, str], Any] = {}


def schema_default(op: str, domain: str, version: int, attr: str) -> Any:
    """The default value of an attribute in the op's schema at `version` (None if none)."""
    key = (op, domain, version, attr)
    if key not in _SCHEMA_DEFAULTS:
        value = None
        try:
            schema = onnx.defs.get_schema(op, version, domain)
            a = schema.attributes.get(attr)
            if a is not None and a.default_value.name:
                value = _plain(onnx.helper.get_attribute_value(a.default_value))
        except onnx.defs.SchemaError:
            value = None
        _SCHEMA_DEFAULTS[key] = value
    return _SCHEMA_DEFAULTS[key]


_AVAILABLE: dict[tuple[str, int], bool] = {}

# First default-domain opset of ops rules commonly emit, so that a run need not load ONNX's
# schema registry (~15 ms the first time in a process). Other ops ask `onnx.defs`.
FIRST_OPSET: dict[str, int] = {
    "Add": 1, "Sub": 1, "Mul": 1, "Div": 1, "Conv": 1, "ConvTranspose": 1, "Gemm": 1,
    "MatMul": 1, "Relu": 1, "Sigmoid": 1, "Tanh": 1, "Softplus": 1, "HardSigmoid": 1,
    "LeakyRelu": 1, "Clip": 1, "HardSwish": 14, "LayerNormalization": 17, "Mish": 18,
    "Gelu": 20, "Swish": 24,
}  # fmt: skip


def op_available(op: str, domain: str, version: int) -> bool:
    """Whether `op` exists at opset `version` of `domain` (non-ONNX domains: assumed yes)."""
    if domain not in ("", "ai.onnx"):
        return True
    if op in FIRST_OPSET:
        return version >= FIRST_OPSET[op]
    key = (op, version)
    if key not in _AVAILABLE:
        _AVAILABLE[key] = bool(onnx.defs.has(op, max_inclusive_version=version, domain=""))
    return _AVAILABLE[key]


def first_opset(op: str) -> int | None:
    """The first default-domain opset that has `op`."""
    if op in FIRST_OPSET:
        return FIRST_OPSET[op]
    try:
        schema = onnx.defs.get_schema(op, onnx.defs.onnx_opset_version(), "")
    except onnx.defs.SchemaError:
        return None
    v = schema.since_version
    while v > 1 and onnx.defs.has(op, max_inclusive_version=v - 1, domain=""):
        v = onnx.defs.get_schema(op, v - 1, "").since_version
    return v


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


# ---------------------------------------------------------------------------- matches


@dataclass
class Match:
    """One structural match of a rule's target: variable bindings and matched nodes."""

    rule: Rule
    pattern: Pattern
    graph: Graph
    facts: Facts
    tensors: dict[str, str | None] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    nodes: dict[int, onnx.NodeProto] = field(default_factory=dict)
    # (pattern node, the constant tensor a Literal matched): the tensor, not the pattern's operand
    # position, which a commutative op's operands may have swapped
    literal_sites: list[tuple[int, str]] = field(default_factory=list)
    computed: dict[str, Any] = field(default_factory=dict)
    replacement_attrs: list[dict[str, Any]] = field(default_factory=list)
    removal: list[onnx.NodeProto] = field(default_factory=list)  # matched nodes to remove

    @property
    def anchor(self) -> onnx.NodeProto:
        return self.nodes[len(self.pattern.nodes) - 1]

    def tensor(self, var: str) -> str | None:
        return self.tensors.get(var)

    def value(self, var: str) -> np.ndarray | None:
        """The constant value bound to `var` (None if absent or not constant)."""
        t = self.tensors.get(var)
        return None if t is None else self.facts.value(t)

    def node_of(self, var: str) -> onnx.NodeProto | None:
        """The matched node that produced `var`."""
        first = self.pattern.__dict__.get("_first_producer")
        if first is None:  # var → the first pattern node that outputs it (cached)
            first = {}
            for i, pnode in enumerate(self.pattern.nodes):
                for out in pnode.outputs:
                    first.setdefault(out, i)
            self.pattern.__dict__["_first_producer"] = first
        index = first.get(var)
        return None if index is None else self.nodes.get(index)

    def arg(self, a: Any) -> Any:
        """A call argument: a tensor variable's constant value (or None), an attribute, a literal."""
        if isinstance(a, Var):
            if a.name in self.attrs:
                return self.attrs[a.name]
            return self.value(a.name)
        return a

    def layout(self, var: str) -> Any:
        """Like `arg(Var(var))`, for a computation that reads only the dtype and shape of the
        constant (`Facts.layout`)."""
        if var in self.attrs:
            return self.attrs[var]
        t = self.tensors.get(var)
        return None if t is None else self.facts.layout(t)


class Matcher:
    """Finds the structural matches of one target pattern rooted at a given node.

    `matches` yields one live `Match` that the matcher keeps changing as it backtracks: use
    (or copy) it before asking for the next one.
    """

    def __init__(self, graph: Graph, facts: Facts, thorough: bool = False):
        self.thorough = thorough  # skip the prefilter, so every refusal gets its reason
        self.graph = graph
        self.facts = facts
        self.best_depth = 0
        self.best_reason = ""
        self._constant_vars: frozenset[str] = frozenset()
        self._trail: list[tuple[dict[Any, Any], Any, Any]] = []

    def matches(self, rule: Rule, pattern: Pattern, anchor: onnx.NodeProto) -> Iterator[Match]:
        self.best_depth = 0
        self.best_reason = ""
        self._constant_vars = rule.constant_vars
        # Two-node targets are fully screened by the runner's input-kind filter already.
        if (
            not self.thorough
            and len(pattern.nodes) > 2
            and not self.plausible(pattern, len(pattern.nodes) - 1, anchor, 3)
        ):
            self.best_depth = 1
            self.best_reason = f"{anchor.name}'s inputs do not have the pattern's producers"
            return
        self._trail = []
        start = Match(rule, pattern, self.graph, self.facts)
        yield from self._node(pattern, len(pattern.nodes) - 1, anchor, start)

    def plausible(self, pattern: Pattern, index: int, node: onnx.NodeProto, depth: int) -> bool:
        """A cheap necessary condition for a match at `node`: op types along the producers,
        `depth` levels deep, ignoring which variable is which (no backtracking)."""
        pnode = pattern.nodes[index]
        if node.op_type != pnode.op:
            return False
        if depth == 0:
            return True
        producers = pattern.producers()
        graph = self.graph
        inputs = node.input
        commutative = pnode.op in COMMUTATIVE
        for k, operand in enumerate(pnode.inputs):
            if needs_constant(operand, self._constant_vars, producers):
                if commutative:
                    if not any(t and self._is_const(t) for t in inputs):
                        return False
                elif k >= len(inputs) or not inputs[k] or not self._is_const(inputs[k]):
                    return False
                continue
            if not isinstance(operand, Var):
                continue
            child = producers.get(operand.name)
            if child is None or child == index:
                continue
            candidates = inputs if commutative else inputs[k : k + 1]
            ok = False
            for t in candidates:
                prod = graph.producer_node(t) if t else None
                if prod is not None and self.plausible(pattern, child, prod, depth - 1):
                    ok = True
                    break
            if not ok:
                return False
        return True

    def _is_const(self, tensor: str) -> bool:
        return self.graph.is_constant(tensor)

    def _fail(self, m: Match, reason: str) -> None:
        if len(m.nodes) >= self.best_depth:
            self.best_depth = len(m.nodes)
            self.best_reason = reason

    # The matcher keeps one mutable `Match` and a trail of bindings to undo on backtracking
    # (copying the state at every step cost more than the matching itself).
    def _bind(self, table: dict[Any, Any], key: Any, value: Any) -> None:
        self._trail.append((table, key, table.get(key, _MISSING)))
        table[key] = value

    def _undo(self, mark: int) -> None:
        trail = self._trail
        while len(trail) > mark:
            table, key, old = trail.pop()
            if old is _MISSING:
                del table[key]
            else:
                table[key] = old

    def _node(
        self, pattern: Pattern, index: int, node: onnx.NodeProto, m: Match
    ) -> Iterator[Match]:
        pnode = pattern.nodes[index]
        if node.op_type != pnode.op or (node.domain or "") not in domains_of(pnode.domain):
            self._fail(m, f"{node.name} is {node.op_type}, not {pnode.op}")
            return
        if any(existing is node for existing in m.nodes.values()):
            self._fail(m, f"{node.name} would match twice")
            return
        mark = len(self._trail)
        self._bind(m.nodes, index, node)
        for j, out in enumerate(pnode.outputs):
            if j >= len(node.output) or not node.output[j]:
                self._fail(m, f"{node.name} lacks output {j}")
                self._undo(mark)
                return
            bound = m.tensors.get(out)
            if bound is not None and bound != node.output[j]:
                self._undo(mark)
                return
            self._bind(m.tensors, out, node.output[j])
        reason = self._attrs(pnode, node, m)
        if reason:
            self._fail(m, reason)
            self._undo(mark)
            return
        present = [i for i, name in enumerate(node.input) if name]
        if present and present[-1] >= len(pnode.inputs):
            self._fail(m, f"{node.name} has more inputs than the pattern's {pnode.op}")
            self._undo(mark)
            return
        n = len(pnode.inputs)
        names = [node.input[k] if k < len(node.input) else "" for k in range(n)]
        if pnode.op in COMMUTATIVE and pnode.domain == "" and 2 <= n <= 3:
            seen = set()
            for order in itertools.permutations(range(n)):
                permuted = tuple(names[k] for k in order)
                if permuted in seen:
                    continue  # Mul(x, x): both orders are the same
                seen.add(permuted)
                yield from self._inputs(pattern, index, node, list(permuted), 0, m)
        else:
            yield from self._inputs(pattern, index, node, names, 0, m)
        self._undo(mark)

    def _inputs(
        self,
        pattern: Pattern,
        index: int,
        node: onnx.NodeProto,
        names: list[str],
        k: int,
        m: Match,
    ) -> Iterator[Match]:
        pnode = pattern.nodes[index]
        if k == len(pnode.inputs):
            yield m
            return
        operand = pnode.inputs[k]
        name = names[k]
        if isinstance(operand, Absent):
            if name:
                self._fail(m, f"{node.name} input {k} must be absent")
                return
            yield from self._inputs(pattern, index, node, names, k + 1, m)
            return
        if isinstance(operand, Literal):
            if not name:
                return
            value = self.facts.value(name)
            if value is None or value.size != 1 or value.dtype.kind != "f":
                self._fail(
                    m, f"{node.name} input {k} ({name}) is not the constant {operand.value:g}"
                )
                return
            v = float(value.reshape(()).astype(np.float64))
            if not literal_matches(v, value.dtype, operand):
                self._fail(m, f"{node.name} input {k} is {v:g}, not {operand.value:g}")
                return
            m.literal_sites.append((index, name))
            yield from self._inputs(pattern, index, node, names, k + 1, m)
            m.literal_sites.pop()
            return
        var = operand.name
        mark = len(self._trail)
        if not name:
            if not operand.optional:
                self._fail(m, f"{node.name} input {k} is missing")
                return
            if m.tensors.get(var, None) is not None:
                return
            self._bind(m.tensors, var, None)
            yield from self._inputs(pattern, index, node, names, k + 1, m)
            self._undo(mark)
            return
        producers = pattern.producers()
        if var in producers and producers[var] != index:
            pidx = producers[var]
            if pidx in m.nodes:
                if m.tensors.get(var) != name:
                    return
                yield from self._inputs(pattern, index, node, names, k + 1, m)
                return
            prod = self.graph.producer_node(name)
            if prod is None:
                self._fail(m, f"{name} has no producer (expected {pattern.nodes[pidx].op})")
                return
            out_index = pattern.nodes[pidx].outputs.index(var)
            if out_index >= len(prod.output) or prod.output[out_index] != name:
                return
            for _ in self._node(pattern, pidx, prod, m):
                yield from self._inputs(pattern, index, node, names, k + 1, m)
            return
        if var in m.tensors:
            if m.tensors[var] != name:
                self._fail(m, f"{var} must be the same tensor in every place")
                return
            yield from self._inputs(pattern, index, node, names, k + 1, m)
            return
        self._bind(m.tensors, var, name)
        yield from self._inputs(pattern, index, node, names, k + 1, m)
        self._undo(mark)

    def _attrs(self, pnode: PatternNode, node: onnx.NodeProto, m: Match) -> str:
        if not pnode.attrs:
            return ""
        return attr_mismatch(
            pnode, node, m.attrs, self._version(node), lambda k, v: self._bind(m.attrs, k, v)
        )

    def _version(self, node: onnx.NodeProto) -> int:
        return domain_version(self.graph, node.domain)


def literal_matches(v: float, dtype: np.dtype | None, literal: Literal) -> bool:
    """A constant of value `v` and numpy `dtype` matches `literal`: within
    `literal_tolerance` (1e-7 + rtol·|value|), or, for a type narrower than float32, equal to
    the literal as such a type holds it (rounded from it or from its float32): a float16
    model's 1/6 is 0.16663 and its 1/√2 0.70703, 2e-4 and 1e-4 off, which float16 cannot tell
    apart. Not any value one ulp away: float16 1.000977 is not 1 (x·1.000977 is 2050 at
    x = 2048). NaN matches nothing; an infinite literal (`inf`, `1e400`) only the same infinity
    (its tolerance, rtol·inf, took every value), and a literal past the type's range no
    constant of it. `approx(v, 0)` matches only v as the constant's type holds it (a Pow
    exponent: x^3.00002 is NaN for x < 0 where x³ is not, and 3.00002 was within the 1e-5)."""
    want = literal.value
    if not math.isfinite(want):
        return v == want
    if abs(v - want) <= literal_tolerance(literal):
        return True
    if dtype is None or dtype.kind != "f" or (dtype.itemsize >= 4 and literal.rtol != 0):
        return False
    return v in _held(want, dtype)


def literal_tolerance(literal: Literal) -> float:
    """How far from `literal`'s value a constant may be and match it (`literal_matches`):
    1e-7 + rtol·|value|; -1 (no distance: only `literal_matches`'s equalities) for an
    infinite literal and for an exact one, `approx(v, 0)`."""
    want = literal.value
    if not math.isfinite(want) or literal.rtol == 0:
        return -1.0
    return 1e-7 + literal.rtol * abs(want)


def _held(value: float, dtype: np.dtype) -> tuple[float, ...]:
    """The finite values `dtype` holds for `value`, rounded from float64 and from float32
    (cached: a rule has a few literals)."""
    key = (value, dtype.str)
    cached = _HELD.get(key)
    if cached is None:
        with np.errstate(over="ignore"):
            rounded = (np.asarray(value, dtype), np.asarray(np.float32(value), dtype))
        cached = _HELD[key] = tuple(float(h) for h in rounded if np.isfinite(h))
    return cached


_HELD: dict[tuple[float, str], tuple[float, ...]] = {}


def domain_version(graph: Graph, domain: str) -> int:
    """The model's opset of a node's `domain`, the default domain however spelled: a node may
    name it "ai.onnx" where the model imports "" (`Graph.opset_version("ai.onnx")` is then 0,
    and a BatchNormalization without `epsilon` got no schema default: fold-batchnorm raised)."""
    return graph.opset_version("" if domain in ("", "ai.onnx") else domain)


def attr_mismatch(
    pnode: PatternNode,
    node: onnx.NodeProto,
    attrs: dict[str, Any],
    version: int,
    bind: Callable[[str, Any], None] | None = None,
) -> str:
    """Why `node`'s attributes do not fit `pnode`'s ("" if they do); captures go into `attrs`
    (through `bind` when given). An absent attribute takes the schema default at `version`."""
    have = {a.name: a for a in node.attribute[:]}  # a slice (built in C): 1.46 -> 1.21 µs
    for key, want in pnode.attrs.items():
        if key in have:
            value = attribute_value(have[key])
        else:
            domain = node.domain
            value = schema_default(
                node.op_type, "" if domain in ("", "ai.onnx") else domain, version, key
            )
        if isinstance(want, AttrRef):
            if want.name in attrs and not _same(attrs[want.name], value):
                return f"{node.name} attribute {key} differs from an earlier capture"
            if bind is None:
                attrs[want.name] = value
            else:
                bind(want.name, value)
        elif not _same(value, want):
            return f"{node.name} has {key}={value!r}, the rule needs {want!r}"
    return ""


_A = onnx.AttributeProto


def attribute_value(a: onnx.AttributeProto) -> Any:
    """`onnx.helper.get_attribute_value(a)` with strings decoded (plain types read directly)."""
    kind = a.type
    if kind == _A.FLOAT:
        return a.f
    if kind == _A.INT:
        return a.i
    if kind == _A.STRING:
        return a.s.decode()
    if kind == _A.INTS:
        return list(a.ints)
    if kind == _A.FLOATS:
        return list(a.floats)
    return _plain(onnx.helper.get_attribute_value(a))


def needs_constant(operand: Any, constant_vars: frozenset[str], producers: dict[str, int]) -> bool:
    """Whether a pattern operand can only match a constant tensor: a literal, or a required
    variable the rule's checks name as constant that no pattern node produces."""
    return isinstance(operand, Literal) or (
        isinstance(operand, Var)
        and not operand.optional
        and operand.name in constant_vars
        and operand.name not in producers
    )


def domains_of(domain: str) -> tuple[str, ...]:
    """The node domains that match a pattern node's domain ("" also matches "ai.onnx")."""
    return ("", "ai.onnx") if domain == "" else (domain,)


def _same(a: Any, b: Any) -> bool:
    if isinstance(b, Literal):  # `k=approx(v, rtol)`: a float attribute (float32) near v
        if isinstance(a, bool) or not isinstance(a, int | float) or math.isnan(a):
            return False
        return literal_matches(float(a), np.dtype(np.float32), b)
    if isinstance(a, list) or isinstance(b, list):
        if not isinstance(a, list) or not isinstance(b, list) or len(a) != len(b):
            return False
        return all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, int) and isinstance(b, int):
        return a == b  # an integer attribute (axis, pads, group) is exact: 100001 is not 100000
    if isinstance(a, int | float) and isinstance(b, int | float):
        if not (math.isfinite(a) and math.isfinite(b)):
            return a == b  # the tolerance 1e-5·inf took every value for `alpha=inf`
        return abs(float(a) - float(b)) <= 1e-7 + 1e-5 * abs(float(b))
    return bool(a == b)
