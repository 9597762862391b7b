"""Output sizes onnxruntime computes differently from ONNX shape inference.

Where onnx 1.23 inference and onnxruntime disagree, a fact from inference would fold a wrong
`Shape` (or drop a Reshape that is needed). The cases found, checked by sweeps against
onnxruntime's kernels:

* ceil_mode=1 pools (MaxPool, AveragePool, LpPool). onnxruntime, like PyTorch and the ONNX
  spec, drops a last window that would start in the right padding:

      out = ⌈(in + pad_head + pad_tail − ((k − 1)·d + 1)) / s⌉ + 1,
      out − 1  when  (out − 1)·s ≥ in + pad_head

  inference keeps it (MaxPool(k=2, s=2, pads=1) of 5: 4, onnxruntime 3). Under auto_pad
  VALID/SAME_* the two disagree too: those dims are left unknown.
* auto_pad SAME_* pools with a dilation > 1: onnxruntime pads as if undilated and gets fewer
  windows than ⌈in / s⌉ (MaxPool(k=2, d=2, SAME_UPPER) of 5: 4): left unknown.
* Resize/Upsample by scales: onnxruntime takes ⌊float32(scale) ×_float32 in⌋, inference
  rounds the product elsewhere (0.7 × 10: onnxruntime 7, inference 6). A dim where inference
  is not onnxruntime's number is left unknown.
* Resize-18+ with a keep_aspect_ratio_policy other than stretch and a negative axis:
  onnxruntime 1.32 returns the input's dims there (Resize(x[2, 1, 9, 4], sizes [3, 27],
  axes [-2, -1], not_larger): [2, 1, 9, 4]), inference the policy's ([2, 1, 3, 1]). Those
  dims are left unknown.
* Squeeze/Unsqueeze of opsets 1-10 with negative axes (defined from opset 11): onnxruntime
  counts them from the back, inference keeps x's dims (Unsqueeze(x[5], axes [-2]):
  onnxruntime [1, 5], inference [5]).
* PRelu with a slope that is not unidirectionally broadcastable to x: onnxruntime broadcasts
  both ways (x[5, 5, 1], slope [5]: [5, 5, 5]), inference states x's shape.
* ConvTranspose with output_shape: inference states a rank-2 [N, C] for some (x[1, 2, 7],
  kernel 3, strides 2, output_shape [1]: onnxruntime [1, 2, 1]); the spatial dims of those
  are left unknown.
* auto_pad SAME_* ConvTranspose without output_shape: the spec says in·s, onnxruntime gives
  min(in·s, (in − 1)·s + output_padding + (k − 1)·d + 1) (it never pads negatively), inference
  adds output_padding to in·s (k=2, s=2, output_padding=1 of 3: onnxruntime 6, inference 7).
  Where the three are not one number the dim is left unknown.
* onesided STFT given a window but no frame_length: onnxruntime returns
  ⌊len(window) / 2⌋ + 1 frequency bins, inference len(window) (window 6: onnxruntime 4,
  inference 6).

`inference_cuts` names, after one inference, the nodes whose inferred outputs are not what
onnxruntime computes, with the shapes to take instead; every output of an If/Loop/Scan or a
model-local function call holding such a node is unknown (nothing inside is checked).
`graphopt.analysis.shapes` infers again with those outputs as inputs of those shapes.

What it does not do: prove that inference agrees with onnxruntime anywhere else.
"""

from __future__ import annotations

import itertools

import numpy as np
import onnx
from onnx import numpy_helper

from graphopt.ir.graph import outer_references
from graphopt.ir.nodes import (
    attribute_value,
    constant_tensor,
    default_opset,
    is_default_domain,
    subgraphs,
)
from graphopt.ir.values import declared_dims

Dim = int | str | None

POOLS = frozenset({"MaxPool", "AveragePool", "LpPool"})
RESIZES = frozenset({"Resize", "Upsample"})
AXES_OPS = frozenset({"Squeeze", "Unsqueeze"})
SUSPECT_OPS = POOLS | RESIZES | AXES_OPS | {"ConvTranspose", "STFT", "PRelu"}
BODIED = frozenset({"If", "Loop", "Scan"})


def _text(value: object) -> object:
    return value.decode() if isinstance(value, bytes) else value


_INTS, _INT, _STRING, _FLOATS = (
    onnx.AttributeProto.INTS,
    onnx.AttributeProto.INT,
    onnx.AttributeProto.STRING,
    onnx.AttributeProto.FLOATS,
)
# the types of the attributes this module reads (of the SUSPECT_OPS)
_ATTRIBUTE_TYPES = {
    "kernel_shape": _INTS,
    "strides": _INTS,
    "pads": _INTS,
    "dilations": _INTS,
    "output_padding": _INTS,
    "output_shape": _INTS,
    "axes": _INTS,
    "scales": _FLOATS,
    "ceil_mode": _INT,
    "onesided": _INT,
    "auto_pad": _STRING,
    "keep_aspect_ratio_policy": _STRING,
}


def mistyped(node: onnx.NodeProto) -> bool:
    """`node` gives an attribute this module reads in another type than its op defines
    (dilations=2 where a list is due): onnx.checker and onnxruntime refuse the model, and what
    inference makes of the node is not onnxruntime's (it reads no number there)."""
    return any(
        a.name in _ATTRIBUTE_TYPES and not a.ref_attr_name and a.type != _ATTRIBUTE_TYPES[a.name]
        for a in node.attribute
    )


def is_suspect(node: onnx.NodeProto) -> bool:
    """`node` is of a kind whose inferred output size may not be onnxruntime's (and one that
    is `mistyped`: its outputs' dims are unknown; reading such an attribute as its op's type
    was a TypeError in `shape_facts`, which never fails: a traceback from `graphopt inspect`)."""
    if not is_default_domain(node):
        return False
    if node.op_type in SUSPECT_OPS and mistyped(node):
        return True
    if any(a.ref_attr_name for a in node.attribute):  # in a function: its caller's value
        return node.op_type in SUSPECT_OPS
    if node.op_type == "ConvTranspose":
        if attribute_value(node, "output_shape", None) is not None:
            return True  # (inference may drop its spatial dims: `_corrected`)
        return str(_text(attribute_value(node, "auto_pad", "NOTSET"))).startswith("SAME")
    if node.op_type in POOLS:
        dilated = any(d != 1 for d in attribute_value(node, "dilations", []) or [])
        same = str(_text(attribute_value(node, "auto_pad", "NOTSET"))).startswith("SAME")
        return attribute_value(node, "ceil_mode", 0) == 1 or (same and dilated)
    if node.op_type == "STFT":
        frame_length = node.input[3] if len(node.input) > 3 else ""
        return attribute_value(node, "onesided", 1) == 1 and not frame_length
    if node.op_type in AXES_OPS:  # (negative axes: opsets 1-10 only, `_corrected`)
        return any(a < 0 for a in attribute_value(node, "axes", None) or [])
    return node.op_type in RESIZES or node.op_type == "PRelu"


def pooled_dims(node: onnx.NodeProto, dims: tuple[Dim, ...]) -> list[Dim]:
    """The output dims onnxruntime gives pool `node` (a suspect) for input `dims` (batch and
    channels as they are; a spatial dim None where it is not known)."""
    spatial = len(dims) - 2
    kernel = list(attribute_value(node, "kernel_shape", []) or [])
    strides = list(attribute_value(node, "strides", []) or [1] * spatial)
    pads = list(attribute_value(node, "pads", []) or [0] * (2 * spatial))
    dilations = list(attribute_value(node, "dilations", []) or [1] * spatial)
    sizes = ((kernel, spatial), (strides, spatial), (pads, 2 * spatial), (dilations, spatial))
    usable = (
        _text(attribute_value(node, "auto_pad", "NOTSET")) == "NOTSET"
        and attribute_value(node, "ceil_mode", 0) == 1
        and all(len(v) == n for v, n in sizes)
    )
    out: list[Dim] = list(dims[:2])
    for i in range(spatial):
        size = dims[2 + i]
        if not usable or not isinstance(size, int) or strides[i] <= 0:
            out.append(None)
            continue
        head, stride = pads[i], strides[i]
        extent = size + head + pads[spatial + i] - ((kernel[i] - 1) * dilations[i] + 1)
        n = -(-extent // stride) + 1
        if (n - 1) * stride >= size + head:
            n -= 1
        out.append(n)
    return out


def resized_dims(
    node: onnx.NodeProto, dims: tuple[Dim, ...], scales: np.ndarray | None, opset: int
) -> list[Dim] | None:
    """The output dims onnxruntime gives Resize/Upsample `node` scaling `dims` by `scales`
    (None: not resized by scales, or they cannot be read: nothing to check)."""
    if scales is None or scales.size == 0 or scales.dtype != np.float32:
        return None
    scales = scales.reshape(-1)
    axes = attribute_value(node, "axes", None) if opset >= 18 else None
    axes = list(range(len(dims))) if axes is None else [a + len(dims) * (a < 0) for a in axes]
    if len(axes) != scales.size or not all(0 <= a < len(dims) for a in axes):
        return None
    out: list[Dim] = list(dims)
    for axis, scale in zip(axes, scales, strict=True):
        size = dims[axis]
        product = np.float32(scale) * np.float32(size) if isinstance(size, int) else None
        out[axis] = int(product) if product is not None and np.isfinite(product) else None
    return out


def transposed_dims(
    node: onnx.NodeProto, dims: tuple[Dim, ...], have: tuple[Dim, ...], weight: tuple[Dim, ...]
) -> list[Dim]:
    """The output dims of ConvTranspose `node` (auto_pad SAME_*, no output_shape) for input
    `dims`: batch and channels as inferred (`have`), a spatial dim where onnxruntime's
    min(in·s, (in − 1)·s + output_padding + (k − 1)·d + 1) (its padding is never negative) is
    the spec's in·s, None (not known: runtimes differ) where it is not."""
    spatial = len(dims) - 2
    kernel = list(attribute_value(node, "kernel_shape", []) or weight[2:])
    strides = list(attribute_value(node, "strides", []) or [1] * spatial)
    dilations = list(attribute_value(node, "dilations", []) or [1] * spatial)
    adjust = list(attribute_value(node, "output_padding", []) or [0] * spatial)
    usable = all(len(v) == spatial for v in (kernel, strides, dilations, adjust))
    out: list[Dim] = list(have[:2])
    for i in range(spatial):
        size, k = dims[2 + i], kernel[i] if usable else None
        if not isinstance(size, int) or not isinstance(k, int):
            out.append(None)
            continue
        s, d = strides[i], dilations[i]
        runtime = min(size * s, (size - 1) * s + adjust[i] + (k - 1) * d + 1)
        out.append(runtime if runtime == size * s else None)  # the spec's in·s, or not known
    return out


def inference_cuts(
    model: onnx.ModelProto, inferred: onnx.ModelProto
) -> dict[int, list[onnx.ValueInfoProto]]:
    """Per index of a node of `model`'s graph whose outputs `inferred` (the result of ONNX
    inference over `model`) gets wrong: those outputs, typed as onnxruntime computes them.
    A suspect that reads (through any nodes) what another cut of this round changes is left
    to the next round: its inferred input dims are not onnxruntime's yet."""
    functions = {(f.domain, f.name): f for f in model.functions}
    suspects: dict[int, onnx.NodeProto] = {}
    for k, node in enumerate(model.graph.node):
        op = node.op_type
        if op in SUSPECT_OPS:
            found = is_suspect(node)
        else:  # a body (or a function) only If/Loop/Scan and other domains' ops hold
            holder = op in BODIED or (node.domain, op) in functions or not is_default_domain(node)
            found = holder and _holds_suspect(node, functions, set())
        if found:
            suspects[k] = node
    if not suspects:
        return {}
    opset = default_opset(model)
    wanted = {t for node in suspects.values() for t in (*node.input[:3], *node.output) if t}
    infos = _value_infos(inferred.graph, wanted)
    scales = {_scales_input(n, opset) for n in suspects.values() if n.op_type in RESIZES}
    constants = _constants(model.graph, scales - {""})
    fixes: dict[int, list[Dim] | None] = {}  # None: every output unknown
    for k, node in suspects.items():
        if not is_suspect(node) or mistyped(node):  # (a body or function holds one; or
            fixes[k] = None  # the node's attributes are not its op's: nothing known)
            continue
        shape = _corrected(node, infos, constants, opset)
        if shape is not None:
            fixes[k] = shape
    if len(fixes) > 1:
        _drop_stale(model.graph, fixes)
    return {
        k: [_typed(infos.get(out), out, shape) for out in model.graph.node[k].output if out]
        for k, shape in fixes.items()
    }


def _drop_stale(graph: onnx.GraphProto, fixes: dict[int, list[Dim] | None]) -> None:
    """Drop from `fixes` the suspects downstream of another fix: they wait for a round that
    infers them from their inputs' corrected shapes."""
    tainted: set[str] = set()
    for k, node in enumerate(graph.node):
        reads = {*node.input, *(t for body in subgraphs(node) for t in outer_references(body))}
        stale = not tainted.isdisjoint(reads)
        if stale and k in fixes and is_suspect(node):
            del fixes[k]
        if stale or k in fixes:
            tainted.update(o for o in node.output if o)


def _corrected(
    node: onnx.NodeProto,
    infos: dict[str, onnx.ValueInfoProto],
    constants: dict[str, onnx.TensorProto],
    opset: int,
) -> list[Dim] | None:
    """The output shape onnxruntime gives suspect `node` where inference's differs (None:
    they agree, or nothing is known)."""
    source = infos.get(node.input[0]) if node.input else None
    dims = declared_dims(source) if source is not None else None
    have = declared_dims(infos[node.output[0]]) if node.output[0] in infos else None
    if node.op_type == "STFT":
        return _stft_dims(node, infos, have)
    if dims is None or have is None:
        return None  # no rank, so no size either: nothing wrong to take
    want: list[Dim] | None
    if node.op_type in AXES_OPS:
        want = _axes_dims(node, dims, opset)
        return None if want is None or tuple(want) == have else want
    if node.op_type == "PRelu":
        slope = infos.get(node.input[1]) if len(node.input) > 1 else None
        slope_dims = declared_dims(slope) if slope is not None else None
        want = None if slope_dims is None else _broadcast(dims, slope_dims)
        if want is None or (
            len(want) == len(have)
            and all(w == h or not isinstance(h, int) for w, h in zip(want, have, strict=True))
        ):
            return None
        return want
    if node.op_type == "ConvTranspose" and attribute_value(node, "output_shape", None) is not None:
        if len(have) == len(dims):
            return None  # output_shape's dims, as onnxruntime gives them
        # inference states only [N, C] where the padding output_shape implies is large
        return [have[j] if j < min(2, len(have)) else None for j in range(len(dims))]
    if len(have) != len(dims):
        return None
    if node.op_type in POOLS:
        want = pooled_dims(node, dims) if len(dims) > 2 else None
    elif node.op_type == "ConvTranspose":
        weight = infos.get(node.input[1]) if len(node.input) > 1 else None
        kernel = declared_dims(weight) if weight is not None else None
        want = transposed_dims(node, dims, have, kernel or ()) if len(dims) > 2 else None
    else:
        want = resized_dims(node, dims, _scales(node, opset, constants), opset)
        if want is None:
            want = _negative_axes_kept_aspect(node, have, opset)
    if want is None or all(
        w == h or (w is None and not isinstance(h, int)) for w, h in zip(want, have, strict=True)
    ):
        return None
    pairs = list(enumerate(zip(want, have, strict=True)))
    if node.op_type in RESIZES:  # inference's dims where they are onnxruntime's, others unknown
        return [
            h if w == h or (w is None and not isinstance(h, int)) else None for _, (w, h) in pairs
        ]
    return [h if j < 2 else w for j, (w, h) in pairs]  # batch, channels as inferred


def _axes_dims(node: onnx.NodeProto, dims: tuple[Dim, ...], opset: int) -> list[Dim] | None:
    """The output dims onnxruntime gives Squeeze/Unsqueeze `node` of opset 1-10 with negative
    axes (which those opsets do not define and onnxruntime counts from the back, where
    inference leaves x's dims as they are); None elsewhere."""
    axes = attribute_value(node, "axes", None) or []
    if opset >= 11 or not any(a < 0 for a in axes):
        return None
    rank = len(dims) + (len(axes) if node.op_type == "Unsqueeze" else 0)
    picked = {a + rank * (a < 0) for a in axes}
    if node.op_type == "Squeeze":
        return [d for j, d in enumerate(dims) if j not in picked]
    rest = iter(dims)
    return [1 if j in picked else next(rest, None) for j in range(rank)]


def _broadcast(a: tuple[Dim, ...], b: tuple[Dim, ...]) -> list[Dim]:
    """The dims of numpy's broadcasting of dims `a` and `b` (PRelu in onnxruntime broadcasts
    its slope both ways; inference takes x's shape): None where it is not known."""
    rank = max(len(a), len(b))
    out: list[Dim] = []
    for x, y in zip((1,) * (rank - len(a)) + a, (1,) * (rank - len(b)) + b, strict=True):
        if x == y or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        elif isinstance(x, int):
            out.append(x)  # (y is 1 or x, or onnxruntime refuses)
        else:
            out.append(y if isinstance(y, int) else None)
    return out


def _negative_axes_kept_aspect(
    node: onnx.NodeProto, have: tuple[Dim, ...], opset: int
) -> list[Dim] | None:
    """`have` with the dims of Resize `node`'s axes unknown where it keeps the aspect ratio
    (not_larger, not_smaller) over a negative axis, which onnxruntime reads apart from
    inference; None elsewhere."""
    if node.op_type != "Resize" or opset < 18:
        return None
    policy = _text(attribute_value(node, "keep_aspect_ratio_policy", "stretch"))
    axes = attribute_value(node, "axes", None)
    if policy == "stretch" or not axes or all(a >= 0 for a in axes):
        return None
    rank = len(have)
    unknown = {a + rank * (a < 0) for a in axes}
    return [None if j in unknown else h for j, h in enumerate(have)]


def _stft_dims(
    node: onnx.NodeProto, infos: dict[str, onnx.ValueInfoProto], have: tuple[Dim, ...] | None
) -> list[Dim] | None:
    """The output dims onnxruntime gives onesided STFT `node` without frame_length where
    inference's `have` differ: [batch, frames, ⌊len(window) / 2⌋ + 1, 2] (that dim None where
    the window's length is not known). None where they agree, or nothing is known."""
    if have is None or len(have) != 4:
        return None
    window = infos.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    length = declared_dims(window) if window is not None else None
    size = length[0] if length is not None and len(length) == 1 else None
    bins = size // 2 + 1 if isinstance(size, int) else None
    if bins == have[2] or (bins is None and not isinstance(have[2], int)):
        return None
    return [have[0], have[1], bins, have[3]]


def _scales_input(node: onnx.NodeProto, opset: int) -> str:
    """The name of Resize/Upsample `node`'s scales input ("" where there is none)."""
    index = 2 if node.op_type == "Resize" and opset >= 11 else 1
    if node.op_type == "Upsample" and opset < 9:
        return ""
    return node.input[index] if len(node.input) > index else ""


def _scales(
    node: onnx.NodeProto, opset: int, constants: dict[str, onnx.TensorProto]
) -> np.ndarray | None:
    """The scales of Resize/Upsample `node` when they are a constant, else None."""
    if node.op_type == "Upsample" and opset < 9:
        scales = attribute_value(node, "scales", None)
        return None if scales is None else np.asarray(scales, dtype=np.float32)
    name = _scales_input(node, opset)
    tensor = constants.get(name) if name else None
    return None if tensor is None else numpy_helper.to_array(tensor)


def _constants(graph: onnx.GraphProto, names: set[str]) -> dict[str, onnx.TensorProto]:
    """The constants among `names`: initializers and Constant nodes of `graph`, not segments
    of a larger tensor (`segment` set: their values are unknown)."""
    if not names:
        return {}
    found = {t.name: t for t in graph.initializer if t.name in names}
    for node in graph.node:
        if node.op_type == "Constant" and node.output and node.output[0] in names:
            value = constant_tensor(node) if is_default_domain(node) else None
            if value is not None:  # value, value_float(s), value_int(s)
                found[node.output[0]] = value
    return {name: t for name, t in found.items() if not t.HasField("segment")}


def _holds_suspect(
    node: onnx.NodeProto,
    functions: dict[tuple[str, str], onnx.FunctionProto],
    seen: set[tuple[str, str]],
) -> bool:
    """`node` has a body, or calls a model-local function, with a suspect node inside."""
    nodes: list[onnx.NodeProto] = [n for body in subgraphs(node) for n in body.node]
    key = (node.domain, node.op_type)
    if key in functions and key not in seen:
        seen.add(key)
        nodes.extend(functions[key].node)
    return any(is_suspect(n) or _holds_suspect(n, functions, seen) for n in nodes)


def _value_infos(graph: onnx.GraphProto, names: set[str]) -> dict[str, onnx.ValueInfoProto]:
    found: dict[str, onnx.ValueInfoProto] = {}
    for vi in itertools.chain(graph.input, graph.value_info, graph.output):
        if vi.name in names and vi.name not in found:
            found[vi.name] = vi
    for init in graph.initializer:
        if init.name in names and init.name not in found:
            found[init.name] = onnx.helper.make_tensor_value_info(
                init.name, init.data_type, list(init.dims)
            )
    return found


def _typed(
    inferred: onnx.ValueInfoProto | None, name: str, shape: list[Dim] | None
) -> onnx.ValueInfoProto:
    """`name` with `inferred`'s element type (undefined where it has none) and `shape` (None:
    an unknown rank)."""
    elem = 0
    if inferred is not None and inferred.type.HasField("tensor_type"):
        elem = inferred.type.tensor_type.elem_type
    vi = onnx.helper.make_tensor_value_info(name, elem or onnx.TensorProto.UNDEFINED, None)
    if shape is not None:
        dims = vi.type.tensor_type.shape.dim
        dims.extend([])
        for d in shape:
            dim = dims.add()
            if isinstance(d, int):
                dim.dim_value = d
            elif isinstance(d, str):
                dim.dim_param = d
    return vi
