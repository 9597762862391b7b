"""The stem: the convolutions between the model's inputs and its first downsampling.

With TensorRT's int8 *symmetric* activations the stem is where a detector loses the most: it
reads the image itself (pixel values 0..255 keep 7 of their 8 bits on a symmetric scale of
255/127), at the highest resolution, through few channels that average little of the error
out. Practice agrees (keep the first layers in FP16/FP32 "until the range is normal"), and so
does measurement: `common_det` (YOLOX) in the TensorRT layout matches 0.875 of its FP32 boxes
fully quantized, 0.952 with its two stem convolutions float (benchmarks/results/quantize.md).

`stem_nodes(graph)` walks forward from the graph's data inputs (not initializers listed as
inputs): every Conv/ConvTranspose reached is in the stem; a path stops after a node that
downsamples (a `strides` attribute above 1: strided Conv, MaxPool, AveragePool; a strided
ConvTranspose upsamples) and at a Shape or Size (dims, not pixels). At most `limit` nodes: a
model that never downsamples has no stem.

What it does not do: look at shapes or data (a model whose input is already normalised has the
same stem), or decide anything for the `onnxruntime` target, whose uint8 activations hold
pixels exactly.
"""

from __future__ import annotations

import onnx

from graphopt.ir import Graph

STEM_OPS = ("Conv", "ConvTranspose")
STEM_LIMIT = 4  # convolutions; more than this before any downsampling is not a stem
DIMS_ONLY = ("Shape", "Size")  # not followed: what reads their output is not the stem


def stem_nodes(graph: Graph, limit: int = STEM_LIMIT) -> list[str]:
    """Names of the stem's convolutions, in topological order (empty when there are more than
    `limit` or nothing downsamples)."""
    reached: set[str] = set()
    stops: set[str] = set()
    # the data inputs only: an initializer listed as a graph input (IR < 4, or an exporter's
    # keep_initializers_as_inputs) is a filter every convolution of the network reads
    frontier = [t for t in graph.graph_inputs if t not in graph.initializers]
    seen_tensors = set(frontier)
    while frontier:
        tensor = frontier.pop()
        for node in graph.consumer_nodes(tensor):
            if node.name in reached:
                continue
            reached.add(node.name)
            if _downsamples(node):
                stops.add(node.name)
                continue
            if node.op_type in DIMS_ONLY:
                continue  # its output says how large the image is, it holds no pixel
            for out in node.output:
                if out and out not in seen_tensors:
                    seen_tensors.add(out)
                    frontier.append(out)
    if not stops:
        return []  # everything reachable runs at full resolution: no stem to speak of
    stem = [n.name for n in graph.toposort() if n.name in reached and n.op_type in STEM_OPS]
    return stem if len(stem) <= limit else []


def _downsamples(node: onnx.NodeProto) -> bool:
    if node.op_type == "ConvTranspose":
        return False  # its strides enlarge the image
    return any(a.name == "strides" and any(s > 1 for s in a.ints) for a in node.attribute)
