"""bench --backend tensorrt --inputs NPZ: the arrays must be the engine's inputs, in their
dtypes, as the onnxruntime backend's example_feeds requires. An array for no input was not
fed to the engine yet named among the timed inputs (and could set the batch behind the
throughput); an array of another dtype was cast without a word (float64 -> float32)."""

from __future__ import annotations

import types

import numpy as np
import pytest

from graphopt.commands.bench import _engine_feeds
from graphopt.errors import BackendError


def _runner():
    bindings = [
        types.SimpleNamespace(name="images", is_input=True, dtype=np.dtype(np.float32)),
        types.SimpleNamespace(name="out", is_input=False, dtype=np.dtype(np.float32)),
    ]
    engine = types.SimpleNamespace(get_tensor_shape=lambda name: (1, 3, 8, 8))
    return types.SimpleNamespace(bindings=bindings, engine=engine)


def _npz(tmp_path, **arrays):
    path = tmp_path / "feeds.npz"
    np.savez(path, **arrays)
    return str(path)


def test_matching_npz_is_taken(tmp_path):
    path = _npz(tmp_path, images=np.ones((2, 3, 8, 8), np.float32))
    assert _engine_feeds(_runner(), {}, path)["images"].shape == (2, 3, 8, 8)


def test_array_for_no_engine_input_is_refused(tmp_path):
    path = _npz(
        tmp_path, images=np.ones((1, 3, 8, 8), np.float32), extra=np.ones((64, 3), np.float32)
    )
    with pytest.raises(BackendError, match=r"extra is no input of the engine \(inputs: images"):
        _engine_feeds(_runner(), {}, path)


def test_array_of_another_dtype_is_refused(tmp_path):
    path = _npz(tmp_path, images=np.ones((1, 3, 8, 8), np.float64))
    with pytest.raises(BackendError, match="images is float64, but the engine's input images"):
        _engine_feeds(_runner(), {}, path)


def test_missing_array_is_refused_before_the_engine_runs(tmp_path):
    path = _npz(tmp_path, imgs=np.ones((1, 3, 8, 8), np.float32))
    with pytest.raises(BackendError, match="imgs"):
        _engine_feeds(_runner(), {}, path)
