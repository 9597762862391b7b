"""The calibration range probe: a copy of the model whose outputs are the min and max of the
calibrated tensors, scalars computed by onnxruntime (no activation is copied out).

A tensor's range is measured (ReduceMax, and ReduceMin unless its producer never outputs a
negative value) or, where it follows from the range of a tensor the probe already has, derived
with scalar nodes instead of another pass over the activation (each pass over a 640×640
activation costs about what the op producing it does):

- same values (Identity, Reshape, Flatten, Squeeze, Unsqueeze, Transpose): the source's range;
- Concat: the union of its inputs' ranges (Min / Max over their scalars);
- a subset of the source's values that shares the source's scale (MaxPool; Resize in `nearest`
  mode): the source's range, so the scale group's range, all the Q/DQ sees, is the same. That
  range is the group's, not the tensor's own (a pool drops the source's minimum), so only a
  same-value op or Concat in the same group derives from it; outside it is measured. A nearest
  Resize by constant integer factors (an FPN's upsample) copies every source element, so its
  range is its own, like a same-value op's;
- y = f(x), f nondecreasing and never negative as onnxruntime computes it (Relu, HardSigmoid
  with α ≥ 0): max y = f(max x), f applied by onnxruntime to the scalar: the element at
  argmax x, computed by the same kernel (elementwise kernels do not depend on an element's
  position: tested). Not Sigmoid: onnxruntime's (MLAS) sigmoid is monotone only up to a few
  last-bit steps (σ(2.000003) > σ(2.0000033); σ(17.482065) = 1.0000001 > σ(40) = 1), so its
  output and x·σ(x) (SiLU) are measured;
- z = x·f(x) with such an f (hard-swish, x·Relu(x)): over x ≥ 0 both factors are nonnegative
  and nondecreasing, so max z = (max x)·f(max x) when max x ≥ 0, and max z ≤ 0 otherwise; the
  min (the dip near x = −1.5) is measured. Where z feeds a calibrated x·a / x + b, z is
  measured in full instead, so that those derive exactly;
- y = x·a, y = x + b with a one-element constant (PP-LCNet's learnable affine after each
  hard-swish): [lo·a, hi·a] (swapped for a < 0), [lo + b, hi + b]; rounding is monotone, so
  these are the extremes onnxruntime computes.

Q/DQ ranges always include 0, so a range is only needed up to ∪ {0}: `RangeSlot.with_zero`
marks the ones known that way (z above when max x < 0; a Concat with a never-negative input,
whose min is taken as 0), which give the same Q/DQ parameters, scales and cache as the exact
ones. Nothing else is approximated: no derivation clips or widens a range that the Q/DQ would
see. Histogram methods (`entropy`, `percentile`, `mse`) need the values themselves and do not
use this module.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import onnx
from onnx import helper, numpy_helper

from graphopt.ir.nodes import attribute_value, is_default_domain

# Ops whose output is never negative: its minimum is not measured (the Q/DQ ranges include 0,
# so min(x) ≥ 0 gives the same parameters as the measured minimum).
NONNEGATIVE_OPS = frozenset({"Relu", "Sigmoid", "HardSigmoid", "Softmax", "Softplus", "Abs", "Exp"})
# Ops whose (first) output holds exactly the values of their first input.
SAME_VALUE_OPS = frozenset({"Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose"})
# Ops whose output values are some of their first input's values (every output element is an
# input element: MaxPool's windows always hold one, nearest Resize copies).
SUBSET_OPS = frozenset({"MaxPool", "Resize"})
# f nondecreasing with f ≥ 0 as onnxruntime computes it, bit for bit (HardSigmoid only for
# α ≥ 0: `_monotone`); not Sigmoid, whose MLAS kernel is not monotone in the last bits
MONOTONE_NONNEGATIVE_OPS = frozenset({"Relu", "HardSigmoid"})
# y = x·a or x + b with a one-element constant: monotone (rounding is), so the range maps
AFFINE_OPS = frozenset({"Mul", "Add"})
FLOAT_TYPES = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE)


@dataclass(frozen=True)
class RangeSlot:
    """Where a tensor's range is among the probe's outputs."""

    lo: str | None  # min(t); None: t is never negative, its min is taken as 0
    hi: str  # max(t)
    # the max of the measured tensor t comes from: -inf when t is empty (then lo, if any,
    # is +inf) or -inf throughout (then lo is -inf: `collect` refuses it as exact tracking does)
    present: str
    with_zero: bool = False  # [lo, hi] is known up to ∪ {0}: widen it to include 0

    def names(self) -> list[str]:
        return [n for n in (self.lo, self.hi, self.present) if n]


def _ints(node: onnx.NodeProto, name: str) -> list[int]:
    value = attribute_value(node, name, [])
    return [int(v) for v in value] if isinstance(value, list) else []


def _monotone(node: onnx.NodeProto) -> bool:
    """f nondecreasing and never negative, elementwise, one input."""
    if not is_default_domain(node) or node.op_type not in MONOTONE_NONNEGATIVE_OPS:
        return False
    if node.op_type == "HardSigmoid":
        alpha = attribute_value(node, "alpha", 0.2)
        return isinstance(alpha, float) and alpha >= 0.0
    return True


def _constant_tensors(model: onnx.ModelProto) -> list[onnx.TensorProto]:
    """Every constant: an initializer that is no graph input, or a Constant node's `value`;
    not a segment of a larger tensor (`segment` set: its value is unknown)."""
    overridable = {i.name for i in model.graph.input}
    tensors = [
        t
        for t in model.graph.initializer
        if t.name not in overridable and not t.HasField("segment")
    ]
    for n in model.graph.node:
        if n.op_type == "Constant" and is_default_domain(n) and len(n.attribute) == 1:
            a = n.attribute[0]
            if (
                a.name == "value"
                and a.type == onnx.AttributeProto.TENSOR
                and not a.t.HasField("segment")
            ):
                t = onnx.TensorProto()
                t.CopyFrom(a.t)
                t.name = n.output[0]
                tensors.append(t)
    return tensors


def _scalar_constants(tensors: Sequence[onnx.TensorProto]) -> dict[str, float]:
    """Name → value of every one-element float constant among `tensors`, finite only."""
    out: dict[str, float] = {}
    for t in tensors:
        if t.data_type not in FLOAT_TYPES or math.prod(t.dims) != 1:
            continue
        value = float(numpy_helper.to_array(t).reshape(()))
        if math.isfinite(value):
            out[t.name] = value
    return out


def _subset(node: onnx.NodeProto) -> bool:
    """Every output element is one of the input's: MaxPool without the Indices output whose
    windows all hold an input element (no ceil_mode, each pad under its kernel extent, and no
    pad at all with a dilation: taps d apart can straddle an input smaller than d, e.g. kernel
    2, dilation 3, pad 1 over 2 pixels taps −1 and 2, and onnxruntime outputs the float's lowest
    value); Resize in `nearest` mode outside `tf_crop_and_resize` (which fills with an
    extrapolation value)."""
    if node.op_type == "MaxPool":
        kernel = _ints(node, "kernel_shape")
        dilations = _ints(node, "dilations") or [1] * len(kernel)
        if not kernel or len(dilations) != len(kernel):
            return False
        extent = [(k - 1) * d + 1 for k, d in zip(kernel, dilations, strict=True)]
        pads = _ints(node, "pads")
        return (
            len([o for o in node.output if o]) == 1
            and attribute_value(node, "ceil_mode", 0) == 0
            and attribute_value(node, "auto_pad", b"NOTSET") in (b"NOTSET", b"VALID")
            and all(p < extent[i % len(extent)] for i, p in enumerate(pads))
            and (all(d == 1 for d in dilations) or not any(pads))
        )
    mode = attribute_value(node, "mode", b"nearest")
    crop = attribute_value(node, "coordinate_transformation_mode", b"half_pixel")
    return mode in (b"nearest", "nearest") and crop not in (
        b"tf_crop_and_resize",
        "tf_crop_and_resize",
    )


# Resize coordinate modes under which a nearest upsample by an integer factor copies every
# input element (tested against onnxruntime for every nearest_mode, factors 1-8, sizes 1-9)
COVERING_RESIZE_MODES = (
    b"half_pixel",
    b"half_pixel_symmetric",
    b"pytorch_half_pixel",
    b"align_corners",
    b"asymmetric",
)


def _covers(node: onnx.NodeProto, integer_factors: set[str]) -> bool:
    """Every input element is among the output's (and, `_subset`, every output element among
    the input's): a nearest Resize (opset ≥ 11 inputs) whose constant `scales` are integers ≥ 1
    (`integer_factors`: the names of such constants)."""
    return (
        node.op_type == "Resize"
        and _subset(node)
        and attribute_value(node, "coordinate_transformation_mode", b"half_pixel")
        in COVERING_RESIZE_MODES
        and len(node.input) >= 3
        and node.input[2] in integer_factors
        and (len(node.input) < 4 or not node.input[3])
    )


def with_range_outputs(
    model: onnx.ModelProto, tensors: Sequence[str], same_scale: Mapping[str, str] | None = None
) -> tuple[onnx.ModelProto, list[RangeSlot]]:
    """A copy of `model` whose outputs are the scalars of every tensor's `RangeSlot` (in the
    order of `tensors`). `same_scale`: tensor → representative of its scale group (`Plan.share`):
    a MaxPool / Resize output in its input's group takes the input's range."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    share = same_scale or {}
    producer: dict[str, tuple[int, onnx.NodeProto]] = {}
    for i, n in enumerate(out.graph.node):
        for o in n.output:
            if o:
                producer[o] = (i, n)
    taken = set(producer) | {i.name for i in out.graph.input}
    taken |= {t.name for t in out.graph.initializer}
    nodes: list[onnx.NodeProto] = []
    applied: dict[tuple[str, str], str] = {}  # (node, scalar) → f(scalar)

    def fresh(stem: str) -> str:
        name = f"graphopt_calib_{stem}_{len(nodes)}"
        while name in taken:
            name += "_"
        taken.add(name)
        return name

    def add(op: str, inputs: list[str]) -> str:
        name = fresh(op.lower())
        node = helper.make_node(op, inputs, [name], name=name)
        if op.startswith("Reduce"):
            node.attribute.append(helper.make_attribute("keepdims", 0))
        nodes.append(node)
        return name

    def combine(op: str, names: list[str]) -> str:
        unique = list(dict.fromkeys(names))
        return unique[0] if len(unique) == 1 else add(op, unique)

    def apply(f: onnx.NodeProto, scalar: str) -> str:
        """f (a copy of the graph's node, same attributes) applied to a scalar."""
        key = (f.name or f.output[0], scalar)
        if key not in applied:
            name = fresh(f.op_type.lower())
            node = onnx.NodeProto()
            node.CopyFrom(f)
            node.name = name
            del node.input[:]
            del node.output[:]
            node.input.append(scalar)
            node.output.append(name)
            nodes.append(node)
            applied[key] = name
        return applied[key]

    slots: dict[str, RangeSlot] = {}
    constant_tensors = _constant_tensors(out)
    constants = _scalar_constants(constant_tensors)
    integer_factors = {
        t.name
        for t in constant_tensors
        if t.data_type in FLOAT_TYPES
        and 0 < math.prod(t.dims) <= 8
        and all(v >= 1.0 and float(v).is_integer() for v in numpy_helper.to_array(t).flat)
    }
    wanted = set(tensors)

    def affine(node: onnx.NodeProto) -> tuple[str, str] | None:
        """(data input, constant input) of x·a / x + b with a one-element constant."""
        if node.op_type not in AFFINE_OPS or not is_default_domain(node) or len(node.input) != 2:
            return None
        a, b = node.input
        if b in constants and a not in constants:
            return a, b
        if a in constants and b not in constants:
            return b, a
        return None

    # tensors whose exact range derives the range of a calibrated x·a / x + b: measured in full
    # rather than up to ∪ {0} (two passes saved downstream for the one spent here)
    affine_sources = set()
    for n in out.graph.node:
        operands = affine(n)
        if operands is not None and n.output[0] in wanted:
            affine_sources.add(operands[0])

    # tensor → its scale group, where its slot is not its own range but one inside the group's
    # (a MaxPool / nearest Resize output takes its input's range): its values lie in the slot,
    # and the slot in the hull of the group's calibrated members, so the group's union (all the
    # Q/DQ sees) is exact; the tensor's own range is not, and derives nothing outside the group
    within: dict[str, str] = {}

    def exact(x: str) -> RangeSlot | None:
        """x's slot where it is x's own range (up to ∪ {0} where it says so)."""
        return None if x in within else slots.get(x)

    def derive(t: str) -> RangeSlot | None:
        if t not in producer:
            return None
        _, node = producer[t]
        if not is_default_domain(node) or not node.input or node.output[0] != t:
            return None
        op, x = node.op_type, node.input[0]
        source, group = slots.get(x), share.get(t)
        if source is not None and (op in SAME_VALUE_OPS or op in SUBSET_OPS):
            same_values = op in SAME_VALUE_OPS or _covers(node, integer_factors)
            if x in within:  # known in x's group only: so is t, in that group only
                if group == within[x] and (same_values or _subset(node)):
                    within[t] = group
                    return source
                return None
            if same_values:
                return source
            if group is not None and group == share.get(x, x) and _subset(node):
                within[t] = group
                return source
        if op == "Concat":
            inputs = [i for i in node.input if i]
            parts = [slots.get(i) for i in inputs]
            if parts and all(p is not None for p in parts):
                known = [p for p in parts if p is not None]
                # a part known in its group only adds nothing when its slot is an exact part's
                # (Concat(c, MaxPool(c))); otherwise the union is the group's, in that group only
                covered = {slots[i] for i in inputs if i not in within}
                loose = {within[i] for i in inputs if i in within and slots[i] not in covered}
                if loose and loose != {group}:
                    return None
                if loose and group is not None:
                    within[t] = group
                lows = [p.lo for p in known if p.lo is not None]
                return RangeSlot(
                    combine("Min", lows) if lows else None,
                    combine("Max", [p.hi for p in known]),
                    combine("Max", [p.present for p in known]),
                    any(p.with_zero or p.lo is None for p in known) and bool(lows),
                )
        source = exact(x)
        if _monotone(node) and source is not None and not source.with_zero:
            return RangeSlot(None, apply(node, source.hi), source.present)
        operands = affine(node)
        affine_source = exact(operands[0]) if operands is not None else None
        if operands is not None and affine_source is not None and not affine_source.with_zero:
            x, c = operands
            source = affine_source
            if op == "Add":  # [lo + b, hi + b]
                low = add("Add", [source.lo, c]) if source.lo else add("ReduceMin", [t])
                return RangeSlot(low, add("Add", [source.hi, c]), source.present)
            if constants[c] >= 0.0:  # [lo·a, hi·a]; never negative stays never negative
                low_or_none = add("Mul", [source.lo, c]) if source.lo else None
                return RangeSlot(low_or_none, add("Mul", [source.hi, c]), source.present)
            if source.lo:  # a < 0: [hi·a, lo·a]
                return RangeSlot(
                    add("Mul", [source.hi, c]), add("Mul", [source.lo, c]), source.present
                )
        if op == "Mul" and len(node.input) == 2 and t not in affine_sources:
            for x, gate in (node.input, node.input[::-1]):
                f = producer.get(gate, (0, None))[1]
                sx = exact(x)
                if f is None or sx is None or sx.with_zero or not _monotone(f) or f.input[0] != x:
                    continue
                hi = add("Mul", [sx.hi, apply(f, sx.hi)])
                low = add("ReduceMin", [t])
                return RangeSlot(low, hi, sx.present, with_zero=True)
        return None

    def measure(t: str) -> RangeSlot:
        node = producer.get(t, (0, None))[1]
        nonnegative = (
            node is not None
            and node.op_type in NONNEGATIVE_OPS
            and is_default_domain(node)
            and node.output[0] == t
        )
        hi = add("ReduceMax", [t])
        return RangeSlot(None if nonnegative else add("ReduceMin", [t]), hi, hi)

    # sources before the tensors derived from them: the graph's (topological) node order
    for t in sorted(dict.fromkeys(tensors), key=lambda t: producer.get(t, (-1, None))[0]):
        slots[t] = derive(t) or measure(t)
    out.graph.node.extend(nodes)
    out.graph.ClearField("output")
    names = dict.fromkeys(n for t in tensors for n in slots[t].names())
    # no element type: onnxruntime takes the producer's (float16 models reduce in float16)
    out.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names)
    return out, [slots[t] for t in tensors]
