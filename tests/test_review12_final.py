"""Final review of the session's last changes: opset conversion keeps the graph inputs and
outputs a model declares (for every caller: optimize's upgrade_opset, quantize, merge, the
TensorRT float16 path), a Dropout with an unnamed mask still converts across opset 12, and
quantize's 'nothing was quantized' warning is given only for a float result."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.errors import OpsetConversionError
from graphopt.ir.opset_conversion import convert_opset
from graphopt.multitask.merge import merge

from .conftest import assert_same_outputs


def _relu_model(opset: int, out: str = "y") -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3, 4, 4])
    y = helper.make_tensor_value_info(out, TensorProto.FLOAT, [None, 3, 4, 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], [out])], "g", [x], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=7)


def _dims(value: onnx.ValueInfoProto) -> list[tuple[str, int, str]]:
    return [
        (d.WhichOneof("value") or "", d.dim_value, d.dim_param)
        for d in value.type.tensor_type.shape.dim
    ]


@pytest.mark.parametrize("version", [13, 19])
def test_convert_opset_keeps_an_unnamed_dynamic_dim(version: int) -> None:
    model = _relu_model(11)
    converted = convert_opset(model, version)
    # the converter's shape inference named the unnamed batch dim "unk__0"
    assert _dims(converted.graph.input[0]) == _dims(model.graph.input[0])
    assert _dims(converted.graph.output[0]) == _dims(model.graph.output[0])
    assert converted.graph.output[0].type.tensor_type.shape.dim[0].dim_param == ""
    onnx.checker.check_model(converted, full_check=True)


def test_merge_across_opsets_keeps_the_declared_outputs() -> None:
    merged = merge([_relu_model(11, "a"), _relu_model(13, "b")], prefixes=["p_", "q_"])
    for out in merged.graph.output:
        dim = out.type.tensor_type.shape.dim[0]
        assert dim.WhichOneof("value") is None, (out.name, dim)


def test_quantize_upgrade_keeps_the_declared_outputs() -> None:
    from graphopt.quant.api import upgrade_opset

    upgraded = upgrade_opset(_relu_model(11), 13)
    assert _dims(upgraded.graph.output[0]) == _dims(_relu_model(11).graph.output[0])


def test_dropout_with_an_unnamed_mask_still_converts() -> None:
    nodes = [
        helper.make_node("Dropout", ["x"], ["d"], ratio=0.5),
        helper.make_node("Relu", ["d"], ["y"]),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4])
    model = helper.make_model(
        helper.make_graph(nodes, "g", [x], [y]),
        opset_imports=[helper.make_opsetid("", 11)],
        ir_version=7,
    )
    converted = convert_opset(model, 13)
    assert converted.opset_import[0].version == 13
    feeds = {"x": np.linspace(-1, 1, 48, dtype=np.float32).reshape(1, 3, 4, 4)}
    assert_same_outputs(model, converted, feeds)
    named = onnx.ModelProto()
    named.CopyFrom(model)
    named.graph.node[0].output.append("mask")
    named.graph.output.append(helper.make_tensor_value_info("mask", TensorProto.BOOL, [1, 3, 4, 4]))
    with pytest.raises(OpsetConversionError, match="mask"):
        convert_opset(named, 13)


def _dropout_conv(mask_use: str) -> onnx.ModelProto:
    """opset 11: x -> Conv -> Dropout(d, mask) -> Relu -> y; the mask named and `mask_use`:
    "unread", "output" (a graph output) or "body" (read inside an If's branch)."""
    w = np.random.default_rng(0).normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1] * 4),
        helper.make_node("Dropout", ["c"], ["d", "d_mask"], name="drop", ratio=0.5),
        helper.make_node("Relu", ["d"], ["y"], name="relu"),
    ]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 32, 32])]
    if mask_use == "output":
        outputs.append(helper.make_tensor_value_info("d_mask", TensorProto.BOOL, [1, 4, 32, 32]))
    if mask_use == "body":
        branch = helper.make_graph(
            [helper.make_node("Not", ["d_mask"], ["m"])],
            "b",
            [],
            [helper.make_tensor_value_info("m", TensorProto.BOOL, [1, 4, 32, 32])],
        )
        nodes += [
            helper.make_node("Constant", [], ["cond"], value=helper.make_tensor("k", 9, [], [1])),
            helper.make_node(
                "If", ["cond"], ["n"], name="if", then_branch=branch, else_branch=branch
            ),
        ]
        outputs.append(helper.make_tensor_value_info("n", TensorProto.BOOL, [1, 4, 32, 32]))
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
        outputs,
        [onnx.numpy_helper.from_array(w, "w")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)], ir_version=6)


def _photos32() -> list[dict[str, np.ndarray]]:
    from graphopt import realmodels

    return [
        {"x": realmodels.preprocess(im, (32, 32), scale=1 / 255)} for im in realmodels.images(3)
    ]


def test_a_named_dropout_mask_nothing_reads_still_converts() -> None:
    """002e61c refused every named mask: quantize (which upgrades to opset 13) and merge with
    an opset-13 model refused this model, whose mask nothing reads (the flip cannot show).
    Fails on the parent: OpsetConversionError."""
    model = _dropout_conv("unread")
    converted = convert_opset(model, 13)
    assert_same_outputs(model, converted, _photos32()[0])
    merge([model, _relu_model(13)], prefixes=["p_", "q_"])
    import graphopt

    q = graphopt.quantize(model, _photos32(), target="tensorrt", keep_stem=False)
    assert any(n.op_type == "QuantizeLinear" for n in q.graph.node)


@pytest.mark.parametrize("mask_use", ["output", "body"])
def test_a_read_dropout_mask_is_still_refused(mask_use: str) -> None:
    model = _dropout_conv(mask_use)
    onnx.checker.check_model(model, full_check=True)
    with pytest.raises(OpsetConversionError, match="drop: Dropout's mask"):
        convert_opset(model, 13)


def _stem_only_model() -> onnx.ModelProto:
    rng = np.random.default_rng(3)
    w1 = rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32)
    w2 = rng.normal(0, 0.3, (4, 4, 3, 3)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["a"], name="c1", pads=[1] * 4),
        helper.make_node("Relu", ["a"], ["r"], name="relu"),
        helper.make_node("Conv", ["r", "w2"], ["b"], name="c2", pads=[1] * 4),
        helper.make_node("MaxPool", ["b"], ["y"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 16, 16])],
        [onnx.numpy_helper.from_array(w1, "w1"), onnx.numpy_helper.from_array(w2, "w2")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=7)


@pytest.mark.parametrize("keep_stem", [True, False])
def test_nothing_quantized_warning_only_for_a_float_result(caplog, keep_stem: bool) -> None:
    import graphopt
    from graphopt import realmodels

    feeds = [
        {"x": realmodels.preprocess(im, (32, 32), scale=1 / 255)} for im in realmodels.images(3)
    ]
    with caplog.at_level("WARNING", logger="graphopt"):
        q = graphopt.quantize(_stem_only_model(), feeds, target="tensorrt", keep_stem=keep_stem)
    said = [r.getMessage() for r in caplog.records if "nothing was quantized" in r.getMessage()]
    quantized = any(n.op_type == "QuantizeLinear" for n in q.graph.node)
    assert quantized is not keep_stem
    assert len(said) == (1 if keep_stem else 0)


def test_a_per_node_weight_copy_leaves_the_cache_to_activations(tmp_path) -> None:
    """f593a6e: conv1 (bias 0.5 over a 1e-20 channel) reads its own raised copy of w, conv3
    the shared one; the TensorRT cache lists activations only, each a tensor the model has."""
    from graphopt import realmodels
    from graphopt.quant import cache as cache_io
    from graphopt.quant.api import quantize_with_report

    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32)
    w[1] = 1e-20
    b = np.array([0.1, 0.5, -0.2, 0.3], np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv1", pads=[1] * 4),
        helper.make_node("Relu", ["c"], ["y"], name="relu"),
        helper.make_node("Conv", ["x", "w"], ["z"], name="conv3", pads=[1] * 4),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 32, 32]),
            helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 4, 32, 32]),
        ],
        [onnx.numpy_helper.from_array(w, "w"), onnx.numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=7)
    feeds = [
        {"x": realmodels.preprocess(im, (32, 32), scale=1 / 255)} for im in realmodels.images(3)
    ]
    cache = tmp_path / "calib.cache"
    q, _ = quantize_with_report(
        model, feeds, target="tensorrt", accuracy_target=None, keep_stem=False, cache=cache
    )
    by_name = {n.name: n for n in q.graph.node}
    w1, w3 = by_name["conv1"].input[1], by_name["conv3"].input[1]
    assert w1 != w3
    _, scales = cache_io.read(cache)
    produced = {o for n in q.graph.node for o in n.output} | {i.name for i in q.graph.input}
    quantized = {n.input[0] for n in q.graph.node if n.op_type == "QuantizeLinear"}
    assert set(scales) == quantized and quantized <= produced


@pytest.mark.parametrize("target", ["tensorrt", "onnxruntime"])
def test_quantize_keeps_what_training_info_binds(target: str) -> None:
    """ac40060 pinned training_info's names through optimize only: quantize then replaced a
    weight the update_binding names (and the algorithm reads) by W_quantized + DQ, so the
    binding and the read named nothing (onnx.checker does not look). Fails on the parent: W is
    gone. Now that Conv stays float; the other Conv is quantized."""
    import graphopt

    model = onnx.parser.parse_model("""
<ir_version: 9, opset_import: ["" : 17]>
g (float[1,4,8,8] x) => (float[1,4,8,8] y) {
  c = Conv(x, W)
  r = Relu(c)
  y = Conv(r, V, B)
}""")
    rng = np.random.default_rng(0)
    for name, shape in (("W", (4, 4, 1, 1)), ("V", (4, 4, 1, 1)), ("B", (4,))):
        model.graph.initializer.append(
            onnx.numpy_helper.from_array(rng.normal(0, 0.5, shape).astype(np.float32), name)
        )
    training = model.training_info.add()
    training.algorithm.CopyFrom(
        helper.make_graph(
            [helper.make_node("Neg", ["W"], ["new"])],
            "algo",
            [],
            [helper.make_tensor_value_info("new", TensorProto.FLOAT, [4, 4, 1, 1])],
        )
    )
    training.update_binding.add(key="W", value="new")
    feeds = [{"x": rng.random((1, 4, 8, 8)).astype(np.float32)} for _ in range(3)]
    q = graphopt.quantize(model, feeds, target=target, keep_stem=False, accuracy_target=None)
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in q.graph.initializer}
    np.testing.assert_array_equal(
        inits["W"], onnx.numpy_helper.to_array(model.graph.initializer[0])
    )
    assert [b.key for b in q.training_info[0].update_binding] == ["W"]
    readers = {n.name: n for n in q.graph.node if n.op_type == "Conv"}
    assert any("W" in n.input for n in readers.values())  # the bound weight read as it is
    assert any(n.op_type == "QuantizeLinear" for n in q.graph.node)  # the other Conv is not
