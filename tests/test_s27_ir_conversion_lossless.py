"""convert_opset gives back what onnx.version_converter drops beyond what restore_dropped
already gave back: the model's device configurations, its nodes' device_configurations, the
doc strings of node attributes and the doc strings and metadata_props of the tensors they hold
(a Constant's value), in If bodies too. optimize(upgrade_opset=True), quantize, merge and the
float16 path convert through it; no pass touches those fields."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphopt
from graphopt.errors import OpsetConversionError
from graphopt.ir.opset_conversion import convert_opset


def _value(name: str, shape: list[int] | None = None) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape or [2, 3])


def _documented_constant(output: str, name: str) -> onnx.NodeProto:
    tensor = numpy_helper.from_array(np.ones((1, 3), np.float32), f"{output}_value")
    tensor.doc_string = "the tensor's doc"
    tensor.metadata_props.add(key="tensor_key", value="tensor_value")
    node = helper.make_node("Constant", [], [output], name=name, value=tensor)
    node.attribute[0].doc_string = "the attribute's doc"
    return node


def _model() -> onnx.ModelProto:
    then = helper.make_graph(
        [
            _documented_constant("tk", "then_k"),
            helper.make_node("Add", ["x", "tk"], ["t"], name="t"),
        ],
        "then",
        [],
        [_value("t")],
    )
    other = helper.make_graph(
        [helper.make_node("Neg", ["x"], ["e"], name="e")], "else", [], [_value("e")]
    )
    custom = helper.make_node("Custom", ["b"], ["y"], name="custom", domain="com.x", f=1.5)
    custom.attribute[0].doc_string = "the custom attribute's doc"
    relu = helper.make_node("Relu", ["a"], ["b"], name="relu")
    placed = relu.device_configurations.add()
    placed.configuration_id = "two"
    placed.sharding_spec.add(tensor_name="a").device.extend([0, 1])
    nodes = [
        _documented_constant("k", "k"),
        helper.make_node("Add", ["x", "k"], ["a"], name="add"),
        relu,
        custom,
        helper.make_node("If", ["cond"], ["z"], name="if", then_branch=then, else_branch=other),
    ]
    cond = helper.make_tensor_value_info("cond", TensorProto.BOOL, [])
    graph = helper.make_graph(nodes, "g", [_value("x"), cond], [_value("y"), _value("z")])
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 11), helper.make_opsetid("com.x", 1)],
        ir_version=6,
    )
    configuration = model.configuration.add()
    configuration.name = "two"
    configuration.num_devices = 2
    configuration.device.extend(["gpu0", "gpu1"])
    onnx.checker.check_model(model)
    return model


def test_convert_opset_keeps_configurations_and_attribute_docs():
    model = _model()
    converted = convert_opset(model, 13)
    assert list(converted.configuration) == list(model.configuration)
    nodes = {n.name: n for n in converted.graph.node}
    assert list(nodes["relu"].device_configurations) == list(
        model.graph.node[2].device_configurations
    )
    assert nodes["custom"].attribute[0].doc_string == "the custom attribute's doc"
    then = next(a.g for a in nodes["if"].attribute if a.name == "then_branch")
    for constant in (nodes["k"], then.node[0]):
        value = constant.attribute[0]
        assert value.doc_string == "the attribute's doc"
        assert value.t.doc_string == "the tensor's doc"
        assert [(p.key, p.value) for p in value.t.metadata_props] == [
            ("tensor_key", "tensor_value")
        ]


def test_optimize_upgrade_keeps_the_model_configuration():
    """x * relu6(x + 3) / 6 at opset 13: upgrade_opset takes the model to HardSwish's 14."""
    three = numpy_helper.from_array(np.array(3, np.float32), "three")
    six = numpy_helper.from_array(np.array(6, np.float32), "six")
    zero = numpy_helper.from_array(np.array(0, np.float32), "zero")
    nodes = [
        helper.make_node("Add", ["x", "three"], ["a"], name="add"),
        helper.make_node("Clip", ["a", "zero", "six"], ["c"], name="clip"),
        helper.make_node("Mul", ["x", "c"], ["m"], name="mul"),
        helper.make_node("Div", ["m", "six"], ["y"], name="div"),
    ]
    graph = helper.make_graph(
        nodes, "g", [_value("x", [1, 4])], [_value("y", [1, 4])], initializer=[three, six, zero]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=7)
    configuration = model.configuration.add()
    configuration.name = "one"
    configuration.num_devices = 1
    optimized = graphopt.optimize(model, upgrade_opset=True)
    assert [n.op_type for n in optimized.graph.node] == ["HardSwish"]  # (it was upgraded)
    assert list(optimized.configuration) == list(model.configuration)


def test_convert_opset_keeps_the_metadata_of_body_inputs_and_outputs():
    def declared(name: str, elem: int, shape: list[int]) -> onnx.ValueInfoProto:
        value = helper.make_tensor_value_info(name, elem, shape)
        value.metadata_props.add(key="of", value=name)
        return value

    body = helper.make_graph(
        [
            helper.make_node("Neg", ["v"], ["v2"], name="neg"),
            helper.make_node("Identity", ["c"], ["c2"], name="keep"),
        ],
        "body",
        [
            declared("i", TensorProto.INT64, []),
            declared("c", TensorProto.BOOL, []),
            declared("v", TensorProto.FLOAT, [2, 3]),
        ],
        [declared("c2", TensorProto.BOOL, []), declared("v2", TensorProto.FLOAT, [2, 3])],
    )
    loop = helper.make_node("Loop", ["n", "", "x"], ["y"], name="loop", body=body)
    n = helper.make_tensor_value_info("n", TensorProto.INT64, [])
    graph = helper.make_graph([loop], "g", [_value("x"), n], [_value("y")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)], ir_version=6)
    onnx.checker.check_model(model)
    converted = convert_opset(model, 13).graph.node[0].attribute[0].g
    for value in (*converted.input, *converted.output):
        assert [(p.key, p.value) for p in value.metadata_props] == [("of", value.name)]


def test_convert_opset_gives_nodes_sharing_a_name_their_own_metadata():
    """ONNX lets two nodes share a name; matched by name, the first got the second's."""
    first = helper.make_node("Relu", ["x"], ["a"], name="r")
    first.metadata_props.add(key="who", value="first")
    second = helper.make_node("Relu", ["a"], ["y"], name="r")
    second.metadata_props.add(key="who", value="second")
    graph = helper.make_graph([first, second], "g", [_value("x")], [_value("y")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)], ir_version=6)
    onnx.checker.check_model(model)
    converted = convert_opset(model, 13)
    assert [[(p.key, p.value) for p in n.metadata_props] for n in converted.graph.node] == [
        [("who", "first")],
        [("who", "second")],
    ]


def test_convert_opset_keeps_the_denotations_of_body_inputs_and_outputs():
    def denoted(name: str) -> onnx.ValueInfoProto:
        value = helper.make_tensor_value_info(name, TensorProto.FLOAT, [2, 3])
        value.type.denotation = "TENSOR"
        value.type.tensor_type.shape.dim[0].denotation = "DATA_BATCH"
        return value

    scalar = helper.make_tensor_value_info
    body = helper.make_graph(
        [
            helper.make_node("Neg", ["v"], ["v2"], name="neg"),
            helper.make_node("Identity", ["c"], ["c2"], name="keep"),
        ],
        "body",
        [scalar("i", TensorProto.INT64, []), scalar("c", TensorProto.BOOL, []), denoted("v")],
        [scalar("c2", TensorProto.BOOL, []), denoted("v2")],
    )
    loop = helper.make_node("Loop", ["n", "", "x"], ["y"], name="loop", body=body)
    n = helper.make_tensor_value_info("n", TensorProto.INT64, [])
    graph = helper.make_graph([loop], "g", [_value("x"), n], [_value("y")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)], ir_version=6)
    onnx.checker.check_model(model)
    converted = convert_opset(model, 13).graph.node[0].attribute[0].g
    for value in (converted.input[2], converted.output[1]):
        assert value.type.denotation == "TENSOR"
        assert value.type.tensor_type.shape.dim[0].denotation == "DATA_BATCH"


def test_convert_opset_types_the_clip_and_pad_constants_it_makes_in_bodies():
    """A float16 Clip (in an If branch) and Pad (in a Loop body in the other branch) at opset
    10: the converter's 10 -> 11 adapters make their min/max and constant_value float32
    Constants there too, which only the top-level graph's got retyped: the converted model
    failed onnx's check, and quantize, merge and optimize's upgrade refused it."""
    f16 = TensorProto.FLOAT16

    def half(name: str, shape: list[int]) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, f16, shape)

    then = helper.make_graph(
        [helper.make_node("Clip", ["x"], ["t"], name="clip", min=0.5, max=6.0)],
        "then",
        [],
        [half("t", [2, 3])],
    )
    bounds = [
        numpy_helper.from_array(np.array([v], np.int64), n)
        for n, v in (("start", 1), ("end", 4), ("axis", 1))
    ]
    body = helper.make_graph(
        [
            helper.make_node("Pad", ["v"], ["p"], name="pad", pads=[0, 1, 0, 1], value=2.5),
            helper.make_node("Slice", ["p", "start", "end", "axis"], ["v2"], name="cut"),
            helper.make_node("Identity", ["c"], ["c2"], name="keep"),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("c", TensorProto.BOOL, []),
            half("v", [2, 3]),
        ],
        [helper.make_tensor_value_info("c2", TensorProto.BOOL, []), half("v2", [2, 3])],
        initializer=bounds,
    )
    other = helper.make_graph(
        [helper.make_node("Loop", ["n", "", "x"], ["e"], name="loop", body=body)],
        "else",
        [],
        [half("e", [2, 3])],
    )
    node = helper.make_node("If", ["cond"], ["y"], name="if", then_branch=then, else_branch=other)
    inputs = [
        half("x", [2, 3]),
        helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
        helper.make_tensor_value_info("n", TensorProto.INT64, []),
    ]
    graph = helper.make_graph([node], "g", inputs, [half("y", [2, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 10)], ir_version=5)
    onnx.checker.check_model(model, full_check=True)
    converted = convert_opset(model, 13)
    onnx.checker.check_model(converted, full_check=True)
    x = np.array([[-1, 0.25, 7], [3, 4, -5]], np.float16)
    for cond in (True, False):
        feeds = {"x": x, "cond": np.array(cond), "n": np.array(2, np.int64)}
        want = ort.InferenceSession(model.SerializeToString()).run(None, feeds)[0]
        got = ort.InferenceSession(converted.SerializeToString()).run(None, feeds)[0]
        assert got.dtype == np.float16
        assert np.array_equal(want, got)


def test_convert_opset_refuses_a_scan_8_across_opset_9():
    """Scan-8 scans each item of a batch axis; the converter only drops its sequence_lens, so
    the batch axis becomes the scanned one: a model onnxruntime refuses, which quantize
    reported as a failed check of the optimized model."""
    state = helper.make_tensor_value_info("s", TensorProto.FLOAT, [3])
    item = helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])
    body = helper.make_graph(
        [
            helper.make_node("Add", ["s", "x"], ["s2"], name="add"),
            helper.make_node("Identity", ["s2"], ["y"], name="copy"),
        ],
        "body",
        [state, item],
        [
            helper.make_tensor_value_info("s2", TensorProto.FLOAT, [3]),
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [3]),
        ],
    )
    scan = helper.make_node(
        "Scan", ["", "init", "xs"], ["final", "ys"], name="scan", body=body, num_scan_inputs=1
    )
    graph = helper.make_graph(
        [scan],
        "g",
        [_value("init", [2, 3]), _value("xs", [2, 4, 3])],
        [_value("final", [2, 3]), _value("ys", [2, 4, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 8)], ir_version=4)
    onnx.checker.check_model(model, full_check=True)
    with pytest.raises(OpsetConversionError) as refused:
        convert_opset(model, 13)
    assert refused.value.kind == "misconverted"
    assert "scan" in refused.value.reason
    assert convert_opset(model, 8) is not None  # (no opset 9 crossed: converted as before)
