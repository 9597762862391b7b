"""H182: `inspect` and `check` on big models: a progress bar on stderr from
`inspect.PROGRESS_NODES` nodes on (none below it, none with --no-progress), the report on
stdout the same with or without it, and a readable text report (inputs and outputs past
`LISTED`, a group's op sequence past `SHOWN_OPS`, shortened with counts)."""

from __future__ import annotations

import json

import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.cli import main
from graphopt.commands import inspect as inspect_cmd
from graphopt.realmodels import fetch_model


def _diamonds(n: int) -> onnx.ModelProto:
    """x → (Relu, Sigmoid) → Add, repeated: a chain of diamonds of about `n` nodes."""
    nodes, cur = [], "x"
    for i in range(n // 3):
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
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_step_labels_one_width():
    # a terminal redraws the line over the last (\r): a shorter label left the last showing
    labels = [inspect_cmd._StepBar._label(done) for done in range(len(inspect_cmd._STEPS) + 1)]
    assert len({len(label) for label in labels}) == 1
    assert [label.rstrip() for label in labels] == [
        "inspect (shape facts)",
        "inspect (post-dominators)",
        "inspect (fusion groups)",
        "inspect (report)",
        "inspect (done)",
    ]


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_inspect_progress_on_a_big_model(tmp_path, capsys):
    path = tmp_path / "d.onnx"
    onnx.save(_diamonds(12_000), str(path))  # over PROGRESS_NODES (10k): the default shows it
    code, out, err = _run(capsys, "inspect", str(path))
    assert code == 0
    lines = err.splitlines()  # (not a terminal: one line per drawing, as quantize's)
    assert lines[0].startswith("inspect (shape facts)     0/4 [")
    assert lines[-1].startswith("inspect (done)            4/4 [========================] 100%")
    assert "nodes: 12000" in out and "Relu 4000" in out
    code, quiet, err = _run(capsys, "inspect", "--no-progress", str(path))
    assert (code, quiet, err) == (0, out, "")


def test_inspect_and_check_progress_on_a_real_detector(monkeypatch, capsys):
    path = str(fetch_model("layout_cdla"))  # 1493 nodes: no bar at the default threshold
    code, out, err = _run(capsys, "inspect", path)
    assert (code, err) == (0, "")
    code, check_out, err = _run(capsys, "check", path)
    assert err == ""
    monkeypatch.setattr(inspect_cmd, "PROGRESS_NODES", 1000)
    code2, out2, err = _run(capsys, "inspect", path)
    assert (code2, out2) == (0, out)
    assert err.splitlines()[0].startswith("inspect (shape facts)     0/4")
    assert err.splitlines()[-1].startswith("inspect (done)            4/4")
    code3, check_out2, err = _run(capsys, "check", path)
    assert (code3, check_out2) == (code, check_out)
    # (H185: the bar counts the nodes of the per-node walk, not one step)
    assert err.splitlines()[0].startswith("check (shape facts)    0/1493 [")
    assert err.splitlines()[-1].startswith("check (TensorRT rules) 1493/1493 [====")
    code3, check_out3, err = _run(capsys, "check", "--no-progress", path)
    assert (code3, check_out3, err) == (code, check_out, "")


def test_inspect_lists_shortened_on_a_huge_model(tmp_path, capsys):
    n = 25  # 25 inputs and outputs, and a 40-op group
    nodes = [helper.make_node("Relu", [f"x{i}"], [f"y{i}"], name=f"r{i}") for i in range(n)]
    cur = "y0"
    for i in range(40):
        nodes.append(helper.make_node("Neg" if i % 2 else "Abs", [cur], [f"z{i}"], name=f"e{i}"))
        cur = f"z{i}"
    graph = helper.make_graph(
        nodes,
        "wide",
        [helper.make_tensor_value_info(f"x{i}", TensorProto.FLOAT, [1, 4]) for i in range(n)],
        [helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, [1, 4]) for i in range(1, n)]
        + [helper.make_tensor_value_info(cur, TensorProto.FLOAT, [1, 4])],
    )
    path = tmp_path / "wide.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    code, out, _ = _run(capsys, "inspect", str(path))
    assert code == 0
    lines = out.splitlines()
    start = lines.index("inputs:")
    assert lines[start + 1 : start + 3] == ["  x0: float [1, 4]", "  x1: float [1, 4]"]
    assert lines[start + 20] == "  x19: float [1, 4]"
    assert lines[start + 21] == "  ... and 5 more inputs (--json lists all)"
    assert lines[start + 22] == "outputs:"
    assert "  ... and 5 more outputs (--json lists all)" in lines
    group = next(line for line in lines if line.startswith("    41 nodes"))
    assert "Relu → Abs → Neg → Abs → Neg → Abs → Neg → Abs → … 29 ops … → " in group
    assert group.count("→") == 7 + 2 + 3  # 8 ops, the cut, 4 ops
    code, text, _ = _run(capsys, "inspect", "--json", str(path))
    assert code == 0
    report = json.loads(text)
    assert len(report["inputs"]) == n and len(report["outputs"]) == n
    assert len(report["fusion"]["largest"][0]["ops"]) == 41


@pytest.mark.parametrize("size", [12, 13])
def test_op_sequence_cut_only_past_shown_ops(size):
    ops = [f"Op{i}" for i in range(size)]
    text = inspect_cmd._ops_text(ops)
    if size <= inspect_cmd.SHOWN_OPS:
        assert text == " → ".join(ops)
    else:
        assert text == " → ".join(ops[:8]) + " → … 1 op … → " + " → ".join(ops[-4:])
