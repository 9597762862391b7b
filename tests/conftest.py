"""Shared fixtures: tiny models built in code, and the real detectors (cached, marked)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from graphopt.backends.onnxruntime import run as ort_run


def assert_same_outputs(
    original: onnx.ModelProto,
    rewritten: onnx.ModelProto,
    feeds: dict[str, np.ndarray],
    rtol: float = 1e-4,
    atol: float = 1e-5,
) -> None:
    """Run both models in onnxruntime on `feeds` and compare every output (fp32 tolerances)."""
    a = ort_run(original, feeds)
    b = ort_run(rewritten, feeds)
    assert list(a) == list(b), "output names or order changed"
    for name in a:
        assert a[name].dtype == b[name].dtype, name
        assert a[name].shape == b[name].shape, name
        np.testing.assert_allclose(b[name], a[name], rtol=rtol, atol=atol, err_msg=name)


@pytest.fixture(scope="session")
def real_model():
    """`real_model("common_det")` → path of the cached real detector."""
    from graphopt.realmodels import fetch_model

    return fetch_model


@pytest.fixture(scope="session")
def real_feeds():
    """`real_feeds("layout_cdla", n)` → n feeds preprocessed from real photographs."""
    from graphopt.realmodels import model_inputs

    cache: dict = {}

    def get(name: str, count: int = 2):
        key = (name, count)
        if key not in cache:
            cache[key] = model_inputs(name, count)
        return cache[key]

    return get
