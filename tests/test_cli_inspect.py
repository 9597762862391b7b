"""`graphopt inspect`: text and JSON summaries, fusion groups, and one-line errors."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.cli import main


@pytest.fixture()
def model_path(tmp_path):
    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "W")
    k = helper.make_tensor("kval", TensorProto.FLOAT, [1], [2.0])
    nodes = [
        helper.make_node("Conv", ["x", "W"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Sigmoid", ["c"], ["s"], name="sigmoid"),
        helper.make_node("Mul", ["c", "s"], ["m"], name="silu"),
        helper.make_node("Constant", [], ["k"], name="const", value=k),
        helper.make_node("Mul", ["m", "k"], ["z"], name="scale"),
        helper.make_node("Transpose", ["z"], ["y"], name="transpose", perm=[0, 1, 3, 2]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    return path


def test_text_summary(model_path, capsys):
    assert main(["inspect", str(model_path)]) == 0
    out = capsys.readouterr().out
    assert "opsets: ai.onnx 13" in out
    assert "nodes: 6  initializers: 1  parameters: 109 (436 B)" in out  # 108 weights + 1 const
    assert "  x: float [N, 3, 8, 8]" in out
    assert "  y: float [N, 4, 8, 8]" in out  # inferred: the file declares no shape
    assert "ops: Mul 2, Constant 1, Conv 1, Sigmoid 1, Transpose 1" in out
    # conv → sigmoid → silu → scale fuse (elementwise epilogue of the Conv); the Transpose
    # (injective) cannot join a Conv-anchored group; the Constant stays alone.
    assert "fusion groups (TVM FuseOps, cap 256): 2 groups + 1 Constant node;" in out
    assert "sizes: 1×1, 4×1" in out
    assert "4 nodes OUT_EWISE_FUSABLE anchor conv: Conv → Sigmoid → Mul → Mul" in out
    assert "groups:" not in out


def test_groups_and_json(model_path, capsys):
    assert main(["inspect", str(model_path), "--groups", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["nodes"] == 6
    assert report["ops"] == {"Mul": 2, "Constant": 1, "Conv": 1, "Sigmoid": 1, "Transpose": 1}
    assert report["inputs"] == [{"name": "x", "dtype": "float", "shape": ["N", 3, 8, 8]}]
    assert report["post_dominators"]["under_exit"] == 1  # only the Transpose writes the output
    assert report["post_dominators"]["deepest_chain_nodes"] == [
        "conv",
        "silu",
        "scale",
        "transpose",
    ]
    groups = report["fusion"]["groups"]
    assert [g["nodes"] for g in groups] == [
        ["const"],
        ["conv", "sigmoid", "silu", "scale"],
        ["transpose"],
    ]
    assert groups[1]["anchor"] == "conv"
    assert report["fusion"]["max_group_size"] == 256


def test_group_cap_option(model_path, capsys):
    assert main(["inspect", str(model_path), "--json", "--max-group-size", "2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert max(int(k) for k in report["fusion"]["sizes"]) <= 2


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        (b"", "empty file"),
        (b"this is not a protobuf \xff\xfe", "not an ONNX model"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, content, message):
    path = tmp_path / "bad.onnx"
    if content is not None:
        path.write_bytes(content)
    assert main(["inspect", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("graphopt inspect: error:")
    assert message in lines[0]


def test_bad_cap_is_an_error(model_path, capsys):
    assert main(["inspect", str(model_path), "--max-group-size", "0"]) == 2
    assert "--max-group-size must be at least 1" in capsys.readouterr().err


@pytest.mark.realmodel
def test_real_layout_cdla(real_model, capsys):
    assert main(["inspect", str(real_model("layout_cdla")), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ops"]["Conv"] == 102
    assert report["fusion"]["constant_singletons"] == report["ops"]["Constant"]
    largest = report["fusion"]["largest"][0]
    assert largest["ops"][:2] == ["Conv", "BatchNormalization"]


def test_bodies_are_summarized(tmp_path, capsys):
    """A model whose network sits in If branches (Silero VAD: 5 nodes outside, 684 inside)
    showed only its 5 outer nodes and 8 bytes of parameters; the bodies now have a line."""
    from tests.test_subgraphs import loop_model

    path = tmp_path / "loop.onnx"
    onnx.save(loop_model(), str(path))
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    # the Loop body, and the two branches of the If inside it: 8 + 3 + 3 nodes, 2 Conv
    # weights of 4·4·3·3 and 4 BN vectors of 4 each per branch, the body's int64 `two`
    assert "If/Loop/Scan bodies: 3 graphs, 14 nodes, parameters 321 (1.3 KiB); ops: " in out
    assert "ops: Identity 3, BatchNormalization 2, Cast 2, Conv 2, Add 1," in out
    assert main(["inspect", "--json", str(path)]) == 0
    bodies = json.loads(capsys.readouterr().out)["bodies"]
    assert bodies["graphs"] == 3 and bodies["nodes"] == 14 and bodies["ops"]["If"] == 1
    assert bodies["parameter_bytes"] == 2 * (144 + 16) * 4 + 8


def test_inputs_and_outputs_show_their_declared_shapes(tmp_path, capsys):
    # outputs as the model declares them (an open dim as "?", not inference's unk__N); an
    # output declared without a shape as inferred, its unknown dims as "?" too
    model = helper.make_model(
        helper.make_graph(
            [helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Relu", ["x"], ["z"])],
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
            [
                helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3]),
                helper.make_tensor_value_info("z", TensorProto.FLOAT, None),
            ],
        ),
        opset_imports=[helper.make_opsetid("", 13)],
    )
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    assert main(["inspect", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [t["shape"] for t in report["outputs"]] == [["?", 3], ["N", 3]]
    assert report["inputs"][0]["shape"] == ["N", 3]
