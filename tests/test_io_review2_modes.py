"""A file that save_model replaces keeps its permission bits, as onnx.save's open() keeps them.

The atomic save made a fresh file (mode per umask) and renamed it over the old one: a private
model (0600) optimized in place came back world-readable (0644), its weights too.
"""

from __future__ import annotations

import os

import onnx
import pytest

from graphopt.cli import main
from graphopt.ir import save_model
from tests.models_util import matmul_model

_model = matmul_model


@pytest.fixture
def umask_022():  # type: ignore[no-untyped-def]
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.mark.parametrize("external", [False, True])
def test_a_private_model_saved_over_stays_private(tmp_path, umask_022, external):
    target = tmp_path / "m.onnx"
    target.write_bytes(b"older model")
    os.chmod(target, 0o600)
    save_model(_model(), target, external_data=external)
    assert target.stat().st_mode & 0o777 == 0o600
    if external:
        assert (tmp_path / "m.onnx.data").stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"] + ["m.onnx.data"] * external


def test_optimize_in_place_keeps_the_mode(tmp_path, umask_022):
    src = tmp_path / "m.onnx"
    onnx.save(_model(), str(src))
    os.chmod(src, 0o640)
    assert main(["optimize", str(src), "-o", str(src)]) == 0
    assert src.stat().st_mode & 0o777 == 0o640


def test_a_new_file_gets_the_umask_mode(tmp_path, umask_022):
    target = tmp_path / "new.onnx"
    save_model(_model(), target)
    assert target.stat().st_mode & 0o777 == 0o644
