"""`bench --backend tensorrt` on a dynamic engine input without --shapes names a shape that
input takes.

The error said "engine input 'x' is dynamic: give --shapes x:1x3x640x640" whatever the
input's rank: an engine input [-1, 4] was told to take a 4-D image shape, which the engine
then refuses. It now names the opt shape of the engine's profile 0, else the engine's dims
with 1 for each dynamic one."""

from __future__ import annotations

import types

import numpy as np
import pytest

from graphopt.commands.bench import _engine_feeds
from graphopt.errors import BackendError


def _runner(shape: tuple[int, ...], profile: list[tuple[int, ...]] | None = None):  # type: ignore[no-untyped-def]
    bindings = [
        types.SimpleNamespace(name="x", is_input=True, dtype=np.dtype(np.float32)),
        types.SimpleNamespace(name="y", is_input=False, dtype=np.dtype(np.float32)),
    ]
    engine = types.SimpleNamespace(get_tensor_shape=lambda name: shape)
    if profile is not None:
        engine.get_tensor_profile_shape = lambda name, index: profile
    return types.SimpleNamespace(bindings=bindings, engine=engine)


def test_without_a_profile_the_hint_has_the_input_rank() -> None:
    with pytest.raises(BackendError) as caught:
        _engine_feeds(_runner((-1, 4)), {}, None)
    assert str(caught.value) == "engine input 'x' is dynamic: give --shapes x:1x4"


def test_the_hint_is_the_opt_shape_of_profile_0() -> None:
    runner = _runner((-1, 3, -1, -1), [(1, 3, 32, 32), (4, 3, 320, 320), (8, 3, 640, 640)])
    with pytest.raises(BackendError) as caught:
        _engine_feeds(runner, {}, None)
    assert str(caught.value) == "engine input 'x' is dynamic: give --shapes x:4x3x320x320"


def test_given_shapes_are_fed() -> None:
    """(control: passes on the parent too)"""
    feeds = _engine_feeds(_runner((-1, 4)), {"x": (2, 4)}, None)
    assert feeds["x"].shape == (2, 4) and feeds["x"].dtype == np.float32
