"""`subgraphs.model_header`: the IR version, opset imports and model-local functions that a
body or a part of a graph needs to be a model of its own (`_skeleton` and `_model_of` each
built it)."""

from __future__ import annotations

import onnx

from graphopt.subgraphs import model_header

MODEL = """<ir_version: 8, opset_import: ["" : 17, "local" : 1, "com.microsoft" : 1]>
g (float[2] x) => (float[2] y) {
  y = local.Twice(x)
}
<domain: "local", opset_import: ["" : 17]>
Twice (a) => (b) {
  b = Add(a, a)
}"""


def test_model_header_carries_what_a_graph_needs_to_be_a_model():
    model = onnx.parser.parse_model(MODEL)
    header = model_header(model)
    assert header.ir_version == 8
    assert [(o.domain, o.version) for o in header.opset_import] == [
        ("", 17),
        ("local", 1),
        ("com.microsoft", 1),
    ]
    assert [f.name for f in header.functions] == ["Twice"]
    assert header.graph == onnx.GraphProto()
    header.graph.CopyFrom(model.graph)
    onnx.checker.check_model(header, full_check=True)
    assert header == model
    header.functions[0].name = "Other"  # a copy: the model's own are not touched
    assert model.functions[0].name == "Twice"
