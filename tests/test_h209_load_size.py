"""A model file of 2 GiB or more (review H209, session 22).

protobuf parses no message that large: a well-formed ONNX file over 2 GiB (a writer with its
limits raised, weights inline) was read whole into memory and then reported as "not an ONNX
model (protobuf decode failed: truncated or another format)". It is refused by its size now,
before it is read, with what to do.
"""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from graphopt.cli import main
from graphopt.errors import LoadError
from graphopt.ir import load
from graphopt.ir.model_io import PARSE_LIMIT
from tests.test_cli_review3 import one_line_error


@pytest.fixture
def huge(tmp_path: Path) -> Path:
    """A model's first bytes, then zeros up to 2 GiB (a sparse file: no disk is used)."""
    path = tmp_path / "huge.onnx"
    head = onnx.ModelProto(ir_version=8, opset_import=[onnx.helper.make_opsetid("", 17)])
    with open(path, "wb") as f:
        f.write(head.SerializeToString())
        f.truncate(PARSE_LIMIT)
    return path


def test_a_file_of_2_gib_is_refused_by_its_size(huge: Path) -> None:
    with pytest.raises(LoadError, match=r"2147483648 bytes, over the 2 GiB protobuf can parse"):
        load(huge)


def test_the_cli_says_it_in_one_line(
    huge: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["optimize", str(huge), "-o", str(tmp_path / "out.onnx")]) == 2
    one_line_error(capsys, "save_as_external_data=True")
    assert not (tmp_path / "out.onnx").exists()
