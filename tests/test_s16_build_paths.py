"""build and bench --backend tensorrt: a missing input named with a newline is one line."""

from __future__ import annotations

import pytest

from graphopt.cli import main
from tests.test_cli_review3 import one_line_error


@pytest.mark.parametrize("command", ["build", "bench"])
@pytest.mark.parametrize(("make", "needle"), [(False, "no such file"), (True, "is a directory")])
def test_a_missing_input_with_a_newline_stays_one_line(tmp_path, capsys, command, make, needle):
    path = tmp_path / "a\nb.onnx"
    if make:
        path.mkdir()
    argv = {
        "build": ["build", str(path), "-o", str(tmp_path / "m.plan")],
        "bench": ["bench", str(path), "--backend", "tensorrt", "--runs", "1"],
    }[command]
    assert main(argv) == 2
    err = one_line_error(capsys, needle)
    assert repr(str(path)) in err
