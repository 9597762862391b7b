"""graphopt's model representation: a thin mutable index over the ONNX protobuf, and I/O."""

from graphopt.ir.graph import (
    Graph,
    constant_node_value,
    node_count,
    outer_references,
    subgraphs,
)
from graphopt.ir.model_io import (
    LoadedModel,
    check_model_basics,
    load,
    load_model,
    save_model,
)

__all__ = [
    "Graph",
    "LoadedModel",
    "check_model_basics",
    "constant_node_value",
    "load",
    "load_model",
    "node_count",
    "outer_references",
    "save_model",
    "subgraphs",
]
