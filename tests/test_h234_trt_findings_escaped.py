"""`check_tensorrt`'s findings are one line each, whoever prints them (H234, after H227).

A finding put a model's dim params, domains, op types and local functions' names into its text
as the model has them: a dim param 'ba\\ntch', a domain 'cu\\nstom' or a function 'My\\nFn'
(valid ONNX strings) split `str(finding)` in two lines; only `graphopt check` escaped the line
it printed (cb04fee). Now the checker escapes them where it makes the finding: its message, op
and scope. The node and output names stay as the model has them (a caller looks the node up by
them; `str` quotes them, escaped); plain strings read as before (the control).
"""

from __future__ import annotations

import onnx
import onnx.helper as oh
from onnx import TensorProto

from graphopt.backends.trt_check import check_tensorrt

F32 = TensorProto.FLOAT


def _model(dim: str, domain: str, function: str, node: str) -> onnx.ModelProto:
    """Input x[dim, 3] (dynamic: a warning) into a call of local function `function`, whose
    body is one node of op `domain`::Op (no TensorRT importer: an error), then Relu `node`
    (fine) and a `domain` node `node`, unnamed in the body, named in the graph."""
    x = oh.make_tensor_value_info("x", F32, [dim, 3])
    y = oh.make_tensor_value_info("y", F32, None)
    opsets = [oh.make_opsetid("", 17), oh.make_opsetid(domain, 1)]
    body = [oh.make_node("Op", ["a"], ["b"], domain=domain)]
    fn = oh.make_function("local", function, ["a"], ["b"], body, opsets)
    nodes = [
        oh.make_node(function, ["x"], ["t"], name="call", domain="local"),
        oh.make_node("Op", ["t"], ["y"], name=node, domain=domain),
    ]
    graph = oh.make_graph(nodes, "g", [x], [y])
    model_opsets = [*opsets, oh.make_opsetid("local", 1)]
    return oh.make_model(graph, opset_imports=model_opsets, functions=[fn])


def _lines(model: onnx.ModelProto) -> list[str]:
    return [str(f) for f in check_tensorrt(model)]


def test_the_models_strings_are_escaped_in_each_finding() -> None:
    findings = check_tensorrt(_model("ba\ntch", "cu\nstom", "My\nFn", "n\n1"))
    lines = [str(f) for f in findings]
    assert all(line.isprintable() for line in lines), lines
    assert lines[0].startswith(
        "warning: [dynamic-shape] input 'x' has dynamic dimensions [ba\\ntch, 3];"
    )
    body, graph = (f for f in findings if f.rule == "custom-domain")
    assert body.scope == "My\\nFn 'call' function body" and body.op == "cu\\nstom::Op"
    assert str(body).startswith(
        "error: [custom-domain] My\\nFn 'call' function body > unnamed cu\\nstom::Op node "
        "writing 't': op cu\\nstom::Op is not standard ONNX;"
    )
    # the node's name as the model has it; its text quoted, escaped (as before)
    assert graph.node == "n\n1"
    assert str(graph).startswith(
        "error: [custom-domain] node 'n\\n1' (cu\\nstom::Op): op cu\\nstom::Op is not standard"
    )


def test_plain_strings_as_before() -> None:
    lines = _lines(_model("batch", "custom", "MyFn", "n1"))
    assert lines[0].startswith(
        "warning: [dynamic-shape] input 'x' has dynamic dimensions [batch, 3];"
    )
    assert lines[1].startswith(
        "error: [custom-domain] MyFn 'call' function body > unnamed custom::Op node writing "
        "'t': op custom::Op is not standard ONNX;"
    )
    assert lines[2].startswith("error: [custom-domain] node 'n1' (custom::Op): op custom::Op")
