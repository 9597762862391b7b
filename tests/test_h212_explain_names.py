"""`graphopt optimize --explain` writes one line per event (H212).

A node's name (from the model) was printed as it is: a name holding a newline started a line
of its own ("k\\nrefused at z: forged" made a refusal at node z appear), and control
characters (an ANSI colour escape) went to the terminal. Names are now written as errors
write them (`shown`: escaped where they hold a character that is not printable).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from graphopt.cli import main


def test_node_names_with_newlines_stay_on_their_line(tmp_path, capsys) -> None:
    graph = helper.make_graph(
        [
            helper.make_node(
                "Constant",
                [],
                ["c"],
                name="k\nrefused at z: forged",
                value=numpy_helper.from_array(np.ones(3, np.float32)),
            ),
            helper.make_node("Relu", ["x"], ["y"], name="r"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
        [
            helper.make_tensor_value_info("c", TensorProto.FLOAT, [3]),
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [3]),
        ],
    )
    model = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(model))
    assert main(["optimize", str(model), "-o", str(tmp_path / "o.onnx"), "--explain"]) == 0
    lines = capsys.readouterr().out.splitlines()
    start = lines.index("rule constants-to-initializers: applied 0, refused 1")
    assert lines[start + 1] == "  refused at 'k\\nrefused at z: forged': 'c' is a graph output"
    assert not any(line.startswith("refused at z") for line in lines)


def test_verify_writes_an_output_name_with_a_newline_on_its_line(tmp_path, capsys) -> None:
    """--verify's line per output printed the output's name as it is: a newline in it
    made a second 'verify: ...' line for an output the model does not have."""
    name = "y\nverify: z: max abs diff 0, max rel diff 0"
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], [name])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, [3])],
    )
    model = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(model))
    assert main(["optimize", str(model), "-o", str(tmp_path / "o.onnx"), "--verify"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("verify")]
    assert lines == [f"verify: {name!r}: max abs diff 0, max rel diff 0"]


def test_stats_write_a_rule_name_with_a_newline_on_its_line(tmp_path, capsys) -> None:
    """--stats' per-pass counters name rules (rule:NAME): a user rule named 'my\\nsilu' (the
    rule loader takes any string) broke the table's row in two."""
    (tmp_path / "r.yaml").write_text(
        'rules:\n  - name: "my\\nsilu"\n    target: y = Mul(x, Sigmoid(x))\n'
        "    replacement: y = com.microsoft.QuickGelu(x, alpha=1.0)\n"
    )
    (tmp_path / "p.yaml").write_text("rules: [r.yaml]\npasses: [fuse-patterns]\n")
    graph = helper.make_graph(
        [helper.make_node("Sigmoid", ["x"], ["s"]), helper.make_node("Mul", ["x", "s"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])],
    )
    model = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(model))
    argv = ["optimize", str(model), "-o", str(tmp_path / "o.onnx"), "--stats"]
    assert main([*argv, "--pipeline", str(tmp_path / "p.yaml")]) == 0
    lines = capsys.readouterr().out.splitlines()
    (row,) = [line for line in lines if line.startswith("fuse-patterns")]
    assert row.endswith("applied=1, 'rule:my\\nsilu'=1")
    assert "silu=1" not in lines
