"""save_model's answers to output paths at the edges (review H209, session 22).

- `save_model(model, "")` said ".: is a folder; give a file name for the model", naming a
  path the caller did not give (pathlib reads "" as "."); `load("")` already said the path
  is empty.
- A path that is a symbolic link loop (a -> b -> a) had its link `a` replaced by the model
  file, where a link's save keeps the link (and the CLI refused the loop in one line).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from graphopt.errors import SaveError
from graphopt.ir import save_model
from tests.models_util import matmul_model


def test_an_empty_path_is_said_to_be_empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SaveError, match=r"^the model path is empty: give a file name"):
        save_model(matmul_model(), "")
    assert list(tmp_path.iterdir()) == []


def test_a_symbolic_link_loop_is_refused_and_kept(tmp_path: Path) -> None:
    """a -> b -> a: the save replaced the link `a` by the model file (the link was not kept,
    as a link's save promises); onnx.save fails on it, the CLI refuses it in one line."""
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    with pytest.raises(SaveError, match=r"a: is a symbolic link loop; give a file name$"):
        save_model(matmul_model(), tmp_path / "a")
    assert os.readlink(tmp_path / "a") == "b" and os.readlink(tmp_path / "b") == "a"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]
