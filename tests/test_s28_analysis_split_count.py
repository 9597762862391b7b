"""A Split (opset 18) whose `num_outputs` is fewer than its outputs, without a split input
(Split(x, num_outputs=2) -> a, b, c): onnx 1.23's Split inference reads past the sizes it made
and a failed assertion aborts the process, so `shape_facts` (which "never fails"), and with
it `graphopt inspect` and `optimize`, died with SIGABRT and no message (onnxruntime's loader
aborts on the model too). Now the light model that inference reads goes without that
attribute: inference gives up on that node alone, its outputs' dims unknown. The checks run
in a child process: on the parent it aborts."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import onnx
from onnx import TensorProto, helper

from graphopt.analysis import shape_facts
from graphopt.ir import Graph

SHAPE = [1, 4, 5, 5]


def _split(outputs: int, count: int, name: str = "sp") -> onnx.NodeProto:
    return helper.make_node(
        "Split", ["x"], [f"o{i}" for i in range(outputs)], name=name, axis=1, num_outputs=count
    )


def _model(split: onnx.NodeProto) -> onnx.ModelProto:
    nodes = [split, helper.make_node("Relu", ["x"], ["r"], name="relu")]
    nodes.append(helper.make_node("Add", ["r", "o0"], ["y"], name="add"))
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, SHAPE)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)


def _in_function(split: onnx.NodeProto) -> onnx.ModelProto:
    function = helper.make_function(
        "local",
        "Halves",
        ["x"],
        list(split.output),
        [split],
        opset_imports=[helper.make_opsetid("", 18)],
    )
    call = helper.make_node("Halves", ["x"], list(split.output), name="call", domain="local")
    model = _model(call)
    model.opset_import.append(helper.make_opsetid("local", 1))
    model.functions.append(function)
    return model


def _child(code: str, path: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), path],
        capture_output=True,
        text=True,
        timeout=300,
    )


FACTS = """
    import sys, onnx
    from graphopt.analysis import shape_facts
    from graphopt.ir import Graph
    model = onnx.load(sys.argv[1])
    before = model.SerializeToString()
    facts = shape_facts(Graph(model))
    print(facts.shape("r"), facts.shape("o0"), facts.shape("o1"))
    print(model.SerializeToString() == before)
"""


def test_shape_facts_of_a_short_split_count_do_not_abort(tmp_path):
    for i, model in enumerate(
        (_model(_split(3, 2)), _model(_split(2, 1)), _in_function(_split(3, 2)))
    ):
        path = tmp_path / f"m{i}.onnx"
        onnx.save(model, str(path))
        done = _child(FACTS, str(path))
        assert done.returncode == 0, (i, done.returncode, done.stderr[-500:])
        # the Split's outputs unknown, the rest inferred; the model's own Split keeps it
        assert done.stdout.splitlines() == ["(1, 4, 5, 5) None None", "True"], (i, done.stdout)


def test_inspect_reports_the_model(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(_model(_split(3, 2)), str(path))
    done = subprocess.run(
        [sys.executable, "-m", "graphopt", "inspect", str(path), "--groups"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, (done.returncode, done.stderr[-500:])
    assert "ops: Add 1, Relu 1, Split 1" in done.stdout


def test_a_split_of_as_many_outputs_as_its_count_is_inferred():
    """The control: num_outputs equal to the outputs (and more than them, which onnx's
    inference survives) keep the attribute; the dims are inferred."""
    facts = shape_facts(Graph(_model(_split(3, 3))))
    assert facts.shape("o0") == (1, 2, 5, 5) and facts.shape("o2") == (1, 0, 5, 5)
    assert facts.shape("r") == (1, 4, 5, 5)
    model = _model(_split(2, 2))
    facts = shape_facts(Graph(model))
    assert facts.shape("o1") == (1, 2, 5, 5)
    assert [a.name for a in model.graph.node[0].attribute] == ["axis", "num_outputs"]
