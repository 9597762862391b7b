"""bfloat16 model inputs and outputs in `optimize --verify --inputs` and `bench --inputs`.

numpy has no bfloat16 (onnx stores it as uint16 bits), and onnxruntime's python `run` neither
takes nor returns one from numpy: an .npz entry for a bfloat16 input, whatever its dtype, was
said by onnxruntime only ("Unexpected input data type. Actual: (tensor(float)), expected:
(tensor(bfloat16))"), after the whole optimization. Now an entry for a bfloat16 input is taken as float32
values (rounded to the nearest bfloat16, ties to even), as uint16 bit patterns, or as the
2-byte void np.save writes for an ml_dtypes.bfloat16 array, and fed as an OrtValue of its bits;
another dtype is one line saying what is taken (bfloat16 outputs:
test_s28_feeds_bfloat16_outputs.py)."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.backends.onnxruntime import example_feeds, run
from graphopt.cli import main

# 1 + 2**-8 and 1 + 3·2**-8 are ties (even: 1 and 1 + 2**-6); the others round, or are exact
VALUES = np.array([1.0, 1 + 2**-8, 1 + 3 * 2**-8, 2.5, -3.14159, 1e-3, 65504.0, -0.0], np.float32)


def _nearest_even_bits(values: np.ndarray) -> np.ndarray:
    """bfloat16 bits of finite float32 `values`, rounded to nearest, ties to even (by hand)."""
    bits = values.view(np.uint32).astype(np.uint64)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def _from_bfloat16() -> onnx.ModelProto:
    """y = Cast(x, float32), x bfloat16."""
    graph = helper.make_graph(
        [helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT)],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.BFLOAT16, [len(VALUES)])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [len(VALUES)])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


@pytest.fixture
def bf16_input(tmp_path):
    path = tmp_path / "in.onnx"
    onnx.save(_from_bfloat16(), path)
    return str(path)


@pytest.mark.parametrize(
    "given",
    [
        VALUES,
        _nearest_even_bits(VALUES),
        _nearest_even_bits(VALUES).view(ml_dtypes.bfloat16),  # np.save writes it as |V2
    ],
    ids=["float32", "uint16 bits", "ml_dtypes"],
)
def test_bfloat16_input_is_fed_from_an_npz(tmp_path, bf16_input, given):
    feeds = tmp_path / "f.npz"
    np.savez(feeds, x=given)
    model = onnx.load(bf16_input)
    fed = example_feeds(model, npz=feeds)
    expected = _nearest_even_bits(VALUES).view(ml_dtypes.bfloat16).astype(np.float32)
    got = run(model, fed)["y"]
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)
    assert got[1] == 1.0 and got[2] == 1 + 2**-6  # ties to even


@pytest.mark.parametrize("given", [VALUES, _nearest_even_bits(VALUES)], ids=["f32", "bits"])
def test_bfloat16_input_verifies_and_benches(tmp_path, bf16_input, capsys, given):
    feeds = tmp_path / "f.npz"
    np.savez(feeds, x=given)
    out = tmp_path / "o.onnx"
    assert main(["optimize", bf16_input, "-o", str(out), "--verify", "--inputs", str(feeds)]) == 0
    assert "verify: y: max abs diff 0" in capsys.readouterr().out
    args = ["bench", bf16_input, "--inputs", str(feeds), "--runs", "2", "--no-progress"]
    assert main(args) == 0
    assert "inputs x 8" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["optimize", "bench"])
def test_another_dtype_for_a_bfloat16_input_is_one_line(tmp_path, bf16_input, capsys, command):
    feeds = tmp_path / "f.npz"
    np.savez(feeds, x=VALUES.astype(np.int32))
    args = (
        ["optimize", bf16_input, "-o", str(tmp_path / "o.onnx"), "--verify"]
        if command == "optimize"
        else ["bench", bf16_input, "--runs", "2", "--no-progress"]
    )
    assert main([*args, "--inputs", str(feeds)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "Unexpected input data type" not in err
    assert f"--inputs {feeds}: x is int32, but the model's input is bfloat16" in err
    assert "float32 values" in err and "uint16 bit patterns" in err


def test_seeded_bfloat16_input_points_at_inputs(tmp_path, bf16_input, capsys):
    out = str(tmp_path / "o.onnx")
    assert main(["optimize", bf16_input, "-o", out, "--verify"]) == 2
    err = capsys.readouterr().err.strip()
    assert "has element type BFLOAT16" in err and err.endswith("--inputs NPZ")
