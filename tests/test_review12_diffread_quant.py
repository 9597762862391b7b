"""Review 12 (diff read of ea34004/797d861): the accuracy search's samples split out of a batch
are only valid where the model computes each row of its first axis from that row alone.

`collect.ItemOffers` split every feed whose outputs all had the batch's length on their first
axis into one-row samples, each paired with its rows of the batch's outputs as the FP32
reference the search compares with. For a model whose rows depend on each other (a
normalization over the first axis, a sequence-first LSTM whose free first dim is time) the
reference was not what the model computes for the sample, so the search measured the
difference as quantization error. For two image inputs whose free batch dims are named apart
(torch's `dynamic_axes` lists name them `<input>_dynamic_axes_1`), only the first input was
split: the sample held one left image beside the whole batch of right ones.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, numpy_helper
from onnx import helper as oh

from graphopt.quant.collect import choose_samples, collect
from graphopt.quant.samples import SampleKeeper

RNG = np.random.default_rng(0)


def _init(name: str, *shape: int) -> onnx.TensorProto:
    return numpy_helper.from_array((RNG.standard_normal(shape) * 0.3).astype(np.float32), name)


def _model(nodes, inputs, outputs, inits) -> onnx.ModelProto:  # type: ignore[no-untyped-def]
    graph = oh.make_graph(nodes, "g", inputs, outputs, inits)
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def centred_model() -> onnx.ModelProto:
    """y = (x - mean of x over the first axis) · W: the rows depend on each other."""
    return _model(
        [
            oh.make_node("ReduceMean", ["x"], ["mu"], axes=[0], keepdims=1),
            oh.make_node("Sub", ["x", "mu"], ["c"]),
            oh.make_node("MatMul", ["c", "W"], ["y"]),
        ],
        [oh.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
        [oh.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8])],
        [_init("W", 8, 8)],
    )


def lstm_model() -> onnx.ModelProto:
    """A sequence-first LSTM: the free first dim of x is time, its state carries over."""
    hidden = 8
    return _model(
        [oh.make_node("LSTM", ["x", "W", "R"], ["Y"], hidden_size=hidden)],
        [oh.make_tensor_value_info("x", TensorProto.FLOAT, ["T", 1, 4])],
        [oh.make_tensor_value_info("Y", TensorProto.FLOAT, ["T", 1, 1, hidden])],
        [_init("W", 1, 4 * hidden, 4), _init("R", 1, 4 * hidden, hidden)],
    )


def two_image_model() -> onnx.ModelProto:
    """y = Conv(left) - Conv(right), the batch dims named as torch's dynamic_axes lists do."""
    return _model(
        [
            oh.make_node("Conv", ["left", "w"], ["cl"]),
            oh.make_node("Conv", ["right", "w"], ["cr"]),
            oh.make_node("Sub", ["cl", "cr"], ["y"]),
        ],
        [
            oh.make_tensor_value_info("left", TensorProto.FLOAT, ["left_dynamic_axes_1", 3, 8, 8]),
            oh.make_tensor_value_info(
                "right", TensorProto.FLOAT, ["right_dynamic_axes_1", 3, 8, 8]
            ),
        ],
        [oh.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [_init("w", 4, 3, 3, 3)],
    )


def _run(model: onnx.ModelProto, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feed), strict=True))


def _kept(model: onnx.ModelProto, feeds, how: str) -> SampleKeeper:  # type: ignore[no-untyped-def]
    keeper = SampleKeeper(2)
    if how == "choose":
        choose_samples(model, feeds, keeper)
    else:
        collect(
            model,
            [model.graph.node[0].output[0]],
            feeds,
            samples=keeper,
            histograms=how == "histograms",
            sample_cap=1 << 10,
        )
    assert keeper.references is not None
    return keeper


def _assert_references_are_the_models(model: onnx.ModelProto, keeper: SampleKeeper) -> None:
    for feed, reference in zip(keeper.feeds, keeper.references or [], strict=True):
        alone = _run(model, feed)
        assert alone.keys() == reference.keys()
        for name, value in alone.items():
            np.testing.assert_allclose(reference[name], value, rtol=1e-4, atol=1e-5)


HOW = ["histograms", "ranges", "choose"]


@pytest.mark.parametrize("how", HOW)
def test_rows_that_depend_on_each_other_are_not_split_into_samples(how: str) -> None:
    model = centred_model()
    feeds = [{"x": RNG.random((4, 8), np.float32)} for _ in range(3)]
    keeper = _kept(model, feeds, how)
    _assert_references_are_the_models(model, keeper)
    assert [f["x"].shape for f in keeper.feeds] == [(4, 8)] * 2  # whole feeds, as given


@pytest.mark.parametrize("how", HOW)
def test_a_sequence_first_free_dim_is_not_split_into_time_steps(how: str) -> None:
    model = lstm_model()
    feeds = [{"x": RNG.random((5, 1, 4), np.float32)} for _ in range(3)]
    keeper = _kept(model, feeds, how)
    _assert_references_are_the_models(model, keeper)
    assert [f["x"].shape for f in keeper.feeds] == [(5, 1, 4)] * 2


@pytest.mark.parametrize("how", HOW)
def test_two_image_inputs_with_batch_dims_named_apart_are_split_together(how: str) -> None:
    model = two_image_model()
    pairs = [
        (RNG.random((1, 3, 8, 8), np.float32), RNG.random((1, 3, 8, 8), np.float32))
        for _ in range(6)
    ]
    one = _kept(model, [{"left": a, "right": b} for a, b in pairs], how)
    three = _kept(
        model,
        [
            {
                "left": np.concatenate([a for a, _ in pairs[i : i + 3]]),
                "right": np.concatenate([b for _, b in pairs[i : i + 3]]),
            }
            for i in (0, 3)
        ],
        how,
    )
    _assert_references_are_the_models(model, three)
    for a, b in zip(one.feeds, three.feeds, strict=True):  # the same samples at batch 1 and 3
        for name in ("left", "right"):
            np.testing.assert_array_equal(a[name], b[name])
