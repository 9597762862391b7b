"""H167: `bench` wrapped its progress callback together with onnxruntime's runs in one
`except Exception`, so a failing callback was reported as "onnxruntime failed to run
<model>: ..." (exit 2) for a model that ran fine. With no stderr (closed, pythonw: sys.stderr
None) its progress bar failed so: `graphopt bench` could not time anything there. Now only
onnxruntime's own errors are its, and there is no bar without a stderr."""

from __future__ import annotations

import sys
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.cli import main
from graphopt.commands.bench import bench_onnxruntime


@pytest.fixture
def model(tmp_path: Path) -> str:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
    )
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return str(path)


def test_a_failing_progress_callback_is_not_onnxruntimes_failure(model) -> None:
    seen: list[int] = []

    def on_run(done: int) -> None:
        seen.append(done)
        if done == 2:
            raise RuntimeError("the bar broke")

    with pytest.raises(RuntimeError, match="the bar broke"):
        bench_onnxruntime(model, runs=3, warmup=1, on_run=on_run)
    assert seen == [0, 1, 2]


def test_the_callback_sees_every_run_and_the_runs_are_timed(model) -> None:
    seen: list[int] = []
    result = bench_onnxruntime(model, runs=3, warmup=2, on_run=seen.append)
    assert seen == [0, 1, 2, 3, 4, 5]
    assert result.runs == 3 and result.min_ms > 0


def test_bench_without_stderr_times_the_model(model, monkeypatch, capsys) -> None:
    monkeypatch.setattr(sys, "stderr", None)
    assert main(["bench", model, "--runs", "2", "--warmup", "1"]) == 0
    assert capsys.readouterr().out.startswith(f"onnxruntime: {model}: 2 runs, p50 ")
