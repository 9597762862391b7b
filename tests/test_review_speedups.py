"""Adversarial cases for the per-run caches and shortcuts of the optimize speed-ups (7b9a032..):
shared weights and statistics, statistics that are graph inputs or outputs, float16 / float64
folds, subgraph readers of a rewritten tensor, a Conv output that is a graph output. Each is
optimized with the pipelines whose passes touch it and run in onnxruntime against the original;
where the rule's choice is documented (a spare statistic, a refusal), that is asserted too."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphopt
from graphopt.api import optimize_with_report
from tests.conftest import assert_same_outputs

PIPELINES = ["default", "ort-cpu", "tensorrt"]
_DTYPES = {np.float32: TensorProto.FLOAT, np.float16: TensorProto.FLOAT16}
_DTYPES[np.float64] = TensorProto.DOUBLE


def _tensor(name: str, shape: tuple[int, ...], dtype: type, seed: int, positive: bool = False):
    value = np.random.default_rng(seed).standard_normal(shape)
    if positive:
        value = np.abs(value) + 0.5
    return numpy_helper.from_array(value.astype(dtype), name)


def _model(nodes, outputs, initializers, dtype: type = np.float32, extra_inputs=()):
    elem = _DTYPES[dtype]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", elem, [1, 4, 6, 6]), *extra_inputs],
        [helper.make_tensor_value_info(name, elem, None) for name in outputs],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _feeds(dtype: type = np.float32) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(7).standard_normal((1, 4, 6, 6)).astype(dtype)}


def _stats(prefix: str, dtype: type, seed: int) -> list[onnx.TensorProto]:
    return [
        _tensor(f"{prefix}{s}", (4,), dtype, seed + i, positive=(s == "v"))
        for i, s in enumerate("gbmv")
    ]


def _conv_weights() -> list[onnx.TensorProto]:
    return [_tensor("W", (4, 4, 3, 3), np.float32, 1), _tensor("B", (4,), np.float32, 3)]


def _conv(x: str, w: str, y: str, name: str, bias: str | None = None, pads: int = 1):
    inputs = [x, w] + ([bias] if bias else [])
    return helper.make_node("Conv", inputs, [y], name=name, pads=[pads] * 4)


def _bn(y: str, prefix: str, z: str, name: str):
    stats = [f"{prefix}{s}" for s in "gbmv"]
    return helper.make_node("BatchNormalization", [y, *stats], [z], name=name)


def _check(model: onnx.ModelProto, pipeline: str, dtype: type = np.float32, **kw):
    optimized, report = optimize_with_report(model, pipeline)
    tol = {"rtol": 2e-2, "atol": 2e-2} if dtype == np.float16 else {}
    assert_same_outputs(model, optimized, _feeds(dtype), **tol, **kw)
    return optimized, report.totals()


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_a_weight_read_by_two_folded_convs_is_not_written_over(pipeline):
    # W feeds two Convs (different pads: no CSE), each folded with its own BN: the first fold
    # must not take W as spare storage for W·s while the second Conv still reads W (the
    # second fold may: by then only its removed Conv reads W).
    model = _model(
        [
            _conv("x", "W", "y0", "c0", pads=1),
            _bn("y0", "p", "z0", "bn0"),
            _conv("x", "W", "y1", "c1", pads=0),
            _bn("y1", "q", "z1", "bn1"),
        ],
        ["z0", "z1"],
        [
            _tensor("W", (4, 4, 3, 3), np.float32, 1),
            *_stats("p", np.float32, 2),
            *_stats("q", np.float32, 9),
        ],
    )
    _, totals = _check(model, pipeline)
    assert totals["fold-batchnorm"]["applied"] == 2


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_statistics_shared_by_two_bns_fold_both(pipeline):
    model = _model(
        [
            _conv("x", "W", "y0", "c0", bias="B"),
            _bn("y0", "s", "z0", "bn0"),
            _conv("x", "W", "y1", "c1"),
            _bn("y1", "s", "z1", "bn1"),
        ],
        ["z0", "z1"],
        [*_conv_weights(), *_stats("s", np.float32, 4)],
    )
    _, totals = _check(model, pipeline)
    assert totals["fold-batchnorm"]["applied"] == 2


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_a_statistic_that_is_a_graph_output_is_kept(pipeline):
    model = _model(
        [_conv("x", "W", "y", "c0", bias="B"), _bn("y", "s", "z", "bn")],
        ["z", "sv"],  # the last [4] statistic in name order: the spare a fold would take
        [*_conv_weights(), *_stats("s", np.float32, 4)],
    )
    optimized, totals = _check(model, pipeline)
    assert totals["fold-batchnorm"]["applied"] == 1
    kept = {t.name: t for t in optimized.graph.initializer}
    np.testing.assert_array_equal(
        numpy_helper.to_array(kept["sv"]), numpy_helper.to_array(model.graph.initializer[5])
    )


def test_a_statistic_that_is_a_graph_input_is_not_folded():
    model = _model(
        [_conv("x", "W", "y", "c0"), _bn("y", "s", "z", "bn")],
        ["z"],
        [_tensor("W", (4, 4, 3, 3), np.float32, 1), *_stats("s", np.float32, 4)],
        extra_inputs=[helper.make_tensor_value_info("sv", TensorProto.FLOAT, [4])],
    )
    _, totals = _check(model, "default")
    assert totals["fold-batchnorm"].get("applied", 0) == 0


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
@pytest.mark.parametrize("op", ["Add", "Sub", "Mul"])
def test_folds_keep_float16_and_float64(dtype, op):
    # bias folds read W only for its dtype and shape (a placeholder); scale folds read W.
    # B and the shift have one sign: a bias and shift that cancel are refused (c0d83b0), and
    # float16's half-significand bound (3 %) took seed 3's channel of B + c
    shift = _tensor("c", (1, 4, 1, 1), dtype, 3, positive=True)
    if op == "Sub":
        shift = numpy_helper.from_array(-numpy_helper.to_array(shift), "c")
    model = _model(
        [_conv("x", "W", "y", "c0", bias="B"), helper.make_node(op, ["y", "c"], ["z"], name="e")],
        ["z"],
        [_tensor("W", (4, 4, 3, 3), dtype, 1), _tensor("B", (4,), dtype, 2, positive=True), shift],
        dtype,
    )
    if dtype == np.float16:  # onnxruntime's CPU Conv has no float64 kernel
        _check(model, "default", dtype)
    optimized, totals = optimize_with_report(model, "default")
    assert totals.totals()["fold-batchnorm"]["applied"] == 1
    (conv,) = optimized.graph.node
    assert conv.op_type == "Conv"
    folded = {t.name: numpy_helper.to_array(t) for t in optimized.graph.initializer}
    w, b, c = (numpy_helper.to_array(t) for t in model.graph.initializer)
    w2, b2 = folded[conv.input[1]], folded[conv.input[2]]
    assert w2.dtype == b2.dtype == dtype
    vec = c.reshape(4).astype(np.float64)
    want_w = w * vec.reshape(4, 1, 1, 1) if op == "Mul" else w
    want_b = {"Add": b + vec, "Sub": b - vec, "Mul": b * vec}[op]
    np.testing.assert_allclose(
        w2, want_w.astype(dtype), rtol=1e-3 if dtype == np.float16 else 1e-12
    )
    np.testing.assert_allclose(
        b2, want_b.astype(dtype), rtol=1e-3 if dtype == np.float16 else 1e-12
    )


def test_a_subgraph_reading_the_folded_output_and_the_conv_output():
    # the If reads z (the anchor's output: kept) in one branch and y (an intermediate: the
    # fold must be refused) in the other
    def model(reads: str) -> onnx.ModelProto:
        info = helper.make_tensor_value_info("t", TensorProto.FLOAT, None)
        then = helper.make_graph([helper.make_node("Relu", ["z"], ["t"])], "then", [], [info])
        info = helper.make_tensor_value_info("e", TensorProto.FLOAT, None)
        other = helper.make_graph([helper.make_node("Neg", [reads], ["e"])], "else", [], [info])
        nodes = [
            _conv("x", "W", "y", "c0", bias="B"),
            _bn("y", "s", "z", "bn"),
            helper.make_node("If", ["k"], ["w"], name="if", then_branch=then, else_branch=other),
        ]
        inits = [*_conv_weights(), *_stats("s", np.float32, 4)]
        inits.append(numpy_helper.from_array(np.array(False), "k"))
        return _model(nodes, ["z", "w"], inits)

    _, totals = _check(model("z"), "default")
    assert totals["fold-batchnorm"]["applied"] == 1
    _, totals = _check(model("y"), "default")
    assert totals["fold-batchnorm"].get("applied", 0) == 0


def test_a_conv_output_that_is_a_graph_output_is_not_folded_away():
    model = _model(
        [_conv("x", "W", "y", "c0", bias="B"), _bn("y", "s", "z", "bn")],
        ["z", "y"],
        [*_conv_weights(), *_stats("s", np.float32, 4)],
    )
    optimized, totals = _check(model, "default")
    assert totals["fold-batchnorm"].get("applied", 0) == 0
    assert [o.name for o in optimized.graph.output] == ["z", "y"]


def test_same_bytes_of_another_dtype_or_shape_are_not_merged():
    # all-zero tensors of 4 bytes (float32, int32), 8 bytes (int32 [2], int64 [1]) and [2,1]
    # vs [1,2]: CSE keys small tensors by their bytes, under their dtype and dims
    arrays = {
        "a": np.zeros(1, np.float32),
        "b": np.zeros(1, np.int32),
        "c": np.zeros(2, np.int32),
        "d": np.zeros(1, np.int64),
        "e": np.zeros((2, 1), np.int32),
        "f": np.zeros((1, 2), np.int32),
    }
    nodes, last = [], "x"
    for name in arrays:
        nodes.append(helper.make_node("Cast", [name], [f"{name}f"], to=TensorProto.FLOAT))
        nodes.append(helper.make_node("Add", [last, f"{name}f"], [f"s{name}"]))
        last = f"s{name}"
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])],
        [helper.make_tensor_value_info(last, TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in arrays.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    optimized = graphopt.optimize(model, "simplify")
    feeds = {"x": np.arange(4, dtype=np.float32).reshape(2, 2)}
    assert_same_outputs(model, optimized, feeds)
