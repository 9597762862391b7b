"""`optimize(rule_files=...)` naming a pipe or a folder is a one-line `PipelineError`, as a
pipeline's `rules:` naming one is: a FIFO blocked the call forever (reading it waits for a
writer), a folder said "[Errno 21] Is a directory"."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from graphopt.errors import PipelineError
from graphopt.patterns.rules import load_rule_file

CALL = """
import onnx, sys
from onnx import helper
import graphopt
x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])
y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])
g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
open("p.yaml", "w").write("passes: [fuse-patterns]\\n")
try:
    graphopt.optimize(m, "p.yaml", rule_files=sys.argv[1])
except graphopt.errors.PipelineError as e:
    print(e)
"""


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_is_refused_not_read(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "r.yaml")
    try:
        done = subprocess.run(
            [sys.executable, "-c", CALL, "r.yaml"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("optimize(rule_files=<a FIFO>) blocked reading it")
    assert done.stdout == (
        "r.yaml: is not a regular file (a pipe or a device); give a rule file\n"
    ), done.stderr[-400:]


def test_a_folder_is_named_as_one(tmp_path: Path) -> None:
    (tmp_path / "rdir").mkdir()
    with pytest.raises(PipelineError, match=r"^\S+rdir: is a folder, not a rule file$"):
        load_rule_file(tmp_path / "rdir")


def test_a_missing_file_is_still_said_so(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match=r"nope\.yaml: cannot read rule file: .*No such file"):
        load_rule_file(tmp_path / "nope.yaml")
