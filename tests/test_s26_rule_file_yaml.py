"""A user's rule file (a pipeline's `rules:`) whose YAML is broken is a one-line
`PipelineError` naming the file and the line, as a pipeline file's is: collections nested
tens of thousands deep crashed the process (libyaml's composer recursed in C: a segmentation
fault, exit 139), a control character was a two-line error without a line, and a byte that
is not UTF-8 was named by its byte position only."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from onnx import helper

from graphopt.errors import PipelineError
from graphopt.patterns.rules import load_rule_file, parse_rules

RULE = 'rules:\n  - name: a\n    group: user\n    target: "y = Relu(x)"\n    replacement: "y = Relu(x)"\n'


def _cli(tmp_path: Path, rule_bytes: bytes) -> subprocess.CompletedProcess[str]:
    (tmp_path / "r.yaml").write_bytes(rule_bytes)
    (tmp_path / "p.yaml").write_text("rules: [r.yaml]\npasses:\n  - fuse-patterns\n")
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "m.onnx"
    )
    return subprocess.run(
        [sys.executable, "-m", "graphopt", "optimize", "m.onnx", "-o", "o.onnx", "-p", "p.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_rule_file_nested_very_deep_is_an_error_not_a_crash(tmp_path: Path) -> None:
    depth = 200_000
    done = _cli(tmp_path, b"rules: " + b"[" * depth + b"]" * depth + b"\n")
    assert done.returncode == 2, (done.returncode, done.stderr[-500:])
    assert done.stderr.count("\n") == 1, done.stderr
    assert "r.yaml:1: invalid YAML: collections nested more than" in done.stderr
    assert not (tmp_path / "o.onnx").exists()


def test_nesting_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(RULE + "macros:\n  m: " + "[" * 500 + "]" * 500 + "\n")
    with pytest.raises(PipelineError, match=r"r\.yaml:7: invalid YAML: collections nested"):
        load_rule_file(path)


def test_the_built_in_rule_files_nest_far_less_than_the_limit() -> None:
    from graphopt.patterns import builtin_rule_files

    for path in builtin_rule_files():
        parse_rules(path.read_text(encoding="utf-8"), str(path))  # no error


def test_a_control_character_is_one_line_naming_the_line(tmp_path: Path) -> None:
    done = _cli(tmp_path, RULE.replace("Relu(x)", "Relu(x\x01)", 1).encode())
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert "r.yaml:4: invalid YAML: unacceptable character #x0001" in done.stderr


def test_a_byte_not_utf8_names_line_and_column(tmp_path: Path) -> None:
    done = _cli(tmp_path, RULE.encode().replace(b"group: user", b"group: us\xffer"))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert "r.yaml:3: not UTF-8 text: byte 0xff at column 14; save it as UTF-8" in done.stderr


def test_a_good_user_rule_file_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "good.yaml"
    path.write_text(RULE)
    assert [r.name for r in load_rule_file(path)] == ["a"]
