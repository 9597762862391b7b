"""merge refuses an opset conversion that onnxruntime cannot load where it loads the model.

A MaxRoiPool-1 model (opset 7) merged with an opset 23 model was converted to MaxRoiPool-22,
for which onnxruntime 1.32 has no kernel: merge wrote the merged model (exit 0), which passes
onnx.checker and which no onnxruntime session could load ('Could not find an implementation
for MaxRoiPool(22)'), while each input model ran. It is a MergeError naming the model, the
opsets and onnxruntime's reason now. A model converted to an opset onnxruntime runs is merged
as before. A Scan-8 model (scan inputs with a batch axis, which the converter keeps in
Scan-9) is refused by this check too.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper, parser

from graphopt.backends.onnxruntime import session
from graphopt.errors import BackendError
from graphopt.ir.opset_conversion import convert_opset
from graphopt.multitask import MergeError, merge_with_report


def _opset(version: int) -> onnx.ModelProto:
    return parser.parse_model(
        f'<ir_version: 10, opset_import: ["" : {version}]>\n'
        "g (float[1,2] z) => (float[1,2] w) { w = Relu(z) }"
    )


def _max_roi_pool() -> onnx.ModelProto:
    rois = numpy_helper.from_array(np.array([[0, 0, 0, 3, 3]], np.float32), "rois")
    graph = helper.make_graph(
        [helper.make_node("MaxRoiPool", ["x", "rois"], ["y"], pooled_shape=[2, 2])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 2, 2])],
        initializer=[rois],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 7)], ir_version=7)


def test_a_conversion_onnxruntime_cannot_load_is_refused() -> None:
    model = _max_roi_pool()
    session(model, level="disable")  # the model itself loads
    try:
        session(convert_opset(model, 23), level="disable")
        pytest.skip("this onnxruntime has a MaxRoiPool-22 kernel")
    except BackendError:
        pass
    with pytest.raises(MergeError) as caught:
        merge_with_report([model, _opset(23)])
    text = str(caught.value)
    assert text.startswith(
        "model 0: needs default opset 23 to merge (it uses 7) and onnxruntime cannot load it "
        "converted ("
    ), text
    assert "MaxRoiPool" in text and "\n" not in text


def test_a_conversion_onnxruntime_loads_is_merged() -> None:
    model = _max_roi_pool()
    model.graph.node.append(helper.make_node("Relu", ["y"], ["r"]))  # Relu-6 -> Relu-13
    model.graph.output.append(helper.make_tensor_value_info("r", TensorProto.FLOAT, [1, 1, 2, 2]))
    _, report = merge_with_report([model, _opset(13)])
    assert report.converted == ["model 0"] and report.opset == 13


def test_a_scan8_model_converted_with_its_batch_axis_is_refused() -> None:
    def vi(name: str, dims: list[int]) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)

    body = helper.make_graph(
        [helper.make_node("Add", ["s", "xi"], ["s2"]), helper.make_node("Identity", ["s2"], ["o"])],
        "body",
        [vi("s", [3]), vi("xi", [3])],
        [vi("s2", [3]), vi("o", [3])],
    )
    scan = helper.make_node(
        "Scan", ["", "init", "x"], ["final", "outs"], body=body, num_scan_inputs=1
    )
    graph = helper.make_graph(
        [scan],
        "g",
        [vi("init", [2, 3]), vi("x", [2, 4, 3])],
        [vi("final", [2, 3]), vi("outs", [2, 4, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 8)], ir_version=4)
    session(model, level="disable")  # the model itself loads
    with pytest.raises(MergeError, match=r"model 0: needs default opset 13 to merge .*Scan"):
        merge_with_report([model, _opset(13)])
