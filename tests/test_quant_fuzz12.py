"""Validity fuzz of `graphopt.quantize`: random detector-like CNNs, calibrated on photographs.

A seeded generator builds small image CNNs (opsets 11, 13, 17; input float32 [1, 3, H, W],
H and W in 32..96) from what detectors are made of: Conv (bias or not, grouped, depthwise,
dilated, strided), BatchNormalization, ConvTranspose (group 1 and 2), Relu / Clip / HardSwish /
Sigmoid / decomposed HardSwish, Add / Mul residuals, Concat, Max/Average/GlobalAverage pooling,
Resize (nearest, linear), Split, Reshape / Transpose / Flatten heads into Gemm / MatMul, several
outputs, an output also read inside the graph. Weights are He-initialized, BN statistics sane.

Each model is quantized with a calibration method and target (calibrated on real photographs
resized with `realmodels.preprocess`, never noise) and the result must: pass onnx's full check,
run in onnxruntime, keep its inputs' and outputs' names, dtypes and shapes, have valid Q/DQ
(positive finite scales, int8 zero point 0 for TensorRT, per-channel axes that fit the weight),
pass `check_tensorrt` with 0 errors for the tensorrt target, and keep the INT8 output within
10% (RMS) of the float output's range on held-out photographs. A model quantize cannot handle
may only be refused with a one-line QuantizeError.

`python tests/test_quant_fuzz12.py START COUNT` hunts over more seeds than the committed ones.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt import realmodels
from graphopt.backends.onnxruntime import session
from graphopt.backends.trt_check import check_tensorrt, errors
from graphopt.errors import QuantizeError
from graphopt.quant.api import quantize_with_report
from tests.conftest import onnxruntime_fused_int8_conv_is_right

OPSETS = (11, 13, 17)
METHODS = ("default", "minmax", "entropy", "percentile")
TARGETS = ("onnxruntime", "tensorrt")
# Calibration covers the odd photographs (a dark deep field, saturated stains, flat colors);
# the held-out ones are ordinary photographs. Held out, ihc.png alone clipped enough (max
# calibration) for 10-28% error on 19 of 400 models; calibrated on it too, those erred <= 2.5%.
CALIB = (
    "astronaut.png", "motorcycle_left.png", "rocket.jpg", "retina.jpg",
    "hubble_deep_field.jpg", "ihc.png", "color.png", "brick.png",
)  # fmt: skip
HELD_OUT = ("chelsea.png", "coffee.png", "motorcycle_right.png")
ERROR_BOUND = 0.10  # RMS INT8 error over the FP32 output's range, held-out photographs


@dataclass
class Builder:
    """Random CNN under construction: nodes, weights and the NCHW shape of each tensor."""

    rng: np.random.Generator
    opset: int
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    inits: list[onnx.TensorProto] = field(default_factory=list)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    shared: list[tuple[str, np.ndarray]] = field(default_factory=list)
    count: int = 0

    def name(self, stem: str) -> str:
        self.count += 1
        return f"{stem}{self.count}"

    def const(self, stem: str, value: np.ndarray) -> str:
        name = self.name(stem)
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def node(self, op: str, inputs: list[str], shape: tuple[int, ...], **attrs: object) -> str:
        out = self.name(op.lower() + "_")
        self.nodes.append(helper.make_node(op, inputs, [out], name=out + "_n", **attrs))
        self.shapes[out] = shape
        return out

    # -- layers ---------------------------------------------------------------------------

    def conv(self, x: str, cout: int | None = None, *, transpose: bool = False) -> str:
        r = self.rng
        _, c, h, w = self.shapes[x]
        if transpose:
            group = int(r.choice([1, 2, c])) if c % 2 == 0 else 1  # c: depthwise
            cout = cout or c
            cout -= cout % group
            k, s = int(r.choice([2, 3, 4])), 2
            p = (k - s + 1) // 2 if k > 2 else 0
            wt = r.normal(0, np.sqrt(2.0 / (c // group * k * k)), (c, cout // group, k, k))
            ins = [x, self.const("wt", wt.astype(np.float32))]
            if r.random() < 0.6:
                ins.append(self.const("bt", r.normal(0, 0.1, cout).astype(np.float32)))
            oh, ow = (h - 1) * s - 2 * p + k, (w - 1) * s - 2 * p + k
            return self.node(
                "ConvTranspose", ins, (1, cout, oh, ow),
                kernel_shape=[k, k], strides=[s, s], pads=[p, p, p, p], group=group,
            )  # fmt: skip
        kind = r.choice(["plain", "plain", "group", "depthwise", "dilated", "pointwise"])
        cout = cout or int(r.choice([8, 12, 16, 24, 32]))
        group, k, d = 1, int(r.choice([1, 3, 3, 5])), 1
        if kind == "depthwise":
            group, cout, k = c, c, 3
        elif kind == "group" and c % 2 == 0:
            group = int(r.choice([g for g in (2, 4) if c % g == 0]))
            cout = cout - cout % group or group
        elif kind == "dilated":
            k, d = 3, int(r.choice([2, 3]))
        elif kind == "pointwise":
            k = 1
        s = int(r.choice([1, 1, 2])) if min(h, w) >= 8 else 1
        p = d * (k - 1) // 2
        std = np.sqrt(2.0 / (c // group * k * k))
        wt = r.normal(0, std, (cout, c // group, k, k)).astype(np.float32)
        if r.random() < 0.15:  # pruned output channels: all-zero weights
            wt[r.integers(0, cout, 1 + cout // 8)] = 0.0
        if self.shared and r.random() < 0.3:  # a weight two Convs read (shared towers)
            same = [n for n, a in self.shared if a.shape == wt.shape]
            wname = same[0] if same else self.const("w", wt)
        else:
            wname = self.const("w", wt)
        self.shared.append((wname, wt))
        ins = [x, wname]
        if r.random() < 0.6:
            bias = r.normal(0, 0.1, cout).astype(np.float32)
            dead = r.random()
            if dead < 0.15:  # dead channels after a Relu: a negative bias past their reach
                bias[r.integers(0, cout, 1 + cout // 4)] = -8.0
            elif dead < 0.18:  # a dead layer: Relu makes all zeros on every photograph
                bias[:] = -1e3
            ins.append(self.const("b", bias))
        oh = (h + 2 * p - d * (k - 1) - 1) // s + 1
        ow = (w + 2 * p - d * (k - 1) - 1) // s + 1
        return self.node(
            "Conv", ins, (1, cout, oh, ow),
            kernel_shape=[k, k], strides=[s, s], pads=[p, p, p, p], dilations=[d, d], group=group,
        )  # fmt: skip

    def bn(self, x: str) -> str:
        r, c = self.rng, self.shapes[x][1]
        vals = [
            r.uniform(0.5, 1.5, c),
            r.normal(0, 0.1, c),
            r.normal(0, 0.2, c),
            r.uniform(0.5, 2.0, c),
        ]
        ins = [x] + [self.const(s, v.astype(np.float32)) for s, v in zip("sbmv", vals, strict=True)]
        return self.node("BatchNormalization", ins, self.shapes[x], epsilon=1e-5)

    def act(self, x: str) -> str:
        shape = self.shapes[x]
        kinds = ["Relu", "Relu", "Clip", "Sigmoid", "hswish_dec", "silu", "LeakyRelu", "Tanh"]
        if self.opset >= 14:
            kinds.append("HardSwish")
        kind = self.rng.choice(kinds)
        if kind == "Clip":  # opset 11+: min and max are inputs, either may be left out
            lo = self.const("lo", np.array(0.0, np.float32))
            hi = self.const("hi", np.array(6.0, np.float32))
            form = self.rng.random()
            ins = [x, lo, hi] if form < 0.6 else [x, "", hi] if form < 0.8 else [x, lo]
            return self.node("Clip", ins, shape)
        if kind == "hswish_dec":  # x * Clip(x + 3, 0, 6) / 6
            a = self.node("Add", [x, self.const("three", np.array(3.0, np.float32))], shape)
            lo = self.const("lo", np.array(0.0, np.float32))
            hi = self.const("hi", np.array(6.0, np.float32))
            cl = self.node("Clip", [a, lo, hi], shape)
            m = self.node("Mul", [x, cl], shape)
            return self.node("Div", [m, self.const("six", np.array(6.0, np.float32))], shape)
        if kind == "silu":
            return self.node("Mul", [x, self.node("Sigmoid", [x], shape)], shape)
        return self.node(str(kind), [x], shape)

    def block(self, x: str) -> str:
        """Conv [+BN] [+act], sometimes a residual Add/Mul around a shape-keeping conv."""
        r = self.rng
        y = self.conv(x)
        if r.random() < 0.6:
            y = self.bn(y)
        if r.random() < 0.8:
            y = self.act(y)
        if r.random() < 0.3:  # residual: same-shape conv branch
            z = self.conv_same(y)
            op = "Add" if r.random() < 0.7 else "Mul"
            if op == "Mul":
                z = self.node("Sigmoid", [z], self.shapes[z])
            y = self.node(op, [y, z], self.shapes[y])
        return y

    def conv_same(self, x: str) -> str:
        _, c, h, w = self.shapes[x]
        k = int(self.rng.choice([1, 3]))
        wt = self.rng.normal(0, np.sqrt(2.0 / (c * k * k)), (c, c, k, k)).astype(np.float32)
        p = (k - 1) // 2
        return self.node(
            "Conv", [x, self.const("w", wt)], (1, c, h, w), kernel_shape=[k, k], pads=[p] * 4
        )

    def se(self, x: str) -> str:
        """Squeeze-excite: x * Sigmoid(Conv(Relu(Conv(GAP(x)))))."""
        n, c = self.shapes[x][:2]
        g = self.node("GlobalAveragePool", [x], (n, c, 1, 1))
        mid = max(2, c // 4)
        w1 = self.rng.normal(0, np.sqrt(2.0 / c), (mid, c, 1, 1)).astype(np.float32)
        w2 = self.rng.normal(0, np.sqrt(2.0 / mid), (c, mid, 1, 1)).astype(np.float32)
        b1 = self.const("seb", np.zeros(mid, np.float32))
        a = self.node("Conv", [g, self.const("sew", w1), b1], (n, mid, 1, 1), kernel_shape=[1, 1])
        a = self.node("Relu", [a], (n, mid, 1, 1))
        a = self.node("Conv", [a, self.const("sew", w2)], (n, c, 1, 1), kernel_shape=[1, 1])
        a = self.node("Sigmoid", [a], (n, c, 1, 1))
        return self.node("Mul", [x, a], self.shapes[x])

    def odd(self, x: str) -> str:
        """What fusion cannot fold away: a BatchNormalization or per-channel affine after a
        merge, a Pad before a Conv, a Slice."""
        r = self.rng
        n, c, h, w = self.shapes[x]
        kind = r.choice(["bn", "affine", "pad_conv", "slice", "twice"])
        if kind == "twice":  # one tensor read twice by one node: Concat(y, y), Add(y, y), y*y
            op = str(r.choice(["Concat", "Add", "Mul"]))
            if op == "Concat":
                return self.node(op, [x, x], (n, 2 * c, h, w), axis=1)
            return self.node(op, [x, x], self.shapes[x])
        if kind == "bn":
            return self.bn(self.node("Add", [x, self.conv_same(x)], self.shapes[x]))
        if kind == "affine":
            scale = self.const("as", r.uniform(0.5, 2.0, (1, c, 1, 1)).astype(np.float32))
            shift = self.const("ab", r.normal(0, 0.2, (1, c, 1, 1)).astype(np.float32))
            return self.node(
                "Add", [self.node("Mul", [x, scale], self.shapes[x]), shift], self.shapes[x]
            )
        if kind == "pad_conv":
            pads = self.const("pads", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))
            y = self.node("Pad", [x, pads], (n, c, h + 2, w + 2), mode="constant")
            wt = r.normal(0, np.sqrt(2.0 / (c * 9)), (c, c, 3, 3)).astype(np.float32)
            return self.node("Conv", [y, self.const("w", wt)], (n, c, h, w), kernel_shape=[3, 3])
        if h < 4:
            return x
        starts = self.const("st", np.array([1], np.int64))
        ends = self.const("en", np.array([h - 1], np.int64))
        axes = self.const("ax", np.array([2], np.int64))
        return self.node("Slice", [x, starts, ends, axes], (n, c, h - 2, w))

    def pool(self, x: str) -> str:
        _, c, h, w = self.shapes[x]
        op = str(self.rng.choice(["MaxPool", "AveragePool"]))
        if self.rng.random() < 0.5 and min(h, w) >= 4:
            return self.node(op, [x], (1, c, h // 2, w // 2), kernel_shape=[2, 2], strides=[2, 2])
        return self.node(op, [x], (1, c, h, w), kernel_shape=[3, 3], pads=[1, 1, 1, 1])

    def resize(self, x: str) -> str:
        n, c, h, w = self.shapes[x]
        mode = str(self.rng.choice(["nearest", "linear"]))
        roi = self.const("roi", np.zeros(0, np.float32))
        if self.rng.random() < 0.3:  # by sizes, scales empty
            sizes = self.const("sz", np.array([n, c, 2 * h, 2 * w], np.int64))
            scales = self.const("sc", np.zeros(0, np.float32))
            return self.node(
                "Resize", [x, roi, scales, sizes], (n, c, 2 * h, 2 * w), mode=mode,
                coordinate_transformation_mode="half_pixel",
            )  # fmt: skip
        scales = self.const("sc", np.array([1, 1, 2, 2], np.float32))
        attrs: dict[str, object] = {"mode": mode}
        if mode == "linear" and self.rng.random() < 0.5:
            attrs["coordinate_transformation_mode"] = "align_corners"
        elif mode == "nearest":
            attrs["coordinate_transformation_mode"] = "asymmetric"
            attrs["nearest_mode"] = "floor"
        return self.node("Resize", [x, roi, scales], (n, c, 2 * h, 2 * w), **attrs)

    def split_concat(self, x: str) -> str:
        """Split on channels, a conv on one half, Concat back (CSP-style)."""
        n, c, h, w = self.shapes[x]
        if c % 2:
            return x
        half = c // 2
        outs = [self.name("split_"), self.name("split_")]
        if self.opset >= 13:
            sizes = self.const("ss", np.array([half, half], np.int64))
            ins = [x, sizes]
            self.nodes.append(helper.make_node("Split", ins, outs, name=outs[0] + "_n", axis=1))
        else:
            self.nodes.append(
                helper.make_node("Split", [x], outs, name=outs[0] + "_n", axis=1, split=[half] * 2)
            )
        for o in outs:
            self.shapes[o] = (n, half, h, w)
        if self.rng.random() < 0.2:  # a Split output that is a graph output
            self.outputs.append(outs[0])
        b = self.act(self.conv_same(outs[1]))
        return self.node("Concat", [outs[0], b], (n, c, h, w), axis=1)

    def head(self, x: str) -> str:
        """A classifier/regression head: GAP/Flatten/Reshape/Transpose into Gemm or MatMul."""
        r = self.rng
        n, c, h, w = self.shapes[x]
        kind = r.choice(
            ["gap_gemm", "flatten_gemm", "tokens_matmul", "conv", "weight_first", "attention"]
        )
        k = int(r.choice([4, 10, 16]))
        if kind == "conv":
            wt = r.normal(0, np.sqrt(1.0 / c), (k, c, 1, 1)).astype(np.float32)
            b = self.const("hb", r.normal(0, 0.1, k).astype(np.float32))
            return self.node(
                "Conv", [x, self.const("hw", wt), b], (1, k, h, w), kernel_shape=[1, 1]
            )
        if kind == "tokens_matmul":  # [1, C, HW] -> [1, HW, C] @ [C, K]
            shape = self.const("shp", np.array([1, c, h * w], np.int64))
            t = self.node("Reshape", [x, shape], (1, c, h * w))
            t = self.node("Transpose", [t], (1, h * w, c), perm=[0, 2, 1])
            wt = r.normal(0, np.sqrt(1.0 / c), (c, k)).astype(np.float32)
            return self.node("MatMul", [t, self.const("mw", wt)], (1, h * w, k))
        # softmax(T Tᵀ) T, T = tokens [1, HW, C]; over more tokens most probabilities fall under
        # half an int8 step of the largest (seed 39 at 1024 tokens: 41% on one photograph,
        # inherent to a per-tensor int8 softmax output, not a placement fault)
        if kind == "attention" and h * w <= 64:
            shape = self.const("shp", np.array([1, c, h * w], np.int64))
            t = self.node("Reshape", [x, shape], (1, c, h * w))
            tt = self.node("Transpose", [t], (1, h * w, c), perm=[0, 2, 1])
            att = self.node("MatMul", [tt, t], (1, h * w, h * w))
            att = self.node("Softmax", [att], (1, h * w, h * w), axis=-1)
            return self.node("MatMul", [att, tt], (1, h * w, c))
        if kind == "weight_first":  # [K, C] @ [1, C, HW]: the weight is MatMul's A
            shape = self.const("shp", np.array([1, c, h * w], np.int64))
            t = self.node("Reshape", [x, shape], (1, c, h * w))
            wt = r.normal(0, np.sqrt(1.0 / c), (k, c)).astype(np.float32)
            return self.node("MatMul", [self.const("mw", wt), t], (1, k, h * w))
        if kind == "gap_gemm":
            x = self.node("GlobalAveragePool", [x], (n, c, 1, 1))
            flat, feat = self.node("Flatten", [x], (1, c)), c
        else:
            if h * w * c > 4096:
                x = self.node("GlobalAveragePool", [x], (n, c, 1, 1))
                flat, feat = self.node("Flatten", [x], (1, c)), c
            else:
                flat, feat = self.node("Flatten", [x], (1, c * h * w)), c * h * w
        trans = bool(r.random() < 0.5)
        wshape = (k, feat) if trans else (feat, k)
        wt = r.normal(0, np.sqrt(1.0 / feat), wshape).astype(np.float32)
        ins = [flat, self.const("gw", wt)]
        if r.random() < 0.7:
            ins.append(self.const("gb", r.normal(0, 0.1, k).astype(np.float32)))
        scaled = {"alpha": 0.5, "beta": 2.0} if r.random() < 0.2 else {}
        return self.node("Gemm", ins, (1, k), transB=int(trans), **scaled)


def build(seed: int) -> onnx.ModelProto:
    """The random model of `seed` (same seed, same model)."""
    rng = np.random.default_rng(seed)
    opset = int(rng.choice(OPSETS))
    h, w = (int(v) for v in rng.integers(32, 97, 2))
    b = Builder(rng, opset)
    b.shapes["x"] = (1, 3, h, w)
    y = "x"
    if rng.random() < 0.3:  # normalization inside the model: (x - mean) / std
        mean = b.const("mean", np.array([0.485, 0.456, 0.406], np.float32).reshape(1, 3, 1, 1))
        std = b.const("std", np.array([0.229, 0.224, 0.225], np.float32).reshape(1, 3, 1, 1))
        y = b.node("Div", [b.node("Sub", [y, mean], b.shapes[y]), std], b.shapes[y])
    y = b.block(y)
    features = [y]
    for _ in range(int(rng.integers(2, 6))):
        step = rng.random()
        if step < 0.45:
            y = b.block(y)
        elif step < 0.52:
            y = b.pool(y)
        elif step < 0.57:
            y = b.se(y)
        elif step < 0.62:
            y = b.odd(y)
        elif step < 0.67:
            y = b.split_concat(y)
        elif step < 0.75 and min(b.shapes[y][2:]) >= 4:
            y = b.conv(y, transpose=True)
            y = b.act(y) if rng.random() < 0.7 else y
        elif step < 0.85:  # FPN: upsample and merge with an earlier feature of that size
            up = b.resize(y)
            same = [f for f in features if b.shapes[f][2:] == b.shapes[up][2:]]
            if same:
                other = same[-1]
                if b.shapes[other][1] != b.shapes[up][1]:
                    y = b.node(
                        "Concat", [up, other],
                        (1, b.shapes[up][1] + b.shapes[other][1], *b.shapes[up][2:]), axis=1,
                    )  # fmt: skip
                else:
                    y = b.node("Add", [up, other], b.shapes[up])
            else:
                y = b.conv(up)  # a stride may bring it back down
        else:  # a side branch concatenated back
            z = b.block(y)
            if b.shapes[z][2:] == b.shapes[y][2:]:
                c = b.shapes[y][1] + b.shapes[z][1]
                y = b.node("Concat", [y, z], (1, c, *b.shapes[y][2:]), axis=1)
            else:
                y = z
        features.append(y)
        if rng.random() < 0.15:  # a feature that is an output and read on
            b.outputs.append(y)
    b.outputs.append(b.head(y))
    if rng.random() < 0.4:
        b.outputs.append(b.head(features[int(rng.integers(0, len(features)))]))
    if rng.random() < 0.05:  # the input passed through as an output too
        b.outputs.append("x")
    outs = list(dict.fromkeys(b.outputs))
    if rng.random() < 0.2:  # weights in Constant nodes, as some exporters write them
        consts = [
            helper.make_node("Constant", [], [t.name], name=t.name + "_c", value=t) for t in b.inits
        ]
        b.nodes[:0] = consts
        b.inits = []
    graph = helper.make_graph(
        b.nodes,
        f"fuzz{seed}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, h, w])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, list(b.shapes[o])) for o in outs],
        b.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    onnx.checker.check_model(model, full_check=True)
    return model


@cache
def _photos() -> list[np.ndarray]:
    return realmodels.images(names=CALIB + HELD_OUT)


def feeds(model: onnx.ModelProto) -> tuple[list[dict], list[dict]]:
    """Calibration feeds and held-out feeds: photographs resized to the model's input."""
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    size = (dims[2], dims[3])
    made = [{"x": realmodels.preprocess(im, size, scale=1 / 255)} for im in _photos()]
    return made[: len(CALIB)], made[len(CALIB) :]


def config(seed: int) -> tuple[str, str, dict]:
    """Method, target and options of `seed`: every method and target; the accuracy search
    off for most models, so that quantization of every planned tensor is checked."""
    rng = np.random.default_rng(seed + 10_000)
    method = str(rng.choice(METHODS))
    target = str(rng.choice(TARGETS))
    options: dict = {"threads": 1}
    if rng.random() < 0.7:
        options["accuracy_target"] = None
    if rng.random() < 0.5:  # quantize the stem too (tensorrt keeps it float by default)
        options["keep_stem"] = False
    return method, target, options


def _io(model: onnx.ModelProto) -> list:
    def sig(vs):  # type: ignore[no-untyped-def]
        return [
            (v.name, v.type.tensor_type.elem_type,
             [d.dim_value or d.dim_param for d in v.type.tensor_type.shape.dim])
            for v in vs
        ]  # fmt: skip

    inits = {i.name for i in model.graph.initializer}
    return [sig([v for v in model.graph.input if v.name not in inits]), sig(model.graph.output)]


def qdq_problems(model: onnx.ModelProto, target: str) -> list[str]:
    """Invalid Q/DQ nodes: scale not positive finite, zero point of the wrong type or not 0
    (TensorRT), per-channel scales that do not fit the quantized tensor's axis."""
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant":
            inits[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    inferred = onnx.shape_inference.infer_shapes(model)
    ranks = {}
    for v in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
        dims = v.type.tensor_type.shape.dim
        ranks[v.name] = [d.dim_value for d in dims]
    for name, arr in inits.items():
        ranks.setdefault(name, list(arr.shape))
    problems = []
    for n in model.graph.node:
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        scale = inits.get(n.input[1])
        if scale is None:
            problems.append(f"{n.name}: scale {n.input[1]} not constant")
            continue
        if not (np.all(np.isfinite(scale)) and np.all(scale > 0)):
            problems.append(f"{n.name}: scale not positive finite: {scale.ravel()[:4]}")
        zp = inits.get(n.input[2]) if len(n.input) > 2 and n.input[2] else None
        if target == "tensorrt":
            if zp is None or zp.dtype != np.int8 or np.any(zp != 0):
                problems.append(f"{n.name}: zero point {zp} is not int8 0")
        elif zp is not None and zp.dtype not in (np.int8, np.uint8, np.int32):
            problems.append(f"{n.name}: zero point dtype {zp.dtype}")
        if zp is not None and zp.shape != scale.shape:
            problems.append(f"{n.name}: zero point shape {zp.shape} vs scale {scale.shape}")
        if scale.size > 1 or scale.ndim == 1:
            axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
            dims = ranks.get(n.input[0])
            if dims is None:
                problems.append(f"{n.name}: per-channel on {n.input[0]} of unknown shape")
                continue
            axis = axis + len(dims) if axis < 0 else axis
            if scale.ndim == 1 and not (0 <= axis < len(dims) and dims[axis] == scale.size):
                problems.append(
                    f"{n.name}: {scale.size} scales on axis {axis} of {n.input[0]} {dims}"
                )
    return problems


def _weight_first(model: onnx.ModelProto) -> list[str]:
    """Names of the MatMuls whose A input is a constant and whose B input is not."""
    consts = {t.name for t in model.graph.initializer}
    consts |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    return [
        n.name
        for n in model.graph.node
        if n.op_type == "MatMul" and n.input[0] in consts and n.input[1] not in consts
    ]


def _weight_first_problem(q: onnx.ModelProto, name: str) -> str | None:
    """Why quantized W·X MatMul `name` of `q` is not int8 W per tensor and a Q/DQ'd X, or None."""
    producer = {o: n for n in q.graph.node for o in n.output}
    inits = {t.name: t for t in q.graph.initializer}
    node = next((n for n in q.graph.node if n.name == name), None)
    if node is None:
        return "not in the quantized model"
    dq, act = producer.get(node.input[0]), producer.get(node.input[1])
    if dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] not in inits:
        return "W is not read through a DequantizeLinear of an initializer"
    if inits[dq.input[0]].data_type != TensorProto.INT8:
        return "W is not int8"
    if (
        any(a.name == "axis" for a in dq.attribute)
        or numpy_helper.to_array(inits[dq.input[1]]).size != 1
    ):
        return "W is not per tensor"
    if act is None or act.op_type != "DequantizeLinear":
        return "X is not read through a DequantizeLinear"
    q_node = producer.get(act.input[0])
    if q_node is None or q_node.op_type != "QuantizeLinear":
        return "X's DequantizeLinear is not fed by a QuantizeLinear"
    return None


def _int8_level() -> str:
    """The onnxruntime optimization level the INT8 error is measured at: "all" (its fused int8
    kernels), or "disable" (the Q/DQ graph as written, onnxruntime's reference kernels) where
    the fused int8 Conv computes wrong (1.23.2 on AVX-512 VNNI / AMX CPUs: seeds 5 and 30 erred
    16 % and 32 % fused, 0.5 % and 1.5 % as written)."""
    return "all" if onnxruntime_fused_int8_conv_is_right() else "disable"


def run_one(seed: int, chosen: tuple[str, str, dict] | None = None) -> tuple[str, float]:
    """Quantize the model of `seed` (with `chosen` method, target and options instead of the
    seed's); assert every property. Returns (config, error)."""
    model = build(seed)
    method, target, options = chosen or config(seed)
    calib, held = feeds(model)
    kwargs = dict(options)
    if method != "default":
        kwargs["method"] = method
    label = f"seed {seed} opset {model.opset_import[0].version} {method} {target} {options}"
    before = model.SerializeToString()
    try:
        q, report = quantize_with_report(model, calib, target=target, **kwargs)
    except QuantizeError as e:
        assert "\n" not in str(e), f"{label}: multi-line error {e}"
        return label + f" refused: {e}", 0.0
    assert model.SerializeToString() == before, f"{label}: the caller's model was changed"
    if "--twice" in sys.argv:  # hunting: the same inputs give the same bytes
        again = quantize_with_report(model, calib, target=target, **kwargs)[0]
        assert again.SerializeToString() == q.SerializeToString(), f"{label}: not deterministic"
    onnx.checker.check_model(q, full_check=True)
    assert _io(q) == _io(model), f"{label}: inputs/outputs changed"
    problems = qdq_problems(q, target)
    assert not problems, f"{label}: {problems[:3]}"
    n_q = sum(n.op_type == "QuantizeLinear" for n in q.graph.node)
    # no Q/DQ only where every planned node stayed float (the stem of a model that downsamples
    # once, at its end)
    assert n_q or not report.quantized_nodes, f"{label}: no QuantizeLinear"
    # a MatMul whose constant weight is its A input (Y = W·X, the weight_first head) is planned
    # like MatMul(X, W): quantized unless the accuracy search keeps it float, W int8 through a
    # per-tensor DQ (placement.MATMUL_A_WEIGHT_AXIS), X through an activation Q → DQ
    for name in _weight_first(model):
        if name not in report.quantized_nodes:
            assert report.kept_float, f"{label}: W·X MatMul {name} stayed float"
            continue
        problem = _weight_first_problem(q, name)
        assert problem is None, f"{label}: {name}: {problem}"
    if target == "tensorrt":
        errs = errors(check_tensorrt(q))
        assert not errs, f"{label}: {[str(e) for e in errs[:3]]}"
    level = _int8_level()
    fs, qs = session(model, threads=1, level=level), session(q, threads=1, level=level)
    worst = 0.0
    names = [o.name for o in model.graph.output]
    for feed in held:
        ref = fs.run(names, feed)
        got = qs.run(names, feed)
        for name, r, g in zip(names, ref, got, strict=True):
            assert g.shape == r.shape and g.dtype == r.dtype, f"{label}: {name}"
            assert np.all(np.isfinite(g)), f"{label}: {name} not finite"
            span = float(r.max() - r.min()) or 1.0
            err = float(np.sqrt(np.mean((g - r) ** 2))) / span
            worst = max(worst, err)
    assert worst <= ERROR_BOUND, f"{label}: INT8 error {worst:.3f} of the output's range"
    return label, worst


# seed 52 failed on the parent of the bias-floor fix (26% of the output range)
COMMITTED = [*range(39), 52]


@pytest.mark.slow
@pytest.mark.parametrize("seed", COMMITTED)
def test_quantize_fuzz(seed: int) -> None:
    run_one(seed)


@pytest.mark.parametrize("seed", range(4))
def test_quantize_cli_fuzz(seed: int, tmp_path, capsys) -> None:
    """`graphopt quantize` on a folder of the calibration photographs (resized by the CLI's
    own preprocessing, pixels scaled to 0..1) then `graphopt check --target tensorrt`."""
    import shutil

    from graphopt.cli import main

    model = build(seed)
    method, target, _ = config(seed)
    src, out = tmp_path / "m.onnx", tmp_path / "q.onnx"
    onnx.save(model, src)
    calib = tmp_path / "calib"
    calib.mkdir()
    for path in realmodels.image_paths(CALIB[:4]):
        shutil.copy(path, calib / path.name)
    args = ["quantize", str(src), "-o", str(out), "--calib", str(calib), "--target", target]
    args += ["--scale", "0.00392156862745098", "--no-progress"]
    if method != "default":
        args += ["--method", method]
    assert main(args) == 0, capsys.readouterr().err
    q = onnx.load(out)
    onnx.checker.check_model(q, full_check=True)
    assert _io(q) == _io(model)
    assert not qdq_problems(q, target)
    if target == "tensorrt":
        assert main(["check", str(out), "--target", "tensorrt"]) == 0, capsys.readouterr()
    _, held = feeds(model)
    names = [o.name for o in model.graph.output]
    level = _int8_level()
    fs, qs = session(model, threads=1, level=level), session(q, threads=1, level=level)
    for feed in held:
        for r, g in zip(fs.run(names, feed), qs.run(names, feed), strict=True):
            span = float(r.max() - r.min()) or 1.0
            assert float(np.sqrt(np.mean((g - r) ** 2))) <= ERROR_BOUND * span


if __name__ == "__main__":  # hunt: python tests/test_quant_fuzz12.py START COUNT
    import traceback

    start, count = int(sys.argv[1]), int(sys.argv[2])
    every = "--all" in sys.argv  # every method and target on each model, nothing kept float
    bare = {"threads": 1, "accuracy_target": None, "keep_stem": False}
    for s in range(start, start + count):
        runs = [(m, t, bare) for m in METHODS for t in TARGETS] if every else [None]
        for chosen in runs:
            try:
                label, err = run_one(s, chosen)
                print(f"ok {err:.4f} {label}", flush=True)
            except Exception as e:
                print(f"FAIL seed {s} {chosen}: {type(e).__name__}: {str(e)[:400]}", flush=True)
                if "-v" in sys.argv:
                    traceback.print_exc()
