"""`graphopt build` and `graphopt bench --backend tensorrt` on a missing input said "TensorRT is
not installed" (on a machine without it) before "no such file": the input is checked first
now, whatever is installed (session-13 fresh-user review)."""

from __future__ import annotations

import pytest

from graphopt.cli import main


@pytest.mark.parametrize(
    "argv",
    [
        ["build", "nofile.onnx", "-o", "out.plan"],
        ["build", "nofile.onnx", "-o", "out.plan", "--int8", "--cache", "c.cache"],
        ["bench", "x.plan", "--backend", "tensorrt"],
        ["bench", "x.onnx"],
    ],
)
def test_a_missing_input_is_said_first(tmp_path, monkeypatch, capsys, argv) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(f"{argv[1]}: no such file"), err
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "out.plan").exists()


def test_a_folder_input_is_said_first(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["bench", str(tmp_path), "--backend", "tensorrt"]) == 2
    assert "is a directory" in capsys.readouterr().err
