"""H134: a value the user gave, printed in a one-line error, keeps the error one line.

`merge --prefix`, `check --target` and `demo -o` put the value as given into their errors: one
with a newline in it made the error two lines (`--prefix x<newline>y,z,w: 3 prefixes for 2
models`). Such a value is now shown quoted and escaped as `repr` writes it; a printable one
as before, unquoted.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from graphopt.cli import main
from tests.models_util import add_model


def _one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err, captured.err
    assert captured.err.count("\n") == 1 and captured.err.endswith("\n"), captured.err
    return captured.err


def test_merge_prefix_with_a_newline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(add_model(1.0).SerializeToString())
    out = tmp_path / "o.onnx"
    argv = ["merge", str(model), str(model), "-o", str(out), "--prefix", "x\ny,z,w"]
    err = _one_line_error(capsys, argv)
    assert err == (
        "graphopt merge: error: --prefix 'x\\ny,z,w': 3 prefixes for 2 models; give one per "
        "model, comma-separated\n"
    )
    assert not out.exists()


def test_check_target_with_a_newline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(add_model(1.0).SerializeToString())
    err = _one_line_error(capsys, ["check", str(model), "--target", "tensorrt=1\n0"])
    assert err.startswith("graphopt check: error: --target 'tensorrt=1\\n0': graphopt models "), err
    assert ", not '1\\n0' (tensorrt=10 or tensorrt=11" in err, err


def test_demo_output_with_a_newline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = str(tmp_path / "no\nsuch" / "o.onnx")
    err = _one_line_error(capsys, ["demo", "-o", output])
    assert err == (
        f"graphopt demo: error: -o {output!r}: {str(Path(output).parent)!r} does not exist\n"
    )


def test_a_printable_value_is_shown_as_given() -> None:
    from graphopt.commands._common import shown

    assert shown("out dir/m.onnx") == "out dir/m.onnx"
    assert shown(Path("a") / "b\tc") == repr("a/b\tc")
