"""A calibration reads the model's inputs, and refuses those of a type it cannot feed
(bfloat16, float8, int4), once (`quant.collect.FeedChecker`), not once per feed: `check_feed`
ran `input_specs` and `refuse_unfeedable_inputs` for every feed of `collect`, `choose_samples`,
`run_outputs` and every array file of `FolderFeeds` (N + 1 and N calls for N feeds). Such an
input is refused, in one line, before the first feed is read (it was refused by the first
feed's check, after the feed was taken from the caller's iterator)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphopt
import graphopt.quant.collect as collect_module
import graphopt.quant.data as data_module
from graphopt.errors import QuantizeError
from graphopt.quant.collect import choose_samples, collect, run_outputs
from graphopt.quant.data import folder_feeds, refuse_unfeedable_inputs
from graphopt.quant.samples import SampleKeeper

FEEDS = 5


def _conv_model(elem: int = TensorProto.FLOAT, opset: int = 19) -> onnx.ModelProto:
    """y = Relu(Conv(Cast(x, float32), W)), x of type `elem`, [1, 3, 8, 8]."""
    weight = np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT),
            helper.make_node("Conv", ["xf", "W"], ["c"]),
            helper.make_node("Relu", ["c"], ["y"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", elem, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 6, 6])],
        [numpy_helper.from_array(weight, "W")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _feeds(count: int = FEEDS) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(1)
    return [{"x": rng.standard_normal((1, 3, 8, 8)).astype(np.float32)} for _ in range(count)]


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How often the model's inputs are read and their types refused (counted, not changed)."""
    counted = {"input_specs": 0, "refuse_unfeedable_inputs": 0}
    specs, refuse = collect_module.input_specs, data_module.refuse_unfeedable_inputs

    def counting_specs(model: onnx.ModelProto) -> Any:
        counted["input_specs"] += 1
        return specs(model)

    def counting_refuse(inputs: Any) -> None:
        counted["refuse_unfeedable_inputs"] += 1
        refuse(inputs)

    monkeypatch.setattr(collect_module, "input_specs", counting_specs)
    monkeypatch.setattr(data_module, "refuse_unfeedable_inputs", counting_refuse)
    return counted


def _calibrate(how: str, model: onnx.ModelProto, data: Any) -> int:
    """Run the calibration entry `how` over `data`; the number of feeds it gives back."""
    if how == "collect":
        return collect(model, ["c"], data)[1]
    if how == "collect ranges, two in flight":
        return collect(model, ["c"], data, histograms=False, in_flight=2, threads=2)[1]
    if how == "collect with samples":
        return collect(model, ["c"], data, samples=SampleKeeper(2))[1]
    if how == "collect, no tensors":
        return collect(model, [], data)[1]
    if how == "choose_samples":
        return choose_samples(model, data, SampleKeeper(2))
    assert how == "run_outputs"
    return len(run_outputs(model, data))


ENTRIES = [
    "collect",
    "collect ranges, two in flight",
    "collect with samples",
    "collect, no tensors",
    "choose_samples",
    "run_outputs",
]


@pytest.mark.parametrize("how", ENTRIES)
def test_a_calibration_reads_the_inputs_once(calls: dict[str, int], how: str) -> None:
    assert _calibrate(how, _conv_model(), _feeds()) == FEEDS
    assert calls == {"input_specs": 1, "refuse_unfeedable_inputs": 1}


@pytest.mark.parametrize("how", ENTRIES)
def test_every_feed_is_still_checked_with_its_own_words(how: str) -> None:
    feeds = _feeds()
    feeds[3] = {"x": feeds[3]["x"].astype(np.int32)}
    where = "sample feed 3" if how == "run_outputs" else "calibration feed 3"
    with pytest.raises(QuantizeError) as caught:
        _calibrate(how, _conv_model(), feeds)
    assert str(caught.value) == f"{where}: input 'x' has dtype int32, the model wants float32"


def test_a_folder_of_arrays_reads_the_inputs_once(calls: dict[str, int], tmp_path: Path) -> None:
    for i, feed in enumerate(_feeds()):
        np.save(tmp_path / f"{i:02d}.npy", feed["x"].astype(np.float64))  # cast by the check
    feeds = folder_feeds(tmp_path, _conv_model())
    read = list(feeds)
    assert [f["x"].dtype for f in read] == [np.float32] * FEEDS
    assert calls == {"input_specs": 1, "refuse_unfeedable_inputs": 1}


class _Recorded:
    """Feeds that note each one taken."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]):
        self.feeds = feeds
        self.taken = 0

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        for feed in self.feeds:
            self.taken += 1
            yield feed


def _refusal() -> str:
    """What `quantize --calib` says of a bfloat16 input x."""
    with pytest.raises(QuantizeError) as caught:
        refuse_unfeedable_inputs([("x", TensorProto.BFLOAT16, [1, 3, 8, 8])])
    return str(caught.value)


@pytest.mark.parametrize("how", ENTRIES)
def test_a_bfloat16_input_is_refused_before_any_feed_is_read(how: str) -> None:
    model = _conv_model(TensorProto.BFLOAT16)
    data = _Recorded(_feeds())
    with pytest.raises(QuantizeError) as caught:
        _calibrate(how, model, data)
    assert str(caught.value) == _refusal()
    assert (
        "\n" not in _refusal()
        and "input x is BFLOAT16, which calibration cannot feed" in _refusal()
    )
    assert data.taken == 0


def test_quantize_refuses_a_bfloat16_input_before_any_feed_is_read(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(_conv_model(TensorProto.BFLOAT16), path)
    data = _Recorded(_feeds())
    with pytest.raises(QuantizeError) as caught:
        graphopt.quantize(str(path), data)
    assert str(caught.value) == _refusal()
    assert data.taken == 0
