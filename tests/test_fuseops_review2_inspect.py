"""Adversarial review of `graphopt inspect`'s group listing: piped into a reader that stops."""

from __future__ import annotations

import subprocess
import sys

import onnx
from onnx import TensorProto, helper

SIGPIPE_EXIT = 141  # 128 + SIGPIPE: graphopt.cli.main ends so on any command's closed pipe


def _long_chain(path, n: int = 6000) -> None:
    nodes = [helper.make_node("Relu", [f"t{i}"], [f"t{i + 1}"], name=f"relu_{i}") for i in range(n)]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("t0", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info(f"t{n}", TensorProto.FLOAT, [1])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)


def test_groups_piped_into_head_end_without_a_traceback(tmp_path):
    # `graphopt inspect m --groups | head`: the listing (6000 one-node groups, ~240 KB, more
    # than a pipe holds) meets a closed pipe; that printed a BrokenPipeError traceback.
    path = tmp_path / "chain.onnx"
    _long_chain(path)
    command = [sys.executable, "-m", "graphopt", "inspect", str(path), "--groups"]
    for extra in ([], ["--json"]):
        proc = subprocess.Popen(
            [*command, "--max-group-size", "1", *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdout is not None and proc.stderr is not None
        first = proc.stdout.readline()
        proc.stdout.close()  # the reader goes away, as `head -1` does
        err = proc.stderr.read().decode()
        proc.stderr.close()
        assert proc.wait(timeout=120) == SIGPIPE_EXIT
        assert first.strip()
        assert "Traceback" not in err and "BrokenPipeError" not in err, err
