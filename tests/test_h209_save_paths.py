"""save_model's answers to output paths at the edges (review H209, session 22).

- `save_model(model, "")` said ".: is a folder; give a file name for the model", naming a
  path the caller did not give (pathlib reads "" as "."); `load("")` already said the path
  is empty.
"""

from __future__ import annotations

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
