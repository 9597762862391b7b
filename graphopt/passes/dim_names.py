"""Give each dynamic input dim that an exporter left as '?' a name of its own, for TensorRT.

paddle2onnx writes the dim_param '?' for every dynamic dim of an input (PP-OCRv3's detector:
x [?, 3, ?, ?]). ONNX reads dims named alike as equal, and so does TensorRT's ONNX parser: each
dim_param of a network input becomes a named dimension (`ITensor::setDimensionName`), and the
builder requires dims named alike to overlap in the profile and to be equal at run time. A
profile of 1x3x480x640 for such a detector is refused ("Condition '==' violated: 480 != 640",
RapidOCR issue #695: only square inputs build). onnxruntime does not read the names. Named
`<input>_<axis>` (made unique among the main graph's declared dims), the dims keep every
size they could take.

What it does not do: rename any other dim name (an exporter that names two inputs' dims
'batch' means them equal, and TensorRT may rely on it), or the dims of graph outputs,
value_info or If/Loop/Scan bodies (TensorRT names a network input's dims only).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from graphopt._text import fresh_name
from graphopt.ir import Graph
from graphopt.passes.base import Pass, PassContext, PassResult, register_pass

UNKNOWN = "?"  # paddle2onnx's dim_param for every dynamic dim


@register_pass
@dataclass
class NameUnknownDims(Pass):
    """Each graph input dim named '?' gets a name no other dim of the model has.

    dim_param(input i, axis k) = '?'  ⇒  dim_param = 'i_k' (a suffix where that is taken)
    """

    name = "name-unknown-dims"
    in_bodies = False  # (a body's inputs are its owner's to declare)

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        proto = graph.proto
        unknown = [
            (vi.name, axis, dim)
            for vi in proto.input
            if vi.type.HasField("tensor_type")
            for axis, dim in enumerate(vi.type.tensor_type.shape.dim)
            if dim.HasField("dim_param") and dim.dim_param == UNKNOWN
        ]
        if not unknown:
            return PassResult(False)
        taken = {
            dim.dim_param
            for vi in itertools.chain(proto.input, proto.output, proto.value_info)
            if vi.type.HasField("tensor_type")
            for dim in vi.type.tensor_type.shape.dim
            if dim.HasField("dim_param")
        }
        for tensor, axis, dim in unknown:
            name = fresh_name(f"{tensor}_{axis}", taken)
            dim.dim_param = name
            ctx.note(self.name, tensor, "applied", f"axis {axis}: '?' -> {name!r}")
        return PassResult(True, {"named": len(unknown)})
