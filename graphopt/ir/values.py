"""Reading what a `onnx.ValueInfoProto` declares about its tensor, shared by passes, analyses,
backends and the multitask merge.

What it does not do: infer anything (see `graphopt.analysis.shapes`) or look at the graph.
"""

from __future__ import annotations

from typing import Literal, overload

import onnx

Dim = int | str | None


@overload
def declared_dims(
    vi: onnx.ValueInfoProto, *, symbolic: Literal[False]
) -> tuple[int | None, ...] | None: ...
@overload
def declared_dims(
    vi: onnx.ValueInfoProto, *, symbolic: bool = True, unknown: str
) -> tuple[int | str, ...] | None: ...
@overload
def declared_dims(
    vi: onnx.ValueInfoProto, *, symbolic: bool = True, unknown: None = None
) -> tuple[Dim, ...] | None: ...
def declared_dims(
    vi: onnx.ValueInfoProto, *, symbolic: bool = True, unknown: str | None = None
) -> tuple[Dim, ...] | None:
    """The dims `vi` declares, or None when it declares no tensor shape (not a tensor, or an
    unknown rank).

    Each dim is its `dim_value`; else its `dim_param` (when `symbolic`, and not empty); else
    `unknown`. Printing uses `unknown="?"`; a proof about sizes `symbolic=False`. A negative
    `dim_value`, which older paddle2onnx writes for a dynamic dim (the spec has none), is
    `unknown` too: it is no size.
    """
    if vi.type.WhichOneof("value") != "tensor_type":
        return None
    tt = vi.type.tensor_type
    if not tt.HasField("shape"):
        return None
    dims: list[Dim] = []
    for d in tt.shape.dim:
        which = d.WhichOneof("value")
        if which == "dim_value" and d.dim_value >= 0:
            dims.append(d.dim_value)
        elif which == "dim_param" and symbolic and d.dim_param:
            dims.append(d.dim_param)
        else:
            dims.append(unknown)
    return tuple(dims)
