"""merge --macs-shape INPUT=D0,D1,...: the dims were read with int(), which takes '1_0' (10),
'+1', full-width digits and sizes past int64 (and raises its own ValueError past 4300 digits);
--shapes takes ASCII decimal digits within an int64 only (c443124), and so does this form now,
refusing the rest with its one-line MergeError."""

from __future__ import annotations

import pytest

from graphopt.commands.merge import _macs_shapes
from graphopt.multitask import MergeError


@pytest.mark.parametrize(
    "dims",
    ["1_0,3", "+1,3", "\uff11,3", "9999999999999999999999,3", "9" * 5000 + ",3", "1,,3"],
    ids=["underscore", "plus", "full-width", "past-int64", "past-int-digits", "empty"],
)
def test_macs_shape_dims_are_ascii_digits_within_int64(dims: str) -> None:
    with pytest.raises(MergeError) as caught:
        _macs_shapes([f"x={dims}"])
    assert "\n" not in str(caught.value) and "expected INPUT=D0,D1" in str(caught.value)


def test_macs_shape_dims_as_given() -> None:
    assert _macs_shapes(["x=1,3,640,640", "a\\=b=2,3"]) == {"x": [1, 3, 640, 640], "a=b": [2, 3]}
