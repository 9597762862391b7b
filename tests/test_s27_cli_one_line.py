"""The CLI's error line and its warnings are one line each, even where a path or a name they
hold has a line break that no `shown` escaped: a rule file in a folder named 'we\\nird' split
the error in two."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import onnx
from onnx import TensorProto, helper


def _model(folder: Path) -> Path:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Neg", ["r"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    path = folder / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def _graphopt(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "graphopt", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_an_error_naming_a_rule_file_in_a_folder_with_a_newline_is_one_line(
    tmp_path: Path,
) -> None:
    _model(tmp_path)
    folder = tmp_path / "we\nird"
    folder.mkdir()
    (folder / "r.yaml").write_text(
        "rules:\n  - name: r\n    pattern: y = Relu(x)\n    replacement: y = Relu(x)\n"
    )
    (tmp_path / "p.yaml").write_text('rules: ["we\\nird/r.yaml"]\npasses:\n  - fuse-patterns\n')
    done = _graphopt("optimize", "m.onnx", "-o", "o.onnx", "--pipeline", "p.yaml", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("graphopt optimize: error: we\\nird/r.yaml:3: unknown rule key")
    assert not (tmp_path / "o.onnx").exists()


def test_a_warning_with_a_line_break_in_a_name_it_holds_is_one_line() -> None:
    import logging

    from graphopt.cli import _OneLineFormatter

    record = logging.LogRecord(
        "graphopt", logging.WARNING, __file__, 1, "%s: kept", ("a\nb",), None
    )
    assert _OneLineFormatter("graphopt: %(message)s").format(record) == "graphopt: a\\nb: kept"
