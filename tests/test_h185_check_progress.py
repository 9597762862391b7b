"""H185: `graphopt check --target tensorrt` indexes the model once (the checker's `Graph` is the
one its shape facts are inferred over; shape_facts(model) indexed a skeleton copy again) and
checks the loaded model once; its progress bar counts the nodes of the per-node TensorRT walk
(`check_tensorrt(progress=...)`), on stderr only; the findings are the same."""

from __future__ import annotations

import sys

import onnx
import pytest
from onnx import TensorProto, helper

import graphopt.ir.graph as ir_graph
import graphopt.ir.model_io as model_io
from graphopt.analysis.shapes import shape_facts
from graphopt.analysis.usedef import skeleton_copy
from graphopt.backends.trt_check import PROGRESS_EVERY, check_tensorrt
from graphopt.cli import main
from graphopt.ir import Graph
from graphopt.realmodels import fetch_model

DETECTORS = ["common_det", "layout_cdla", "ppocr_det"]


def _diamonds(n: int, *, functions: bool = False) -> onnx.ModelProto:
    """x → (Relu, Sigmoid) → Add, repeated: about `n` nodes; `functions`: the first diamond
    is a call of a model-local function holding it (inlined by the check: 2 more nodes)."""
    nodes, cur = [], "x"
    for i in range(n // 3):
        if functions and i == 0:
            nodes.append(helper.make_node("Diamond", [cur], ["c0"], name="call0", domain="local"))
        else:
            nodes += [
                helper.make_node("Relu", [cur], [f"a{i}"], name=f"relu{i}"),
                helper.make_node("Sigmoid", [cur], [f"b{i}"], name=f"sig{i}"),
                helper.make_node("Add", [f"a{i}", f"b{i}"], [f"c{i}"], name=f"add{i}"),
            ]
        cur = f"c{i}"
    graph = helper.make_graph(
        nodes,
        "diamonds",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info(cur, TensorProto.FLOAT, [1, 8])],
    )
    opsets = [helper.make_opsetid("", 17)]
    extra = {}
    if functions:
        body = [
            helper.make_node("Relu", ["i"], ["a"]),
            helper.make_node("Sigmoid", ["i"], ["b"]),
            helper.make_node("Add", ["a", "b"], ["o"]),
        ]
        extra["functions"] = [helper.make_function("local", "Diamond", ["i"], ["o"], body, opsets)]
        opsets = [*opsets, helper.make_opsetid("local", 1)]
    return helper.make_model(graph, opset_imports=opsets, **extra)


def _count_calls(monkeypatch, owner, name: str) -> list[int]:
    calls = [0]
    original = getattr(owner, name)

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return calls


def test_check_tensorrt_indexes_the_model_once(monkeypatch):
    model = _diamonds(300)
    graphs = _count_calls(monkeypatch, ir_graph.Graph, "__init__")
    assert check_tensorrt(model, 10) == []
    assert graphs[0] == 1  # (2 on the parent: shape_facts indexed a skeleton copy again)


def test_cli_check_checks_the_loaded_model_once(monkeypatch, tmp_path, capsys):
    path = tmp_path / "d.onnx"
    onnx.save(_diamonds(300), str(path))
    checks = _count_calls(monkeypatch, model_io, "check_model_basics")
    assert main(["check", str(path)]) == 0
    assert checks[0] == 1  # (2 on the parent: check_tensorrt checked check's model again)
    assert capsys.readouterr().out == f"{path}: TensorRT 10.15: 0 errors, 0 warnings\n"


@pytest.mark.parametrize("functions", [False, True])
def test_progress_counts_the_nodes_walked(functions):
    model = _diamonds(999, functions=functions)
    assert len(model.graph.node) == 999 - 2 * functions
    total = 999  # the call's body inlined: 3 nodes for 1
    calls: list[tuple[int, int]] = []
    findings = check_tensorrt(model, 10, progress=lambda *a: calls.append(a))
    assert findings == check_tensorrt(model, 10)
    steps = list(range(PROGRESS_EVERY, total, PROGRESS_EVERY))
    assert calls == [(0, total)] + [(k, total) for k in steps] + [(total, total)]


@pytest.mark.realmodel
@pytest.mark.parametrize("name", DETECTORS)
def test_shape_facts_over_the_checkers_graph_are_those_of_the_model(name):
    # what the checker now infers over (its own index) against what it inferred over (a
    # skeleton copy of the model, indexed again): every tensor's dtype and shape
    model = onnx.load(str(fetch_model(name)))
    graph = Graph(model)
    ours, before = shape_facts(graph), shape_facts(Graph(skeleton_copy(model)))
    names = {*ours.dtypes, *ours.shapes, *ours._pending, *before.dtypes, *before.shapes}
    names |= set(before._pending)
    assert len(names) > 300
    assert {n: (ours.dtype(n), ours.shape(n)) for n in names} == {
        n: (before.dtype(n), before.shape(n)) for n in names
    }
    assert ours.constants == before.constants


@pytest.mark.realmodel
@pytest.mark.parametrize("name", DETECTORS)
def test_real_detectors_same_findings_with_progress(name, capsys, monkeypatch):
    path = str(fetch_model(name))
    calls: list[tuple[int, int]] = []
    with_bar = check_tensorrt(path, 10, progress=lambda *a: calls.append(a))
    assert with_bar == check_tensorrt(path, 10)
    assert calls[0][0] == 0 and calls[-1][0] == calls[-1][1] == calls[0][1]
    code, out = main(["check", path]), capsys.readouterr()
    monkeypatch.setattr("graphopt.commands.inspect.PROGRESS_NODES", 10)
    code2, out2 = main(["check", path]), capsys.readouterr()
    assert (code2, out2.out) == (code, out.out) and out.err == ""
    lines = out2.err.splitlines()  # (not a terminal: one line per drawing)
    total = calls[0][1]
    assert lines[0].startswith(f"check (shape facts)    0/{total} [")
    assert lines[1].startswith(f"check (TensorRT rules) 0/{total} [")
    assert lines[-1].startswith(f"check (TensorRT rules) {total}/{total} [=====")


def test_big_model_bar_on_stderr_only(tmp_path, capsys):
    path = tmp_path / "d.onnx"
    onnx.save(_diamonds(12_000), str(path))  # over PROGRESS_NODES (10k): the default shows it
    assert main(["check", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out == f"{path}: TensorRT 10.15: 0 errors, 0 warnings\n"
    lines = err.splitlines()
    assert lines[0].startswith("check (shape facts)    0/12000 [")
    assert lines[1].startswith("check (TensorRT rules) 0/12000 [")
    assert lines[-1].startswith("check (TensorRT rules) 12000/12000 [========================]")
    assert main(["check", "--no-progress", str(path)]) == 0
    assert capsys.readouterr() == (out, "")


class _Terminal:
    """A stderr that says it is a terminal, keeping what is written."""

    def __init__(self) -> None:
        self.text = ""

    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass


def test_terminal_bar_redrawn_in_place(tmp_path, capsys, monkeypatch):
    path = tmp_path / "d.onnx"
    onnx.save(_diamonds(12_000), str(path))
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["check", str(path)]) == 0
    monkeypatch.undo()
    assert capsys.readouterr().out == f"{path}: TensorRT 10.15: 0 errors, 0 warnings\n"
    drawn = terminal.text.split("\r")[1:]  # each drawing starts with a carriage return
    assert drawn[0].startswith("check (shape facts)    0/12000 [")
    assert drawn[1].startswith("check (TensorRT rules) 0/12000 [")
    assert drawn[-1].startswith("check (TensorRT rules) 12000/12000 [")
    assert terminal.text.endswith("\n") and terminal.text.count("\n") == 1  # one line, ended
    assert {len(d.split(" 0/")[0]) for d in drawn[:2]} == {len("check (TensorRT rules)")}


def test_no_stderr_no_bar(tmp_path, capsys, monkeypatch):
    path = tmp_path / "d.onnx"
    onnx.save(_diamonds(12_000), str(path))
    monkeypatch.setattr(sys, "stderr", None)
    assert main(["check", str(path)]) == 0
    monkeypatch.undo()
    assert capsys.readouterr().out == f"{path}: TensorRT 10.15: 0 errors, 0 warnings\n"
