"""Graph input and output names that are not UTF-8 text, refused with one line.

protobuf hands a name that is not UTF-8 over as bytes (onnx.checker accepts such a model), and
code that prefixes, joins or matches names then fails with a TypeError far from the cause:
merge, split, distill-targets and check --shapes did. What it does not do: look at the names of
inner tensors, or rename anything.
"""

from __future__ import annotations

import onnx


def require_text_io_names(model: onnx.ModelProto, where: str, error: type[Exception]) -> None:
    """An `error` naming (after `where`) the first graph input or output whose name is bytes
    (not UTF-8 in the file)."""
    for kind, values in (("input", model.graph.input), ("output", model.graph.output)):
        for vi in values:
            if isinstance(vi.name, bytes):
                raise error(
                    f"{where}: graph {kind} {vi.name!r} is not UTF-8 text, which graphopt "
                    "cannot name or match (rename it)"
                )
