"""`optimize --verify` says when an output is ~0 on the comparison inputs: its "max rel diff 1"
(9e-8 of 9e-8, PP-OCRv3's probability map on seeded feeds) read as a total mismatch, while the
bound was --atol alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.cli import main


def _model(folder: Path) -> Path:
    """y = Sigmoid(x - 40) (~4e-18 for x ~ N(0, 1)), r = Relu(x)·2 (~1), with an Identity to
    remove."""
    graph = helper.make_graph(
        [
            helper.make_node("Identity", ["x"], ["i"]),
            helper.make_node("Sub", ["i", "forty"], ["s"]),
            helper.make_node("Sigmoid", ["s"], ["y"]),
            helper.make_node("Relu", ["i"], ["q"]),
            helper.make_node("Mul", ["q", "two"], ["r"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8]),
            helper.make_tensor_value_info("r", TensorProto.FLOAT, [1, 8]),
        ],
        initializer=[
            numpy_helper.from_array(np.array(40, np.float32), "forty"),
            numpy_helper.from_array(np.array(2, np.float32), "two"),
        ],
    )
    path = folder / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def _verify_lines(out: str) -> dict[str, str]:
    return {line.split(": ")[1]: line for line in out.splitlines() if line.startswith("verify: ")}


def test_an_output_near_zero_on_seeded_feeds_is_said_to_be_judged_by_atol(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _model(tmp_path)
    assert main(["optimize", str(path), "-o", str(tmp_path / "o.onnx"), "--verify"]) == 0
    lines = _verify_lines(capsys.readouterr().out)
    assert "(~0 on these inputs: its largest |value| is " in lines["y"]
    assert lines["y"].endswith(", judged by --atol; --inputs NPZ compares real inputs)")
    assert "~0" not in lines["r"]  # an output of ~1 is judged relative to its scale


def test_with_real_inputs_the_note_gives_no_hint_and_a_larger_atol_widens_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _model(tmp_path)
    npz = tmp_path / "in.npz"
    np.savez(npz, x=np.linspace(-1, 1, 8, dtype=np.float32).reshape(1, 8))
    args = ["optimize", str(path), "-o", str(tmp_path / "o.onnx"), "--verify"]
    assert main([*args, "--inputs", str(npz)]) == 0
    lines = _verify_lines(capsys.readouterr().out)
    assert lines["y"].endswith(", judged by --atol)")
    assert "~0" not in lines["r"]
    assert main([*args, "--atol", "10"]) == 0  # every output is within 10 of 0
    lines = _verify_lines(capsys.readouterr().out)
    assert "~0 on these inputs" in lines["r"]
