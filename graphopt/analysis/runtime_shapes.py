"""Pooling outputs whose size ONNX shape inference and onnxruntime disagree on (ceil_mode=1).

onnxruntime (like PyTorch) drops a last pooling window that would start in the right padding:

    out = ⌈(in + pad_head + pad_tail − ((k − 1)·d + 1)) / s⌉ + 1,
    out − 1  when  (out − 1)·s ≥ in + pad_head

ONNX shape inference (onnx 1.23) keeps that window: MaxPool(k=2, s=2, pads=1) of a length-5
axis infers 4 where onnxruntime gives 3, and a folded `Shape` of it would be wrong. With
`auto_pad` VALID or SAME_* and ceil_mode=1 the two disagree as well.

`inference_cuts` names, after one inference, the nodes whose inferred outputs are not what
onnxruntime computes, with the shapes to use instead: a ceil-mode pool's by the rule above
(its spatial dims unknown under auto_pad), and every output of an If/Loop/Scan or model-local
function call that holds such a pool unknown (the pool's own output there is not checked).
`graphopt.analysis.shapes` infers again with those outputs as inputs of those shapes.

What it does not do: check pools with ceil_mode=0, or other ops, against onnxruntime.
"""

from __future__ import annotations

from collections.abc import Iterable

import onnx

from graphopt.ir.nodes import attribute_value, is_default_domain, subgraphs
from graphopt.ir.values import declared_dims

Dim = int | str | None

CEIL_POOLS = frozenset({"MaxPool", "AveragePool", "LpPool"})


def is_ceil_pool(node: onnx.NodeProto) -> bool:
    """A default-domain MaxPool/AveragePool/LpPool with ceil_mode=1."""
    return (
        node.op_type in CEIL_POOLS
        and is_default_domain(node)
        and attribute_value(node, "ceil_mode", 0) == 1
    )


def pooled_dims(node: onnx.NodeProto, dims: tuple[Dim, ...]) -> list[Dim]:
    """The output dims onnxruntime gives ceil-mode pool `node` for input `dims` (batch and
    channels as they are; a spatial dim None where it is not known)."""
    spatial = len(dims) - 2
    kernel = list(attribute_value(node, "kernel_shape", []) or [])
    strides = list(attribute_value(node, "strides", []) or [1] * spatial)
    pads = list(attribute_value(node, "pads", []) or [0] * (2 * spatial))
    dilations = list(attribute_value(node, "dilations", []) or [1] * spatial)
    auto_pad = attribute_value(node, "auto_pad", "NOTSET")
    if isinstance(auto_pad, bytes):
        auto_pad = auto_pad.decode()
    out: list[Dim] = list(dims[:2])
    usable = auto_pad == "NOTSET" and all(
        len(v) == n
        for v, n in (
            (kernel, spatial),
            (strides, spatial),
            (pads, 2 * spatial),
            (dilations, spatial),
        )
    )
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


def inference_cuts(
    model: onnx.ModelProto, inferred: onnx.ModelProto
) -> dict[int, list[onnx.ValueInfoProto]]:
    """Per index of a node of `model`'s graph whose outputs `inferred` (the result of ONNX
    inference over `model`) gets wrong: those outputs, typed as onnxruntime computes them."""
    functions = {(f.domain, f.name): f for f in model.functions}
    suspects = {
        k: node
        for k, node in enumerate(model.graph.node)
        if is_ceil_pool(node) or _holds_ceil_pool(node, functions, set())
    }
    if not suspects:
        return {}
    wanted = {t for node in suspects.values() for t in (*node.input[:1], *node.output) if t}
    infos = _value_infos(inferred.graph, wanted)
    cuts: dict[int, list[onnx.ValueInfoProto]] = {}
    for k, node in suspects.items():
        if not is_ceil_pool(node):
            cuts[k] = [_typed(infos.get(out), out, None) for out in node.output if out]
            continue
        source = infos.get(node.input[0]) if node.input else None
        dims = declared_dims(source) if source is not None else None
        have = declared_dims(infos[node.output[0]]) if node.output[0] in infos else None
        if dims is None or have is None or len(dims) < 3 or len(have) != len(dims):
            continue  # no rank, so no size either: nothing wrong to take
        want = pooled_dims(node, dims)
        if all(
            w == h or (w is None and not isinstance(h, int))
            for w, h in zip(want, have, strict=True)
        ):
            continue
        shape = [h if j < 2 else w for j, (w, h) in enumerate(zip(want, have, strict=True))]
        cuts[k] = [_typed(infos.get(out), out, shape) for out in node.output if out]
    return cuts


def _holds_ceil_pool(
    node: onnx.NodeProto,
    functions: dict[tuple[str, str], onnx.FunctionProto],
    seen: set[tuple[str, str]],
) -> bool:
    """`node` has a body, or calls a model-local function, with a ceil-mode pool inside."""
    nodes: list[onnx.NodeProto] = [n for body in subgraphs(node) for n in body.node]
    key = (node.domain, node.op_type)
    if key in functions and key not in seen:
        seen.add(key)
        nodes.extend(functions[key].node)
    return any(is_ceil_pool(n) or _holds_ceil_pool(n, functions, seen) for n in nodes)


def _value_infos(graph: onnx.GraphProto, names: set[str]) -> dict[str, onnx.ValueInfoProto]:
    found: dict[str, onnx.ValueInfoProto] = {}
    for vi in _chain(graph.input, graph.value_info, graph.output):
        if vi.name in names and vi.name not in found:
            found[vi.name] = vi
    for init in graph.initializer:
        if init.name in names and init.name not in found:
            found[init.name] = onnx.helper.make_tensor_value_info(
                init.name, init.data_type, list(init.dims)
            )
    return found


def _chain(*groups: Iterable[onnx.ValueInfoProto]) -> Iterable[onnx.ValueInfoProto]:
    for group in groups:
        yield from group


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
