"""The opset upgrade's refusal keeps a model's names with a newline on one line (H237).

fuse-patterns' upgrade (upgrade_opset=True) is refused where onnxruntime loads the original
but not the converted model (test_h151: x·σ(x) before a RoiAlign, upgraded to Swish's opset
24, has RoiAlign-22, for which onnxruntime 1.32 has no kernel). `_session_problem` said
onnxruntime's error by its first line, which a newline inside the node's name (valid ONNX) cut
at the name: "... Could not find an implementation for RoiAlign(22) node with name 'ro". Now
the model's names are escaped first (`_text.model_strings_escaped`), as
`backends.onnxruntime.session` does since 9d457de; onnx.checker's refusal of the converted
model alike. A plain name reads as before (the control).
"""

from __future__ import annotations

import logging

import numpy as np
import onnx
import onnx.helper as oh
import pytest
from onnx import numpy_helper

import graphopt
from graphopt.passes.fuse_patterns import _conversion_problem

F32 = onnx.TensorProto.FLOAT


def _swish_before_roialign(name: str) -> onnx.ModelProto:
    x = oh.make_tensor_value_info("x", F32, [1, 4, 8, 8])
    z = oh.make_tensor_value_info("z", F32, [1, 4, 2, 2])
    inits = [
        numpy_helper.from_array(np.array([[0, 0, 4, 4]], np.float32), "rois"),
        numpy_helper.from_array(np.array([0], np.int64), "batch"),
    ]
    nodes = [
        oh.make_node("Sigmoid", ["x"], ["t"], name="sg"),
        oh.make_node("Mul", ["x", "t"], ["s"], name="mu"),
        oh.make_node(
            "RoiAlign", ["s", "rois", "batch"], ["z"], name=name, output_height=2, output_width=2
        ),
    ]
    graph = oh.make_graph(nodes, "g", [x], [z], inits)
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)], ir_version=8)


def _refusal(name: str, caplog: pytest.LogCaptureFixture) -> str:
    with caplog.at_level(logging.WARNING, logger="graphopt.passes.fuse_patterns"):
        out = graphopt.optimize(_swish_before_roialign(name), "default", upgrade_opset=True)
    assert [o.version for o in out.opset_import if o.domain in ("", "ai.onnx")] == [13]
    (said,) = [r.getMessage() for r in caplog.records if "cannot upgrade" in r.getMessage()]
    assert said.isprintable(), said
    assert said.startswith(
        "cannot upgrade opset 13 -> 24: onnxruntime cannot load the converted model: "
    )
    return said


def test_a_node_name_with_a_newline_is_escaped_not_cut(caplog: pytest.LogCaptureFixture) -> None:
    said = _refusal("ro\ni", caplog)
    assert said.endswith(
        "Could not find an implementation for RoiAlign(22) node with name 'ro\\ni'"
    )


def test_a_plain_name_as_before(caplog: pytest.LogCaptureFixture) -> None:
    said = _refusal("roi", caplog)
    assert said.endswith("Could not find an implementation for RoiAlign(22) node with name 'roi'")


def test_the_checkers_refusal_is_escaped_too() -> None:
    x = oh.make_tensor_value_info("x", F32, [2])
    y = oh.make_tensor_value_info("y", F32, [2])
    node = oh.make_node("Add", ["x", "u\nv"], ["y"], name="a")
    model = oh.make_model(
        oh.make_graph([node], "g", [x], [y]), opset_imports=[oh.make_opsetid("", 13)]
    )
    said = _conversion_problem(model, 13)
    assert said == (
        "the converted model fails onnx.checker: Nodes in a graph must be topologically "
        "sorted, however input 'u\\nv' of node: "
    )
