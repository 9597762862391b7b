"""Evaluating one ONNX node on constant inputs: numpy kernels, with onnxruntime as fallback.

The numpy kernels cover the shape-arithmetic ops exporters emit around Reshape/Resize/Slice
(Shape, Gather, Unsqueeze, Concat, Cast, Add/Sub/Mul/Div, Slice, Range, ConstantOfShape, ...)
so that constant folding never builds an inference session for them. Every kernel follows the
ONNX operator's definition for the given opset (attribute vs. input forms) and returns arrays of
the dtype ONNX specifies; where a case is subtle (casts of NaN to integers, unusual element
types) the kernel raises `Unsupported` and the node is evaluated by onnxruntime instead (a
one-node model, no graph optimizations); so is a node whose kernel fails with an arithmetic or
value error (a Range to infinity). A result with no value every onnxruntime agrees on is
`Undefined`, never evaluated: integer Div/Mod by zero, Div/Mod(INT_MIN, -1), the empty inputs on
which onnxruntime 1.23 dies of SIGFPE (`SIGFPE_ON_EMPTY`), a Range whose length
onnxruntime 1.23 and newer count differently, a reduction over an empty set whose value ONNX
leaves undefined or onnxruntime versions disagree on (`empty_reduction`), an integer
reduction that may overflow (`integer_reduction_overflow`), a 64-bit integer
fmod past 2^53, a Slice end of INT_MAX with a negative step (onnxruntime and ONNX differ).

Its users: constant folding (`graphopt.passes.constant_folding`, which decides whether a
node may be folded), `inference_aborts` (the sizes onnxruntime's own folding makes known, by
the kernels alone: `kernel_outputs`), and the passes and rules that read Slice parameters or a
node's schema as the kernels do. It reads and never mutates a graph, so it sits in `analysis`.

What it does not do: decide whether a node may be folded, or evaluate ops that are random,
have subgraphs or come from custom domains.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from graphopt.analysis.op_kinds import RANDOM_OPS
from graphopt.errors import BackendError

Value = np.ndarray | None
Attrs = dict[str, Any]
Kernel = Callable[[list[Value], Attrs, int], list[np.ndarray]]

NONDETERMINISTIC = RANDOM_OPS
"""Default-domain ops whose output is random: never folded or merged."""


N_OUTPUTS = "__n_outputs__"
"""Key under which `evaluate` tells kernels (Split) how many outputs the node has."""


class Unsupported(Exception):
    """The numpy kernel does not handle this case; use the onnxruntime fallback."""


class Undefined(Exception):
    """The op has no value here that the runtimes agree on: not evaluated by a kernel, nor by
    onnxruntime, so the node is not folded and the runtime that runs the model decides. Integer
    division by zero (onnxruntime 1.23, the newest for Python 3.10, and 1.24 die of SIGFPE;
    1.25+ raise), Div(INT_MIN, -1) (SIGFPE in 1.23 and 1.32), and the cases where onnxruntime
    1.23.2 and 1.32.0 give different results (Range lengths, reductions of empty inputs, 64-bit
    fmod) or onnxruntime and ONNX's definition do (Slice ends of INT_MAX with negative steps)."""


def node_attributes(node: onnx.NodeProto) -> Attrs:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


_OPTIONAL = onnx.defs.OpSchema.FormalParameterOption.Optional


@functools.cache
def _schema(op: str, opset: int) -> onnx.defs.OpSchema | None:
    try:
        return onnx.defs.get_schema(op, opset, "")
    except onnx.defs.SchemaError:
        return None


@dataclasses.dataclass(frozen=True)
class _Form:
    """What `schema_mismatch` reads of an op's schema at an opset, read once: each property of
    an OpSchema builds its Python value again (`attributes` a dict of them all, `inputs` a
    list), which made the check ~2-3 µs a node and eliminate-noops ~45 % slower on common_det."""

    since: int
    attributes: dict[str, int]  # name -> AttributeProto type number
    required: tuple[str, ...]  # the required attributes, in the schema's order
    inputs: tuple[int, int]  # (min, max) count
    outputs: tuple[int, int]
    optional: tuple[bool, ...]  # per formal input: whether it may be left out ("")
    type_strs: tuple[str, ...]  # per formal input: its type ("T", or "tensor(int64)")
    allowed: dict[str, frozenset[str]]  # type parameter -> the types it may be


def _type_number(formal: Any) -> int:
    return int(formal.type)  # (an OpSchema.AttrType: AttributeProto's numbers)


@functools.cache
def _form(op: str, opset: int) -> _Form | None:
    schema = _schema(op, opset)
    if schema is None:
        return None
    known = schema.attributes
    return _Form(
        since=schema.since_version,
        attributes={name: _type_number(formal) for name, formal in known.items()},
        required=tuple(name for name, formal in known.items() if formal.required),
        inputs=(schema.min_input, schema.max_input),
        outputs=(schema.min_output, schema.max_output),
        optional=tuple(formal.option == _OPTIONAL for formal in schema.inputs),
        type_strs=tuple(formal.type_str for formal in schema.inputs),
        allowed={c.type_param_str: frozenset(c.allowed_type_strs) for c in schema.type_constraints},
    )


def schema_mismatch(
    node: onnx.NodeProto, opset: int, inputs: Sequence[Value] | None = None
) -> str | None:
    """Why default-domain `node` is not a node of its op's schema at `opset` (None: it is): an
    attribute the schema does not have (Shape's `start` below opset 15, Squeeze's `axes`
    attribute from 13, a misspelt one; not one named `__…`, which onnx's checker and
    onnxruntime take on any node) or of another type, a required one missing, a count of
    inputs or outputs the schema does not take (Identity with two outputs: a rule bypassing it
    left the second without a producer), an input left out ("") that is not an optional one
    (Sum(c, ""): onnxruntime's one-node run of it dies of a segfault), or an input (`inputs`,
    where given) of an element type its type constraint does not allow (Gather's float
    indices). onnxruntime refuses such a node when it loads the model (or fails running it);
    a kernel or rule reading it under another version's meaning (or ignoring what it does not
    know) would make a model that runs from one that does not."""
    form = _form(node.op_type, opset)
    if form is None:
        return f"no {node.op_type} at opset {opset}"
    known = form.attributes
    attributes = node.attribute
    for a in attributes:
        kind = known.get(a.name)
        if kind is None:
            if a.name.startswith("__"):
                continue  # an internal symbol: onnx's OpSchema::Verify (onnxruntime) takes any
            return f"{node.op_type}-{form.since} has no attribute {a.name!r}"
        if a.type != kind:
            return f"attribute {a.name!r} is not of the type {node.op_type} takes"
    if form.required:
        given = {a.name for a in attributes}
        missing = [name for name in form.required if name not in given]
        if missing:
            return f"required attribute {missing[0]!r} is missing"
    names = node.input[:]
    if not form.inputs[0] <= len(names) <= form.inputs[1]:
        return f"{node.op_type}-{form.since} takes no {len(names)} inputs"
    if not form.outputs[0] <= len(node.output) <= form.outputs[1]:
        return f"{node.op_type}-{form.since} has no {len(node.output)} outputs"
    optional = form.optional
    if optional and "" in names:
        for i, name in enumerate(names):
            if not name and not optional[min(i, len(optional) - 1)]:
                # onnxruntime refuses a single input left out ("marked single but has an empty
                # string"), and its one-node run of Sum/Max/Mean(c, "") dies of a segfault
                return f"input {i} of {node.op_type} is left out, and only an optional one may be"
    if inputs is None or not optional:
        return None
    allowed, type_strs = form.allowed, form.type_strs
    bound: dict[str, np.dtype] = {}
    for i, value in enumerate(inputs):
        if value is None:
            continue
        type_str = type_strs[min(i, len(type_strs) - 1)]
        try:
            elem = onnx.helper.np_dtype_to_tensor_dtype(value.dtype)
        except (KeyError, TypeError, ValueError):
            continue  # no ONNX type numpy names: the kernels leave it to onnxruntime
        name = f"tensor({onnx.helper.tensor_dtype_to_string(elem).removeprefix('TensorProto.')})"
        if name.lower() not in allowed.get(type_str, {type_str}):
            return f"input {i} of {node.op_type} cannot be {name.lower()}"
        if type_str in allowed and bound.setdefault(type_str, value.dtype) != value.dtype:
            return f"inputs of {node.op_type} that share type {type_str} differ in type"
    return None


def evaluate(
    node: onnx.NodeProto,
    inputs: Sequence[Value],
    opset: int,
    *,
    ir_version: int = 8,
) -> list[np.ndarray]:
    """The outputs of default-domain `node` on `inputs` (None for an omitted optional input).

    Raises `BackendError` when neither a numpy kernel nor onnxruntime can evaluate it, the
    result is `Undefined` (integer division by zero, a value onnxruntime versions disagree on),
    or the node is not one of its op's schema at `opset` (`schema_mismatch`).
    """
    mismatch = schema_mismatch(node, opset, inputs) or parameter_rank_mismatch(node, inputs)
    if mismatch is not None:
        raise BackendError(f"cannot evaluate {node.op_type} node {node.name!r}: {mismatch}")
    try:
        outs = kernel_outputs(node, inputs, opset)
    except Undefined as e:
        raise BackendError(f"cannot evaluate {node.op_type} node {node.name!r}: {e}") from None
    if outs is not None:
        return outs
    return evaluate_with_onnxruntime(node, inputs, opset, ir_version=ir_version)


def kernel_outputs(
    node: onnx.NodeProto, inputs: Sequence[Value], opset: int
) -> list[np.ndarray] | None:
    """The outputs of default-domain `node` (one of its op's schema at `opset`: the caller
    checks `schema_mismatch` and `parameter_rank_mismatch`) on `inputs` by its numpy kernel
    alone; None where no kernel takes the op or the case (`Unsupported`, a kernel that fails:
    a Range to inf, OverflowError; a NaN from `NAN_BITS_READABLE_FROM` on), which `evaluate`
    leaves to onnxruntime. Raises `Undefined` where the result has no value the runtimes agree
    on, for the ops without a kernel too (`VERSION_DEPENDENT`, `REDUCTIONS`)."""
    attrs = node_attributes(node)
    if node.op_type in REDUCTIONS:
        noop_reduction_disputed(node.op_type, list(inputs), attrs, opset)
        empty_reduction(node.op_type, list(inputs), attrs, opset)
        integer_reduction_overflow(node.op_type, list(inputs), attrs, opset)
    if node.op_type in VERSION_DEPENDENT:
        version_dependent(node.op_type, list(inputs), attrs, opset)
    kernel = KERNELS.get(node.op_type)
    if kernel is None:
        return None
    attrs[N_OUTPUTS] = len(node.output)
    try:
        with np.errstate(all="ignore"):
            outs = [np.asarray(o) for o in kernel(list(inputs), attrs, opset)]
    except (Unsupported, ArithmeticError, ValueError):
        return None
    if opset >= NAN_BITS_READABLE_FROM and any(map(_holds_nan, outs)):
        return None  # a NaN whose bits a BitCast can read: onnxruntime's, not numpy's (below)
    return outs


NAN_BITS_READABLE_FROM = 26
"""The opset from which BitCast reads a float's bits as an integer. numpy's NaNs are not
onnxruntime's bit for bit (measured, 1.32.0: Neg, Abs, Floor, Add, Mul, Div, Mod, Where and
Cast of float16 give its default NaN 0x7e00/0xfe00 for a payload numpy keeps, and Cast of a
float16 NaN to double sets other payload bits), so from there a numpy kernel's result that
holds a NaN is evaluated by onnxruntime instead."""


def _holds_nan(value: np.ndarray) -> bool:
    return value.dtype.kind in "fc" and bool(np.isnan(value).any())


def evaluate_with_onnxruntime(
    node: onnx.NodeProto, inputs: Sequence[Value], opset: int, *, ir_version: int = 8
) -> list[np.ndarray]:
    """Run `node` alone in onnxruntime (graph optimizations off) and return its outputs."""
    from graphopt.backends.onnxruntime import run, session

    one = onnx.NodeProto()
    one.CopyFrom(node)
    feeds: dict[str, np.ndarray] = {}
    graph_inputs = []
    for i, (name, value) in enumerate(zip(node.input, inputs, strict=True)):
        if not name or value is None:
            continue
        feed = f"in{i}"
        one.input[i] = feed
        if feed not in feeds:
            feeds[feed] = value
            graph_inputs.append(
                onnx.helper.make_tensor_value_info(
                    feed, onnx.helper.np_dtype_to_tensor_dtype(value.dtype), value.shape
                )
            )
    outputs = []
    for i, name in enumerate(one.output):
        if name:
            one.output[i] = f"out{i}"
            outputs.append(onnx.ValueInfoProto(name=f"out{i}"))
    graph = onnx.helper.make_graph([one], "fold", graph_inputs, outputs)
    model = onnx.helper.make_model(
        graph,
        opset_imports=[onnx.helper.make_opsetid("", opset)],
        ir_version=max(ir_version, 4),
    )
    try:
        sess = session(model, level="disable", threads=1)
        values = run(sess, feeds)
    except BackendError as e:
        raise BackendError(f"cannot evaluate {node.op_type} node {node.name!r}: {e}") from e
    for declared in sess.get_outputs():
        # onnxruntime hands a tensor numpy has no type for (float8e4m3fn) over as its raw
        # bytes (uint8): folded, it would be a uint8 initializer with those bytes as values
        kind = declared.type
        if kind.startswith("tensor(") and values[declared.name].dtype != _ORT_NUMPY.get(kind):
            raise BackendError(
                f"cannot evaluate {node.op_type} node {node.name!r}: onnxruntime gives its "
                f"{kind} output as {values[declared.name].dtype}"
            )
    by_name = iter(values.values())
    return [next(by_name) for name in node.output if name]


_ORT_NUMPY = {
    f"tensor({name})": np.dtype(dtype)
    for name, dtype in (
        ("float", np.float32), ("float16", np.float16), ("double", np.float64),
        ("int8", np.int8), ("int16", np.int16), ("int32", np.int32), ("int64", np.int64),
        ("uint8", np.uint8), ("uint16", np.uint16), ("uint32", np.uint32),
        ("uint64", np.uint64), ("bool", np.bool_), ("string", np.object_),
    )
}  # fmt: skip
"""onnxruntime's output type names → the numpy dtype its Python binding returns them as
(absent: no numpy dtype, e.g. bfloat16, the float8s and int4)."""


# ---------------------------------------------------------------------------- helpers


def _axes(
    inputs: list[Value], attrs: Attrs, opset: int, input_from: int, index: int = 1
) -> list[int] | None:
    """`axes` as an attribute (opset < input_from) or as input `index` (opset ≥ input_from)."""
    if opset < input_from:
        axes = attrs.get("axes")
        return None if axes is None else [int(a) for a in axes]
    value = inputs[index] if len(inputs) > index else None
    return None if value is None else [int(a) for a in value.reshape(-1)]


def normalize_axes(axes: Sequence[int], rank: int) -> list[int]:
    """`axes` of a rank-`rank` tensor as 0..rank-1; `Unsupported` for one out of range."""
    out = []
    for a in axes:
        if not -rank <= a < rank:
            raise Unsupported
        out.append(a + rank if a < 0 else a)
    return out


def _need(value: Value) -> np.ndarray:
    if value is None:
        raise Unsupported
    return value


def _contiguous(value: np.ndarray) -> np.ndarray:
    """`value` in C order, keeping its shape (np.ascontiguousarray makes a 0-d array 1-D)."""
    return np.ascontiguousarray(value).reshape(value.shape)


def _same_dtype(*values: Value) -> None:
    dtypes = {_need(v).dtype for v in values}
    if len(dtypes) != 1:
        raise Unsupported


_SIMPLE_DTYPES = frozenset(
    np.dtype(t)
    for t in (
        np.float16,
        np.float32,
        np.float64,
        np.int8,
        np.int16,
        np.int32,
        np.int64,
        np.uint8,
        np.uint16,
        np.uint32,
        np.uint64,
        np.bool_,
    )
)


def _simple(*values: Value) -> None:
    for v in values:
        if _need(v).dtype not in _SIMPLE_DTYPES:
            raise Unsupported


# ---------------------------------------------------------------------------- kernels


def _identity(inputs: list[Value], attrs: Attrs, opset: int) -> list[np.ndarray]:
    return [_need(inputs[0])]


def _shape(inputs: list[Value], attrs: Attrs, opset: int) -> list[np.ndarray]:
    dims = _need(inputs[0]).shape
    start, end = attrs.get("start", 0), attrs.get("end")
    return [np.array(dims[start:end], dtype=np.int64)]


def _size(inputs: list[Value], attrs: Attrs, opset: int) -> list[np.ndarray]:
    return [np.array(_need(inputs[0]).size, dtype=np.int64)]


def _gather(inputs: list[Value], attrs: Attrs, opset: int) -> list[np.ndarray]:
    data, indices = _need(inputs[0]), _need(inputs[1])
    if data.ndim == 0:
        raise Unsupported
    axis = normalize_axes([attrs.get("axis", 0)], data.ndim)[0]
    dim = data.shape[axis]
    idx = indices.astype(np.int64)
    if np.any((idx < -dim) | (idx >= dim)):
        raise Unsupported
    return [np.take(data, np.where(idx < 0, idx + dim, idx), axis=axis)]


def _unsqueeze(inputs: list[Value], attrs: Attrs, opset: int) -> list[np.ndarray]:
    data = _need(inputs[0])
    axes = _axes(inputs, attrs, opset, 13)
    if axes is None:
        raise Unsupported
    out_rank = data.ndim + len(axes)
    axes = sorted(normalize_axes(axes, out_rank))
    if len(set(axes)) != len(axes):
        raise Unsupported
    out = data
    for a in axes:
        out = np.expand_dims(out, a)
    return [out]


def _squeeze(inputs: list[Value], attrs: Attrs, opset: int) -> list[np.ndarray]:
    data = _need(inputs[0])
    axes = _axes(inputs, attrs, opset, 13)
    if axes is None:
        return [np.squeeze(data)]
    if not axes:
        raise Unsupported  # empty axes: onnxruntime squeezes every dim of 1; onnx reads "none"
    axes = normalize_axes(axes, data.ndim)
    if any(data.shape[a] != 1 for a in axes):
        raise Unsupported
    return [np.squeeze(data, axis=tuple(axes))]


def _concat(inputs: list[Value], attrs: Attrs, opset: int) -> list[np.ndarray]:
    parts = [_need(v) for v in inputs]
    _same_dtype(*parts)
    given = attrs.get("axis", 1) if opset < 4 else attrs["axis"]  # (Concat-1's default: 1)
    axis = normalize_axes([given], parts[0].ndim)[0] if parts[0].ndim else 0
    return [np.concatenate(parts, axis=axis)]


def reshape_target(
    in_shape: Sequence[int | str | None], shape: Sequence[int], allowzero: int = 0
) -> list[int | str | None] | None:
    """ONNX Reshape's output shape (0 copies an input dim unless `allowzero`, -1 is inferred);
    None when it cannot be determined (the -1 needs an unknown dim)."""
    out: list[int | str | None] = []
    infer = -1
    for i, s in enumerate(shape):
        s = int(s)
        if s == 0 and not allowzero:
            if i >= len(in_shape):
                return None
            out.append(in_shape[i])
        elif s == -1:
            if infer >= 0:
                return None
            infer = i
            out.append(-1)
        elif s < 0:
            return None
        else:
            out.append(s)
    if infer >= 0:
        if not all(isinstance(d, int) for d in in_shape):
            return None
        known = [d for j, d in enumerate(out) if j != infer]
        if not all(isinstance(d, int) for d in known):
            return None
        total = math.prod(d for d in in_shape if isinstance(d, int))
        rest = math.prod(d for d in known if isinstance(d, int))
        if rest == 0 or total % rest:
            return None
        out[infer] = total // rest
    return out


def zero_and_inferred_dim(shape: Sequence[int], allowzero: int) -> bool:
    """Whether Reshape's `shape` holds both a 0 and a -1 under `allowzero`, which ONNX calls
    invalid (the -1 cannot be inferred): onnxruntime's inference refuses a constant such shape
    (`Invalid Target shape product of 0`), its kernel gives a fed one a dim of 1."""
    return bool(allowzero) and 0 in shape and -1 in shape


def _reshape(inputs: list[Value], attrs: Attrs, opset: int) -> list[np.ndarray]:
    data = _need(inputs[0])
    if opset < 5:
        raise Unsupported
    shape = _need(inputs[1]).reshape(-1).tolist()
    if zero_and_inferred_dim(shape, attrs.get("allowzero", 0)):
        raise Undefined(
            "allowzero with both a 0 and a -1 in the shape (invalid in ONNX: onnxruntime refuses "
            "it where it sees the shape, and infers a dim from a fed one)"
        )
    target = reshape_target(data.shape, shape, attrs.get("allowzero", 0))
    if target is None or math.prod(int(d) for d in target if d is not None) != data.size:
        raise Unsupported
    return [data.reshape([int(d) for d in target if d is not None])]


_CAST_TARGETS = {
    onnx.TensorProto.FLOAT: np.float32,
    onnx.TensorProto.DOUBLE: np.float64,
    onnx.TensorProto.FLOAT16: np.float16,
    onnx.TensorProto.INT8: np.int8,
    onnx.TensorProto.INT16: np.int16,
    onnx.TensorProto.INT32: np.int32,
    onnx.TensorProto.INT64: np.int64,
    onnx.TensorProto.UINT8: np.uint8,
    onnx.TensorProto.UINT16: np.uint16,
    onnx.TensorProto.UINT32: np.uint32,
    onnx.TensorProto.UINT64: np.uint64,
    onnx.TensorProto.BOOL: np.bool_,
}


def _int_range(dtype: np.dtype) -> tuple[int, int]:
    info = np.iinfo(dtype)  # type: ignore[type-var]
    return int(info.min), int(info.max)


FLOAT8_TYPES = frozenset(
    {
        onnx.TensorProto.FLOAT8E4M3FN,
        onnx.TensorProto.FLOAT8E4M3FNUZ,
        onnx.TensorProto.FLOAT8E5M2,
        onnx.TensorProto.FLOAT8E5M2FNUZ,
    }
)


def saturate_allowed(to: int, saturate: int) -> bool:
    """Whether onnxruntime takes a Cast to `to` with `saturate` (opset 19+): saturate=0 only
    for a float8 target ("Attribute saturate is only used for cast to float 8 types", 1.32.0;
    the ONNX checker takes it, and saturate=1, the default, anywhere)."""
    return bool(saturate) or to in FLOAT8_TYPES


def _cast(inputs: list[Value], attrs: Attrs, opset: int) -> list[np.ndarray]:
    data = _need(inputs[0])
    _simple(data)
    target = _CAST_TARGETS.get(attrs.get("to", 0))
    if target is None or not saturate_allowed(attrs.get("to", 0), attrs.get("saturate", 1)):
        raise Unsupported
    to = np.dtype(target)
    if data.dtype.kind == "f" and to.kind in "iu":
        if not np.all(np.isfinite(data)):
            raise Unsupported
        low, high = _int_range(to)
        if data.size and (data.min() < low or data.max() > high):
            raise Unsupported
    elif data.dtype.kind in "iu" and to.kind in "iu":
        low, high = _int_range(to)
        if data.size and (int(data.min()) < low or int(data.max()) > high):
            raise Unsupported
    if data.dtype == np.float64 and to == np.float16:
        # onnxruntime casts double to half through float: rounded twice (1 + 2^-11 + 2^-40
        # is 1.0 there, 1.0009765625 in one rounding; 65519.99999 is inf there, 65504)
        return [data.astype(np.float32).astype(to)]
    return [data.astype(to)]


def _binary(op: Callable[[np.ndarray, np.ndarray], Any]) -> Kernel:
    def kernel(inputs: list[Value], attrs: Attrs, opset: int) -> list[np.ndarray]:
        a, b = _need(inputs[0]), _need(inputs[1])
        _same_dtype(a, b)
        _simple(a)
        if a.dtype == np.bool_:
            raise Unsupported
        if opset < 7 and attrs.get("broadcast", 0) == 0 and a.shape != b.shape:
            raise Unsupported
        if opset < 7 and "axis" in attrs:
            raise Unsupported
        return [np.asarray(op(a, b)).astype(a.dtype, copy=False)]

    return kernel


def _div(inputs: list[Value], attrs: Attrs, opset: int) -> list[np.ndarray]:
    a, b = _need(inputs[0]), _need(inputs[1])
    _same_dtype(a, b)
    _simple(a)
    if a.dtype.kind == "f":
        return _binary(np.divide)(inputs, attrs, opset)
    if a.dtype.kind not in "iu":
        raise Unsupported
    if np.any(b == 0):
        raise Undefined("integer division by zero")
    if a.dtype.kind == "i" and np.any((a == np.iinfo(a.dtype).min) & (b == -1)):
        # the quotient is not representable: onnxruntime (1.23 and 1.32) dies of SIGFPE
        raise Undefined("integer division overflows (the dtype's minimum divided by -1)")
    # ONNX (like C) truncates integer division toward zero; numpy's // floors.
    q = np.floor_divide(a, b)
    fix = (np.remainder(a, b) != 0) & ((a < 0) != (b < 0))
    return [np.asarray(q + fix.astype(q.dtype)).astype(a.dtype, copy=False)]


def _mod(inputs: list[Value], attrs: Attrs, opset: int) -> list[np.ndarray]:
    a, b = _need(inputs[0]), _need(inputs[1])
    _same_dtype(a, b)
    _simple(a)
    if a.dtype.kind in "iu" and np.any(b == 0):
        raise Undefined("integer modulo by zero")
    fmod = attrs.get("fmod", 0)
    if (
        not fmod
        and a.dtype.kind == "i"
        and a.dtype.itemsize >= 4
        and np.any((a == np.iinfo(a.dtype).min) & (b == -1))
    ):
        # x % -1 is 0, but C's INT_MIN % -1 traps: onnxruntime 1.23.2 dies of SIGFPE on it
        # for int32 and int64 (int8/int16 are promoted to int: 0; 1.32 gives 0), as on
        # Div(INT_MIN, -1)
        raise Undefined("the dtype's minimum modulo -1 (onnxruntime 1.23 dies of SIGFPE on it)")
    if fmod:
        if a.dtype.kind in "iu" and a.dtype.itemsize == 8 and a.size and b.size:
            # onnxruntime 1.23.2 takes 64-bit integers' fmod in double, 1.32 exactly: they
            # differ past 2^53 (fmod(2^63 - 1, 2) is 0 there, 1 here)
            big = 2**53
            if (
                max(abs(int(a.max())), abs(int(a.min())), abs(int(b.max())), abs(int(b.min())))
                > big
            ):
                raise Undefined(
                    "a 64-bit integer fmod past 2^53 (onnxruntime 1.23 rounds it to double)"
                )
        return [np.asarray(np.fmod(a, b)).astype(a.dtype, copy=False)]
    if a.dtype.kind == "f":
        raise Unsupported  # fmod=0 is only defined for integers
    return [np.asarray(np.mod(a, b)).astype(a.dtype, copy=False)]


def _unary(op: Callable[[np.ndarray], Any], kinds: str = "fiu") -> Kernel:
    def kernel(inputs: list[Value], attrs: Attrs, opset: int) -> list[np.ndarray]:
        x = _need(inputs[0])
        _simple(x)
        if x.dtype.kind not in kinds:
            raise Unsupported
        return [np.asarray(op(x)).astype(x.dtype, copy=False)]

    return kernel


def _compare(op: Callable[[np.ndarray, np.ndarray], Any]) -> Kernel:
    def kernel(inputs: list[Value], attrs: Attrs, opset: int) -> list[np.ndarray]:
        a, b = _need(inputs[0]), _need(inputs[1])
        _same_dtype(a, b)
        _simple(a)
        return [np.asarray(op(a, b), dtype=np.bool_)]

    return kernel


def _logical(op: Callable[[np.ndarray, np.ndarray], Any]) -> Kernel:
    def kernel(inputs: list[Value], attrs: Attrs, opset: int) -> list[np.ndarray]:
        a, b = _need(inputs[0]), _need(inputs[1])
        if a.dtype != np.bool_ or b.dtype != np.bool_:
            raise Unsupported
        return [np.asarray(op(a, b), dtype=np.bool_)]

    return kernel


def _not(inputs: list[Value], attrs: Attrs, opset: int) -> list[np.ndarray]:
    x = _need(inputs[0])
    if x.dtype != np.bool_:
        raise Unsupported
    return [np.logical_not(x)]


def _where(inputs: list[Value], attrs: Attrs, opset: int) -> list[np.ndarray]:
    c, a, b = _need(inputs[0]), _need(inputs[1]), _need(inputs[2])
    _same_dtype(a, b)
    if c.dtype != np.bool_:
        raise Unsupported
    if a.dtype.kind == "f" and any(np.any((v == 0) & np.signbit(v)) for v in (a, b)):
        # onnxruntime (1.23.2 and 1.32) gives +0.0 for a -0.0 it picks from X, and from Y
        # too where a broadcast takes its kernel's other paths (Where(False, [x, y, z], [-0.0])
        # is [0, 0, 0]): a -0.0 is left to it
        raise Unsupported
    return [np.where(c, a, b)]


def _min_max(op: Callable[[np.ndarray, np.ndarray], Any]) -> Kernel:
    def kernel(inputs: list[Value], attrs: Attrs, opset: int) -> list[np.ndarray]:
        values = [_need(v) for v in inputs]
        _same_dtype(*values)
        _simple(*values)
        if values[0].dtype.kind not in "iu":
            raise Unsupported  # float NaN propagation is left to onnxruntime
        out = values[0]
        for v in values[1:]:
            out = op(out, v)
        return [np.asarray(out)]

    return kernel


def slice_parameters(
    inputs: list[Value], attrs: Attrs, opset: int
) -> tuple[list[int], list[int], list[int], list[int]] | None:
    """(starts, ends, axes, steps) of an ONNX Slice (axes not yet normalized); None when a
    parameter is not known."""
    if opset < 10:
        starts, ends = attrs.get("starts"), attrs.get("ends")
        axes, steps = attrs.get("axes"), None
        if starts is None or ends is None:
            return None
    else:
        if len(inputs) < 3 or inputs[1] is None or inputs[2] is None:
            return None
        if any(v is not None and v.ndim != 1 for v in inputs[1:5]):
            return None  # onnxruntime refuses parameters that are not 1-D
        starts, ends = inputs[1].reshape(-1).tolist(), inputs[2].reshape(-1).tolist()
        axes = inputs[3].reshape(-1).tolist() if len(inputs) > 3 and inputs[3] is not None else None
        steps = (
            inputs[4].reshape(-1).tolist() if len(inputs) > 4 and inputs[4] is not None else None
        )
    axes = list(range(len(starts))) if axes is None else list(axes)
    steps = [1] * len(starts) if steps is None else list(steps)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        return None
    return (
        [int(v) for v in starts],
        [int(v) for v in ends],
        [int(v) for v in axes],
        [int(v) for v in steps],
    )


def node_slice_parameters(
    node: onnx.NodeProto, constant: Callable[[str], Value], opset: int
) -> tuple[list[int], list[int], list[int], list[int]] | None:
    """`slice_parameters` of Slice `node`, its inputs read with `constant`; None also when an
    input that is given (starts, ends, axes or steps) is not a constant: it must not be read
    as absent."""
    values = [constant(name) if name else None for name in node.input]
    if any(v is None for name, v in zip(node.input[1:], values[1:], strict=True) if name):
        return None
    return slice_parameters(values, node_attributes(node), opset)


def onnx_slice(dim: int, start: int, end: int, step: int) -> slice:
    """The Python slice selecting what ONNX Slice selects along an axis of length `dim`.

    ONNX adds `dim` to negative starts/ends, then clamps to [0, dim] (step > 0) or to
    [0, dim-1] / [-1, dim-1] (step < 0); Python's own clamping differs for a negative-step end
    of -1, which means "before index 0" here and is spelled None.
    """
    if step == 0:
        raise Unsupported
    if start < 0:
        start += dim
    if end < 0:
        end += dim
    if step > 0:
        return slice(min(max(start, 0), dim), min(max(end, 0), dim), step)
    if dim == 0:
        return slice(0, 0, 1)
    start = min(max(start, 0), dim - 1)
    end = min(max(end, -1), dim - 1)
    return slice(start, end if end >= 0 else None, step)


def _slice(inputs: list[Value], attrs: Attrs, opset: int) -> list[np.ndarray]:
    data = _need(inputs[0])
    params = slice_parameters(inputs, attrs, opset)
    if data.ndim == 0 or params is None:
        raise Unsupported
    starts, ends, axes, steps = params
    axes = normalize_axes(axes, data.ndim)
    if len(set(axes)) != len(axes):
        raise Unsupported
    index = [slice(None)] * data.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        if step < 0 and end in _INT_MAXES:
            raise Undefined(
                "an end of INT_MAX with a negative step: onnxruntime slices to the start (numpy's "
                "None), ONNX's definition, reference and shape inference stop at the last index"
            )
        index[axis] = onnx_slice(data.shape[axis], start, end, step)
    return [_contiguous(data[tuple(index)])]


_INT_MAXES = (2**31 - 1, 2**63 - 1)
"""Ends onnxruntime reads as "to the end of the axis" whatever the step's sign."""


def _range_counts(
    start: np.ndarray, limit: np.ndarray, delta: np.ndarray
) -> tuple[int, int | None]:
    """Range's output length, max(⌈(limit − start) / delta⌉, 0), as onnxruntime counts it: first
    as 1.32 (and onnx's reference) do, integers exactly and floats in float64; then as 1.23.2
    (the newest for Python 3.10) does, C++'s `ceil(1.0 * (limit - start) / delta)`: the
    difference in the inputs' own type (float32 rounded, int32/int64 wrapped, int16 promoted to
    int), then the quotient in float64. The second is None where it is not finite (its cast to
    an integer is undefined). Measured on 8000 float cases: 1.32 agrees with the first on all,
    1.23.2 with the second on all; they differ on 384 of the 4000 float32 ones, either way:
    Range(0.5, -0.7, -0.1) has 12 elements in 1.32 and 13 in 1.23.2."""
    if start.dtype.kind in "iu":
        s, lim, d = int(start), int(limit), int(delta)
        exact = max(-(-(lim - s) // d), 0)
        diff = lim - s
        bits = start.dtype.itemsize * 8
        if bits >= 32:  # int16 is promoted to int in C++: no wrap
            diff = (diff + 2 ** (bits - 1)) % 2**bits - 2 ** (bits - 1)
        legacy = float(diff) / float(d)
    else:
        exact = max(math.ceil((float(limit) - float(start)) / float(delta)), 0)
        with np.errstate(over="ignore"):  # inf, as in C++: the length is then undefined
            legacy = float(np.subtract(limit, start, dtype=start.dtype)) / float(delta)
    if not math.isfinite(legacy):
        return exact, None
    return exact, max(math.ceil(legacy), 0)


def range_length_disputed(inputs: Sequence[Value]) -> bool:
    """True unless Range on constant `inputs` (start, limit, delta) has one length in
    onnxruntime 1.23.2 and 1.32.0 (`_range_counts`). ONNX shape inference counts as 1.23.2
    does (Range(0.5, -0.7, -0.1) of float32: 13, 1.32 gives 12), so the dims shape facts give
    such a Range's output are no more agreed than its value. Inputs it cannot count (another
    type, a zero delta, an infinite or NaN bound) are disputed too."""
    values = [v for v in inputs[:3] if v is not None]
    if len(values) != 3 or any(v.size != 1 for v in values):
        return True
    start, limit, delta = (v.reshape(()) for v in values)
    if start.dtype not in _RANGE_DTYPES or not start.dtype == limit.dtype == delta.dtype:
        return True
    try:
        if delta.item() == 0:
            return True
        exact, legacy = _range_counts(start, limit, delta)
    except (ArithmeticError, ValueError):
        return True
    return exact != legacy


_RANGE_DTYPES = frozenset(
    np.dtype(t) for t in (np.float32, np.float64, np.int16, np.int32, np.int64)
)
"""The element types ONNX's Range (opset 11+) takes."""


def _range(inputs: list[Value], attrs: Attrs, opset: int) -> list[np.ndarray]:
    start, limit, delta = (_need(v) for v in inputs[:3])
    if start.size != 1 or limit.size != 1 or delta.size != 1:
        raise Unsupported
    # as scalars: onnxruntime's kernel takes 1-element 1-D bounds too (where its inference did
    # not see their rank), and numpy 2.4's int() / float() refuse a 1-D array
    start, limit, delta = start.reshape(()), limit.reshape(()), delta.reshape(())
    _same_dtype(start, limit, delta)
    if start.dtype not in _RANGE_DTYPES:
        raise Unsupported
    if delta.item() == 0:
        raise Unsupported
    dtype = start.dtype
    n, n_legacy = _range_counts(start, limit, delta)
    if n != n_legacy:
        legacy = "undefined" if n_legacy is None else str(n_legacy)
        raise Undefined(
            f"its length is {n} in onnxruntime 1.32 and onnx's reference, {legacy} in "
            "onnxruntime 1.23 ((limit - start) computed in the inputs' type)"
        )
    if dtype.kind in "iu":
        return [(int(start) + np.arange(n, dtype=np.int64) * int(delta)).astype(dtype)]
    # Floats as onnxruntime (and ONNX's reference loop): value = start; value += delta,
    # accumulated in the tensor's type. start + i·delta in float64 differs in the last bits.
    steps = np.full(n, delta.reshape(()), dtype=dtype)
    if n:
        steps[0] = start.reshape(())
    return [np.add.accumulate(steps, dtype=dtype)]


def _constant_of_shape(inputs: list[Value], attrs: Attrs, opset: int) -> list[np.ndarray]:
    shape = [int(d) for d in _need(inputs[0]).reshape(-1)]
    if any(d < 0 for d in shape):
        raise Unsupported
    value = attrs.get("value")
    if value is not None and list(value.dims) != [1]:
        raise Unsupported  # onnxruntime takes a value of one element of shape [1] only
    fill = numpy_helper.to_array(value) if value is not None else np.zeros(1, np.float32)
    if fill.dtype not in _SIMPLE_DTYPES:
        raise Unsupported
    return [np.full(shape, fill.reshape(-1)[0], dtype=fill.dtype)]


def _transpose(inputs: list[Value], attrs: Attrs, opset: int) -> list[np.ndarray]:
    data = _need(inputs[0])
    perm = attrs.get("perm")
    if perm is not None and sorted(perm) != list(range(data.ndim)):
        raise Unsupported  # numpy takes a negative axis in perm, onnxruntime refuses it
    return [_contiguous(np.transpose(data, perm))]


def _expand(inputs: list[Value], attrs: Attrs, opset: int) -> list[np.ndarray]:
    data, shape = _need(inputs[0]), _need(inputs[1])
    try:
        out_shape = np.broadcast_shapes(data.shape, tuple(int(d) for d in shape.reshape(-1)))
    except ValueError as e:
        raise Unsupported from e
    return [_contiguous(np.broadcast_to(data, out_shape))]


def _tile(inputs: list[Value], attrs: Attrs, opset: int) -> list[np.ndarray]:
    data, repeats = _need(inputs[0]), _need(inputs[1])
    if data.ndim == 0:
        # 1.32 gives the scalar back; 1.23.2 refuses it ("must be atleast 1 dimensional")
        raise Undefined("a Tile of a 0-d tensor: onnxruntime 1.23 refuses it, 1.32 runs it")
    reps = [int(r) for r in repeats.reshape(-1)]
    if len(reps) != data.ndim or any(r < 0 for r in reps):
        raise Unsupported
    if 0 in reps:  # empty: np.tile would build each axis before the 0 whole (reps [2^40, 0])
        return [np.zeros([d * r for d, r in zip(data.shape, reps, strict=True)], data.dtype)]
    return [np.tile(data, reps)]


def split_sizes(
    dim: int, inputs: list[Value], attrs: Attrs, opset: int, n_outputs: int
) -> list[int] | None:
    """Chunk sizes of an ONNX Split along an axis of length `dim`; None when invalid."""
    if opset < 13:
        split = attrs.get("split")
    else:
        value = inputs[1] if len(inputs) > 1 else None
        split = None if value is None else value.reshape(-1).tolist()
    if opset >= 18 and (split is None) == ("num_outputs" not in attrs):
        return None  # Split-18 takes split or num_outputs, one of them (onnxruntime refuses)
    if split is not None:
        sizes = [int(s) for s in split]
        return sizes if sum(sizes) == dim and len(sizes) == n_outputs else None
    n = attrs.get("num_outputs", n_outputs) if opset >= 18 else n_outputs
    if n != n_outputs or n <= 0:
        return None
    if opset >= 18 and "num_outputs" in attrs:
        chunk = -(-dim // n)
        sizes = [chunk] * (n - 1) + [dim - chunk * (n - 1)]
        return sizes if sizes[-1] >= 0 else None
    return [dim // n] * n if dim % n == 0 else None


def _split(inputs: list[Value], attrs: Attrs, opset: int) -> list[np.ndarray]:
    data = _need(inputs[0])
    if data.ndim == 0:
        raise Unsupported
    axis = normalize_axes([attrs.get("axis", 0)], data.ndim)[0]
    n_outputs = attrs[N_OUTPUTS]
    sizes = split_sizes(data.shape[axis], inputs, attrs, opset, n_outputs)
    if opset >= 18 and "num_outputs" in attrs and (sizes is None or 0 in sizes):
        # onnxruntime 1.23.2 refuses num_outputs giving an empty part ("Invalid num_outputs
        # value of 3" for 2 elements, "Cannot split using values in 'split'" for 4); 1.32
        # and ONNX give [1], [1], [] (not left to the fallback, which is 1.32's)
        raise Undefined(
            "num_outputs leaves a part empty: onnxruntime 1.23 refuses it, 1.32 runs it"
        )
    if sizes is None:
        raise Unsupported
    bounds = np.cumsum(sizes)[:-1]
    return [_contiguous(p) for p in np.split(data, bounds, axis=axis)]


def _reduce(op: Callable[..., Any], axes_input_from: int) -> Kernel:
    def kernel(inputs: list[Value], attrs: Attrs, opset: int) -> list[np.ndarray]:
        data = _need(inputs[0])
        _simple(data)
        if data.dtype.kind not in "iu":
            raise Unsupported  # float reductions are left to onnxruntime (summation order)
        if data.size == 0:
            raise Unsupported  # numpy has no identity for an empty min/max; onnxruntime has
        axes = _axes(inputs, attrs, opset, axes_input_from)
        keepdims = bool(attrs.get("keepdims", 1))
        if not axes:
            if attrs.get("noop_with_empty_axes", 0):
                return [data]
            axis: tuple[int, ...] | None = None
        else:
            axis = tuple(normalize_axes(axes, data.ndim))
        # exact: `evaluate` left a sum or product that could overflow to the runtime
        # (`integer_reduction_overflow`)
        result = np.asarray(op(data, axis=axis, keepdims=keepdims))
        return [result.astype(data.dtype)]

    return kernel


SIGFPE_ON_EMPTY = frozenset({"OneHot", "TopK", "LpNormalization", "LRN", "Einsum"})
"""Ops onnxruntime 1.23.2 kills the process on (SIGFPE) for some empty input (1.32.0 evaluates
them all): OneHot and TopK where the dims before `axis` hold a 0, LpNormalization of an empty
tensor, LRN with 0 channels, Einsum of two operands one of which is empty. Found by a fuzz of
empty inputs over 71 ops (and 6000 edge-value cases) run in both; every empty input of these is
refused, not only those."""

VERSION_DEPENDENT = SIGFPE_ON_EMPTY | {
    "Erf", "ReduceLogSumExp", "ArgMax", "ArgMin", "Pad", "PRelu", "BitShift", "ReverseSequence"
}  # fmt: skip
"""Ops `version_dependent` checks before they are evaluated."""


def version_dependent(op: str, inputs: list[Value], attrs: Attrs, opset: int) -> None:
    """Raise `Undefined` where onnxruntime evaluates `op` on `inputs` differently in 1.23.2 (the
    newest for Python 3.10) and 1.32.0, measured by an edge-value fuzz (±0, ±inf, NaN, empty
    tensors, negative pads) of the ops constant folding hands to onnxruntime:

    - `SIGFPE_ON_EMPTY` with an empty input: 1.23.2 dies;
    - Erf of NaN: 1.23.2 gives ±1, 1.32 NaN;
    - ReduceLogSumExp of ±inf: 1.23.2 gives NaN, 1.32 ±inf;
    - ArgMax, ArgMin, TopK of NaN: they pick different elements;
    - Pad with a negative pad: 1.23.2 fills the padding of a cropped axis with whatever memory
      holds (Pad([3.0], [-1, 1]) was -inf, 1.32 gives [0]); edge/wrap modes fail in 1.32.
    - PRelu with an infinite or NaN input or slope: 1.23.2's float32 kernel gives NaN for
      PRelu(-inf, -1) (1.32: inf) and PRelu(0, inf) (1.32: 0);
    - BitShift by the element's bit width or more (undefined in C++): 1.23.2 shifts by the
      amount modulo the width (1 << 33 of uint32 is 2), 1.32 gives 0;
    - ReverseSequence with a sequence length of 0: 1.23.2 fills that sequence with zeros, 1.32
      copies it.
    """
    present = [v for v in inputs if v is not None]
    if op in SIGFPE_ON_EMPTY and any(not v.size for v in present):
        raise Undefined("an empty input, on which onnxruntime 1.23 dies of SIGFPE")
    if op == "BitShift" and len(present) == 2 and present[1].dtype.kind in "iu":
        if present[1].size and int(present[1].max()) >= present[0].dtype.itemsize * 8:
            raise Undefined("a BitShift by the bit width or more: onnxruntime 1.23 and 1.32 differ")
        return
    if op == "ReverseSequence" and len(present) == 2 and np.any(present[1] == 0):
        raise Undefined("a sequence length of 0: onnxruntime 1.23 zeroes it, 1.32 copies it")
    if op == "PRelu" and any(v.dtype.kind == "f" and not np.isfinite(v).all() for v in present):
        raise Undefined("PRelu of ±inf or NaN differs between onnxruntime 1.23 and 1.32")
    data = present[0] if present else None
    if data is None or (data.dtype.kind != "f" and op != "Pad"):
        return
    if op in ("Erf", "ArgMax", "ArgMin", "TopK") and np.isnan(data).any():
        raise Undefined(f"{op} of NaN differs between onnxruntime 1.23 and 1.32")
    if op == "ReduceLogSumExp" and np.isinf(data).any():
        raise Undefined("ReduceLogSumExp of ±inf is NaN in onnxruntime 1.23, ±inf in 1.32")
    if op == "Pad":
        given = attrs.get("pads") if opset < 11 else (inputs[1] if len(inputs) > 1 else None)
        if given is not None and np.any(np.asarray(given) < 0):
            raise Undefined("a negative pad: onnxruntime 1.23 and 1.32 pad differently")


REDUCTIONS: dict[str, int] = {
    "ReduceSum": 13,
    "ReduceMean": 18,
    "ReduceMax": 18,
    "ReduceMin": 18,
    "ReduceProd": 18,
    "ReduceL1": 18,
    "ReduceL2": 18,
    "ReduceLogSum": 18,
    "ReduceLogSumExp": 18,
    "ReduceSumSquare": 18,
    "ArgMax": 0,
    "ArgMin": 0,
}
"""Reductions → the opset from which their `axes` is an input (0: one `axis` attribute)."""


_VECTOR = (1,)
PARAMETER_RANKS: dict[str, dict[int, tuple[int, ...]]] = {
    "Unsqueeze": {1: (0, 1)},
    "Squeeze": {1: _VECTOR},
    "Reshape": {1: _VECTOR},
    "Tile": {1: _VECTOR},
    "Split": {1: _VECTOR},
    "Slice": {1: _VECTOR, 2: _VECTOR, 3: _VECTOR, 4: _VECTOR},
    "ConstantOfShape": {0: _VECTOR},
    "Pad": {1: _VECTOR, 3: _VECTOR},
    "TopK": {1: _VECTOR},
    "OneHot": {1: (0, 1)},
    **{op: {1: _VECTOR} for op, since in REDUCTIONS.items() if since},
}
"""Op → its parameter inputs (axes, shapes, pads, ...) → the ranks onnxruntime 1.32 takes for
them (measured, each input as an initializer and fed: a 0-d or 2-d one is refused, Unsqueeze's
axes and OneHot's depth may be 0-d). The numpy kernels read them flattened, and onnxruntime's
one-node fallback (inputs fed) takes a 2-d Pad pads its inference refuses as a constant."""


def parameter_rank_mismatch(node: onnx.NodeProto, inputs: Sequence[Value]) -> str | None:
    """Why a parameter input of `node` has a rank onnxruntime refuses (`PARAMETER_RANKS`)."""
    ranks = PARAMETER_RANKS.get(node.op_type)
    if not ranks:
        return None
    for index, allowed in ranks.items():
        value = inputs[index] if index < len(inputs) else None
        if value is not None and value.ndim not in allowed:
            return f"input {index} of {node.op_type} has rank {value.ndim}, not {allowed}"
    return None


_EMPTY_INTEGER_REDUCTIONS = frozenset({"ReduceMax", "ReduceMin", "ReduceLogSum", "ReduceLogSumExp"})


def noop_reduction_disputed(op: str, inputs: list[Value], attrs: Attrs, opset: int) -> None:
    """Raise `Undefined` for a reduction with noop_with_empty_axes=1 and no axes that
    onnxruntime 1.23.2 runs otherwise than 1.32.0 (which returns the input, as ONNX says;
    measured: Sum, Mean, Max, Prod, L2 x float32, int64 x shapes [3], [2, 3], [0], [2, 0] x axes
    absent, empty, ""): 1.23.2 refuses a node without the axes input ("Reduction on all axes,
    output size should be 1"), and reduces an empty input all the same ([0] gives [1], ReduceMax
    -inf), or dies of a segmentation fault where axes is "". An empty axes tensor or "" of a
    non-empty input agrees."""
    since = REDUCTIONS[op]
    if not since or opset < since or not attrs.get("noop_with_empty_axes", 0):
        return
    if _axes(inputs, attrs, opset, since):
        return
    data = inputs[0] if inputs else None
    if data is not None and not data.size:
        raise Undefined(
            "noop_with_empty_axes of an empty input: onnxruntime 1.23 reduces it (or dies), "
            "1.32 returns it"
        )
    if len(inputs) < 2:
        raise Undefined(
            "noop_with_empty_axes without the axes input: onnxruntime 1.23 refuses it, 1.32 "
            "returns the input"
        )


def empty_reduction(op: str, inputs: list[Value], attrs: Attrs, opset: int) -> None:
    """Raise `Undefined` where reduction `op` of an empty input has no value that onnxruntime
    1.23.2 (the newest for Python 3.10) and 1.32.0 agree on (measured: 12 ops × int32, int64,
    float × empty shapes × axes):

    - any negative axis: 1.23.2 then returns the input unreduced (ReduceMean(x[2, 0],
      axes=[-1]) is [2, 0], not [2, 1]; ArgMax as well), 1.32 reduces;
    - an empty set reduced into a non-empty output by ReduceMean (ONNX: undefined; onnxruntime
      gives 0, onnx's reference NaN, INT_MIN for integers) or by an integer ReduceMax/Min/LogSum/
      LogSumExp (1.23.2 gives 0, 1.32 the dtype's minimum or maximum).

    The other empty reductions agree (Sum, L1, L2, SumSquare 0, Prod 1, float Max -inf, Min
    inf, LogSum and LogSumExp -inf; ArgMax/ArgMin of an empty set fail in both).
    """
    data = inputs[0] if inputs else None
    if data is None or data.size:
        return
    since = REDUCTIONS[op]
    axes = [int(attrs.get("axis", 0))] if since == 0 else _axes(inputs, attrs, opset, since)
    if axes and any(a < 0 for a in axes):
        raise Undefined(
            "onnxruntime 1.23 ignores a negative axis of an empty input (it returns the input "
            "unreduced), 1.32 reduces it"
        )
    if not axes:
        if attrs.get("noop_with_empty_axes", 0):
            return
        axes = list(range(data.ndim))
    if any(a >= data.ndim for a in axes):
        return  # invalid: onnxruntime refuses it
    reduced = math.prod(data.shape[a] for a in set(axes))
    kept = math.prod(d for a, d in enumerate(data.shape) if a not in axes)
    if reduced or not kept:
        return  # no empty set is reduced, or none into an output element
    if op == "ReduceMean":
        raise Undefined(
            "the mean of an empty set is undefined (ONNX): onnxruntime gives 0, onnx's reference "
            "NaN"
        )
    if op in _EMPTY_INTEGER_REDUCTIONS and data.dtype.kind in "iu":
        raise Undefined(
            "an integer reduction of an empty set: onnxruntime 1.23 gives 0, 1.32 the dtype's "
            "minimum or maximum"
        )


_INTEGER_ACCUMULATIONS = {
    "ReduceSum": "sum", "ReduceMean": "sum", "ReduceL1": "sum", "ReduceLogSum": "sum",
    "ReduceSumSquare": "squares", "ReduceL2": "squares", "ReduceProd": "product",
}  # fmt: skip
"""Integer reductions → what their partial results accumulate."""


def integer_reduction_overflow(op: str, inputs: list[Value], attrs: Attrs, opset: int) -> None:
    """Raise `Undefined` where an integer reduction onnxruntime evaluates could leave the
    dtype's range or pass 2^53 in its partial results: onnxruntime 1.23.2 accumulates in the
    integer type and wraps (ReduceL1 of int32 [2^31 - 1, 2^31 - 1, 1] is -1, ReduceL2 of
    [46341, 2] is -2^31), 1.32.0 in double and saturates (2^31 - 1, 46341). Bounded per reduced
    set by Σ|x| (Sum, Mean, L1, LogSum), Σx² (SumSquare, L2) and Π max(|x|, 1) (Prod); below
    the bound the two agree, and with numpy's exact sums and products (the kernels'). An
    integer ReduceLogSumExp differs on small values too (a row of int64 0, 1 and 2: 0 in one,
    -1 in the other): always refused. Measured on 1.23.2 and 1.32.0: 1200 random int32/int64
    reductions and the dtypes' limits."""
    data = inputs[0] if inputs else None
    if data is None or data.dtype.kind not in "iu" or not data.size:
        return
    if op == "ReduceLogSumExp":
        raise Undefined("an integer ReduceLogSumExp: onnxruntime 1.23 and 1.32 round it apart")
    kind = _INTEGER_ACCUMULATIONS.get(op)
    if kind is None:
        return
    axes = _axes(inputs, attrs, opset, REDUCTIONS[op])
    if not axes and attrs.get("noop_with_empty_axes", 0):
        return
    magnitude = np.abs(data.astype(np.float64))
    if kind == "squares":
        magnitude = magnitude * magnitude
    elif kind == "product":
        magnitude = np.maximum(magnitude, 1.0)
    accumulate = np.prod if kind == "product" else np.sum
    try:
        bound = accumulate(magnitude, axis=tuple(normalize_axes(axes, data.ndim)) if axes else None)
    except (Unsupported, ValueError):
        return  # invalid or repeated axes: onnxruntime refuses the node
    if np.any(bound >= min(2.0**53, _int_range(data.dtype)[1])):
        raise Undefined(
            f"an integer {op} that may overflow: onnxruntime 1.23 wraps it in the integer "
            "type, 1.32 accumulates in double and saturates"
        )


KERNELS: dict[str, Kernel] = {
    "Identity": _identity,
    "Shape": _shape,
    "Size": _size,
    "Gather": _gather,
    "Unsqueeze": _unsqueeze,
    "Squeeze": _squeeze,
    "Concat": _concat,
    "Reshape": _reshape,
    "Cast": _cast,
    "Add": _binary(np.add),
    "Sub": _binary(np.subtract),
    "Mul": _binary(np.multiply),
    "Div": _div,
    "Mod": _mod,
    "Neg": _unary(np.negative, "fi"),
    "Abs": _unary(np.abs, "fiu"),
    "Floor": _unary(np.floor, "f"),
    "Ceil": _unary(np.ceil, "f"),
    "Equal": _compare(np.equal),
    "Less": _compare(np.less),
    "LessOrEqual": _compare(np.less_equal),
    "Greater": _compare(np.greater),
    "GreaterOrEqual": _compare(np.greater_equal),
    "And": _logical(np.logical_and),
    "Or": _logical(np.logical_or),
    "Xor": _logical(np.logical_xor),
    "Not": _not,
    "Where": _where,
    "Min": _min_max(np.minimum),
    "Max": _min_max(np.maximum),
    "Slice": _slice,
    "Range": _range,
    "ConstantOfShape": _constant_of_shape,
    "Transpose": _transpose,
    "Expand": _expand,
    "Tile": _tile,
    "Split": _split,
    "ReduceProd": _reduce(np.prod, 18),
    "ReduceSum": _reduce(np.sum, 13),
    "ReduceMin": _reduce(np.min, 18),
    "ReduceMax": _reduce(np.max, 18),
}
"""Op type → numpy kernel. Kernels raise `Unsupported` for cases they leave to onnxruntime."""


BROADCASTING = frozenset(
    {"Add", "Sub", "Mul", "Div", "Pow", "Mod", "BitShift", "And", "Or", "Xor", "Equal", "Less",
     "LessOrEqual", "Greater", "GreaterOrEqual", "Where", "Min", "Max", "Sum", "Mean", "PRelu",
     "BitwiseAnd", "BitwiseOr", "BitwiseXor"}
)  # fmt: skip
"""Ops whose output has the multidirectional broadcast of their inputs' shapes."""


SIZED_BY_INFERENCE = frozenset(
    {"Einsum", "GatherND", "Conv", "ConvTranspose", "ConvInteger", "MatMulInteger",
     "QLinearConv", "QLinearMatMul", "Col2Im", "CenterCropPad", "AffineGrid", "RoiAlign",
     "MaxRoiPool", "GridSample", "MaxUnpool", "HannWindow", "HammingWindow", "BlackmanWindow",
     "MelWeightMatrix", "DFT", "STFT", "TfIdfVectorizer"}
)  # fmt: skip
"""Ops whose output can be far larger than their inputs (an outer product by Einsum, a window
of `size` elements from one scalar, a strided ConvTranspose) and that `output_elements_bound`
does not size: the folder takes their size from shape inference before evaluating them."""


def output_elements_bound(
    node: onnx.NodeProto, inputs: Sequence[Value], opset: int = 0
) -> int | None:
    """An upper bound on the output size of ops that can blow up (None: unknown before running).

    Lets the folder refuse `ConstantOfShape([1e6, 1e6])`, or `a + b` of a [N, 1] and a [1, N]
    constant, without allocating it.
    """
    op = node.op_type
    try:
        if op in BROADCASTING and inputs and all(v is not None for v in inputs):
            return math.prod(np.broadcast_shapes(*(v.shape for v in inputs if v is not None)))
        if op == "Gather" and len(inputs) == 2 and inputs[0] is not None and inputs[1] is not None:
            data = inputs[0].shape
            axis = normalize_axes([int(node_attributes(node).get("axis", 0))], len(data))[0]
            return math.prod(data[:axis]) * inputs[1].size * math.prod(data[axis + 1 :])
        if op == "Gemm" and len(inputs) >= 2 and inputs[0] is not None and inputs[1] is not None:
            a, b = inputs[0].shape, inputs[1].shape
            if len(a) != 2 or len(b) != 2:
                return None
            attrs = node_attributes(node)
            rows = a[1] if attrs.get("transA", 0) else a[0]
            cols = b[0] if attrs.get("transB", 0) else b[1]
            return rows * cols
        if op == "MatMul" and len(inputs) == 2 and inputs[0] is not None and inputs[1] is not None:
            a, b = inputs[0].shape, inputs[1].shape
            if len(a) < 1 or len(b) < 1:
                return None
            rows = a[-2] if len(a) > 1 else 1
            cols = b[-1] if len(b) > 1 else 1
            return math.prod(np.broadcast_shapes(a[:-2], b[:-2])) * rows * cols
        if op == "Pad" and inputs and inputs[0] is not None:
            pads = _pads(node, inputs, opset)
            if pads is None:
                return None
            return math.prod(max(d + pads[i] + pads[i + len(pads) // 2], 0)
                             for i, d in enumerate(inputs[0].shape))  # fmt: skip
        if op == "OneHot" and len(inputs) > 1 and inputs[0] is not None and inputs[1] is not None:
            return inputs[0].size * max(int(np.asarray(inputs[1]).reshape(-1)[0]), 0)
        if op in ("Resize", "Upsample") and inputs and inputs[0] is not None:
            return _resized_bound(node, inputs, opset)
        if op == "ConstantOfShape" and inputs[0] is not None:
            return math.prod(max(int(d), 0) for d in inputs[0].reshape(-1))
        if op == "Expand" and inputs[0] is not None and inputs[1] is not None:
            shape = tuple(int(d) for d in inputs[1].reshape(-1))
            return math.prod(np.broadcast_shapes(inputs[0].shape, shape))
        if op == "Tile" and inputs[0] is not None and inputs[1] is not None:
            return inputs[0].size * math.prod(max(int(r), 0) for r in inputs[1].reshape(-1))
        if op == "Range" and all(v is not None for v in inputs[:3]):
            start, limit, delta = (np.asarray(v).reshape(()) for v in inputs[:3])
            if delta == 0:
                return None
            if start.dtype.kind in "iuf" and start.dtype == limit.dtype == delta.dtype:
                return _range_counts(start, limit, delta)[0]
            return max(math.ceil((float(limit) - float(start)) / float(delta)), 0)
    except (ValueError, TypeError, OverflowError, IndexError, Unsupported):
        return None
    return None


def _pads(node: onnx.NodeProto, inputs: Sequence[Value], opset: int) -> list[int] | None:
    """Pad's begin and end pads for every axis of its input (None: not known)."""
    data = inputs[0]
    if data is None:
        return None
    rank = data.ndim
    if opset < 11:
        pads = node_attributes(node).get("pads")
        values = None if pads is None else [int(p) for p in pads]
    else:
        given = inputs[1] if len(inputs) > 1 else None
        values = None if given is None else [int(p) for p in given.reshape(-1)]
    if values is None:
        return None
    axes_input = inputs[3] if len(inputs) > 3 else None
    if axes_input is None:
        return values if len(values) == 2 * rank else None
    axes = normalize_axes([int(a) for a in axes_input.reshape(-1)], rank)
    if len(values) != 2 * len(axes):
        return None
    full = [0] * (2 * rank)
    for k, axis in enumerate(axes):
        full[axis], full[rank + axis] = values[k], values[len(axes) + k]
    return full


def _resized_bound(node: onnx.NodeProto, inputs: Sequence[Value], opset: int) -> int | None:
    """An upper bound on the size of Resize/Upsample `node`'s output (from sizes or scales)."""
    data = _need(inputs[0])
    attrs = node_attributes(node)
    if node.op_type == "Upsample" and opset < 9:
        scales = attrs.get("scales")
        sizes = None
    elif node.op_type == "Upsample" or opset < 11:
        scales, sizes = (inputs[1] if len(inputs) > 1 else None), None
    else:
        scales = inputs[2] if len(inputs) > 2 else None
        sizes = inputs[3] if len(inputs) > 3 else None
    dims = list(data.shape)
    axes = attrs.get("axes") if opset >= 18 else None
    axes = list(range(len(dims))) if axes is None else normalize_axes(axes, len(dims))
    if sizes is not None and np.size(sizes):
        wanted = [int(v) for v in np.asarray(sizes).reshape(-1)]
        if attrs.get("keep_aspect_ratio_policy", "stretch") not in ("stretch", b"stretch"):
            return None  # sizes bound one side only
    elif scales is not None and np.size(scales):
        # onnxruntime's ⌊float32(scale) × in⌋, the product in float32
        factors = np.asarray(scales, dtype=np.float32).reshape(-1)
        wanted = [int(np.float32(dims[a]) * f) for a, f in zip(axes, factors, strict=True)]
    else:
        return None
    if len(wanted) != len(axes):
        return None
    for a, w in zip(axes, wanted, strict=True):
        dims[a] = max(w, 0)
    return math.prod(dims)
