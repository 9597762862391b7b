"""eliminate-noops and constant-folding leave alone a node whose inputs or attributes do not fit
it, which onnxruntime refuses (H211): a one-input Concat whose axis is past the rank, a
one-output Split whose split is not the axis's length or that gives neither (or both) of split
and num_outputs at opset 18, a Tile whose repeats or a Pad whose zero pads are not as long as
the rank, a Pad's or a Slice's axis past the rank, and a Cast with saturate=0 to a type that is
no float8. Each was bypassed (or folded: Split-18 without num_outputs read as one part, Cast
saturate=0 as a Cast) into a model that runs; onnxruntime refuses each original, and the
result now as well, in all pipelines."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser
import pytest
from onnx import numpy_helper

import graphopt
from graphopt.backends.onnxruntime import probe_failure, run, session

PIPELINES = ("default", "ort-cpu", "tensorrt")
FEEDS = {"x": np.arange(6, dtype=np.float32).reshape(2, 3)}


def _model(opset: int, body: str, inits: dict[str, np.ndarray]) -> onnx.ModelProto:
    model = onnx.parser.parse_model(
        f"""<ir_version: 9, opset_import: ["" : {opset}]>
        g (float[2,3] x) => (float[2,3] y) {{ {body} }}"""
    )
    for name, value in inits.items():
        model.graph.initializer.append(numpy_helper.from_array(value, name))
    return model


ZEROS2 = np.zeros(2, np.int64)

INVALID = {
    "concat-axis-past-rank": (13, "s = Concat<axis = 5>(x)\n y = Neg(s)", {}, "Concat"),
    "split-13-split-not-the-axis-length": (
        13,
        "s = Split(x, k)\n y = Neg(s)",
        {"k": np.array([1])},
        "Split",
    ),
    "split-11-split-not-the-axis-length": (
        11,
        "s = Split<split = [1]>(x)\n y = Neg(s)",
        {},
        "Split",
    ),
    "split-18-without-num-outputs": (18, "s = Split(x)\n y = Neg(s)", {}, "Split"),
    "split-18-num-outputs-2-one-output": (
        18,
        "s = Split<num_outputs = 2>(x)\n y = Neg(s)",
        {},
        "Split",
    ),
    "split-18-split-and-num-outputs": (
        18,
        "s = Split<num_outputs = 1>(x, k)\n y = Neg(s)",
        {"k": np.array([2])},
        "Split",
    ),
    "fold-split-18-without-num-outputs": (
        18,
        "c = Constant<value = float[2,3] {1, 2, 3, 4, 5, 6}>()\n s = Split(c)\n y = Add(x, s)",
        {},
        "Split",
    ),
    "tile-repeats-shorter-than-rank": (
        13,
        "s = Tile(x, k)\n y = Neg(s)",
        {"k": np.array([1])},
        "Tile",
    ),
    "pad-zeros-shorter-than-rank": (13, "s = Pad(x, p)\n y = Neg(s)", {"p": ZEROS2}, "Pad"),
    "pad-zeros-longer-than-rank": (
        13,
        "s = Pad(x, p)\n y = Neg(s)",
        {"p": np.zeros(6, np.int64)},
        "Pad",
    ),
    "pad-axis-past-rank": (
        18,
        "s = Pad(x, p, , a)\n y = Neg(s)",
        {"p": ZEROS2, "a": np.array([7])},
        "Pad",
    ),
    "slice-axis-past-rank": (
        13,
        "s = Slice(x, st, en, ax)\n y = Neg(s)",
        {"st": np.array([0]), "en": np.array([2**62]), "ax": np.array([5])},
        "Slice",
    ),
    "cast-saturate-0-to-float": (19, "s = Cast<to = 1, saturate = 0>(x)\n y = Neg(s)", {}, "Cast"),
    "fold-cast-saturate-0-to-int32": (
        19,
        "c = Constant<value = float[2,3] {1, 2, 3, 4, 5, 6}>()\n"
        " s = Cast<to = 6, saturate = 0>(c)\n f = Cast<to = 1>(s)\n y = Add(x, f)",
        {},
        "Cast",
    ),
}


@pytest.mark.parametrize("pipeline", PIPELINES)
@pytest.mark.parametrize("case", sorted(INVALID))
def test_a_node_onnxruntime_refuses_stays_refused(case: str, pipeline: str):
    opset, body, inits, op = INVALID[case]
    model = _model(opset, body, inits)
    assert probe_failure(model, FEEDS) is not None  # onnxruntime refuses the original
    out = graphopt.optimize(model, pipeline)
    assert op in [n.op_type for n in out.graph.node]
    assert probe_failure(out, FEEDS) is not None


VALID = {
    "concat-one-input": (13, "s = Concat<axis = -1>(x)\n y = Neg(s)", {}, "Concat"),
    "split-13-whole-axis": (13, "s = Split<axis = 1>(x, k)\n y = Neg(s)", {"k": np.array([3])}),
    "split-18-num-outputs-1": (18, "s = Split<num_outputs = 1>(x)\n y = Neg(s)", {}),
    "tile-ones": (13, "s = Tile(x, k)\n y = Neg(s)", {"k": np.array([1, 1])}),
    "pad-zeros": (13, "s = Pad(x, p)\n y = Neg(s)", {"p": np.zeros(4, np.int64)}),
    "pad-zeros-on-an-axis": (
        18,
        "s = Pad(x, p, , a)\n y = Neg(s)",
        {"p": ZEROS2, "a": np.array([-1])},
    ),
    "slice-whole": (
        13,
        "s = Slice(x, st, en, ax)\n y = Neg(s)",
        {"st": np.array([0]), "en": np.array([2**62]), "ax": np.array([-1])},
    ),
    "cast-saturate-1-to-float": (19, "s = Cast<to = 1, saturate = 1>(x)\n y = Neg(s)", {}),
}


@pytest.mark.parametrize("case", sorted(VALID))
def test_no_ops_that_fit_their_input_still_go(case: str):
    opset, body, inits, *_ = VALID[case]
    model = _model(opset, body, inits)
    onnx.checker.check_model(model, full_check=True)
    out = graphopt.optimize(model)
    assert [n.op_type for n in out.graph.node] == ["Neg"]
    want = run(session(model, level="disable"), FEEDS)
    got = run(session(out, level="disable"), FEEDS)
    np.testing.assert_array_equal(got["y"], want["y"])


@pytest.mark.parametrize(
    "dims, shape, bypassed",
    [
        ([0, 3], [0, -1], False),  # -1 beside a copied 0: onnxruntime refuses
        ([3, 0], [-1, 0], False),
        ([0, 3], [-1, 3], True),
        ([2, 0], [2, -1], True),
    ],
)
def test_a_reshape_whose_minus_one_stands_beside_a_zero_is_not_bypassed(dims, shape, bypassed):
    model = onnx.parser.parse_model(
        f"""<ir_version: 9, opset_import: ["" : 13]>
        g (float[{dims[0]},{dims[1]}] x) => (float[?,?] y) {{ s = Reshape(x, k)
                                                          y = Neg(s) }}"""
    )
    model.graph.initializer.append(numpy_helper.from_array(np.array(shape), "k"))
    feeds = {"x": np.zeros(dims, np.float32)}
    refused = probe_failure(model, feeds)
    assert (refused is None) == bypassed
    for pipeline in PIPELINES:
        out = graphopt.optimize(model, pipeline)
        assert ("Reshape" not in [n.op_type for n in out.graph.node]) == bypassed
        assert (probe_failure(out, feeds) is None) == bypassed
