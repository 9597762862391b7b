"""Named checks a rule lists under `checks:`; each returns None, or the reason it refuses.

A check receives the `Match` and its arguments as written in the rule file (tensor variables
as `Var`, literals as Python values). Checks only read the graph. The preconditions every rule
shares (single use of intermediates, no rank-raising constants, opset of the replacement) live
in `graphopt.patterns.rewrite`, not here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx

from graphopt.backends.onnxruntime import PROBE_IR_VERSION, probe_failure
from graphopt.patterns.engine import Match
from graphopt.patterns.rules import Var

Check = Callable[..., str | None]
CHECKS: dict[str, Check] = {}


def check(name: str) -> Callable[[Check], Check]:
    def register(fn: Check) -> Check:
        CHECKS[name] = fn
        return fn

    return register


def _name(v: Any) -> str:
    return v.name if isinstance(v, Var) else str(v)


@check("constant")
def constant(m: Match, *vars: Var) -> str | None:
    """Every named tensor that is present is a constant (initializer or Constant node)."""
    for v in vars:
        t = m.tensor(v.name)
        if t is not None and not m.graph.is_constant(t):
            return f"{t} ({v.name}) is not a constant"
    return None


@check("float_constant")
def float_constant(m: Match, *vars: Var) -> str | None:
    """Every named tensor that is present is a floating-point constant, all of one dtype."""
    dtypes = set()
    for v in vars:
        t = m.tensor(v.name)
        if t is None:
            continue
        kind = m.facts.dtype(t)
        if kind is None:
            return f"{t} ({v.name}) is not a constant"
        if kind.kind != "f":
            return f"{t} ({v.name}) is {kind}, not floating point"
        dtypes.add(kind)
    if len(dtypes) > 1:
        return f"constants have different dtypes: {', '.join(sorted(map(str, dtypes)))}"
    return None


@check("dtype")
def dtype(m: Match, var: Var, name: str) -> str | None:
    """The constant bound to `var` has numpy dtype `name` (e.g. "float32")."""
    t = m.tensor(var.name)
    kind = m.facts.dtype(t) if t is not None else None
    if kind is None:
        return f"{var.name} is not a constant, its dtype is unknown"
    if kind != np.dtype(name):
        return f"{var.name} is {kind}, the rule needs {name}"
    return None


@check("scalar")
def scalar(m: Match, *vars: Var) -> str | None:
    """Every named tensor is a constant with exactly one element."""
    for v in vars:
        value = m.value(v.name)
        if value is None or value.size != 1:
            return f"{v.name} is not a one-element constant"
    return None


@check("batchnorm_inference")
def batchnorm_inference(m: Match, out: Var) -> str | None:
    """The BatchNormalization producing `out` runs in inference mode: training_mode absent or
    0, spatial (opset < 9) 1, before opset 14 no output named but the first (the spec's
    training-mode case: batch statistics, read or not), and only its first output is used
    (checked by the engine)."""
    node = m.node_of(out.name)
    if node is None:
        return f"no matched node produces {out.name}"
    if m.graph.opset_version("") < 14 and any(node.output[1:]):
        return f"{node.name} names its statistics outputs: training mode before opset 14"
    for a in node.attribute[:]:
        if a.name == "training_mode" and a.i != 0:
            return f"{node.name} is in training mode"
        if a.name == "spatial" and a.i != 1:
            return f"{node.name} has spatial=0 (per-element statistics)"
    return None


@check("rank")
def rank(m: Match, var: Var, expected: int) -> str | None:
    """The tensor bound to `var` has rank `expected`, provably."""
    t = m.tensor(var.name)
    if t is None:
        return f"{var.name} is absent"
    r = m.facts.rank(t)
    if r is None:
        return f"cannot prove the rank of {t}"
    if r != expected:
        return f"{t} has rank {r}, the rule needs {expected}"
    return None


@check("opset_at_least")
def opset_at_least(m: Match, version: int) -> str | None:
    """The model's default-domain opset is at least `version`."""
    have = m.graph.opset_version("")
    return None if have >= version else f"the model's opset {have} < {version}"


@check("trailing_axes")
def trailing_axes(m: Match, axes: Any, x: Var) -> str | None:
    """`axes` (a list attribute, or a constant tensor variable) reduces exactly the trailing
    axes of `x`: [-1], [-2, -1], ... or [r-k, ..., r-1] when the rank r is known."""
    values = m.arg(axes) if isinstance(axes, Var) else axes
    if values is None:
        return "the reduced axes are unknown"
    values = [int(a) for a in np.asarray(values).ravel()]
    if not values:
        return "ReduceMean over all axes"
    if all(a < 0 for a in values):
        k = len(values)
        return None if sorted(values) == list(range(-k, 0)) else f"axes {values} are not trailing"
    t = m.tensor(x.name)
    r = m.facts.rank(t) if t is not None else None
    if r is None:
        return f"cannot prove axes {values} are the trailing axes of {x.name}"
    norm = sorted(a % r for a in values)
    return None if norm == list(range(r - len(norm), r)) else f"axes {values} are not trailing"


@check("same_axes")
def same_axes(m: Match, a: Any, b: Any, x: Var) -> str | None:
    """Two axes lists (attributes or constants) name the same axes of `x` (negative axes are
    normalized with x's rank when they need to be)."""
    va, vb = m.arg(a), m.arg(b)
    if va is None or vb is None:
        return f"{_name(a)} or {_name(b)} is unknown"
    la = [int(v) for v in np.asarray(va).ravel()]
    lb = [int(v) for v in np.asarray(vb).ravel()]
    if sorted(la) == sorted(lb):
        return None
    t = m.tensor(x.name)
    r = m.facts.rank(t) if t is not None else None
    if r is None or sorted(v % r for v in la) != sorted(v % r for v in lb):
        return f"axes {la} and {lb} differ"
    return None


@check("same_value")
def same_value(m: Match, a: Any, b: Any) -> str | None:
    """Two attributes or constants are equal (e.g. the axes of two ReduceMean nodes)."""
    va, vb = m.arg(a), m.arg(b)
    if va is None or vb is None:
        return f"{_name(a)} or {_name(b)} is unknown"
    if np.asarray(va).tolist() != np.asarray(vb).tolist():
        return f"{_name(a)}={np.asarray(va).tolist()} differs from {_name(b)}={np.asarray(vb).tolist()}"
    return None


@check("opset_below")
def opset_below(m: Match, version: int) -> str | None:
    """The model's default-domain opset is below `version`."""
    have = m.graph.opset_version("")
    return None if have < version else f"the model's opset {have} ≥ {version}"


@check("onnxruntime_runs")
def onnxruntime_runs(m: Match, op: str) -> str | None:
    """onnxruntime's CPU build runs default-domain `op` (at the model's opset) on the element type
    of the constants the target matched (by value, or as constant variables): x's type, which
    the ops' inputs share. float32 and float16 are taken as run (every op a rule emits has those
    kernels); another type is probed once per process. onnxruntime has no double HardSigmoid,
    HardSwish, Gelu, Softplus or Mish at most opsets: a fused float64 model would not load. A
    float64 HardSigmoid or HardSwish is refused where it loads too: its parameters are float32
    attributes (`_FLOAT32_PARAMETERS`)."""
    facts = m.facts
    names = [t for _, t in m.literal_sites]
    names += [t for v in m.rule.constant_vars if (t := m.tensor(v)) is not None]
    kinds = {kind for t in names if (kind := facts.dtype(t)) is not None}
    for kind in kinds:
        if kind in _FLOAT_KERNELS:
            continue
        if (lacking := _ort_lacks(m, op, kind)) is not None:
            return lacking
        if op in _FLOAT32_PARAMETERS and kind.itemsize > 4:
            return _FLOAT32_PARAMETERS[op].format(kind=kind)
    return None


_FLOAT_KERNELS = (np.dtype(np.float32), np.dtype(np.float16))
# Ops whose parameters are float32 attributes (HardSwish's α = 1/6 and β = ½ by definition):
# in a wider type they compute x·float32(1/6), 3e-8 of the value off where the decomposition
# they replace is exact (onnxruntime 1.32 at opset 18: float64 HardSigmoid 1.5e-8, HardSwish
# 1.1e-8 of the output's scale), so a wider type keeps its decomposition.
_FLOAT32_PARAMETERS = {
    op: f"{op}'s parameters are float32 attributes: a {{kind}} {op} is float32-accurate"
    for op in ("HardSigmoid", "HardSwish")
}


@check("onnxruntime_runs_on")
def onnxruntime_runs_on(m: Match, op: str, x: Var) -> str | None:
    """onnxruntime's CPU build runs default-domain `op` at the model's opset on `x`'s element
    type (float32 where it is not known), probed once per process for every type, float32 and
    float16 included: a rule with no constants to type it, for an op onnxruntime may lack at
    an opset above its own (onnxruntime 1.32 runs Swish at opset 24, not at 25: "Could not find
    an implementation for Swish(24)")."""
    t = m.tensor(x.name)
    kind = (m.facts.dtype(t) if t is not None else None) or np.dtype(np.float32)
    return _ort_lacks(m, op, kind)


def _ort_lacks(m: Match, op: str, kind: np.dtype) -> str | None:
    """Why onnxruntime's CPU build cannot run default-domain `op` on `kind` at the model's
    opset (probed once per process: `_ort_runs`), or None where it can."""
    version = m.graph.opset_version("")
    if _ort_runs(op, version, onnx.helper.np_dtype_to_tensor_dtype(kind)):
        return None
    return f"onnxruntime has no {kind} {op} (opset {version})"


@functools.cache
def _ort_runs(op: str, version: int, elem_type: int) -> bool:
    """Whether onnxruntime's CPU build loads and runs `op`(x) on a [1, 2] tensor of `elem_type`."""
    from onnx import helper

    x = helper.make_tensor_value_info("x", elem_type, [1, 2])
    y = helper.make_tensor_value_info("y", elem_type, None)
    graph = helper.make_graph([helper.make_node(op, ["x"], ["y"])], "probe", [x], [y])
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", version)], ir_version=PROBE_IR_VERSION
    )
    return _runs_in_onnxruntime(model, np.ones((1, 2), helper.tensor_dtype_to_np_dtype(elem_type)))


@check("float_type")
def float_type(m: Match, *names: str) -> str | None:
    """The element type of the constants the target matched (by value, or as constant
    variables: x's type, which the ops' inputs share) is one of the numpy dtypes `names`. A
    fusion into an op whose kernels for the other types are less precise than the ops it
    replaces: onnxruntime's float64 FastGelu is float32-accurate (3.5e-8 relative where the
    float64 decomposition it replaces is exact to 1e-16), and it has no float64 Gelu."""
    names_ = [t for _, t in m.literal_sites]
    names_ += [t for v in m.rule.constant_vars if (t := m.tensor(v)) is not None]
    kinds = {kind for t in names_ if (kind := m.facts.dtype(t)) is not None}
    if not kinds:
        return "the target matched no constant to tell its element type"
    allowed = {np.dtype(n) for n in names}
    if not kinds <= allowed:
        found = ", ".join(sorted(str(k) for k in kinds - allowed))
        return f"the rule fuses {', '.join(names)} only, not {found}"
    return None


@check("float32_exact")
def float32_exact(m: Match, *vars: Var) -> str | None:
    """Every named constant holds values a float32 holds exactly: the replacement takes them
    as float attributes, which are float32. A float64 LayerNormalization ε of 1e-5 would be
    1e-5·(1 − 2.5e-9): its output up to 1.2e-8 of the scale off where var is near ε (measured,
    onnxruntime 1.32), against float64's 1e-16 in the decomposition."""
    for v in vars:
        value = m.value(v.name)
        if value is None:
            return f"{v.name} is not a constant"
        if value.dtype.itemsize > 4:
            with np.errstate(over="ignore"):
                narrowed = value.astype(np.float32).astype(value.dtype)
            if not np.array_equal(narrowed, value, equal_nan=True):
                return (
                    f"{v.name} ({value.dtype}) is not exactly a float32, as its attribute would be"
                )
    return None


@check("contrib_import")
def contrib_import(m: Match) -> str | None:
    """The model imports com.microsoft at version 1, where onnxruntime registers its contrib
    ops, or not at all (the rewrite then imports it at 1). A model that imports it at 0 loads
    while nothing uses the domain; a com.microsoft op under that import does not
    ("com.microsoft:FusedConv(-1) is not a registered function/op", onnxruntime 1.32)."""
    version = m.graph.opset.get("com.microsoft")
    if version is None or version == 1:
        return None
    return f"the model imports com.microsoft at version {version}; its contrib ops are version 1"


@check("ort_supports")
def ort_supports(m: Match, what: str) -> str | None:
    """The installed onnxruntime runs contrib op `what` ("QuickGelu", or "FusedConv:<act>" for
    a FusedConv activation) on the CPU; probed once per process with a tiny model."""
    return None if _ort_probe(what) else f"the installed onnxruntime lacks {what}"


@functools.cache
def _ort_probe(what: str) -> bool:
    from onnx import TensorProto, helper

    op, _, act = what.partition(":")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    inits = []
    if op == "FusedConv":
        w = helper.make_tensor("w", TensorProto.FLOAT, [1, 1, 1, 1], [1.0])
        inits.append(w)
        node = helper.make_node(op, ["x", "w"], ["y"], domain="com.microsoft", activation=act)
    else:
        node = helper.make_node(op, ["x"], ["y"], domain="com.microsoft")
    graph = helper.make_graph([node], "probe", [x], [y], inits)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("com.microsoft", 1)],
        ir_version=PROBE_IR_VERSION,
    )
    return _runs_in_onnxruntime(model, np.ones((1, 1, 2, 2), np.float32))


def _runs_in_onnxruntime(model: onnx.ModelProto, x: np.ndarray) -> bool:
    """Whether onnxruntime's CPU build (optimizations off) loads `model` and runs it on x."""
    try:
        return probe_failure(model, {"x": x}) is None
    except ImportError:
        return False


@check("gemm_bias")
def gemm_bias(m: Match, w: Var, c: Var) -> str | None:
    """Constant `w` is a [K, N] matrix and constant `c` is [N], [1, N] or one element: Gemm's C
    then broadcasts to MatMul's [M, N] result as Add did, whatever M is."""
    weight, bias = m.value(w.name), m.value(c.name)
    if weight is None or bias is None:
        return f"{w.name} and {c.name} must be constants"
    if weight.ndim != 2:
        return f"{w.name} has rank {weight.ndim}, not 2"
    n = weight.shape[1]
    if bias.size == 1 and bias.ndim <= 2:
        return None
    if bias.shape in ((n,), (1, n)):
        return None
    return f"{c.name} of shape {list(bias.shape)} is not [{n}], [1, {n}] or one element"


@check("no_broadcast")
def no_broadcast(m: Match, *vars: Var) -> str | None:
    """Each named constant has no more dimensions than the other inputs of the matched node
    that reads it (provably), so folding it into an attribute cannot change a shape."""
    for v in vars:
        t = m.tensor(v.name)
        value = m.value(v.name)
        if t is None or value is None:
            return f"{v.name} is not a constant"
        if value.ndim == 0:
            continue
        for node in m.nodes.values():
            if t not in node.input:
                continue
            others = [m.facts.rank(i) for i in node.input if i and i != t]
            if not others or any(r is None for r in others):
                return f"cannot prove that {t} of shape {list(value.shape)} does not broadcast {node.name}"
            if max(r for r in others if r is not None) < value.ndim:
                return f"{t} of shape {list(value.shape)} broadcasts the result of {node.name}"
    return None


@check("conv_unpadded")
def conv_unpadded(m: Match, out: Var, weight: Var) -> str | None:
    """The Conv producing `out` pads nothing: auto_pad VALID, or NOTSET (the default) with
    pads absent or all 0, or SAME_UPPER/SAME_LOWER with a kernel (`weight`'s spatial dims) of
    1 on every axis, whose SAME padding is 0 for any input size and stride. A constant added
    to a padded Conv's input reaches its border outputs only in part (the pads read 0, not
    the constant), so it does not fold into the bias."""
    node = m.node_of(out.name)
    if node is None:
        return f"no matched node produces {out.name}"
    t = m.tensor(weight.name)
    w = m.facts.layout(t) if t is not None else None
    return conv_padding(node, None if w is None else tuple(w.shape))


def conv_padding(node: onnx.NodeProto, weight_shape: tuple[int, ...] | None) -> str | None:
    """Why Conv `node` (weight of shape `weight_shape`, None: unknown) may pad its input, or
    None where it provably pads nothing (`conv_unpadded`)."""
    auto_pad, pads = "NOTSET", []
    for a in node.attribute[:]:
        if a.name == "auto_pad":
            auto_pad = a.s.decode(errors="replace")
        elif a.name == "pads":
            pads = list(a.ints)
    if auto_pad == "VALID":
        return None
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        w = weight_shape
        if w is not None and len(w) > 2 and all(k == 1 for k in w[2:]):
            return None
        return f"{node.name} pads its input (auto_pad {auto_pad})"
    if auto_pad != "NOTSET":
        return f"{node.name} has auto_pad {auto_pad!r}"
    if any(pads):
        return f"{node.name} pads its input (pads {pads}): its border would not add the constant"
    return None
