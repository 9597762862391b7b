"""H167: `images(names=(...))` with a photograph name the scikit-image wheel has not (a typo)
said "cached wheel ... has no member skimage/data/astronautt.png (not scikit-image==0.26.0 as
PyPI has it?); delete it and run again": deleting the wheel downloaded ~90 MB to fail the
same way. Now the error names the photograph and the closest one the wheel has."""

from __future__ import annotations

import pytest

from graphopt import realmodels
from graphopt.errors import LoadError


@pytest.mark.parametrize(
    ("asked", "meant"), [("astronautt.png", "astronaut.png"), ("Coffee.png", "coffee.png")]
)
def test_a_misspelt_photograph_is_named_with_the_closest(asked: str, meant: str) -> None:
    realmodels.image_paths(realmodels.IMAGE_NAMES[:1])  # the wheel is cached
    wheel = realmodels._cached_wheel(realmodels.IMAGE_WHEEL)
    assert wheel is not None
    before = wheel.stat().st_mtime_ns
    with pytest.raises(LoadError) as err:
        realmodels.images(names=(asked,))
    assert str(err.value) == (
        f"{realmodels.IMAGE_WHEEL} has no photograph {asked!r} (did you mean {meant!r}?)"
    )
    assert wheel.stat().st_mtime_ns == before  # the wheel is left as it is


def test_the_photographs_still_load() -> None:
    (image,) = realmodels.images(names=("astronaut.png",))
    assert image.shape == (512, 512, 3) and image.dtype.name == "uint8"
