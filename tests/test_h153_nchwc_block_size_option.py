"""`ort-nchwc-layout: {block_size: b}` takes only block sizes onnxruntime has (powers of two
from 8: MLAS uses 8 and 16), or 0 (measure it). Another b targets no CPU: the pass reordered
the filters for it anyway, and without the fallback guard the model computed wrong values or
failed on every CPU; now the option is refused before anything runs (a PipelineError naming
the file and line from YAML, exit 2 and no output file from the CLI)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphopt
from graphopt.backends.onnxruntime import session
from graphopt.errors import PipelineError
from graphopt.passes.ort_nchwc import NCHWC_DOMAIN, OrtNchwcLayout
from graphopt.pipeline import make_pipeline
from tests.test_pass_ort_nchwc import needs_nchwc

RNG = np.random.default_rng(1532)


def _model() -> onnx.ModelProto:
    """Relu(Conv(x[1,16,8,8], W[24,16,3,3])): 24 output channels, padded differently per b."""
    weight = RNG.standard_normal((24, 16, 3, 3)).astype(np.float32) / np.float32(12)
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "W"], ["a"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["a"], ["y"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 24, 8, 8])],
        [numpy_helper.from_array(weight, "W")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("block", [-8, -1, 1, 2, 3, 4, 6, 12, 24])
def test_a_block_size_no_cpu_has_is_refused(block):
    with pytest.raises(ValueError, match=f"block_size must be 0 .* got {block}"):
        OrtNchwcLayout(block_size=block)
    with pytest.raises(ValueError):
        OrtNchwcLayout(block_size=block, fallback=True)


@needs_nchwc
@pytest.mark.parametrize("block", [0, 8, 16])
def test_the_block_sizes_onnxruntime_has_are_taken(block):
    original = _model()
    out = graphopt.optimize(original, make_pipeline("t", [OrtNchwcLayout(block_size=block)]))
    assert any(n.domain == NCHWC_DOMAIN and n.op_type == "Conv" for n in out.graph.node)
    if block == 0:  # this CPU's b: the values must hold
        x = RNG.standard_normal((1, 16, 8, 8)).astype(np.float32)
        (expected,) = session(original, threads=1, level="disable").run(None, {"x": x})
        (got,) = session(out, threads=1, level="disable").run(None, {"x": x})
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_a_yaml_block_size_of_6_names_the_file_and_line(tmp_path):
    recipe = tmp_path / "p.yaml"
    recipe.write_text("name: p\npasses:\n  - ort-nchwc-layout: {block_size: 6}\n")
    with pytest.raises(PipelineError, match=r"p\.yaml:3: .*block_size must be 0 .* got 6"):
        graphopt.optimize(_model(), str(recipe))


def test_the_cli_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys):
    from graphopt.cli import main

    recipe = tmp_path / "p.yaml"
    recipe.write_text("name: p\npasses:\n  - ort-nchwc-layout: {block_size: 12, fallback: true}\n")
    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(_model(), src)
    assert main(["optimize", str(src), "-o", str(out), "--pipeline", str(recipe)]) == 2
    err = capsys.readouterr().err.strip()
    assert "block_size must be 0" in err and "got 12" in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()
