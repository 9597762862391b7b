"""Review 11 of the onnxruntime pipelines (`ort-fusions`, `ort-cpu`, `ort-cpu-native`): cases
that computed other values than the original in onnxruntime, or mixed block sizes.

Every model runs at ORT_DISABLE_ALL (so the only fused and NCHWc ops are graphopt's) next to the
original; the channel counts (20: padded by any block size 8 or 16) hold for either block size.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import graphopt
from graphopt.backends.onnxruntime import run, session
from graphopt.passes.ort_nchwc import (
    BLOCK_SIZE_KEY,
    NCHWC_DOMAIN,
    OrtNchwcLayout,
    measured_block_size,
)
from graphopt.pipeline import make_pipeline
from tests.models_util import run as run_passes

BLOCK, WHY = measured_block_size()
needs_nchwc = pytest.mark.skipif(BLOCK == 0, reason=f"no NCHWc kernels here: {WHY}")
RNG = np.random.default_rng(11)


def parsed(text: str, inits: dict[str, np.ndarray]) -> onnx.ModelProto:
    model = onnx.parser.parse_model(text)
    model.graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in inits.items())
    return model


def outputs(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return run(session(model, threads=1, level="disable"), feeds)


def weight(*shape: int) -> np.ndarray:
    return (RNG.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))).astype(np.float32)


def assert_same_at_disable_all(original: onnx.ModelProto, rewritten: onnx.ModelProto) -> None:
    feeds = {"x": RNG.standard_normal((1, 16, 6, 6)).astype(np.float32)}
    expected, got = outputs(original, feeds), outputs(rewritten, feeds)
    for name, value in expected.items():
        assert np.isfinite(value).all()
        np.testing.assert_allclose(got[name], value, rtol=1e-4, atol=1e-5, err_msg=name)


# A Conv whose 20 output channels are all Relu(-100 + 1) = 0, while its padded channels are
# Relu(0 + 1) = 1: scaled by 1e20 twice, the padded channels overflow to inf (1e40) and the
# real ones stay 0. The layout pass bounds the padded channels to prove that a Conv reading
# them (through zero filters) gets finite values: inf · 0 = NaN would spread to every channel.
_OVERFLOWING = """
    c = Conv <pads = [1, 1, 1, 1]> (x, W1, B1)
    a = Add (c, one)
    r = Relu (a)
    m1 = Mul (r, big)
    m2 = Mul (m1, big)
"""


def _overflowing_inits() -> dict[str, np.ndarray]:
    return {
        "W1": np.zeros((20, 16, 3, 3), np.float32),
        "B1": np.full(20, -100, np.float32),
        "one": np.array(1, np.float32),
        "big": np.array(1e20, np.float32),
        "W2": weight(16, 20, 1, 1),
        "B2": weight(16, 1)[:, 0],
    }


def _overflowing(tail: str, **inits: np.ndarray) -> onnx.ModelProto:
    text = f"""
    <ir_version: 8, opset_import: ["" : 13]>
    g (float[1, 16, 6, 6] x) => (float[1, 16, 6, 6] y) {{
        {_OVERFLOWING}
        {tail}
    }}
    """
    return parsed(text, _overflowing_inits() | inits)


@needs_nchwc
def test_a_bound_float32_overflows_is_unknown_not_scaled_back():
    """(⟦r⟧·1e20)·1e20·0: the padded channels are inf·0 = NaN, not 1e40·0 = 0; a Conv reading
    them stays NCHW (the pass read them as 0 and the output was NaN everywhere)."""
    original = _overflowing(
        "z = Mul (m2, zero)\n y = Conv (z, W2, B2)", zero=np.array(0, np.float32)
    )
    rewritten = run_passes(original, "ort-nchwc-layout")
    assert_same_at_disable_all(original, rewritten)


@needs_nchwc
def test_sigmoid_of_unknown_padded_channels_is_unknown():
    """σ(NaN) = NaN: a Sigmoid's padded channels are bounded by 1 only where its input's are
    finite (they were whatever they held, so the Conv after it computed NaN)."""
    original = _overflowing(
        "z = Mul (m2, zero)\n s = Sigmoid (z)\n y = Conv (s, W2, B2)",
        zero=np.array(0, np.float32),
    )
    rewritten = run_passes(original, "ort-nchwc-layout")
    assert_same_at_disable_all(original, rewritten)


@needs_nchwc
def test_a_conv_fused_with_a_sum_keeps_its_own_padded_bound():
    """A depthwise Conv of inf padded channels writes NaN there (inf·0); Add(it, e) fused into
    its Sum input is NaN + e, not e's bound alone (the 1×1 Conv after it computed NaN)."""
    original = _overflowing(
        """d = Conv <group = 20, pads = [1, 1, 1, 1]> (m2, Wd, Bd)
        e = Conv <pads = [1, 1, 1, 1]> (x, W3, B3)
        s = Add (d, e)
        y = Conv (s, W2, B2)""",
        Wd=weight(20, 1, 3, 3),
        Bd=weight(20, 1)[:, 0],
        W3=weight(20, 16, 3, 3),
        B3=weight(20, 1)[:, 0],
    )
    rewritten = run_passes(original, "ort-nchwc-layout")
    summed = [n for n in rewritten.graph.node if n.domain == NCHWC_DOMAIN and len(n.input) == 4]
    assert summed, "the Add is fused into a Conv's Sum input"
    assert_same_at_disable_all(original, rewritten)


def _made_for_another_block_size() -> tuple[onnx.ModelProto, int]:
    """Three Convs, one of which the layout pass takes at this CPU's block size only (10 input
    channels: read as NCHW below 16, not a multiple of 4 at 8; 8 per group: a multiple of 8,
    not of 16), rewritten for the other block size: (that model, the other block size)."""
    other = 8 if BLOCK == 16 else 16
    text = """
    <ir_version: 8, opset_import: ["" : 13]>
    g (float[1, 16, 6, 6] x, float[1, 10, 6, 6] w, float[1, 16, 6, 6] v)
      => (float[1, 16, 6, 6] a, float[1, 16, 6, 6] b, float[1, 16, 6, 6] c) {
        a = Conv <pads = [1, 1, 1, 1]> (x, Wa)
        b = Conv <pads = [1, 1, 1, 1]> (w, Wb)
        c = Conv <pads = [1, 1, 1, 1], group = 2> (v, Wc)
    }
    """
    inits = {"Wa": weight(16, 16, 3, 3), "Wb": weight(16, 10, 3, 3), "Wc": weight(16, 8, 3, 3)}
    original = parsed(text, inits)
    made = graphopt.optimize(original, make_pipeline("t", [OrtNchwcLayout(block_size=other)]))
    return made, other


def _nchwc_ops(model: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in model.graph.node if n.domain == NCHWC_DOMAIN]


@needs_nchwc
@pytest.mark.parametrize("pipeline", ["ort-cpu-native", "ort-cpu"])
def test_a_model_holding_nchwc_ops_for_another_block_size_is_left_as_it_is(pipeline):
    """ort-cpu-native rewrote the Conv the other block size had left for this one and relabeled
    the model for this CPU: its other Convs' filters, reordered for the other block size, made
    it compute wrong values on every CPU (on this one: |Δ| ≈ 4 on a Conv of unit outputs), and
    ort-cpu guarded that graph, its 'NCHW fallback' holding the other block size's ops."""
    made, other = _made_for_another_block_size()
    assert "Conv" in _nchwc_ops(made) and any(n.domain == "" for n in made.graph.node)
    again = graphopt.optimize(made, pipeline)
    assert _nchwc_ops(again) == _nchwc_ops(made)
    assert [n.op_type for n in again.graph.node] == [n.op_type for n in made.graph.node]
    assert {p.key: p.value for p in again.metadata_props} == {BLOCK_SIZE_KEY: str(other)}
