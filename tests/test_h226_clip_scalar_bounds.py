"""A Clip bound of one element and rank 2 or more is no scalar (H226): the spec makes Clip's
min and max "tensor(T)" of empty shape, onnxruntime also runs shape [1] and refuses any other
shape when the node runs ("min should be a scalar"). The rules read it as a number: the
decomposed HardSwish / HardSigmoid became the one op, and Conv → Clip com.microsoft.FusedConv,
so a model that fails in onnxruntime came back running, without a word. Now the rewrite is
refused; a scalar or a [1] bound still fuses."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import graphopt
from graphopt.errors import BackendError
from tests.fusion_models import build, ops, run_at

HEAD = '<ir_version: 8, opset_import: ["" : 14]>\ng (float[1,2,3,3] x) => (float[1,2,3,3] y) {\n'
HARDSWISH = "a = Add(x, three)\nc = Clip(a, lo, hi)\nm = Mul(x, c)\ny = Div(m, six)"
HSIGMOID = "a = Add(x, three)\nc = Clip(a, lo, hi)\ny = Div(c, six)"
AFFINE = "s = Mul(x, al)\nb = Add(s, be)\ny = Clip(b, lo, hi)"
CONV_CLIP = "c = Conv<pads=[1,1,1,1]>(x, w, bias)\ny = Clip(c, lo, hi)"
CONV_HARDSWISH = (
    "c = Conv<pads=[1,1,1,1]>(x, w, bias)\na = Add(c, three)\nr = Clip(a, lo, hi)\n"
    "m = Mul(c, r)\ny = Div(m, six)"
)
CASES = [
    pytest.param(HARDSWISH, "default", "HardSwish", 0.0, 6.0, id="hardswish"),
    pytest.param(HSIGMOID, "default", "HardSigmoid", 0.0, 6.0, id="hardsigmoid"),
    pytest.param(AFFINE, "default", "HardSigmoid", 0.0, 1.0, id="hardsigmoid-affine"),
    pytest.param(
        CONV_CLIP, "ort-fusions", "com.microsoft.FusedConv", -1.0, 2.0, id="fusedconv-clip"
    ),
    pytest.param(
        CONV_HARDSWISH, "ort-fusions", "com.microsoft.FusedConv", 0.0, 6.0, id="fusedconv-hardswish"
    ),
]
X = {"x": np.linspace(-6, 6, 18, dtype=np.float32).reshape(1, 2, 3, 3)}


def _model(body: str, lo: np.ndarray, hi: np.ndarray) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    inits = {
        "three": np.array(3.0, np.float32),
        "six": np.array(6.0, np.float32),
        "al": np.array(1 / 6, np.float32),
        "be": np.array(0.5, np.float32),
        "w": rng.uniform(-1, 1, (2, 2, 3, 3)).astype(np.float32),
        "bias": rng.uniform(-1, 1, 2).astype(np.float32),
        "lo": lo,
        "hi": hi,
    }
    return build(HEAD + body + "\n}", inits)  # (initializers the body does not read: no matter)


@pytest.mark.parametrize("bound", ["lo", "hi"])
@pytest.mark.parametrize("shape", [[1, 1], [1, 1, 1]])
@pytest.mark.parametrize(("body", "pipeline", "fused", "lo", "hi"), CASES)
def test_a_clip_bound_of_rank_two_or_more_is_not_read_as_a_number(
    body, pipeline, fused, lo, hi, shape, bound
):
    bounds = {"lo": np.array(lo, np.float32), "hi": np.array(hi, np.float32)}
    bounds[bound] = bounds[bound].reshape(shape)
    model = _model(body, **bounds)
    with pytest.raises(BackendError, match="running Clip node"):
        run_at(model, X, "disable")
    out = graphopt.optimize(model, pipeline)
    assert fused not in ops(out) and "Clip" in ops(out), ops(out)
    with pytest.raises(BackendError, match="running Clip node"):  # as the original
        run_at(out, X, "disable")


@pytest.mark.parametrize("shape", [[], [1]])
@pytest.mark.parametrize(("body", "pipeline", "fused", "lo", "hi"), CASES)
def test_a_scalar_or_one_element_vector_bound_still_fuses(body, pipeline, fused, lo, hi, shape):
    bounds = {"lo": np.array(lo, np.float32).reshape(shape), "hi": np.array(hi, np.float32)}
    model = _model(body, **bounds)
    out = graphopt.optimize(model, pipeline)
    assert fused in ops(out) and "Clip" not in ops(out), ops(out)
    want, got = run_at(model, X, "disable")["y"], run_at(out, X, "disable")["y"]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
