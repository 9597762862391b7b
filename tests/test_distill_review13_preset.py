"""distill-targets --preset feeds a teacher what its own package feeds it.

common_det (ddddocr) takes raw 0..255 pixels; its preset had no "scale", and distill-targets
defaults an absent scale to 1/255, so the stored soft targets were the teacher's outputs on
pixels/255 (top objectness 0.018 instead of 0.175 on astronaut.png)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from graphopt.distill import _image_feed
from graphopt.realmodels import PREPROCESS, fetch_model, image_paths, load_image, preprocess


def test_every_preset_states_its_pixel_scale() -> None:
    """A preset without "scale" means 1 to `realmodels.preprocess` and 1/255 to distill."""
    assert [name for name, spec in PREPROCESS.items() if "scale" not in spec] == []


@pytest.mark.parametrize("name", ["common_det", "layout_cdla"])
def test_distill_feed_of_a_preset_is_the_packages_feed(name: str) -> None:
    model = onnx.load(str(fetch_model(name)), load_external_data=False)
    first = model.graph.input[0]
    dims = [d.dim_value or d.dim_param for d in first.type.tensor_type.shape.dim]
    inputs = [(first.name, first.type.tensor_type.elem_type, dims)]
    path = image_paths(("astronaut.png",))[0]
    got = _image_feed(path, inputs, PREPROCESS[name])
    want = preprocess(load_image(path), **PREPROCESS[name])
    np.testing.assert_array_equal(got, want)
    if name == "common_det":
        assert got.max() > 200  # raw pixels, not pixels / 255
