"""merge shares a placed Constant node only with a constant placed alike, as it shares nodes.

A node is shared only with a twin of the same device placements (`device_configurations`,
IR 10); a Constant node was shared by its value alone. A placed Constant and another model's
unplaced one (or initializer) of that value were one tensor: the second's placement was lost,
or the unplaced task took the first's, in the merged model and in the task split gives back.
Now a Constant's placements are part of its identity; two placed alike are still one.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, numpy_helper
from onnx import helper as h

from graphopt.multitask import merge_with_report, split

VALUE = np.array([1.0, 2.0], np.float32)


def _model(placed: str | None, stage: int = 1) -> onnx.ModelProto:
    """y = x + c, c a Constant placed on configuration `placed` at `stage` (None: unplaced)."""
    const = h.make_node("Constant", [], ["c"], value=numpy_helper.from_array(VALUE, "v"))
    if placed is not None:
        const.device_configurations.append(
            onnx.NodeDeviceConfigurationProto(configuration_id=placed, pipeline_stage=stage)
        )
    graph = h.make_graph(
        [const, h.make_node("Add", ["x", "c"], ["y"])],
        "g",
        [h.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [h.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 21)], ir_version=11)
    model.configuration.append(
        onnx.DeviceConfigurationProto(name="cfg", num_devices=1, device=["0"])
    )
    return model


def _constant_placements(model: onnx.ModelProto) -> list[list[tuple[str, int]]]:
    return [
        [(d.configuration_id, d.pipeline_stage) for d in n.device_configurations]
        for n in model.graph.node
        if n.op_type == "Constant"
    ]


def _outputs(model: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})


@pytest.mark.parametrize(
    ("first", "second"),
    [(None, ("cfg", 1)), (("cfg", 1), None), (("cfg", 1), ("cfg", 2))],
)
def test_constants_placed_apart_stay_apart(
    first: tuple[str, int] | None, second: tuple[str, int] | None
) -> None:
    models = [_model(*(first or (None,))), _model(*(second or (None,)))]
    merged, _ = merge_with_report(models)
    expected = [[first] if first else [], [second] if second else []]
    assert _constant_placements(merged) == expected
    x = np.array([3.0, -1.0], np.float32)
    got = _outputs(merged, x)
    for i, model in enumerate(models):
        np.testing.assert_array_equal(got[i], _outputs(model, x)[0])
        task = split(merged, task=f"m{i}_")
        assert _constant_placements(task) == [expected[i]]  # its own placement back
        np.testing.assert_array_equal(_outputs(task, x)[0], _outputs(model, x)[0])


def test_constants_placed_alike_are_still_shared() -> None:
    merged, report = merge_with_report([_model("cfg"), _model("cfg")])
    assert _constant_placements(merged) == [[("cfg", 1)]]
    assert report.tasks[1].shared_params == VALUE.size


def test_an_unplaced_constant_is_still_shared_with_an_initializer() -> None:
    with_initializer = _model(None)
    del with_initializer.graph.node[0]
    with_initializer.graph.initializer.append(numpy_helper.from_array(VALUE, "c"))
    merged, _ = merge_with_report([_model(None), with_initializer])
    assert len(_constant_placements(merged)) == 1 and not merged.graph.initializer
