"""An onnx_graphsurgeon Graph that onnx_graphsurgeon cannot export (a graph input without a
dtype): `load` let its OnnxGraphSurgeonException out of `graphopt.optimize`, a traceback and
no GraphoptError. It is now a one-line LoadError naming what was given."""

from __future__ import annotations

import numpy as np
import pytest

import graphopt
from graphopt.errors import LoadError
from graphopt.ir import load_model


def _graph(dtype: type | None):  # type: ignore[no-untyped-def]
    import onnx_graphsurgeon as gs

    x = gs.Variable("x", dtype=dtype, shape=(2, 3) if dtype else None)
    y = gs.Variable("y", dtype=dtype)
    return gs.Graph(
        nodes=[gs.Node("Relu", inputs=[x], outputs=[y])], inputs=[x], outputs=[y], opset=17
    )


def test_unexportable_graph_is_a_load_error() -> None:
    with pytest.raises(LoadError, match=r"onnx_graphsurgeon cannot export it: .*dtype") as caught:
        graphopt.optimize(_graph(None))
    assert str(caught.value).startswith("the given onnx_graphsurgeon.Graph: ")
    assert "\n" not in str(caught.value)


def test_exportable_graph_still_loads() -> None:
    model = load_model(_graph(np.float32))
    assert [n.op_type for n in model.graph.node] == ["Relu"]
    assert [n.op_type for n in graphopt.optimize(_graph(np.float32)).graph.node] == ["Relu"]
