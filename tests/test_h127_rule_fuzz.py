"""Differential fuzz of the built-in rewrite rules (patterns/batchnorm.yaml, activations.yaml,
ort_contrib.yaml) against onnxruntime: seeded small models around each rule's target, run
through `graphopt.optimize` with the pipelines default, tensorrt and ort-fusions, compared
with the original in onnxruntime (optimizations off on both sides) on deterministic feeds.

Each case varies what a rule's preconditions must see: the operand order of commutative ops
(and of Sub/Div, which must not fold the other way round), constants of every broadcasting
shape (one element, [1], [C], [C,1,1], [1,C,1,1], rank-raising [1,1,C,1,1], the last axis,
the whole tensor), float32/float16/float64, Conv attributes (group, pads, auto_pad, strides,
dilations, 1-D to 3-D), ConvTranspose with output_padding and groups, intermediates with a
second reader or that are graph outputs, constants that are graph inputs with an initializer
(fed another value: a fold would freeze the default), Constant nodes (value, value_float,
value_floats), one initializer in two roles or read by two sites, special values (0, ±inf,
NaN, 1e30, subnormal) in scales and BN's γ, symbolic input dimensions, an input of one channel
that a constant broadcasts to C, unnamed or duplicate node names, value_info for every
intermediate, opsets 11-21. Kinds: Conv/ConvTranspose then constants or BN, constants then a
Conv, Conv → constant → Conv, networks of two to four such stages, constant chains, Gemm and
MatMul with BN or a bias, every decomposed activation form the rules know (and near misses),
LayerNormalization, Conv + activation (FusedConv).

Oracle per pipeline: optimize does not raise; the result passes the full onnx check and keeps
the graph inputs and outputs as declared; a model onnxruntime runs still runs, with the same
output names, dtypes and shapes, NaN and inf where the original has them, and values within
rtol·(|ref| + max|ref|) (rtol 1e-4 float32, 2e-2 float16, 1e-9 float64; 1e-2 where the model
divides a constant by a computed value, whose poles magnify any rounding).

The default run takes `DEFAULT_CASES` seeds; `GRAPHOPT_FUZZ_CASES=N` runs N, or hunt with
`python -m tests.test_h127_rule_fuzz START COUNT`.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import graphopt

PIPELINES = ("default", "tensorrt", "ort-fusions")
DEFAULT_CASES = 80
RTOL = {np.dtype(np.float32): 1e-4, np.dtype(np.float16): 2e-2, np.dtype(np.float64): 1e-9}
_NP_TO_ONNX = {
    np.dtype(np.float32): onnx.TensorProto.FLOAT,
    np.dtype(np.float16): onnx.TensorProto.FLOAT16,
    np.dtype(np.float64): onnx.TensorProto.DOUBLE,
}


@dataclass
class Case:
    """A model under construction: nodes, constants, inputs and their feeds."""

    rng: np.random.Generator
    dtype: np.dtype
    opset: int
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    inits: list[onnx.TensorProto] = field(default_factory=list)
    inputs: list[onnx.ValueInfoProto] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    feeds: dict[str, np.ndarray] = field(default_factory=dict)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    what: list[str] = field(default_factory=list)
    n: int = 0
    # k/y for a y that may come near 0: any rounding a fold changes in y is magnified there
    # (compared to 1e-2 of the output's scale: a fold of k/y as y/k is off by far more)
    poles: bool = False
    special: bool = False  # some constant holds a special value (`_values`)
    softplus: bool = False  # log(eˣ + 1) in the model, which overflows where Softplus does not
    style: str = "plain"  # or "unnamed", "duplicate names", "value_info" (`model`)
    # (shape, dtype) → plain initializers of it (another constant may alias one)
    plain: dict[tuple[tuple[int, ...], str], list[str]] = field(default_factory=dict)

    def name(self, base: str) -> str:
        self.n += 1
        return f"{base}{self.n}"

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def pick(self, options):  # type: ignore[no-untyped-def]
        return options[int(self.rng.integers(len(options)))]

    def input(
        self, shape: tuple[int, ...], scale: float = 4.0, name: str = "x", symbolic: bool = False
    ) -> str:
        """Graph input `name` fed seeded values; `symbolic`: declared with named dimensions
        (the batch, or every one), so shapes are not proven."""
        dims: list[int | str] = list(shape)
        if symbolic:
            every = self.chance(0.5)
            dims = [f"d{i}" if every or i == 0 else d for i, d in enumerate(shape)]
            self.what.append(f"symbolic {dims}")
        self.inputs.append(helper.make_tensor_value_info(name, _NP_TO_ONNX[self.dtype], dims))
        self.feeds[name] = self.rng.uniform(-scale, scale, shape).astype(self.dtype)
        self.shapes[name] = shape
        return name

    def const(self, value: np.ndarray, base: str = "c", kind: str | None = None, dtype=None) -> str:  # type: ignore[no-untyped-def]
        """`value` as an initializer, a Constant node, or an initializer that is also a graph
        input (fed another value, so a fold that froze the default shows)."""
        with np.errstate(over="ignore"):  # 1e30 is inf in float16, as meant
            arr = np.asarray(value).astype(dtype or self.dtype)
        same = self.plain.setdefault((arr.shape, arr.dtype.str), [])
        if same and arr.dtype.kind == "f" and self.chance(0.06):  # one tensor, two roles
            self.what.append(f"alias {same[0]}")
            return same[0]
        name = self.name(base)
        if kind is None:
            kind = self.pick(["init"] * 7 + ["node"] * 2 + ["input"])
        if kind == "node":
            if arr.dtype == np.float32 and arr.ndim == 0 and self.chance(0.4):
                const = helper.make_node("Constant", [], [name], value_float=float(arr))
            elif arr.dtype == np.float32 and arr.ndim == 1 and self.chance(0.4):
                const = helper.make_node("Constant", [], [name], value_floats=arr.tolist())
            else:
                const = helper.make_node(
                    "Constant", [], [name], value=numpy_helper.from_array(arr, name)
                )
            self.nodes.append(const)
        else:
            if kind == "init":
                same.append(name)
            self.inits.append(numpy_helper.from_array(arr, name))
            if kind == "input":
                elem = helper.np_dtype_to_tensor_dtype(arr.dtype)
                self.inputs.append(helper.make_tensor_value_info(name, elem, list(arr.shape)))
                other = arr * 1.25 + np.asarray(0.125, arr.dtype) if arr.dtype.kind == "f" else arr
                self.feeds[name] = np.asarray(other, arr.dtype)
                self.what.append(f"{name} overridable")
        self.shapes[name] = arr.shape
        if arr.dtype == self.dtype and self.chance(0.02):
            self.outputs.append(name)
            self.what.append(f"{name} output")
        return name

    def node(self, op: str, inputs: list[str], n_out: int = 1, **attrs) -> str:  # type: ignore[no-untyped-def]
        outs = [self.name(op.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op, inputs, outs, name=self.name("n_" + op), **attrs))
        return outs[0]

    def model(self, declare: bool = True, concrete: bool = False) -> onnx.ModelProto:
        """The model; `declare`: with its outputs, typed as shape inference types them;
        `concrete`: its inputs declared with the fed shapes (no symbolic dimension)."""
        inputs = self.inputs
        if concrete:
            inputs = [
                helper.make_tensor_value_info(
                    i.name, i.type.tensor_type.elem_type, list(self.feeds[i.name].shape)
                )
                for i in self.inputs
            ]
        outputs = []
        if declare:
            inferred = onnx.shape_inference.infer_shapes(self.model(declare=False))
            types = {vi.name: vi.type for vi in inferred.graph.value_info}
            for o in self.outputs:
                vi = onnx.ValueInfoProto(name=o)
                vi.type.CopyFrom(types[o]) if o in types else None
                if o not in types:
                    vi.type.tensor_type.elem_type = _NP_TO_ONNX[self.dtype]
                outputs.append(vi)
        nodes = self.nodes
        if declare and self.style in ("unnamed", "duplicate names"):
            nodes = [onnx.NodeProto() for _ in self.nodes]
            for i, (new, old) in enumerate(zip(nodes, self.nodes, strict=True)):
                new.CopyFrom(old)
                new.name = "" if self.style == "unnamed" else f"n{i // 2}"
        graph = helper.make_graph(nodes, "fuzz", inputs, outputs, self.inits)
        ir = 8 if self.opset <= 17 else 9 if self.opset <= 20 else 10
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", self.opset)], ir_version=ir
        )
        if declare and self.style == "value_info":  # every intermediate typed, as exporters do
            inferred = onnx.shape_inference.infer_shapes(model)
            model.graph.value_info.extend(inferred.graph.value_info)
        return model

    def shape(self, tensor: str) -> tuple[int, ...]:
        """`tensor`'s static shape by ONNX shape inference over the model so far."""
        if tensor in self.shapes:
            return self.shapes[tensor]
        model = self.model(declare=False, concrete=True)
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
        for vi in inferred.graph.value_info:
            if vi.name == tensor:
                dims = tuple(d.dim_value for d in vi.type.tensor_type.shape.dim)
                self.shapes[tensor] = dims
                return dims
        raise AssertionError(f"no shape for {tensor}")

    def finish(self, y: str, second_reader: bool = True) -> None:
        self.outputs.append(y)


# ---------------------------------------------------------------------------- pieces


SPECIAL = (0.0, -0.0, np.inf, -np.inf, np.nan, 1e30, 1e-30, 60000.0, 1e-6)


def _values(c: Case, shape: tuple[int, ...], low: float = 0.5, high: float = 2.0) -> np.ndarray:
    """Nonzero values of both signs (magnitudes in [low, high]); in 6 % of the draws some of
    them special (0, ±inf, NaN, beyond float16's range, subnormal)."""
    mag = c.rng.uniform(low, high, shape)
    sign = np.where(c.rng.random(shape) < 0.5, -1.0, 1.0)
    out = np.asarray(mag * sign)
    if out.size and c.chance(0.06):
        c.special = True
        flat = out.reshape(-1)
        at = int(c.rng.integers(flat.size))
        flat[at] = c.pick(SPECIAL)
        if c.chance(0.5):
            flat[:] = flat[at]
        c.what.append(f"special {flat[at]}")
    return out


def _broadcast_shapes(c: Case, y_shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Constant shapes that broadcast against a [N, C, S...] tensor (and some that raise the
    rank or broadcast along another axis)."""
    r = len(y_shape)
    ch = y_shape[1] if r > 1 else y_shape[0]
    rest = (1,) * (r - 2)
    shapes = [(), (1,), (1,) * r, (ch, *rest), (1, ch, *rest), (1,) * (r + 1), (1, 1, ch, *rest)]
    shapes += [(y_shape[-1],), (1,) * (r - 1) + (y_shape[-1],), (1, *tuple(y_shape[1:]))]
    shapes += [(ch,), (ch, 1)]
    if ch == 1 and r > 1:  # broadcasts the one channel to three
        shapes += [(1, 3, *rest), (3, *rest)]
    out = []
    for s in shapes:
        try:
            np.broadcast_shapes(s, y_shape)
        except ValueError:
            continue
        out.append(s)
    return out


def _maybe_second_reader(c: Case, t: str) -> None:
    """Sometimes give intermediate `t` another reader or make it a graph output."""
    roll = c.rng.random()
    if roll < 0.1:
        c.outputs.append(t)
        c.what.append(f"{t} output")
    elif roll < 0.18:
        c.outputs.append(c.node("Relu", [t]))
        c.what.append(f"{t} read twice")


def _binary(c: Case, op: str, y: str, k: str) -> str:
    """op(y, k) or, for commutative ops and sometimes for Sub/Div, op(k, y) (not k/y in
    float16: a reciprocal near y = 0 magnifies any rounding beyond the tolerance)."""
    swap = c.chance(0.5) if op in ("Mul", "Add") else c.chance(0.15)
    if op == "Div" and c.dtype == np.float16:
        swap = False
    if op == "Div" and swap:
        c.poles = True
    return c.node(op, [k, y] if swap else [y, k])


def _conv(c: Case, transpose: bool = False, x: str | None = None) -> tuple[str, int]:
    """Conv/ConvTranspose with random attributes of a new input (or of `x`, whose channels
    then fix the groups); returns (output, output channels)."""
    if x is None:
        d = c.pick([1, 2, 2, 2, 3])
        group = c.pick([1, 1, 1, 2, 3])
        cin = group * c.pick([1, 2])
        if not transpose and c.chance(0.15):  # depthwise
            group, cin = cin, cin
        size = tuple(int(c.rng.integers(4, 8)) for _ in range(d))
        batch = c.pick([1, 2])
        x = c.input((batch, cin, *size), symbolic=c.chance(0.15))
    else:
        shape = c.shape(x)
        d, cin = len(shape) - 2, shape[1]
        group = c.pick([g for g in (1, 1, 2, 3, cin) if cin % g == 0])
    cout = group * c.pick([1, 2]) if group != cin or transpose else cin * c.pick([1, 2])
    k = tuple(c.pick([1, 1, 2, 3]) for _ in range(d))
    attrs: dict = {}
    if group > 1 or c.chance(0.2):
        attrs["group"] = group
    if c.chance(0.5):
        attrs["kernel_shape"] = list(k)
    strides = [c.pick([1, 1, 2]) for _ in range(d)]
    if c.chance(0.5):
        attrs["strides"] = strides
    else:
        strides = [1] * d
    dil = [c.pick([1, 1, 2]) for _ in range(d)]
    if c.chance(0.4):
        attrs["dilations"] = dil
    else:
        dil = [1] * d
    mode = c.pick(["NOTSET", "NOTSET", "pads", "pads", "SAME_UPPER", "SAME_LOWER", "VALID"])
    if mode == "pads":
        attrs["pads"] = [int(c.rng.integers(0, kk)) if kk > 1 else 0 for kk in k] * 2
        if c.chance(0.3):
            attrs["pads"] = [int(c.rng.integers(0, 2)) for _ in range(2 * d)]
    elif mode != "NOTSET":
        attrs["auto_pad"] = mode
    if transpose:
        w_shape = (cin, cout // group, *k)
        if c.chance(0.5):
            attrs["output_padding"] = [
                int(c.rng.integers(0, max(s, dl))) for s, dl in zip(strides, dil, strict=False)
            ]
            attrs["output_padding"] = [
                min(op, s - 1) for op, s in zip(attrs["output_padding"], strides, strict=False)
            ]
    else:
        w_shape = (cout, cin // group, *k)
    w = c.const(c.rng.uniform(-1, 1, w_shape), "W", kind=c.pick(["init"] * 8 + ["node", "input"]))
    ins = [x, w]
    if c.chance(0.6):
        ins.append(c.const(c.rng.uniform(-1, 1, (cout,)), "B"))
    op = "ConvTranspose" if transpose else "Conv"
    c.what.append(f"{op}{d}d {attrs}")
    y = c.node(op, ins, **attrs)
    if c.chance(0.1):  # another Conv reads the same weight (a fold must not write over it)
        c.outputs.append(c.node(op, ins, **attrs))
        c.what.append("weight shared")
    return y, cout


def _batchnorm(c: Case, y: str, channels: int) -> str:
    gamma = c.rng.uniform(0.5, 1.5, channels)
    if c.chance(0.06):
        gamma[int(c.rng.integers(channels))] = c.pick(SPECIAL)
        c.what.append(f"gamma {gamma.tolist()}")
    consts = [
        c.const(gamma, "gamma"),
        c.const(c.rng.uniform(-1, 1, channels), "beta"),
        c.const(c.rng.uniform(-1, 1, channels), "mean"),
        c.const(c.rng.uniform(0.2, 2, channels) * (0 if c.chance(0.05) else 1), "var"),
    ]
    attrs = {"epsilon": float(c.pick([1e-5, 1e-3, 0.1]))}
    if c.chance(0.05):
        attrs["epsilon"] = float(c.pick([0.0, 1e-12]))
        c.what.append(f"epsilon {attrs['epsilon']}")
    if c.opset >= 14 and c.chance(0.2):
        attrs["training_mode"] = 0
    if c.opset < 14 and c.chance(0.2):  # its optional outputs named "" (not used)
        out = c.name("batchnormalization")
        node = helper.make_node("BatchNormalization", [y, *consts], [out, "", ""], **attrs)
        node.name = c.name("n_BatchNormalization")
        c.nodes.append(node)
        return out
    return c.node("BatchNormalization", [y, *consts], **attrs)


# ---------------------------------------------------------------------------- case kinds


def conv_after(c: Case) -> None:
    """Conv/ConvTranspose → BN / Mul / Div / Add / Sub / Mul+Add, one or two steps."""
    transpose = c.chance(0.3)
    y, _cout = _conv(c, transpose)
    for _ in range(c.pick([1, 1, 2])):
        _maybe_second_reader(c, y)
        step = c.pick(["BN", "Mul", "Div", "Add", "Sub", "MulAdd"])
        c.what.append(step)
        if step == "BN":
            y = _batchnorm(c, y, c.shape(y)[1])
            continue
        shape = c.pick(_broadcast_shapes(c, c.shape(y)))
        ops = ["Mul", "Add"] if step == "MulAdd" else [step]
        for op in ops:
            k = c.const(_values(c, shape), "k")
            if c.chance(0.08):  # the constant also scales or shifts the input elsewhere
                c.outputs.append(c.node("Relu", [_binary(c, op, y, k)]))
                c.what.append("constant shared")
            if c.chance(0.05):
                y = c.node(c.pick(["Identity", "Dropout"]), [y])
            c.what.append(f"{op} {shape}")
            y = _binary(c, op, y, k)
            if op == "Mul" and step == "MulAdd":
                _maybe_second_reader(c, y)
    c.finish(y)


def conv_before(c: Case) -> None:
    """x·c / x/c / x+c / x−c → Conv (the input-side folds)."""
    y, _ = _conv(c)
    conv = c.nodes[-1]
    x = conv.input[0]
    # rebuild: put an affine step in front of the Conv
    op = c.pick(["Mul", "Div", "Add", "Sub"])
    shape = c.pick([s for s in _broadcast_shapes(c, c.shapes[x]) if len(s) <= len(c.shapes[x])])
    x_shape = c.shapes[x]
    if x_shape[1] > 1 and c.chance(0.25):  # x has one channel, the constant makes C of it
        one = (x_shape[0], 1, *x_shape[2:])
        declared = c.inputs[0].type.tensor_type.shape.dim[1]
        declared.Clear()
        declared.dim_value = 1
        c.feeds[x] = c.feeds[x][:, :1]
        c.shapes[x] = one
        rest = (1,) * (len(x_shape) - 2)
        shape = c.pick([(1, x_shape[1], *rest), (x_shape[1], *rest)])
        c.what.append("x of one channel")
    k = c.const(_values(c, shape), "k")
    c.nodes.remove(conv)
    pre = _binary(c, op, x, k)
    _maybe_second_reader(c, pre)
    conv.input[0] = pre
    c.nodes.append(conv)
    c.what.append(f"pre {op} {shape}")
    c.finish(y)


def chain(c: Case) -> None:
    """Two constant steps on one tensor: (x ∘ a) ∘ b for ∘ in Mul, Div, Add, Sub."""
    r = c.pick([1, 2, 3, 4])
    shape = tuple(int(c.rng.integers(1, 5)) for _ in range(r))
    y = c.input(shape)
    for _ in range(2):
        op = c.pick(["Mul", "Div", "Add", "Sub"])
        options = [s for s in _broadcast_shapes(c, c.shape(y)) if len(s) <= len(c.shape(y)) + 1]
        s = c.pick(options)
        k = c.const(_values(c, s), "k")
        c.what.append(f"{op} {s}")
        y = _binary(c, op, y, k)
        _maybe_second_reader(c, y)
    c.finish(y)


def gemm(c: Case) -> None:
    """Gemm → BN, MatMul → BN, MatMul + c."""
    m, k, n = (int(c.rng.integers(1, 5)) for _ in range(3))
    kind = c.pick(["Gemm", "MatMulBN", "MatMulAdd"])
    if kind == "Gemm":
        ta, tb = c.pick([0, 1]), c.pick([0, 1])
        a = c.input((k, m) if ta else (m, k))
        w = c.const(c.rng.uniform(-1, 1, (n, k) if tb else (k, n)), "Bw")
        attrs = {"transA": ta, "transB": tb}
        if c.chance(0.5):
            attrs["alpha"] = float(c.pick([0.5, 2.0]))
        if c.chance(0.5):
            attrs["beta"] = float(c.pick([0.5, 2.0, 0.0]))
        ins = [a, w]
        if c.chance(0.7):
            cs = c.pick([(), (1,), (n,), (1, n), (m, n), (m, 1)])
            ins.append(c.const(c.rng.uniform(-1, 1, cs), "C"))
            c.what.append(f"C {cs}")
        c.what.append(f"Gemm {attrs}")
        y = c.node("Gemm", ins, **attrs)
        _maybe_second_reader(c, y)
        y = _batchnorm(c, y, n)
    else:
        lead = c.pick([(), (), (2,)])
        a = c.input((*lead, m, k))
        w = c.const(c.rng.uniform(-1, 1, (k, n)), "W")
        y = _binary(c, "MatMul", a, w) if c.chance(0.1) else c.node("MatMul", [a, w])
        c.what.append(f"{kind} a {(*lead, m, k)}")
        _maybe_second_reader(c, y)
        if kind == "MatMulBN":
            ch = c.shape(y)[1]
            y = _batchnorm(c, y, ch)
        else:
            cs = c.pick([(), (1,), (n,), (1, n), (m, n), (1, 1, n), (m, 1)])
            c.what.append(f"Add {cs}")
            y = _binary(c, "Add", y, c.const(c.rng.uniform(-1, 1, cs), "C"))
    c.finish(y)


def _scalar(c: Case, value: float, rank_up: int = 0) -> str:
    """A one-element constant of a random shape ([], [1], [1,1,...])."""
    shape = c.pick([(), (), (1,), (1,) * max(1, rank_up)])
    if rank_up and c.chance(0.05):  # raises the rank of what it meets
        shape = (1,) * (rank_up + 1)
        c.what.append(f"{value} raises the rank")
    if c.chance(0.01):  # a near miss: not the value the rule needs
        value = value * 1.01 + 0.01
        c.what.append(f"value {value}")
    kind = "input" if c.chance(0.02) else c.pick(["init", "init", "node"])
    return c.const(np.full(shape, value), "s", kind=kind)


def _relu6(c: Case, a: str, rank: int) -> str:
    form = c.pick(["clip", "clip_attr", "minrelu", "minmax", "maxmin"])
    if form == "clip" or (form == "clip_attr" and c.opset >= 11):
        return c.node("Clip", [a, _scalar(c, 0.0), _scalar(c, 6.0)])
    if form == "minrelu":
        return c.node("Min", [c.node("Relu", [a]), _scalar(c, 6.0, rank)])
    if form == "minmax":
        return c.node("Min", [c.node("Max", [a, _scalar(c, 0.0, rank)]), _scalar(c, 6.0, rank)])
    return c.node("Max", [c.node("Min", [a, _scalar(c, 6.0, rank)]), _scalar(c, 0.0, rank)])


def _activation(c: Case, x: str) -> str:
    """A decomposed activation of x in one of the forms the rules know (or a near miss)."""
    r = len(c.shape(x))
    kind = c.pick(
        ["hardswish", "hardsigmoid", "hsaffine", "silu", "gelu", "gelutanh", "mish", "softplus"]
    )
    c.what.append(kind)
    other = x
    if c.chance(0.08):  # a near miss: another tensor where x must be
        other = c.node("Neg", [x])
        c.what.append("near miss")
    if kind in ("hardswish", "hardsigmoid"):
        three = 3.0 if c.chance(0.95) else 3.5
        if kind == "hardswish" and c.chance(0.15):  # x·HardSigmoid(x; 1/6, ½)
            alpha = c.pick([1 / 6, 1 / 6, 0.2])
            h = c.node("HardSigmoid", [x], alpha=alpha, beta=0.5)
            return _binary(c, "Mul", other, h)
        h = _relu6(c, _binary(c, "Add", x, _scalar(c, three, r)), r)
        if c.chance(0.5):
            h = c.node("Div", [h, _scalar(c, 6.0, r)])
        else:
            h = _binary(c, "Mul", h, _scalar(c, 1 / 6, r))
        return h if kind == "hardsigmoid" else _binary(c, "Mul", other, h)
    if kind == "hsaffine":
        t = _binary(c, "Add", _binary(c, "Mul", x, _scalar(c, 0.2, r)), _scalar(c, 0.5, r))
        return c.node("Clip", [t, _scalar(c, 0.0), _scalar(c, 1.0)])
    if kind == "silu":
        return _binary(c, "Mul", other, c.node("Sigmoid", [x]))
    if kind == "gelu":
        if c.chance(0.5):
            inner = c.node("Div", [x, _scalar(c, float(np.sqrt(2)), r)])
        else:
            inner = _binary(c, "Mul", x, _scalar(c, float(1 / np.sqrt(2)), r))
        term = _binary(c, "Add", c.node("Erf", [inner]), _scalar(c, 1.0, r))
        return _gelu_outer(c, other, term, r, divide=True)
    if kind == "gelutanh":
        form = c.pick(["pow", "mul", "jax"])
        if form == "jax":  # x·(x·(x·0.044715))
            k = _binary(c, "Mul", x, _scalar(c, 0.044715, r))
            cubic = _binary(c, "Mul", x, _binary(c, "Mul", x, k))
        else:
            cube = (
                c.node("Pow", [x, _scalar(c, 3.0)])
                if form == "pow"
                else c.node("Mul", [c.node("Mul", [x, x]), x])
            )
            cubic = _binary(c, "Mul", cube, _scalar(c, 0.044715, r))
        inner = _binary(c, "Add", x, cubic)
        t = c.node("Tanh", [_binary(c, "Mul", inner, _scalar(c, float(np.sqrt(2 / np.pi)), r))])
        term = _binary(c, "Add", t, _scalar(c, 1.0, r))
        return _gelu_outer(c, other, term, r, divide=False)
    if kind == "softplus" or c.chance(0.5):
        c.softplus = True
        sp = c.node("Log", [_binary(c, "Add", c.node("Exp", [x]), _scalar(c, 1.0, r))])
    else:
        sp = c.node("Softplus", [x])
    if kind == "softplus":
        return sp
    return _binary(c, "Mul", other, c.node("Tanh", [sp]))


def _gelu_outer(c: Case, x: str, term: str, r: int, divide: bool) -> str:
    """½·x·term in the forms the GELU rules know: (x·½)·t, (x·t)·½, x·(t·½), (x·t)/2."""
    form = c.pick([0, 1, 2, 3] if divide else [0, 1, 2])
    if form == 0:
        return _binary(c, "Mul", _binary(c, "Mul", x, _scalar(c, 0.5, r)), term)
    if form == 1:
        return _binary(c, "Mul", _binary(c, "Mul", x, term), _scalar(c, 0.5, r))
    if form == 2:
        return _binary(c, "Mul", x, _binary(c, "Mul", term, _scalar(c, 0.5, r)))
    return c.node("Div", [_binary(c, "Mul", x, term), _scalar(c, 2.0, r)])


def activation(c: Case) -> None:
    """A decomposed activation on a plain input."""
    r = c.pick([1, 2, 3, 4])
    x = c.input(tuple(int(c.rng.integers(1, 5)) for _ in range(r)))
    c.finish(_activation(c, x))


def conv_activation(c: Case) -> None:
    """Conv → activation (FusedConv in ort-fusions), plain ops or a decomposed form."""
    y, _ = _conv(c)
    _maybe_second_reader(c, y)
    kind = c.pick(
        ["Relu", "Sigmoid", "Tanh", "LeakyRelu", "Clip", "HardSigmoid", "HardSwish", "dec"]
    )
    c.what.append(kind)
    if kind == "dec":
        out = _activation(c, y)
    elif kind == "LeakyRelu":
        out = c.node("LeakyRelu", [y], alpha=float(c.pick([0.01, 0.2])))
    elif kind == "HardSigmoid":
        out = c.node("HardSigmoid", [y], alpha=float(c.pick([0.2, 1 / 6])), beta=0.5)
    elif kind == "HardSwish":
        out = c.node("HardSwish" if c.opset >= 14 else "Relu", [y])
    elif kind == "Clip":
        lo = c.pick([None, -1.0, 0.0])
        hi = c.pick([None, 6.0, 0.5])
        ins = [y, "" if lo is None else _scalar(c, lo), "" if hi is None else _scalar(c, hi)]
        while ins and ins[-1] == "":
            ins.pop()
        out = c.node("Clip", ins)
    else:
        out = c.node(kind, [y])
    c.finish(out)


def layernorm(c: Case) -> None:
    """Decomposed LayerNormalization over trailing axes (and near misses)."""
    r = c.pick([2, 3, 4])
    shape = tuple(int(c.rng.integers(2, 5)) for _ in range(r))
    x = c.input(shape)
    k = c.pick([1, 1, 2]) if r > 2 else 1
    axes = list(range(-k, 0)) if c.chance(0.5) else list(range(r - k, r))
    axes2 = axes if c.chance(0.9) else [a % r - 1 for a in axes]
    c.what.append(f"layernorm axes {axes} {axes2}")

    def mean(t: str, ax: list[int]) -> str:
        if c.opset >= 18:
            return c.node("ReduceMean", [t, c.const(np.array(ax), "ax", "init", np.int64)])
        return c.node("ReduceMean", [t], axes=ax, keepdims=1)

    mu = mean(x, axes)
    d = c.node("Sub", [x, mu])
    sq = c.node("Pow", [d, _scalar(c, 2.0)]) if c.chance(0.5) else c.node("Mul", [d, d])
    v = mean(sq, axes2)
    n = c.node("Div", [d, c.node("Sqrt", [_binary(c, "Add", v, _scalar(c, 1e-5))])])
    gshape = c.pick([shape[r - k :], (1,) * (k - 1) + shape[-1:], shape[-1:], (1, *shape[r - k :])])
    c.what.append(f"gamma {gshape}")
    g = c.const(c.rng.uniform(0.5, 1.5, gshape), "g")
    b = c.const(c.rng.uniform(-1, 1, gshape), "b")
    c.finish(_binary(c, "Add", _binary(c, "Mul", n, g), b))


def conv_conv(c: Case) -> None:
    """Conv → per-channel Mul/Add/Sub/Div or BN → Conv: the constant can fold into either."""
    y, _ = _conv(c)
    shape = c.shape(y)
    for _ in range(c.pick([1, 2])):
        op = c.pick(["Mul", "Add", "Sub", "Div", "BN"])
        c.what.append(op)
        if op == "BN":
            y = _batchnorm(c, y, shape[1])
        else:
            options = [s for s in _broadcast_shapes(c, shape) if len(s) <= len(shape)]
            s_ = c.pick(options)
            c.what.append(f"{op} {s_}")
            y = _binary(c, op, y, c.const(_values(c, s_), "k"))
        _maybe_second_reader(c, y)
    ch, d = shape[1], len(shape) - 2
    k = tuple(c.pick([1, 1, 3]) for _ in range(d))
    attrs: dict = {}
    if c.chance(0.4):
        attrs["pads"] = [kk // 2 for kk in k] * 2
    if c.chance(0.2):
        attrs["auto_pad"] = c.pick(["VALID", "SAME_UPPER"])
        attrs.pop("pads", None)
    w = c.const(c.rng.uniform(-1, 1, (3, ch, *k)), "W2")
    c.what.append(f"then Conv {k} {attrs}")
    c.finish(c.node("Conv", [y, w], **attrs))


def matmul_rank1(c: Case) -> None:
    """MatMul of a rank-1 or rank-3 input and a weight, then Add or BN (Gemm needs rank 2)."""
    k, n = int(c.rng.integers(2, 5)), int(c.rng.integers(2, 5))
    shape = c.pick([(k,), (2, 3, k), (1, k)])
    a = c.input(shape)
    y = c.node("MatMul", [a, c.const(c.rng.uniform(-1, 1, (k, n)), "W")])
    c.what.append(f"MatMul {shape}")
    if len(c.shape(y)) >= 2 and c.chance(0.4):
        y = _batchnorm(c, y, c.shape(y)[1])
    else:
        cs = c.pick([(n,), (1, n), (), (1,)])
        y = _binary(c, "Add", y, c.const(c.rng.uniform(-1, 1, cs), "C"))
    c.finish(y)


def network(c: Case) -> None:
    """Two to four stages of [x∘k] → Conv/ConvTranspose → [BN, ∘k] → [activation], each
    reading the last: the rules meet each other's results (a scale folded into one Conv's
    output or into the next one's input, BN after a folded Mul, FusedConv after a fold)."""
    y, _ = _conv(c)
    for _ in range(c.pick([1, 2, 3])):
        shape = c.shape(y)
        if min(shape[2:]) < 3 or max(shape[2:]) > 12:
            break
        if c.chance(0.5):
            op = c.pick(["Mul", "Add", "Sub", "Div", "BN"])
            if op == "BN":
                y = _batchnorm(c, y, shape[1])
            else:
                options = [s for s in _broadcast_shapes(c, shape) if len(s) <= len(shape)]
                s_ = c.pick(options)
                y = _binary(c, op, y, c.const(_values(c, s_), "k"))
            c.what.append(f"then {op}")
        if c.chance(0.5):
            act = c.pick(["Relu", "Sigmoid", "LeakyRelu", "dec"])
            y = _activation(c, y) if act == "dec" else c.node(act, [y])
            c.what.append(f"then {act}")
        _maybe_second_reader(c, y)
        y, _ = _conv(c, c.chance(0.2), y)
    c.finish(y)


KINDS = {
    "network": (network, 3),
    "conv_conv": (conv_conv, 2),
    "matmul_rank1": (matmul_rank1, 1),
    "conv_after": (conv_after, 5),
    "conv_before": (conv_before, 3),
    "chain": (chain, 2),
    "gemm": (gemm, 2),
    "activation": (activation, 3),
    "conv_activation": (conv_activation, 3),
    "layernorm": (layernorm, 2),
}
_KIND_TABLE = [name for name, (_, w) in KINDS.items() for _ in range(w)]


def make_case(seed: int) -> Case:
    """Case `seed`: a valid model (a draw onnx rejects, such as a BatchNormalization after a
    constant that broadcast the channel axis, is drawn again)."""
    for attempt in range(20):
        rng = np.random.default_rng([127, seed, attempt])
        kind = _KIND_TABLE[int(rng.integers(len(_KIND_TABLE)))]
        roll = rng.random()
        dtype = np.dtype(np.float32 if roll < 0.7 else np.float16 if roll < 0.9 else np.float64)
        opset = int(rng.integers(11, 22))
        c = Case(rng, dtype, opset)
        c.what.append(f"{kind} {dtype} opset {opset}")
        c.style = str(rng.choice(["plain"] * 5 + ["unnamed", "duplicate names", "value_info"]))
        c.what.append(c.style)
        try:
            KINDS[kind][0](c)
            onnx.checker.check_model(c.model(), full_check=True)
        except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError):
            continue
        return c
    raise AssertionError(f"seed {seed}: no valid model in 20 draws")


# ---------------------------------------------------------------------------- oracle


def _session(model: onnx.ModelProto):  # type: ignore[no-untyped-def]
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 4
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def _run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    sess = _session(model)
    # an initializer that is also a graph input is fed as well (onnxruntime lists those apart)
    names = {i.name for i in [*sess.get_inputs(), *sess.get_overridable_initializers()]}
    out = sess.run(None, {k: v for k, v in feeds.items() if k in names})
    return dict(zip([o.name for o in sess.get_outputs()], out, strict=True))


def check_case(c: Case, pipelines: tuple[str, ...] = PIPELINES) -> list[str]:
    """The oracle's complaints about case `c` (empty: every pipeline kept it)."""
    model = c.model()
    try:
        ref = _run(model, c.feeds)
    except Exception:  # onnxruntime's own errors: a model it cannot run (float64 Conv, ...)
        ref = None
    if c.poles and c.special:
        # k/y for y = ±0: a fold by a negative scale turns Conv's −0 (0·−1.3) into +0 (a sum
        # 0 + −0), so an infinite k/y changes sign (IEEE signed zero; seed 17560 of 25000):
        # the results are checked and run, not compared
        ref = None
    problems = []
    for pipeline in pipelines:
        try:
            out = graphopt.optimize(model, pipeline)
        except Exception as e:  # any error on a valid model is a finding
            problems.append(f"{pipeline}: optimize raised {type(e).__name__}: {e}")
            continue
        try:
            onnx.checker.check_model(out, full_check=True)
        except Exception as e:
            problems.append(f"{pipeline}: result fails the check: {str(e)[:300]}")
            continue
        for what in ("input", "output"):  # names, element types, shapes as declared
            before = [v.SerializeToString() for v in getattr(model.graph, what)]
            if [v.SerializeToString() for v in getattr(out.graph, what)] != before:
                problems.append(f"{pipeline}: the graph {what}s changed")
        if ref is None:
            continue
        try:
            got = _run(out, c.feeds)
        except Exception as e:
            problems.append(f"{pipeline}: onnxruntime cannot run the result: {str(e)[:300]}")
            continue
        if list(got) != list(ref):
            problems.append(f"{pipeline}: outputs {list(got)} != {list(ref)}")
            continue
        for name, want in ref.items():
            have = got[name]
            if have.dtype != want.dtype or have.shape != want.shape:
                problems.append(
                    f"{pipeline}: {name} {have.dtype}{list(have.shape)} != "
                    f"{want.dtype}{list(want.shape)}"
                )
                continue
            w64, h64 = want.astype(np.float64), have.astype(np.float64)
            if c.softplus and not np.isfinite(w64).all() and np.isfinite(h64).all():
                # log(eˣ + 1) overflowed where Softplus does not: the softplus rule's documented
                # difference (patterns/activations.yaml; seed 69997 of 70000)
                continue
            if not np.array_equal(np.isnan(w64), np.isnan(h64)):
                problems.append(f"{pipeline}: {name} NaN where the original has none (or back)")
                continue
            finite = np.isfinite(w64) & np.isfinite(h64)
            if not np.array_equal(w64[~finite], h64[~finite], equal_nan=True):
                problems.append(f"{pipeline}: {name} inf differs")
                continue
            if not finite.any():
                continue
            scale = float(np.abs(w64[finite]).max())
            rtol = RTOL.get(want.dtype, 0.0001)
            if c.poles:
                rtol = max(rtol, 1e-2)
            err = np.abs(h64[finite] - w64[finite])
            bound = rtol * (np.abs(w64[finite]) + scale) + 1e-30
            if np.any(err > bound):
                worst = float((err / bound).max())
                problems.append(f"{pipeline}: {name} differs (worst {worst:.3g}x the tolerance)")
    return problems


def _cases() -> range:
    return range(int(os.environ.get("GRAPHOPT_FUZZ_CASES", DEFAULT_CASES)))


@pytest.mark.parametrize("seed", _cases())
def test_rules_keep_the_outputs(seed):
    pytest.importorskip("onnxruntime")
    c = make_case(seed)
    problems = check_case(c)
    assert not problems, f"seed {seed} ({'; '.join(c.what)}):\n" + "\n".join(problems)


def test_generator_covers_every_kind_and_dtype():
    """The default seeds reach every case kind, dtype and the opset range's ends."""
    seen = [make_case(s).what[0].split() for s in range(DEFAULT_CASES)]
    assert {w[0] for w in seen} == set(KINDS)
    assert {w[1] for w in seen} == {"float32", "float16", "float64"}


if __name__ == "__main__":  # hunting: python -m tests.test_h127_rule_fuzz START COUNT
    import logging
    import warnings

    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    start, count = int(sys.argv[1]), int(sys.argv[2])
    failed = 0
    for seed in range(start, start + count):
        try:
            c = make_case(seed)
            problems = check_case(c)
        except Exception as e:
            print(f"seed {seed}: GENERATOR {type(e).__name__}: {str(e)[:200]}", flush=True)
            continue
        if problems:
            failed += 1
            print(f"seed {seed}: {'; '.join(c.what)}", flush=True)
            for p in problems:
                print("   ", p, flush=True)
    print(f"done {start}..{start + count}: {failed} failing", flush=True)
