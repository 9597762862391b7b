"""Named computations a rule lists under `compute:`: new constants for its replacement.

Each function receives the `Match` and its arguments resolved (constant tensors as numpy arrays,
absent optional inputs as None, attributes as Python values) and returns the new values: numpy
arrays become initializers, Python numbers and lists become attribute values. A computation that
finds the constants unsuitable raises `Refuse(reason)`; nothing has been mutated at that point.

All folding is done in float64 and cast once to the weight's dtype; a folded multiplier whose
cast loses its precision in the dtype's subnormals (float16 W·s ≈ 1e-7) is refused
(`refuse_underflow`).
"""

from __future__ import annotations

import functools
import math
import weakref
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

import numpy as np
import onnx

from graphopt.analysis.shapes import Shape, ShapeFacts, shape_facts
from graphopt.patterns.checks import conv_padding
from graphopt.patterns.engine import Facts, Match, Refuse

Computation = Callable[..., Any]
# Set while a registered computation runs: one entry per numpy operation that underflowed (a
# result rounded into the subnormals or to 0 from a nonzero value: IEEE underflow, tiny and
# inexact), so `refuse_underflow` looks at its result only where something did.
_UNDERFLOWED: ContextVar[list[int] | None] = ContextVar("underflowed", default=None)
COMPUTATIONS: dict[str, Computation] = {}
_FUNCTIONS: dict[str, Computation] = {}  # name → the function `COMPUTATIONS[name]` wraps
# Computation → positions of the arguments it reads only for their dtype and shape: those get
# a placeholder of that dtype and shape (`Facts.layout`) instead of the decoded constant.
LAYOUT_ONLY: dict[str, frozenset[int]] = {}


def computation(
    name: str, layout_only: tuple[int, ...] = ()
) -> Callable[[Computation], Computation]:
    """Register `fn` as computation `name`; `layout_only`: positions of arguments (0 = the
    first after the Match) whose values it never reads, only their dtype and shape."""

    def register(fn: Computation) -> Computation:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            return _flagged(fn, args, kwargs, {})

        COMPUTATIONS[name] = run
        _FUNCTIONS[name] = fn
        if layout_only:
            LAYOUT_ONLY[name] = frozenset(layout_only)
        return fn

    return register


def call_raising(name: str, *args: Any) -> Any:
    """`COMPUTATIONS[name](*args)` with numpy's overflow, invalid and divide-by-zero flags
    raising FloatingPointError (as the rule runner calls a computation): one errstate, where
    nesting the runner's in the registered function's costs a second."""
    return _flagged(_FUNCTIONS[name], args, {}, _RAISING)


_RAISING: dict[str, Any] = {"over": "raise", "invalid": "raise", "divide": "raise"}


def _flagged(
    fn: Computation, args: tuple[Any, ...], kwargs: dict[str, Any], errors: dict[str, Any]
) -> Any:
    """`fn(*args, **kwargs)` with numpy's `errors` set and its underflows counted for
    `refuse_underflow` (`_UNDERFLOWED`)."""
    hit: list[int] = []
    token = _UNDERFLOWED.set(hit)
    try:
        with np.errstate(under="call", call=lambda *_: hit.append(1), **errors):
            return fn(*args, **kwargs)
    finally:
        _UNDERFLOWED.reset(token)


# ---------------------------------------------------------------------------- helpers


def _float(name: str, value: Any, like: np.ndarray | None = None) -> np.ndarray:
    if value is None:
        raise Refuse(f"{name} is not a constant")
    arr = np.asarray(value)
    if arr.dtype.kind != "f":
        raise Refuse(f"{name} is {arr.dtype}, not floating point")
    if like is not None and arr.dtype != like.dtype:
        raise Refuse(f"{name} is {arr.dtype} but the weight is {like.dtype}")
    return arr


def batchnorm_scale_shift(
    gamma: Any, beta: Any, mean: Any, var: Any, eps: float, like: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """s = γ/√(σ²+ε), t = β − μ·s, in float64 (each must be a 1-D per-channel constant)."""
    arrays = []
    for name, value in (("scale", gamma), ("bias", beta), ("mean", mean), ("var", var)):
        arr = _float(name, value, like)
        if arr.ndim != 1:
            raise Refuse(f"BatchNormalization {name} has shape {list(arr.shape)}, not [C]")
        arrays.append(arr)
    if len({len(arr) for arr in arrays}) != 1:
        raise Refuse("BatchNormalization parameters have different lengths")
    # One conversion of the four rows (exact, as four astype calls would be), one buffer
    # for the root: the in-place ops compute what `g / np.sqrt(v + eps)` does.
    g, b, mu, v = np.array(arrays, dtype=np.float64)
    root = np.add(v, float(eps))
    np.sqrt(root, out=root)
    s = np.divide(g, root, out=root)
    return s, b - mu * s


def per_channel(
    name: str, value: Any, channels: int, rank: int, like: np.ndarray, side: str = "output"
) -> np.ndarray:
    """A constant that multiplies/adds per channel of a rank-`rank` NC... tensor (a Conv's
    `side` "output" or "input"), as a float64 vector of length `channels`; Refuse unless its
    broadcast shape is [1, C|1, 1, ...]."""
    arr = _float(name, value, like)
    if arr.ndim > rank:
        raise Refuse(f"{name} of shape {list(arr.shape)} would raise the output rank {rank}")
    padded = (1,) * (rank - arr.ndim) + tuple(arr.shape)
    others = padded[:1] + padded[2:]  # every axis but the channel axis must be 1
    if others.count(1) != len(others) or (rank > 1 and padded[1] not in (1, channels)):
        raise Refuse(f"{name} of shape {list(arr.shape)} is not per {side} channel")
    flat = arr.astype(np.float64).reshape(-1)
    # repeat, not broadcast_to(...).copy(): the same vector, 2.6 → 0.4 µs
    return flat.repeat(channels) if flat.size == 1 else flat


def _finite_scale(s: np.ndarray, what: str) -> None:
    """Refuse a per-channel multiplier that is not finite: W·inf holds +inf and −inf, whose
    sum in the folded layer is NaN where the original's y·inf is ±inf (a NaN multiplier is
    refused alike: nothing is gained by folding it)."""
    if not np.all(np.isfinite(s)):
        raise Refuse(f"{what} is not finite: the folded weights would sum inf − inf to NaN")


def _bias(b: Any, channels: int, like: np.ndarray) -> np.ndarray:
    if b is None:
        return np.zeros(channels, np.float64)
    arr = _float("bias", b, like)
    if arr.shape != (channels,):
        raise Refuse(f"bias has shape {list(arr.shape)}, not [{channels}]")
    return arr.astype(np.float64)


def _weight(w: Any) -> np.ndarray:
    arr = _float("weight", w)
    if arr.ndim < 2:
        raise Refuse(f"weight has rank {arr.ndim}")
    return arr


def _scale_out_channels(
    w: np.ndarray,
    s: np.ndarray,
    transpose: bool,
    group: int,
    dtype: type = np.float64,
    out_dtype: np.dtype | None = None,
) -> np.ndarray:
    """W·s per output channel: Conv W is [C_out, C_in/g, k...] (axis 0); ConvTranspose W is
    [C_in, C_out/g, k...], output channel o = g·(C_out/g) + j lives at [g·C_in/g + i, j].
    Computed in `dtype`; with `out_dtype` each product is cast once into an array of that
    dtype as it is computed (the same rounding as casting the whole `dtype` result after)."""
    s = s.astype(dtype, copy=False)
    if not transpose:
        if s.shape[0] != w.shape[0]:
            raise Refuse(f"{s.shape[0]} channels but the weight has {w.shape[0]} outputs")
        # One pass: numpy promotes each float32 element to float64 as it multiplies.
        return _multiply(w, s.reshape((-1,) + (1,) * (w.ndim - 1)), dtype, out_dtype)
    c_in, c_out_g = w.shape[0], w.shape[1]
    if group < 1 or c_in % group or s.shape[0] != c_out_g * group:
        raise Refuse(
            f"{s.shape[0]} channels do not fit ConvTranspose weight {list(w.shape)}, group {group}"
        )
    blocks = w.reshape((group, c_in // group, c_out_g, *w.shape[2:]))
    factor = s.reshape((group, 1, c_out_g) + (1,) * (w.ndim - 2))
    return _multiply(blocks, factor, dtype, out_dtype).reshape(w.shape)


def _multiply(a: np.ndarray, b: np.ndarray, dtype: type, out_dtype: np.dtype | None) -> np.ndarray:
    """a·b computed in `dtype` (b broadcasts to a's shape), cast once to `out_dtype` if given."""
    if out_dtype is None:
        return np.multiply(a, b, dtype=dtype)
    out = np.empty(a.shape, out_dtype)
    np.multiply(a, b, out=out, dtype=dtype, casting="unsafe")
    return out


def _out_channels(w: np.ndarray, transpose: bool, group: int) -> int:
    return int(w.shape[1] * group) if transpose else int(w.shape[0])


def _cast_like(like: np.ndarray, a: np.ndarray) -> np.ndarray:
    """`a` cast once to the weight's dtype, C-contiguous."""
    return np.ascontiguousarray(a.astype(like.dtype, copy=False))


def _cast(like: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays cast once to the weight's dtype."""
    return _cast_like(like, a), _cast_like(like, b)


def refuse_underflow(
    rounded: np.ndarray,
    exact: Callable[[], np.ndarray],
    channels: Callable[[np.ndarray], np.ndarray] | None,
    what: str,
) -> None:
    """Refuse a folded multiplier whose rounding into its dtype's subnormals (or to 0) loses
    more than one ulp of an output channel's mass Σ|exact| (`channels` sums a per-element
    array per output channel; None: each element is its own channel, as for a merged scale),
    in a channel not below one ulp of the largest channel's mass.
    float16 W ≈ 1e-4 scaled by 1e-3 is all subnormal: the folded Conv is ~20 % off, while the
    original's conv output and scale stay normal. Inside a registered computation nothing is
    looked at unless some operation of it underflowed (numpy's floating-point flags: no pass
    over the weights on the usual path); `exact` (float64) is computed only where some value of
    `rounded` is below the smallest normal; subnormal float32 weights that a scale rounds by
    far less than an ulp of their channel still fold."""
    if _UNDERFLOWED.get() == []:  # in a computation that rounded nothing into the subnormals
        return
    info = np.finfo(rounded.dtype)
    if rounded.size == 0 or np.abs(rounded).min() >= info.tiny:  # (~25 % less than np.any)
        return
    ex = exact()
    err = np.abs(rounded.astype(np.float64) - ex)
    mass = np.abs(ex)
    if channels is not None:
        err, mass = channels(err), channels(mass)
    # A channel whose whole exact mass is below one ulp of the largest channel's (a channel a
    # trainer pruned: γ ~1e-39 over subnormal W, ~1e-75 or ~1e-40 beside channels of ~1) adds
    # less than that ulp to anything it meets: its precision is not the layer's. Judged per
    # channel only where the channels are of one scale, as a uniform scale's are. Not for a
    # scale (`channels` None): each element multiplies its own channel of x, whatever the
    # others hold (float16 x·[1, 1e-4]·[1, 1e-4] merged to x·[1, 0])
    # (float32's ulp at most: a float16 channel 1e-5 of the largest is a channel of its own)
    live = mass >= min(info.eps, _F32_EPS) * mass.max() if channels is not None else np.True_
    if np.any((err > info.eps * mass) & live):
        raise Refuse(f"{what} underflows {rounded.dtype}: the folded values lose their precision")


_F32_EPS = float(np.finfo(np.float32).eps)


def _conv_channels(
    w: np.ndarray, transpose: bool, group: int
) -> Callable[[np.ndarray], np.ndarray]:
    """Sums of a per-element array of W's shape per output channel: Conv W [C_out, ...] by
    row; ConvTranspose W [C_in, C_out/group, k...] over the input channels of the group and k."""
    if not transpose:
        return lambda a: a.reshape(len(a), -1).sum(axis=1)
    shape = (group, w.shape[0] // group, w.shape[1], -1)
    return lambda a: a.reshape(shape).sum(axis=(1, 3))


def _scaled_checked(
    w: np.ndarray, w2: np.ndarray, s: np.ndarray, transpose: bool, group: int, what: str
) -> np.ndarray:
    """`w2` (W·s per output channel, rounded to W's dtype) unless that rounding underflows."""
    refuse_underflow(
        w2,
        lambda: _scale_out_channels(w, s, transpose, group),
        _conv_channels(w, transpose, group),
        what,
    )
    return w2


def _output_conv(m: Match, w: np.ndarray, transpose: bool, what: str) -> onnx.NodeProto:
    """Refuse unless the match has one Conv (ConvTranspose where `transpose`) of the default
    domain, reading a weight of `w`'s shape, whose output another matched node reads: the
    layout the fold scales or sizes by (Conv W [C_out, C_in/g, k…] on axis 0, ConvTranspose
    W [C_in, C_out/g, k…] on axis 1 across groups) and the side the constant applies on. The
    built-in rules pair each computation with its op; a user's rule may not (a ConvTranspose
    with C_in = C_out scaled on its input channels, a constant before the Conv folded into
    its output channels)."""
    want = "ConvTranspose" if transpose else "Conv"
    return _the_layer(
        m,
        w,
        ("Conv", "ConvTranspose"),
        (want,),
        f"{what} folds into one {want}'s output only",
        "no Conv",
        f"{what} applies after it",
    )


def _the_layer(
    m: Match,
    w: np.ndarray,
    kinds: tuple[str, ...],
    wanted: tuple[str, ...],
    only: str,
    none: str,
    after: str,
) -> onnx.NodeProto:
    """The match's one node of the op types `kinds`, which must be of `wanted`, of the default
    domain, read a weight of `w`'s shape as its second input and have its output read by
    another matched node; Refuse otherwise (`only` + the nodes found, or `none`; `after`
    where no matched node reads its output)."""
    found = [n for n in m.nodes.values() if n.op_type in kinds]
    if len(found) != 1 or found[0].op_type not in wanted or found[0].domain not in ("", "ai.onnx"):
        shown = ", ".join(f"{n.op_type} {n.name}" for n in found) or none
        raise Refuse(f"{only} ({shown})")
    node = found[0]
    weight = m.facts.layout(node.input[1]) if len(node.input) > 1 else None
    if weight is None or tuple(weight.shape) != tuple(w.shape):
        raise Refuse(f"{node.name} does not read the folded weight")
    out = node.output[0] if node.output else ""
    if not out or not any(n is not node and out in n.input for n in m.nodes.values()):
        raise Refuse(f"no matched node reads {node.name}'s output: {after}")
    return node


def _output_matmul(
    m: Match, w: np.ndarray, ops: tuple[str, ...], trans_b: int, beta: Any
) -> onnx.NodeProto:
    """Refuse unless the match has one Gemm or MatMul, of `ops` and the default domain,
    reading a weight of `w`'s shape as its second input, whose output another matched node
    reads, that the fold's layout fits: a Gemm of transB `trans_b` and, `beta` given, of
    that β; a MatMul with trans_b 0 and a first input of rank 2 (BN's channel axis then is
    W's column). The built-in rules capture these; a user's rule may not (a literal transB 0
    for a square B of transB 1 scaled B's columns, a BN before the MatMul was folded into
    W's columns)."""
    node = _the_layer(
        m,
        w,
        ("Gemm", "MatMul"),
        ops,
        f"a BatchNormalization folds into one {' or '.join(ops)} only",
        "no Gemm or MatMul",
        "the BN applies after it",
    )
    if node.op_type == "Gemm":
        have = int(m.graph.attr(node, "transB", 0))
        if have != int(trans_b):
            raise Refuse(f"transB {int(trans_b)} given, but {node.name} has transB {have}")
        node_beta = np.float32(m.graph.attr(node, "beta", 1.0))
        if beta is not None and np.float32(beta) != node_beta:
            raise Refuse(f"beta {beta} given, but {node.name} has beta {node_beta}")
        return node
    if int(trans_b):
        raise Refuse(f"transB {int(trans_b)} given for MatMul {node.name}")
    if m.facts.rank(node.input[0]) != 2:
        raise Refuse(f"cannot prove that {node.input[0]} has rank 2 (BN's axis W's column)")
    return node


_APPLY_OPS = {"mul": "Mul", "div": "Div", "add": "Add", "sub": "Sub"}


def _next_to(m: Match, tensor: str, after: bool) -> onnx.NodeProto:
    """The one matched node of the default domain that reads `tensor` (`after`) or makes it."""
    found = [n for n in m.nodes.values() if tensor in (n.input if after else n.output)]
    if len(found) != 1 or found[0].domain not in ("", "ai.onnx"):
        raise Refuse(f"no one matched node {'reads' if after else 'makes'} {tensor}")
    return found[0]


def _applies(m: Match, tensor: str, c: Any, op: str, after: bool) -> onnx.NodeProto:
    """Refuse unless constant `c` applies to `tensor` by `op` in the one matched node next to
    it: `tensor` op c (or c·tensor, c + tensor), in the node reading `tensor` (a Conv's output:
    `after`) or making it (a Conv's data input). The built-in rules match just that; a user's
    rule may put a node between (Sigmoid(x·c) before the Conv, Relu(Conv(x))·c) or have the
    operands the other way round (c − Conv(x), c / x), which the folds do not compute."""
    want = _APPLY_OPS.get(op)
    if want is None:
        raise Refuse(f"unknown op {op}")
    node = _next_to(m, tensor, after)
    if node.op_type != want or len(node.input) != 2:
        raise Refuse(f"{node.name} ({node.op_type}) is not the {want} the fold computes")
    if after:
        data = 0 if node.input[0] == tensor else 1
    else:
        constant = [i for i, t in enumerate(node.input) if t and m.graph.is_constant(t)]
        data = 1 - constant[0] if len(constant) == 1 else -1
    if data < 0 or node.input[1 - data] == tensor:
        raise Refuse(f"{node.name} does not apply one constant to {tensor}")
    if want in ("Div", "Sub") and data != 0:
        raise Refuse(f"{node.name} computes c {op} x, not x {op} c")
    value, arr = m.facts.value(node.input[1 - data]), np.asarray(c)
    if value is None or value.shape != arr.shape or not np.array_equal(value, arr, equal_nan=True):
        raise Refuse(f"{node.name} does not apply the folded constant")
    return node


def _batchnorm_after(m: Match, tensor: str) -> None:
    """Refuse unless the matched node reading `tensor` is a BatchNormalization of it (not a
    Relu or Transpose between, in a user's rule)."""
    node = _next_to(m, tensor, True)
    if node.op_type != "BatchNormalization" or node.input[0] != tensor:
        raise Refuse(f"{node.name} ({node.op_type}) is not a BatchNormalization of {tensor}")


# ---------------------------------------------------------------------------- batchnorm


@computation("fold_batchnorm_conv")
def fold_batchnorm_conv(
    m: Match, w: Any, b: Any, gamma: Any, beta: Any, mean: Any, var: Any, eps: float,
    group: int = 1, transpose: bool = False,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Conv(x, W, b) → BN  ⇒  Conv(x, W·s, (b − μ)·s + β),  s = γ/√(σ²+ε), per output channel."""
    w = _weight(w)
    conv = _output_conv(m, w, bool(transpose), "a BatchNormalization")
    _batchnorm_after(m, conv.output[0])
    s, t = batchnorm_scale_shift(gamma, beta, mean, var, eps, w)
    c_out = _out_channels(w, bool(transpose), int(group))
    if s.shape[0] != c_out:
        raise Refuse(f"BatchNormalization has {s.shape[0]} channels, the conv {c_out}")
    _finite_scale(s, "the scale γ/√(σ²+ε)")
    w2 = _scale_out_channels(w, s, bool(transpose), int(group), out_dtype=w.dtype)
    _scaled_checked(w, w2, s, bool(transpose), int(group), "W·s")
    b2 = _bias(b, c_out, w) * s + t
    return _cast(w, w2, b2)


@computation("fold_batchnorm_convtranspose")
def fold_batchnorm_convtranspose(
    m: Match, w: Any, b: Any, gamma: Any, beta: Any, mean: Any, var: Any, eps: float, group: int
) -> tuple[np.ndarray, np.ndarray]:
    """ConvTranspose(x, W, b) → BN  ⇒  ConvTranspose(x, W', (b − μ)·s + β), W' scaled per
    output channel across groups (W is [C_in, C_out/group, k...])."""
    return fold_batchnorm_conv(m, w, b, gamma, beta, mean, var, eps, group, True)


@computation("fold_batchnorm_gemm")
def fold_batchnorm_gemm(
    m: Match, bw: Any, c: Any, gamma: Any, beta: Any, mean: Any, var: Any, eps: float,
    trans_b: int, beta_gemm: float,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Gemm(A, B, C; α, β_g) → BN  ⇒  Gemm(A, B·s, s·β_g·C + β − μ·s; α, β=1), with s scaling
    the columns of op(B) (rows of B when transB=1)."""
    w = _float("B", bw)
    if w.ndim != 2:
        raise Refuse(f"Gemm B has rank {w.ndim}")
    _batchnorm_after(m, _output_matmul(m, w, ("Gemm", "MatMul"), trans_b, beta_gemm).output[0])
    s, t = batchnorm_scale_shift(gamma, beta, mean, var, eps, w)
    n = w.shape[0] if trans_b else w.shape[1]
    if s.shape[0] != n:
        raise Refuse(f"BatchNormalization has {s.shape[0]} channels, the Gemm {n}")
    _finite_scale(s, "the scale γ/√(σ²+ε)")
    w2 = w.astype(np.float64) * (s[:, None] if trans_b else s[None, :])
    c64 = np.zeros(1) if c is None else _float("C", c, w).astype(np.float64)
    if c64.ndim > 2:
        raise Refuse(f"Gemm C has rank {c64.ndim}")
    if not _broadcasts(c64.shape, (n,)):  # a C onnx's check lets by ([M] for [M, N])
        raise Refuse(f"Gemm C of shape {list(c64.shape)} does not broadcast to its {n} columns")
    c2 = s * float(beta_gemm) * c64 + t
    w2_cast, c2_cast = _cast(w, w2, c2)
    refuse_underflow(w2_cast, lambda: w2, lambda a: a.sum(axis=1 if trans_b else 0), "B·s")
    return w2_cast, c2_cast


@computation("fold_batchnorm_matmul")
def fold_batchnorm_matmul(
    m: Match, w: Any, gamma: Any, beta: Any, mean: Any, var: Any, eps: float
) -> tuple[np.ndarray, np.ndarray]:
    """MatMul(A, W) → BN (A of rank 2, so BN's channel axis is W's column)  ⇒
    Gemm(A, W·s, β − μ·s)."""
    w = _float("W", w)
    if w.ndim != 2:
        raise Refuse(f"MatMul weight has rank {w.ndim}, not 2")
    _batchnorm_after(m, _output_matmul(m, w, ("MatMul",), 0, None).output[0])
    s, t = batchnorm_scale_shift(gamma, beta, mean, var, eps, w)
    if s.shape[0] != w.shape[1]:
        raise Refuse(f"BatchNormalization has {s.shape[0]} channels, the MatMul {w.shape[1]}")
    _finite_scale(s, "the scale γ/√(σ²+ε)")
    w2 = w.astype(np.float64) * s[None, :]
    w2_cast, t_cast = _cast(w, w2, t)
    refuse_underflow(w2_cast, lambda: w2, lambda a: a.sum(axis=0), "W·s")
    return w2_cast, t_cast


@computation("batchnorm_to_affine")
def batchnorm_to_affine(
    m: Match, gamma: Any, beta: Any, mean: Any, var: Any, eps: float
) -> tuple[np.ndarray, np.ndarray]:
    """BN(x)  ⇒  x·s + t with s, t of shape [C, 1, ..., 1] (rank of x minus one)."""
    like = _float("scale", gamma)
    s, t = batchnorm_scale_shift(gamma, beta, mean, var, eps, like)
    x = m.anchor.input[0]
    r = m.facts.rank(x)
    if r is None or r < 2:
        raise Refuse(f"cannot prove the rank of {x}")
    # From opset 15 X may be float16 where γ, β, μ, σ² are float32: x·s would mix the types
    want = onnx.helper.np_dtype_to_tensor_dtype(like.dtype)
    have = _dtype_of(m, x)
    if have != want:
        shown = "of unknown type" if have is None else onnx.TensorProto.DataType.Name(have)
        raise Refuse(f"{x} is {shown}, the parameters {like.dtype}: x·s + t would mix types")
    shape = (-1,) + (1,) * (r - 2)
    s2, t2 = _cast(like, s.reshape(shape), t.reshape(shape))
    refuse_underflow(s2, lambda: s.reshape(shape), None, "the scale γ/√(σ²+ε)")
    return s2, t2


# ---------------------------------------------------------------------------- conv affine


def _conv_affine(
    m: Match, w: Any, b: Any, c: Any, op: str, group: int, transpose: bool
) -> tuple[np.ndarray, np.ndarray]:
    w = _weight(w)
    _applies(m, _output_conv(m, w, transpose, "a per-channel constant").output[0], c, op, True)
    c_out = _out_channels(w, transpose, int(group))
    vec = per_channel("constant", c, c_out, w.ndim, w)
    bias = _bias(b, c_out, w)
    _finite_scale(vec, "the constant")
    if op == "mul":
        return _scaled_weight(w, vec, transpose, int(group)), _cast_like(w, bias * vec)
    if op == "div":
        if np.any(vec == 0):
            raise Refuse("division by a zero constant")
        inv = 1.0 / vec
        w2 = _scale_out_channels(w, inv, transpose, int(group), out_dtype=w.dtype)
        _scaled_checked(w, w2, inv, transpose, int(group), "W/c")
        return _cast(w, w2, bias * inv)
    raise Refuse(f"unknown affine op {op}")


def _scaled_weight(w: np.ndarray, vec: np.ndarray, transpose: bool, group: int) -> np.ndarray:
    """W·vec per output channel, rounded once to W's dtype."""
    if w.dtype == np.float32:
        # A float32 product is the exact product rounded once, which is exactly what the
        # float64 route gives after its one cast (24 + 24 bits fit in 53): same bits,
        # without the float64 copy of the weight.
        w2 = _scale_out_channels(w, vec.astype(np.float32), transpose, group, np.float32)
    else:
        w2 = _scale_out_channels(w, vec, transpose, group, out_dtype=w.dtype)
    return _scaled_checked(w, w2, vec, transpose, group, "W·c")


def _conv_bias(
    m: Match, w: Any, b: Any, c: Any, op: str, group: int, transpose: bool
) -> np.ndarray:
    # Reads only W's dtype, rank and shape (the computations using it say `layout_only=(0,)`).
    w = _weight(w)
    _applies(m, _output_conv(m, w, transpose, "a per-channel shift").output[0], c, op, True)
    c_out = _out_channels(w, transpose, int(group))
    vec = per_channel("constant", c, c_out, w.ndim, w)
    bias = _bias(b, c_out, w)
    if op not in ("add", "sub"):
        raise Refuse(f"unknown bias op {op}")
    shift = vec if op == "add" else -vec
    merged = bias + shift
    # Conv(x) + M − M (magic-number rounding of the conv's output) folds M into the bias, then
    # would fold −M back out: the rounding gone (`_refuse_cancelling`)
    _refuse_cancelling(bias, shift, merged, w.dtype)
    return _cast_like(w, merged)


@computation("fold_affine_conv")
def fold_affine_conv(
    m: Match, w: Any, b: Any, c: Any, op: str, group: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Conv(x, W, b) ∘ c  ⇒  Conv(x, W', b') for a per-output-channel constant c:
    ·c: W' = W·c, b' = b·c;  /c: W' = W/c, b' = b/c;  +c: b' = b + c;  −c: b' = b − c."""
    return _conv_affine(m, w, b, c, op, group, False)


@computation("fold_scale_shift_conv")
def fold_scale_shift_conv(
    m: Match, w: Any, b: Any, c: Any, d: Any, group: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Conv(x, W, b)·c + d  ⇒  Conv(x, W·c, b·c + d) for per-output-channel constants c and d
    (a BatchNormalization exported as Mul and Add): the weight as `fold_affine_conv` scales it,
    the bias computed in float64 and cast once."""
    w = _weight(w)
    scaled = _applies(m, _output_conv(m, w, False, "a scale and shift").output[0], c, "mul", True)
    _applies(m, scaled.output[0], d, "add", True)
    c_out = _out_channels(w, False, int(group))
    scale = per_channel("scale", c, c_out, w.ndim, w)
    _finite_scale(scale, "the scale")
    shift = per_channel("shift", d, c_out, w.ndim, w)
    bias = _bias(b, c_out, w)
    return _scaled_weight(w, scale, False, int(group)), _cast_like(w, bias * scale + shift)


@computation("fold_bias_conv", layout_only=(0,))
def fold_bias_conv(m: Match, w: Any, b: Any, c: Any, op: str, group: int = 1) -> np.ndarray:
    """Conv(x, W, b) ± c  ⇒  Conv(x, W, b ± c) for a per-output-channel constant c."""
    return _conv_bias(m, w, b, c, op, group, False)


@computation("fold_bias_convtranspose", layout_only=(0,))
def fold_bias_convtranspose(
    m: Match, w: Any, b: Any, c: Any, op: str, group: int = 1
) -> np.ndarray:
    """ConvTranspose(x, W, b) ± c  ⇒  ConvTranspose(x, W, b ± c)."""
    return _conv_bias(m, w, b, c, op, group, True)


@computation("fold_affine_convtranspose")
def fold_affine_convtranspose(
    m: Match, w: Any, b: Any, c: Any, op: str, group: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """As `fold_affine_conv`, with ConvTranspose's weight layout [C_in, C_out/group, k...]."""
    return _conv_affine(m, w, b, c, op, group, True)


@computation("fold_input_scale")
def fold_input_scale(m: Match, w: Any, c: Any, op: str, group: int = 1) -> np.ndarray:
    """Conv(x·c, W, b)  ⇒  Conv(x, W·c, b) and Conv(x/c, W, b)  ⇒  Conv(x, W/c, b), for a
    one-element constant c or one per input channel (`_input_channel_factor`): the convolution
    is linear in x, and zero padding stays zero. A zero or non-finite c is refused (x's inf/NaN
    would vanish), and so is a W·c that overflows W's dtype (every output would be inf/NaN) or
    whose rounding into subnormals or 0 loses more than one ulp of an output channel's weight
    mass Σ|W·c| (float16 W ≈ 1e-3, c = 1e-3: all subnormal), where the original's x·c stays
    normal."""
    w = _weight(w)
    arr = _float("constant", c, w)
    if arr.size != 1:
        return _fold_input_channel_scale(m, w, arr, op, int(group), c)
    _applies(m, _fed_conv(m, w).input[0], c, op, False)
    k = float(arr.reshape(()))
    if k == 0.0 or not np.isfinite(k):
        raise Refuse(f"scale {k} is zero or not finite")
    with np.errstate(over="ignore"):  # (underflow stays reported to `refuse_underflow`)
        if op == "mul":
            # a float32·float32 product rounded once is the float64 product cast once (48
            # bits fit in 53): the same bits without a float64 copy of the weight
            w2 = np.multiply(w, arr.reshape(()), dtype=w.dtype)
        elif op == "div":
            w2 = _cast_like(w, np.divide(w, k, dtype=np.float64))
        else:
            raise Refuse(f"unknown input scale op {op}")
    if not np.all(np.isfinite(w2)):
        raise Refuse(f"W·c overflows {w.dtype} (scale {k:g})")
    refuse_underflow(
        w2,
        lambda: w.astype(np.float64) * k if op == "mul" else w.astype(np.float64) / k,
        _conv_channels(w, False, 1),
        f"W·c (scale {k:g})",
    )
    return w2


def _fed_conv(m: Match, w: np.ndarray) -> onnx.NodeProto:
    """Refuse unless the match has one Conv or ConvTranspose of the default domain, reading a
    weight of `w`'s shape, whose data input another matched node makes: the side a scale of
    its input is on. A user's rule may call `fold_input_scale` for Conv(x, W, b)·c, which is
    Conv(x, W·c, b·c), not Conv(x, W·c, b) (a one-element scale; one per channel proves its
    side by `_prove_channels`)."""
    convs = [n for n in m.nodes.values() if n.op_type in ("Conv", "ConvTranspose")]
    if len(convs) != 1 or convs[0].domain not in ("", "ai.onnx") or len(convs[0].input) < 2:
        found = ", ".join(f"{n.op_type} {n.name}" for n in convs) or "no Conv"
        raise Refuse(f"an input scale folds into one Conv or ConvTranspose only ({found})")
    conv = convs[0]
    weight = m.facts.layout(conv.input[1])
    if weight is None or tuple(weight.shape) != tuple(w.shape):
        raise Refuse(f"{conv.name} does not read the folded weight")
    data = conv.input[0]
    if not data or not any(n is not conv and data in n.output for n in m.nodes.values()):
        raise Refuse(f"no matched node makes {conv.name}'s input: the scale applies before it")
    return conv


def _fold_input_channel_scale(
    m: Match, w: np.ndarray, arr: np.ndarray, op: str, group: int, c: Any
) -> np.ndarray:
    """`fold_input_scale` for a constant of one value per input channel: W[o, j, k…]·c[i] (or
    /c[i]) computed in float64 and cast once."""
    _applies(m, _input_conv(m, w, group, "a per-channel scale").input[0], c, op, False)
    vec = _input_channel_vector(m, w, arr, group)
    if np.any(vec == 0.0) or not np.all(np.isfinite(vec)):
        raise Refuse("a per-channel scale is zero or not finite")
    factor = _input_channel_factor(w, vec, group)
    if op == "mul":
        exact = np.multiply(w, factor, dtype=np.float64)
    elif op == "div":
        exact = np.divide(w, factor, dtype=np.float64)
    else:
        raise Refuse(f"unknown input scale op {op}")
    with np.errstate(over="ignore"):  # (underflow stays reported to `refuse_underflow`)
        w2 = _cast_like(w, exact)
    if not np.all(np.isfinite(w2)):
        raise Refuse(f"W·c overflows {w.dtype} (per-channel scale)")
    refuse_underflow(w2, lambda: exact, _conv_channels(w, False, 1), "W·c (per-channel scale)")
    return w2


@computation("fold_input_shift")
def fold_input_shift(m: Match, w: Any, b: Any, c: Any, op: str, group: int = 1) -> np.ndarray:
    """Conv(x + c, W, b)  ⇒  Conv(x, W, b + Σ_{j,k…} W[o, j, k…]·c[i]) (and x − c: b − Σ…),
    for a one-element constant c or one per input channel (`_input_channel_factor`), the sum
    in float64 and the bias cast once. Exact only where the Conv pads nothing (the rule's
    `conv_unpadded` check): every output then sums its whole window of x + c."""
    w = _weight(w)
    arr = _float("constant", c, w)
    if not np.all(np.isfinite(arr)):
        raise Refuse("the shift is not finite")
    conv = _input_conv(m, w, int(group), "a shift")
    _applies(m, conv.input[0], c, op, False)
    padding = conv_padding(conv, tuple(w.shape))
    if padding is not None:
        raise Refuse(padding)
    c_out = int(w.shape[0])
    bias = _bias(b, c_out, w)
    vec = _input_channel_vector(m, w, arr, int(group))
    # one c for every input channel: a scalar, the same products as vec's (each element c)
    factor = (
        arr.astype(np.float64).reshape(())
        if arr.size == 1
        else _input_channel_factor(w, vec, int(group))
    )
    shift = _channel_sums(w, factor)
    if op not in ("add", "sub"):
        raise Refuse(f"unknown input shift op {op}")
    _refuse_undone_shift(m, arr.astype(np.float64) * (1.0 if op == "add" else -1.0), w.dtype)
    with np.errstate(over="ignore"):
        b2 = _cast_like(w, bias + shift if op == "add" else bias - shift)
    if not np.all(np.isfinite(b2)):
        raise Refuse(f"b + Σ W·c overflows {w.dtype}")
    return b2


# Elements of W·c that `_channel_sums` computes at a time: 256 KiB of float64
_SUM_BLOCK = 1 << 15


def _channel_sums(w: np.ndarray, factor: np.ndarray) -> np.ndarray:
    """Σ_{j,k…} W[o, j, k…]·factor[o, j, k…] per output channel o, the products and sums in
    float64 (`factor` broadcasts to W's shape, or is a scalar). Computed a block of channels
    at a time in one reused buffer: the same products and the same per-row sums as
    `np.multiply(W, factor, dtype=float64).reshape(C_out, -1).sum(axis=1)` (each row is
    summed whole), without a float64 copy of the whole weight (ppocr_det's 384×384 1×1
    Convs: 1.2 MB each, on fresh pages)."""
    c_out = int(w.shape[0])
    row = math.prod(w.shape[1:])
    per = max(1, _SUM_BLOCK // max(1, row))
    sums = np.empty(c_out, np.float64)
    buffer = np.empty((min(per, c_out), *w.shape[1:]), np.float64)
    scalar = factor.ndim == 0
    for start in range(0, c_out, per):
        stop = min(start + per, c_out)
        block = buffer[: stop - start]
        np.multiply(
            w[start:stop], factor if scalar else factor[start:stop], out=block, dtype=np.float64
        )
        block.reshape(stop - start, row).sum(axis=1, out=sums[start:stop])
    return sums


def _refuse_undone_shift(m: Match, shift: np.ndarray, dtype: np.dtype) -> None:
    """Refuse folding x ± c into the Conv where x is itself x0 + k (an Add or Sub of a
    constant k) and the two shifts cancel (`_refuse_cancelling`): (x0 + M) − M rounds x0 (M =
    1.5·2²³ in float32), and folded, the Conv would sum x0 + M, of M's scale, against a bias of
    −Σ W·M: its output off by ulps of that sum (measured 1.67 on outputs of scale 20)."""
    x = _scaled_input(m)
    node = m.graph.producer_node(x)
    if node is None or node.op_type not in ("Add", "Sub") or node.domain not in ("", "ai.onnx"):
        return
    inputs = list(node.input)
    if len(inputs) != 2:
        return
    constant = [i for i, t in enumerate(inputs) if t and m.graph.is_constant(t)]
    if len(constant) != 1:
        return
    k = m.facts.value(inputs[constant[0]])
    if k is None or k.dtype.kind != "f":
        return
    k64 = k.astype(np.float64)
    if node.op_type == "Sub" and constant[0] == 1:  # x0 − k (k − x0: the shift is k)
        k64 = -k64
    if not _broadcasts(k64.shape, shift.shape):
        return
    with np.errstate(over="ignore", invalid="ignore"):
        merged = k64 + shift
    _refuse_cancelling(k64, shift, merged, dtype)


def _input_conv(m: Match, w: np.ndarray, group: int, what: str) -> onnx.NodeProto:
    """The one matched Conv (default domain) that reads weight `w`, with `group` groups: the
    per-channel layout (`_input_channel_factor`) and the bias sum are a Conv's, W [C_out,
    C_in/g, k…]. A ConvTranspose (W [C_in, C_out/g, k…], a border that sums fewer inputs), an
    op of another domain or a `group` other than the node's is refused: a user's rule may
    target any of them."""
    convs = [n for n in m.nodes.values() if n.op_type in ("Conv", "ConvTranspose")]
    if len(convs) != 1 or convs[0].op_type != "Conv" or convs[0].domain not in ("", "ai.onnx"):
        found = ", ".join(f"{n.op_type} {n.name}" for n in convs) or "no Conv"
        raise Refuse(f"{what} folds into one Conv's input only ({found})")
    conv = convs[0]
    node_group = next((int(a.i) for a in conv.attribute if a.name == "group"), 1)
    if node_group != group:
        raise Refuse(f"group {group} given, but {conv.name} has group {node_group}")
    weight = m.facts.layout(conv.input[1]) if len(conv.input) > 1 else None
    if weight is None or tuple(weight.shape) != tuple(w.shape):
        raise Refuse(f"{conv.name} does not read the folded weight")
    return conv


def _input_channel_vector(m: Match, w: np.ndarray, arr: np.ndarray, group: int) -> np.ndarray:
    """Constant `arr` (W's dtype), which x·arr or x + arr applies to the input x of a Conv of
    weight `w` and `group` groups, as a float64 vector over the C_in = W.shape[1]·group input
    channels. It must broadcast as [C_in|1, 1, …] on axis 1 (`per_channel`); one of more than
    one element needs x's channel dimension proven C_in (shape inference), else x·c could
    broadcast x's one channel to C_in."""
    if group < 1 or w.shape[0] % group:
        raise Refuse(f"group {group} does not divide the weight's {w.shape[0]} outputs")
    channels = int(w.shape[1]) * group
    vec = per_channel("constant", arr, channels, w.ndim, w, "input")
    if arr.size > 1:
        _prove_channels(m, channels)
    return vec


def _input_channel_factor(w: np.ndarray, vec: np.ndarray, group: int) -> np.ndarray:
    """`vec` (one float64 per input channel) laid out over W [C_out, C_in/g, k…]: W[o, j, k…]
    reads input channel i = (o ÷ (C_out/g))·(C_in/g) + j, so the factor is vec[i] of shape
    [C_out, C_in/g, 1, …] (a depthwise Conv: vec[o ÷ (C_out/C_in)])."""
    c_out, c_in_g = int(w.shape[0]), int(w.shape[1])
    per_group = vec.reshape(group, 1, c_in_g)
    factor = np.broadcast_to(per_group, (group, c_out // group, c_in_g)).reshape(c_out, c_in_g)
    return factor.reshape((c_out, c_in_g) + (1,) * (w.ndim - 2))


def _prove_channels(m: Match, channels: int) -> None:
    """Refuse unless the tensor the constant scales or shifts provably has `channels` on axis
    1: the one operand that is not constant of the matched node that feeds the Conv's data
    input (`_input_conv`). Taken from the match's structure, not from a variable's name: a
    user's rule may call the Conv's output `x`, whose channels prove nothing."""
    x = _scaled_input(m)
    shape = _shape_of(m, x)
    if shape is None or len(shape) < 2 or shape[1] != channels:
        raise Refuse(
            f"cannot prove that {x} has {channels} channels ({shape}): a per-channel "
            "constant could broadcast its channels"
        )


def _scaled_input(m: Match) -> str:
    """The tensor x of x·c (x + c, ...) that the matched Conv reads: the non-constant operand
    of the matched node producing the Conv's first input."""
    (conv,) = [n for n in m.nodes.values() if n.op_type == "Conv"]  # (`_input_conv`: one)
    feeding = [n for n in m.nodes.values() if conv.input and conv.input[0] in n.output]
    if len(feeding) != 1:
        raise Refuse(f"the match has no node that feeds {conv.name}'s input")
    variable = [t for t in feeding[0].input if t and not m.graph.is_constant(t)]
    if len(variable) != 1:
        raise Refuse(f"{feeding[0].name} has {len(variable)} operands that are not constant")
    return variable[0]


# ---------------------------------------------------------------------------- constants


@computation("combine")
def combine(m: Match, a: Any, b: Any, how: str) -> np.ndarray:
    """Merge two constants of one float dtype in float64: "mul" a·b, "div" a/b, "rdiv" b/a,
    "add" a+b, "sub" a−b, "rsub" b−a."""
    x = _float("first constant", a)
    y = _float("second constant", b, x)
    if not _broadcasts(x.shape, y.shape):  # (x·a)·b that no runtime runs, x of unknown rank
        raise Refuse(f"constants of shapes {list(x.shape)} and {list(y.shape)} do not broadcast")
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    if (how == "div" and np.any(y64 == 0)) or (how == "rdiv" and np.any(x64 == 0)):
        raise Refuse("division by a zero constant")
    ops = {
        "mul": lambda: x64 * y64,
        "div": lambda: x64 / y64,
        "rdiv": lambda: y64 / x64,
        "add": lambda: x64 + y64,
        "sub": lambda: x64 - y64,
        "rsub": lambda: y64 - x64,
    }
    if how not in ops:
        raise Refuse(f"unknown combination {how}")
    exact = ops[how]()
    if how in ("add", "sub", "rsub"):
        _refuse_cancelling(x64, y64, exact, x.dtype)
    # (np.ascontiguousarray makes a 0-d array 1-D: x + [2] of a scalar x is of shape [1])
    merged = np.ascontiguousarray(exact.astype(x.dtype)).reshape(exact.shape)
    if how in ("mul", "div", "rdiv"):  # a merged scale multiplies x: its own precision counts
        refuse_underflow(merged, lambda: exact, None, "the merged scale")
    return merged


def _refuse_cancelling(a: np.ndarray, b: np.ndarray, merged: np.ndarray, dtype: np.dtype) -> None:
    """Refuse merging (x + a) + b into x + (a + b) where the shifts cancel more than half the
    bits of `dtype`'s significand: |a + b| < max(|a|, |b|)·2^-(p/2), p its mantissa bits, in
    some element. The original rounds x + a to an ulp of a before b takes a back, so it keeps x
    only to that ulp; merged, x is kept whole: the magic-number rounding (x + 1.5·2²³) − 1.5·2²³
    (round(x) in float32) would become x + 0, and x + 1e30 − 1e30 (0 for data of scale 4)
    would become x. Within half the bits, the two differ by at most ~√ε of the merged shift,
    the output's scale where x is smaller (float32 1.2e-4, float16 1.6e-2)."""
    with np.errstate(invalid="ignore", over="ignore"):  # (inf − inf refused before, as NaN)
        larger = np.maximum(np.abs(a), np.abs(b))
        cancelling = np.abs(merged) < larger * 2.0 ** -(np.finfo(dtype).nmant // 2)
    if np.any(cancelling):
        i = np.unravel_index(int(np.argmax(cancelling)), cancelling.shape)
        first = float(np.broadcast_to(a, merged.shape)[i])
        second = float(np.broadcast_to(b, merged.shape)[i])
        raise Refuse(
            f"the shifts cancel ({first:g} and {second:g} merge to {float(merged[i]):g}): the "
            "original keeps x only to an ulp of the larger"
        )


@computation("clip_params")
def clip_params(m: Match, lo: Any, hi: Any) -> list[float]:
    """FusedConv's activation_params for Clip: [min, max] (absent bounds → ∓float32 max)."""
    big = float(np.finfo(np.float32).max)
    for what, bound in (("min", lo), ("max", hi)):
        # a scalar in the spec; onnxruntime also runs [1], and refuses any other shape
        if bound is not None and np.ndim(bound) > 1:
            shape = list(np.shape(bound))
            raise Refuse(
                f"Clip's {what} has shape {shape}: not a scalar, which onnxruntime refuses to run"
            )
    low = -big if lo is None else _one_float("Clip's min", lo)
    high = big if hi is None else _one_float("Clip's max", hi)
    return [low, high]


@computation("params")
def params(m: Match, *values: Any) -> list[float]:
    """A list of floats from scalar attributes or constants (e.g. [alpha, beta])."""
    out = []
    for v in values:
        if v is None:
            raise Refuse("a parameter is not a constant")
        out.append(_one_float("a parameter", v))
    return out


def _one_float(what: str, value: Any) -> float:
    """A one-element constant or attribute as a float, or Refuse: a Clip bound of two
    elements passes onnx's check (no runtime runs it) and has no one activation parameter."""
    arr = np.asarray(value)
    if arr.size != 1:
        raise Refuse(f"{what} has shape {list(arr.shape)}, not one element")
    return float(arr.reshape(()))


def _broadcasts(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    """Whether arrays of shapes `a` and `b` broadcast together (numpy's rule, ONNX's)."""
    try:
        np.broadcast_shapes(a, b)
    except ValueError:
        return False
    return True


@computation("layernorm_params")
def layernorm_params(
    m: Match, gamma: Any, beta: Any, axes: Any
) -> tuple[int, np.ndarray, np.ndarray]:
    """LayerNormalization's axis (−k for k normalized trailing axes) and its Scale/B: γ and β
    must have exactly the normalized rank k, one shape, and more than one element.

    The original `n·γ + β` broadcasts: it has x's shape only when every dimension of γ and β is
    x's own dimension or 1, while LayerNormalization's Y always has x's shape. So x's k trailing
    dimensions must be known integers d, and each γ/β dimension d or 1; a 1 is expanded to d
    (the same values), so Scale and B have exactly the normalized shape."""
    g = _float("scale", gamma)
    b = _float("bias", beta, g)
    k = len(np.asarray(axes).ravel())
    if g.ndim != k or b.shape != g.shape or g.size < 2:
        raise Refuse(
            f"scale {list(g.shape)} / bias {list(b.shape)} do not cover the {k} normalized axes"
        )
    normalized = _trailing_dims(m, k)
    if any(dg not in (1, d) for dg, d in zip(g.shape, normalized, strict=True)):
        raise Refuse(
            f"scale/bias {list(g.shape)} would broadcast the normalized dimensions "
            f"{list(normalized)} to another shape"
        )
    if g.shape != normalized:
        g = np.ascontiguousarray(np.broadcast_to(g, normalized))
        b = np.ascontiguousarray(np.broadcast_to(b, normalized))
    return -k, g, b


# Shape facts per pattern run (keyed by the run's `Facts`, dropped with it): inferring shapes
# costs one ONNX shape inference, which only the few layernorm matches need.
_RUN_SHAPES: weakref.WeakKeyDictionary[Facts, ShapeFacts] = weakref.WeakKeyDictionary()


def _trailing_dims(m: Match, k: int) -> tuple[int, ...]:
    """The k trailing dimensions of the normalized tensor (`_normalized_input`), all known
    integers, or Refuse."""
    x = _normalized_input(m)
    shape = _shape_of(m, x)
    trailing = None if shape is None or len(shape) < k else shape[len(shape) - k :]
    if trailing is None or not all(isinstance(d, int) for d in trailing):
        raise Refuse(f"cannot prove the normalized dimensions of {x} ({shape})")
    return tuple(d for d in trailing if isinstance(d, int))


def _normalized_input(m: Match) -> str:
    """The tensor x that the matched mean E[x] normalizes: the input of the matched ReduceMean
    whose input no matched node produces (E[d²] reads a matched node's output). Taken from the
    match's structure, not from a variable's name: a user's rule may call another tensor `x`
    (the output, say), whose dimensions prove nothing about the normalized ones."""
    produced = {t for n in m.nodes.values() for t in n.output if t}
    inputs = {
        n.input[0]
        for n in m.nodes.values()
        if n.op_type == "ReduceMean" and n.input and n.input[0] and n.input[0] not in produced
    }
    if len(inputs) != 1:
        raise Refuse(
            f"the match has {len(inputs)} ReduceMean inputs that no matched node produces, "
            "not one tensor to normalize"
        )
    (x,) = inputs
    return x


def _shape_of(m: Match, tensor: str) -> Shape | None:
    """`tensor`'s inferred shape (`shape_facts`, once per pattern run), or None."""
    shape = _run_shapes(m, tensor).shape(tensor)
    return None if shape is None else tuple(shape)


def _dtype_of(m: Match, tensor: str) -> int | None:
    """`tensor`'s inferred element type (a TensorProto enum), or None."""
    return _run_shapes(m, tensor).dtype(tensor)


def _run_shapes(m: Match, tensor: str) -> ShapeFacts:
    """The pattern run's shape facts (`shape_facts`, inferred once per run, again where
    `tensor` was made by a rewrite since)."""
    shapes = _RUN_SHAPES.get(m.facts)
    if shapes is None or not shapes.knows(tensor):
        m.facts.write_held()  # (inference reads small constants' values)
        shapes = _RUN_SHAPES[m.facts] = shape_facts(m.graph)
    return shapes
