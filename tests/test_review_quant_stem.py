"""Review of `graphopt.quant.stem`: inputs that are not image data, and upsampling."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from graphopt.ir import Graph
from graphopt.quant.api import quantize_with_report
from graphopt.quant.stem import stem_nodes

F = onnx.TensorProto.FLOAT
RNG = np.random.default_rng(5)


def filt(name: str, out_ch: int, in_ch: int, k: int = 3) -> onnx.TensorProto:
    return numpy_helper.from_array(
        (RNG.standard_normal((out_ch, in_ch, k, k)) * 0.3).astype(np.float32), name
    )


def conv(x: str, w: str, y: str, stride: int = 1) -> onnx.NodeProto:
    return helper.make_node("Conv", [x, w], [y], name=y, pads=[1, 1, 1, 1], strides=[stride] * 2)


def make(nodes, inputs, outputs, inits, ir_version: int = 8) -> onnx.ModelProto:  # type: ignore[no-untyped-def]
    graph = helper.make_graph(nodes, "g", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = ir_version
    onnx.checker.check_model(model, full_check=True)
    return model


def image_and_scale_model(weights_as_inputs: bool) -> onnx.ModelProto:
    """image → c0 → c1 (stride 2) → c2 → c3 → ReduceMean → ÷ scale_factor → y (PicoDet-like);
    with `weights_as_inputs` the filters are also graph inputs (torch.onnx.export's
    keep_initializers_as_inputs, IR ≥ 4 allows it)."""
    inits = [filt("w0", 4, 3), filt("w1", 4, 4), filt("w2", 4, 4), filt("w3", 4, 4)]
    nodes = [
        conv("image", "w0", "c0"),
        conv("c0", "w1", "c1", stride=2),
        conv("c1", "w2", "c2"),
        conv("c2", "w3", "c3"),
        helper.make_node("ReduceMean", ["c3"], ["r"], axes=[2, 3], keepdims=0),
        helper.make_node("Div", ["r", "scale_factor"], ["y"]),
    ]
    inputs = [
        helper.make_tensor_value_info("image", F, [1, 3, 16, 16]),
        helper.make_tensor_value_info("scale_factor", F, [1, 4]),
    ]
    if weights_as_inputs:
        inputs += [helper.make_tensor_value_info(t.name, F, list(t.dims)) for t in inits]
    outputs = [helper.make_tensor_value_info("y", F, [1, 4])]
    return make(nodes, inputs, outputs, inits, ir_version=7)


def test_filters_listed_as_graph_inputs_do_not_start_the_stem() -> None:
    """Every Conv reads its filter: walking from a filter listed as a graph input reached every
    convolution of the network (was: c2 and c3, after the first stride, in the stem; with more
    than 4 convolutions the stem came out empty)."""
    assert stem_nodes(Graph(image_and_scale_model(False))) == ["c0", "c1"]
    model = image_and_scale_model(True)
    assert stem_nodes(Graph(model)) == ["c0", "c1"]
    rng = np.random.default_rng(1)
    feeds = [
        {
            "image": rng.integers(0, 256, (1, 3, 16, 16)).astype(np.float32),
            "scale_factor": np.ones((1, 4), np.float32),
        }
        for _ in range(3)
    ]
    _, report = quantize_with_report(
        model, feeds, "minmax", None, "tensorrt", pipeline=False, accuracy_target=None
    )
    assert report.stem == ["c0", "c1"]
    assert sorted(report.quantized_nodes) == ["c2", "c3"]


def test_the_input_shape_feeding_a_late_resize_does_not_join_the_stem() -> None:
    """Shape(image) carries dims, not pixels: the head convolutions after a Resize to the
    input's size are not the stem (was: h0 and h1 in the stem with c0)."""
    inits = [filt("w0", 4, 3), filt("w1", 4, 4), filt("w2", 4, 4), filt("w3", 4, 4)]
    inits += [
        numpy_helper.from_array(np.array([2], np.int64), "two"),
        numpy_helper.from_array(np.array([4], np.int64), "four"),
        numpy_helper.from_array(np.array([1, 4], np.int64), "batch_channels"),
    ]
    nodes = [
        conv("image", "w0", "c0", stride=2),
        conv("c0", "w1", "c1", stride=2),
        helper.make_node("Shape", ["image"], ["dims"]),
        helper.make_node("Slice", ["dims", "two", "four"], ["hw"]),
        helper.make_node("Concat", ["batch_channels", "hw"], ["sizes"], axis=0),
        helper.make_node("Resize", ["c1", "", "", "sizes"], ["up"], mode="nearest"),
        conv("up", "w2", "h0"),
        conv("h0", "w3", "h1"),
    ]
    model = make(
        nodes,
        [helper.make_tensor_value_info("image", F, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("h1", F, [1, 4, 16, 16])],
        inits,
    )
    assert stem_nodes(Graph(model)) == ["c0"]


def test_a_strided_conv_transpose_upsamples_and_does_not_end_the_stem() -> None:
    """ConvTranspose's strides enlarge the image (was: the stem stopped after it, ['ct'])."""
    up = numpy_helper.from_array((RNG.standard_normal((3, 4, 2, 2)) * 0.3).astype(np.float32), "wt")
    inits = [up, filt("w1", 4, 4), filt("w2", 4, 4), filt("w3", 4, 4)]
    nodes = [
        helper.make_node("ConvTranspose", ["image", "wt"], ["ct"], name="ct", strides=[2, 2]),
        conv("ct", "w1", "c1"),
        conv("c1", "w2", "c2", stride=2),
        conv("c2", "w3", "c3"),
    ]
    model = make(
        nodes,
        [helper.make_tensor_value_info("image", F, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("c3", F, [1, 4, 8, 8])],
        inits,
    )
    assert stem_nodes(Graph(model)) == ["ct", "c1", "c2"]
