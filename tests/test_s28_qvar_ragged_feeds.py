"""A calibration feed whose value numpy cannot make an array of (ragged nested lists, which
`graphopt.quantize` takes where an array is asked: a list of the right shape is read) raised
numpy's own ValueError ('setting an array element with a sequence...'), not a QuantizeError
naming the feed and the input; so did such a `sensitivity_data` feed. Now both are
QuantizeErrors that say where."""

from __future__ import annotations

import numpy as np
import pytest

import graphopt
from graphopt.errors import QuantizeError
from tests.test_quant_api import conv_model


def _good() -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(0).uniform(-1, 1, (1, 3, 16, 16)).astype(np.float32)}


def test_a_ragged_feed_is_a_quantize_error() -> None:
    with pytest.raises(QuantizeError) as caught:
        graphopt.quantize(conv_model(), [_good(), {"x": [[1.0], [1.0, 2.0]]}])
    message = str(caught.value)
    assert message.startswith("calibration feed 1: input 'x' is not an array numpy can make")
    assert "\n" not in message


def test_a_ragged_sensitivity_feed_is_a_quantize_error() -> None:
    with pytest.raises(QuantizeError, match="sample feed 0: input 'x' is not an array"):
        graphopt.quantize(conv_model(), [_good()], sensitivity_data=[{"x": [[1.0], [1.0, 2.0]]}])


def test_a_list_of_the_right_shape_is_still_read() -> None:
    feed = _good()
    as_array = graphopt.quantize(conv_model(), [feed], accuracy_target=None)
    as_list = graphopt.quantize(conv_model(), [{"x": feed["x"].tolist()}], accuracy_target=None)
    assert as_list.SerializeToString() == as_array.SerializeToString()
