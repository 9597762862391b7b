"""Ctrl-C or SIGTERM that lands after a save renamed the model into place, before the save
returned (H227). The command's one line said "interrupted; nothing was written" beside the
model it had written (optimize, merge, split, demo: `commands._common.save_output`; quantize
had its own fix, H221). Now it says the model is written; a signal before the rename still
says "nothing was written", and leaves no file (the control). The signal is raised from inside
the save, where a timed `kill` cannot be aimed."""

from __future__ import annotations

import onnx
import pytest

import graphopt.ir
from graphopt import cli

MODEL = """<ir_version: 8, opset_import: ["" : 17]>
g (float[1,4] x) => (float[1,4] y) { a = Identity(x)  y = Relu(a) }"""


def _run(tmp_path, monkeypatch, signal_raised: type[BaseException], after: bool) -> int:  # type: ignore[no-untyped-def]
    onnx.save(onnx.parser.parse_model(MODEL), tmp_path / "m.onnx")
    real = graphopt.ir.save_model

    def save_then_signal(*args, **kwargs):  # type: ignore[no-untyped-def]
        if after:
            real(*args, **kwargs)
        raise signal_raised

    monkeypatch.setattr(graphopt.ir, "save_model", save_then_signal)
    monkeypatch.chdir(tmp_path)
    return cli.main(["optimize", "m.onnx", "-o", "o.onnx"])


@pytest.mark.parametrize(
    ("signal_raised", "code", "word"),
    [(KeyboardInterrupt, 130, "interrupted"), (cli._Terminated, 143, "terminated")],
)
def test_a_signal_after_the_rename_says_the_model_was_written(
    tmp_path, monkeypatch, capsys, signal_raised, code, word
) -> None:  # type: ignore[no-untyped-def]
    assert _run(tmp_path, monkeypatch, signal_raised, after=True) == code
    assert [n.op_type for n in onnx.load(tmp_path / "o.onnx").graph.node] == ["Relu"]
    err = capsys.readouterr().err
    assert err == (
        f"graphopt optimize: {word}; wrote o.onnx; only what came after (the report) was cut "
        "short\n"
    )


def test_a_signal_before_the_rename_says_nothing_was_written(tmp_path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    assert _run(tmp_path, monkeypatch, KeyboardInterrupt, after=False) == 130
    assert capsys.readouterr().err == "graphopt optimize: interrupted; nothing was written\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_a_signal_before_the_rename_over_an_old_file_keeps_it(
    tmp_path, monkeypatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "o.onnx").write_bytes(b"OLD")
    assert _run(tmp_path, monkeypatch, KeyboardInterrupt, after=False) == 130
    assert capsys.readouterr().err == "graphopt optimize: interrupted; nothing was written\n"
    assert (tmp_path / "o.onnx").read_bytes() == b"OLD"
