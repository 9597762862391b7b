"""A model converted to merge keeps the device placements of its local functions' calls.

A model on an older default opset with local functions is inlined before onnx.version_converter
(which drops the functions). onnx's inliner dropped a call's `device_configurations` (IR 10):
the nodes put in the call's place ran unplaced, and merge shared them with another model's
unplaced twins. It also kept a function node's sharding spec naming the function's own tensor,
a name the inlined graph does not have. Now a call's placements go to the inlined nodes that
have none of their own (its sharding specs to the nodes reading or writing the spec's tensor),
a node's own placement is kept, and every sharding spec names the tensor its node reads or
writes; the merged outputs equal each model's in onnxruntime.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto
from onnx import helper as h

from graphopt.multitask import merge_with_report


def _inline(model: onnx.ModelProto) -> onnx.ModelProto:
    from graphopt.multitask.functions import inline_keeping_placements  # (not on the parent)

    return inline_keeping_placements(model)


def _placement(config: str, stage: int, *sharded: str) -> onnx.NodeDeviceConfigurationProto:
    placed = onnx.NodeDeviceConfigurationProto(configuration_id=config, pipeline_stage=stage)
    for name in sharded:
        placed.sharding_spec.add(tensor_name=name)
    return placed


def _function_model(*, call_placed: bool = True, sharded: bool = False) -> onnx.ModelProto:
    """Opset 17, IR 11: y = F(x), F(a) = Reshape(Relu(a) [own placement cfgB], [-1]), the call
    placed on cfgA stage 2 (with `sharded`, a sharding spec of x on the call and of a on the
    Relu)."""
    relu = h.make_node("Relu", ["a"], ["b"], name="inner_relu")
    relu.device_configurations.append(_placement("cfgB", 1, *(["a"] if sharded else [])))
    body = [
        h.make_node("Constant", [], ["s"], value_ints=[-1]),
        relu,
        h.make_node("Reshape", ["b", "s"], ["c"], name="inner_reshape"),
    ]
    function = h.make_function("local", "F", ["a"], ["c"], body, [h.make_opsetid("", 17)])
    call = h.make_node("F", ["x"], ["y"], domain="local", name="call")
    if call_placed:
        call.device_configurations.append(_placement("cfgA", 2, *(["x"] if sharded else [])))
    graph = h.make_graph(
        [call],
        "g",
        [h.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])],
        [h.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
    )
    model = h.make_model(
        graph,
        opset_imports=[h.make_opsetid("", 17), h.make_opsetid("local", 1)],
        functions=[function],
        ir_version=11,
    )
    model.configuration.extend(
        [
            onnx.DeviceConfigurationProto(name="cfgA", num_devices=2, device=["0", "1"]),
            onnx.DeviceConfigurationProto(name="cfgB", num_devices=1, device=["0"]),
        ]
    )
    return model


def _plain_model() -> onnx.ModelProto:
    """Opset 21 (Reshape's schema changed after 17: the other model is converted): the same
    computation, unplaced."""
    graph = h.make_graph(
        [h.make_node("Relu", ["x"], ["b"]), h.make_node("Reshape", ["b", "s"], ["y"])],
        "g",
        [h.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])],
        [h.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
        initializer=[onnx.numpy_helper.from_array(np.array([-1], np.int64), "s")],
    )
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 21)], ir_version=11)


def _placements(node: onnx.NodeProto) -> list[tuple[str, int, list[str]]]:
    return [
        (d.configuration_id, d.pipeline_stage, [s.tensor_name for s in d.sharding_spec])
        for d in node.device_configurations
    ]


def _run(model: onnx.ModelProto, x: np.ndarray) -> dict[str, np.ndarray]:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, {"x": x}), strict=True))


def test_the_converted_model_keeps_its_calls_placements() -> None:
    models = [_function_model(), _plain_model()]
    merged, report = merge_with_report(models, prefixes=["a_", "b_"])
    assert report.converted == ["model 0"]
    task_a = [n for n in merged.graph.node if n.op_type in ("Relu", "Reshape")][:2]
    by_op = {n.op_type: _placements(n) for n in task_a}
    assert by_op == {"Relu": [("cfgB", 1, [])], "Reshape": [("cfgA", 2, [])]}
    # placed apart, nothing is shared with the other model's unplaced Relu and Reshape
    assert sorted(n.op_type for n in merged.graph.node if n.op_type != "Constant") == [
        "Relu",
        "Relu",
        "Reshape",
        "Reshape",
    ]
    x = np.array([[-1.0, 2.0], [3.0, -4.0]], np.float32)
    got = _run(merged, x)
    for prefix, model in zip(["a_", "b_"], models, strict=True):
        np.testing.assert_array_equal(got[prefix + "y"], _run(model, x)["y"])


def test_an_unplaced_call_still_shares_with_an_unplaced_twin() -> None:
    model = _function_model(call_placed=False)
    for node in model.functions[0].node:
        del node.device_configurations[:]
    merged, _ = merge_with_report([model, _plain_model()])
    computed = [n for n in merged.graph.node if n.op_type in ("Relu", "Reshape")]
    assert len(computed) == 2 and all(_placements(n) == [] for n in computed)


def test_sharding_specs_name_the_inlined_nodes_tensors() -> None:
    inlined = _inline(_function_model(sharded=True))
    assert not inlined.functions
    by_op = {n.op_type: n for n in inlined.graph.node}
    relu, reshape = by_op["Relu"], by_op["Reshape"]
    assert list(relu.input) == ["x"]
    # its own spec of the function's 'a' names the graph's 'x' it reads
    assert _placements(relu) == [("cfgB", 1, ["x"])]
    # the call's spec of x goes to the nodes that read x: not the Reshape
    assert _placements(reshape) == [("cfgA", 2, [])]
    assert _placements(by_op["Constant"]) == [("cfgA", 2, [])]


def test_two_calls_placed_apart_keep_their_own_placements() -> None:
    model = _function_model()
    second = h.make_node("F", ["y2"], ["z"], domain="local", name="call2")
    second.device_configurations.append(_placement("cfgA", 5))
    model.graph.node.append(h.make_node("Reshape", ["y", "shape"], ["y2"]))
    model.graph.node.append(second)
    model.graph.initializer.append(
        onnx.numpy_helper.from_array(np.array([2, 2], np.int64), "shape")
    )
    model.graph.output.append(h.make_tensor_value_info("z", TensorProto.FLOAT, [4]))
    inlined = _inline(model)
    stages = sorted(
        _placements(n)[0][1]
        for n in inlined.graph.node
        if n.op_type == "Reshape" and n.device_configurations
    )
    assert stages == [2, 5]
    original = onnx.load_from_string(model.SerializeToString())
    x = np.array([[-1.0, 2.0], [3.0, -4.0]], np.float32)
    got, expected = _run(inlined, x), _run(original, x)
    for name, value in expected.items():
        np.testing.assert_array_equal(got[name], value)


def test_a_model_without_placements_inlines_as_onnx_does() -> None:
    model = _function_model(call_placed=False)
    for node in model.functions[0].node:
        del node.device_configurations[:]
    from onnx import inliner

    assert _inline(model) == inliner.inline_local_functions(model)


def test_a_calls_sharding_specs_go_to_the_nodes_reading_or_writing_their_tensors() -> None:
    model = _function_model(call_placed=False)
    for node in model.functions[0].node:
        del node.device_configurations[:]
    model.graph.node[0].device_configurations.append(_placement("cfgA", 2, "x", "y"))
    by_op = {n.op_type: n for n in _inline(model).graph.node}
    assert _placements(by_op["Relu"]) == [("cfgA", 2, ["x"])]  # it reads x
    assert _placements(by_op["Reshape"]) == [("cfgA", 2, ["y"])]  # it writes y
    assert _placements(by_op["Constant"]) == [("cfgA", 2, [])]


def test_a_nested_functions_nodes_take_the_outer_calls_placement() -> None:
    inner = h.make_function(
        "local", "G", ["p"], ["q"], [h.make_node("Relu", ["p"], ["q"])], [h.make_opsetid("", 17)]
    )
    outer = h.make_function(
        "local",
        "F",
        ["a"],
        ["c"],
        [h.make_node("G", ["a"], ["b"], domain="local"), h.make_node("Neg", ["b"], ["c"])],
        [h.make_opsetid("", 17), h.make_opsetid("local", 1)],
    )
    call = h.make_node("F", ["x"], ["y"], domain="local")
    call.device_configurations.append(_placement("cfgA", 4))
    graph = h.make_graph(
        [call],
        "g",
        [h.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [h.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    model = h.make_model(
        graph,
        opset_imports=[h.make_opsetid("", 17), h.make_opsetid("local", 1)],
        functions=[inner, outer],
        ir_version=11,
    )
    inlined = _inline(model)
    assert not inlined.functions
    assert {n.op_type: _placements(n) for n in inlined.graph.node} == {
        "Relu": [("cfgA", 4, [])],
        "Neg": [("cfgA", 4, [])],
    }
    x = np.array([-1.0, 2.0], np.float32)
    np.testing.assert_array_equal(_run(inlined, x)["y"], -np.maximum(x, 0))
