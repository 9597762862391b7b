"""fp16_model (graphopt.backends.tensorrt): what must stay float32 in a float16 model.

onnxruntime's float16 converter clamps a constant below the least subnormal (5.96e-8) up to it
and one beyond ±65504 down to 65504. Such a constant stays float32 with its readers; graph
outputs and inputs that are constants or blocked (float32) nodes' are not rounded through
float16; nor are the values between two blocked nodes, what sets an output's shape (Resize
scales, Range), and the inputs and outputs ONNX types as float32 only. Checked in onnxruntime
against the float32 model (TensorRT is not needed); onnxruntime's CPU kernels compute most
float16 ops in float32, so a test shows what the model's constants and types do, not float16
arithmetic."""

from __future__ import annotations

import logging

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.backends.onnxruntime import run
from graphopt.backends.tensorrt import fp16_model
from tests.conftest import xfail_unless_onnxruntime_rounds_float16_quantize

X = np.array([1e3, 5e3, 2e4, 6e4], np.float32)


def _model(nodes, inputs, outputs, inits=(), opset=17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _vec(name: str, n: int = 4, dtype: int = TensorProto.FLOAT) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, dtype, [n])


def _constant(name: str, value: np.ndarray) -> onnx.NodeProto:
    return helper.make_node(
        "Constant", [], [name], value=numpy_helper.from_array(np.asarray(value, np.float32))
    )


def _half(model: onnx.ModelProto) -> onnx.ModelProto:
    half = fp16_model(model)
    onnx.checker.check_model(half, full_check=True)
    return half


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a.astype(np.float64) - b) / np.abs(b.astype(np.float64))))


def test_fp16_error_is_measured_against_the_tensors_largest_element():
    from graphopt.backends.tensorrt import FP16_TOLERANCE, fp16_error

    assert fp16_error(np.float32([1e-8])) == pytest.approx(4.96, rel=1e-2)  # 5.96e-8
    assert fp16_error(np.float32([1e-9])) == pytest.approx(58.6, rel=1e-2)
    assert fp16_error(np.float32([1e5, 1.0])) == float("inf")
    assert fp16_error(np.float32([0.0, 0.0])) == 0.0
    rounding = fp16_error(np.float32([1.0, 1 / 3, 0.1, 1e-3, np.inf, np.nan]))
    assert 0 < rounding <= 2.0**-11 < FP16_TOLERANCE
    # a tiny element of a weight of normal size: its absolute error is 5.96e-8 at most
    assert fp16_error(np.float32([0.5, -0.25, 1e-9])) < 2e-7
    assert fp16_error(np.float32([3e-6, 1e-6])) > FP16_TOLERANCE  # all subnormal


@pytest.mark.parametrize("value", [1e-8, 1e-9])
@pytest.mark.parametrize("as_node", [False, True], ids=["initializer", "Constant"])
def test_a_tiny_constant_keeps_its_reader_float32(value, as_node):
    """Mul(x, 1e-8) then Relu in float16: the converter made the weight 5.96e-8, the result
    about 6x too big (1e-9: 60x)."""
    c = np.float32(value)
    nodes = [
        helper.make_node("Mul", ["x", "c"], ["p"], name="mul"),
        helper.make_node("Relu", ["p"], ["y"], name="relu"),
    ]
    inits = []
    if as_node:
        nodes.insert(0, _constant("c", c))
    else:
        inits.append(numpy_helper.from_array(c, "c"))
    model = _model(nodes, [_vec("x")], [_vec("y")], inits)
    half = _half(model)
    got, want = run(half, {"x": X})["y"], run(model, {"x": X})["y"]
    assert _relative(got, want) < 1e-3  # the parent: 4.96 (1e-8), 58.6 (1e-9)
    relu = next(n for n in half.graph.node if n.op_type == "Relu")
    types = {v.name: v.type.tensor_type.elem_type for v in half.graph.value_info}
    assert types[relu.input[0]] == TensorProto.FLOAT16  # the rest is still float16


def test_a_tiny_constant_of_a_body_keeps_its_reader_float32():
    then = helper.make_graph(
        [_constant("cb", np.float32(1e-8)), helper.make_node("Mul", ["x", "cb"], ["t"])],
        "then",
        [],
        [_vec("t")],
    )
    other = helper.make_graph([helper.make_node("Neg", ["x"], ["e"])], "else", [], [_vec("e")])
    nodes = [
        helper.make_node("If", ["cond"], ["y"], name="if", then_branch=then, else_branch=other)
    ]
    model = _model(nodes, [_vec("x"), _vec("cond", 1, TensorProto.BOOL)], [_vec("y")], opset=17)
    half = _half(model)
    for cond in (True, False):
        feed = {"x": X, "cond": np.array([cond])}
        got, want = run(half, feed)["y"], run(model, feed)["y"]
        normal = np.abs(want) > 6.1e-5  # (the body's output is float16: 1e-5 is subnormal)
        assert _relative(got[normal], want[normal]) < 1e-3  # parent: 4.96


@pytest.mark.parametrize("value", [1e5, 1e-8])
def test_a_main_graph_constant_read_in_a_body_blocks_its_readers_there_not_the_if(value):
    """The If that reads it in its branch was blocked whole: its bodies stayed float32 and read
    the float16 tensor around them (an invalid model: 'B has inconsistent type')."""
    then = helper.make_graph(
        [helper.make_node("Mul", ["r", "c"], ["t"], name="tmul")], "then", [], [_vec("t")]
    )
    other = helper.make_graph([helper.make_node("Neg", ["r"], ["e"])], "else", [], [_vec("e")])
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("If", ["cond"], ["y"], name="if", then_branch=then, else_branch=other),
    ]
    inits = [numpy_helper.from_array(np.full([4], value, np.float32), "c")]
    model = _model(nodes, [_vec("x"), _vec("cond", 1, TensorProto.BOOL)], [_vec("y")], inits)
    half = _half(model)
    x = X * 1e-6 if value > 1 else X  # products within float16's range
    for cond in (True, False):
        feed = {"x": x, "cond": np.array([cond])}
        got, want = run(half, feed)["y"], run(model, feed)["y"]
        normal = np.abs(want) > 6.1e-5  # (the body's output is float16: 1e-5 is subnormal)
        assert _relative(got[normal], want[normal]) < 1e-3
    kept = {t.name: t.data_type for t in half.graph.initializer}
    assert kept["c"] == TensorProto.FLOAT


@pytest.mark.parametrize("value", [1e-8, 1e5, 0.3])
@pytest.mark.parametrize("as_node", [False, True], ids=["initializer", "Constant"])
def test_a_constant_graph_output_is_written_exactly(value, as_node):
    """A Constant output was made float16 and Cast back (1e-8 as 5.96e-8, 1e5 as 65504, 0.3
    as 0.2998); an initializer output made an invalid model (LoadError: 'c' is an
    initializer and is also produced by 'graph_output_cast1')."""
    c = np.full([4], value, np.float32)
    nodes = [helper.make_node("Mul", ["x", "c"], ["y"], name="mul")]
    inits = []
    if as_node:
        nodes.insert(0, _constant("c", c))
    else:
        inits.append(numpy_helper.from_array(c, "c"))
    model = _model(nodes, [_vec("x")], [_vec("y"), _vec("c")], inits)
    half = _half(model)
    assert [o.name for o in half.graph.output] == ["y", "c"]
    x = X * 1e-3 if value > 1 else X
    got, want = run(half, {"x": x}), run(model, {"x": x})
    np.testing.assert_array_equal(got["c"], c)
    assert _relative(got["y"], want["y"]) < 1e-3


def test_a_graph_input_that_is_a_graph_output_stays_the_input():
    """The converter gave the output a Cast writing the input's name (LoadError: 'x is a
    graph input and is also produced by graph_output_cast0')."""
    model = _model(
        [helper.make_node("Relu", ["x"], ["y"], name="relu")],
        [_vec("x")],
        [_vec("x"), _vec("y")],
    )
    half = _half(model)
    assert [o.name for o in half.graph.output] == ["x", "y"]
    x = np.float32([1e5, 1.0001, -2.0, 0.5])
    got = run(half, {"x": x})
    np.testing.assert_array_equal(got["x"], x)
    np.testing.assert_allclose(got["y"][1:], np.maximum(x, 0)[1:], rtol=1e-3)


def test_a_blocked_node_reads_its_graph_input_and_writes_its_graph_output_in_float32():
    """TopK (blocked by the converter) of an input holding 3e6 read it through float16 (inf),
    and Mul(x, 1e5) (blocked for its constant) wrote 1e6 through float16 (inf)."""
    model = _model(
        [
            helper.make_node("TopK", ["x", "k"], ["v", "i"], name="topk"),
            helper.make_node("Mul", ["x", "big"], ["m"], name="mul"),
        ],
        [_vec("x")],
        [_vec("v", 2), _vec("i", 2, TensorProto.INT64), _vec("m")],
        [
            numpy_helper.from_array(np.array([2], np.int64), "k"),
            numpy_helper.from_array(np.float32(1e5), "big"),
        ],
    )
    half = _half(model)
    x = np.float32([1e5, 7.0, 3e6, 10.0])
    got, want = run(half, {"x": x}), run(model, {"x": x})
    for name in ("v", "i", "m"):
        np.testing.assert_array_equal(got[name], want[name])
    assert not any(n.op_type == "Cast" for n in half.graph.node)  # nothing goes through float16


@pytest.mark.parametrize("fill", [1e-9, -1e9])
def test_a_constant_of_shape_filling_beyond_float16_stays_float32_with_its_reader(fill):
    """The converter wrote ConstantOfShape's value as 5.96e-8 (1e-9: products 60x too big) or
    -65504 (-1e9)."""
    model = _model(
        [
            helper.make_node("Shape", ["x"], ["s"]),
            helper.make_node(
                "ConstantOfShape",
                ["s"],
                ["c"],
                value=numpy_helper.from_array(np.float32([fill])),
            ),
            helper.make_node("Mul" if abs(fill) < 1 else "Add", ["c", "x"], ["p"], name="use"),
            helper.make_node("Neg", ["p"], ["y"], name="neg"),
        ],
        [_vec("x")],
        [_vec("y"), _vec("p")],
    )
    half = _half(model)
    got, want = run(half, {"x": X}), run(model, {"x": X})
    np.testing.assert_array_equal(got["p"], want["p"])
    if abs(fill) < 1:  # (-1e9 + x is beyond float16: Neg's float16 result is inf, as it must)
        assert _relative(got["y"], want["y"]) < 1e-3


def _if(then: onnx.GraphProto, other: onnx.GraphProto, name: str = "if") -> onnx.NodeProto:
    return helper.make_node("If", ["cond"], ["y"], name=name, then_branch=then, else_branch=other)


@pytest.mark.parametrize("value", [1e-8, 1e5])
def test_an_if_whose_branch_outputs_such_a_constant_stays_float32_bodies_and_all(value):
    """The branch's output was float16: 1e-8 written as 5.96e-8, 1e5 as 65504. The If now
    stays float32; its other branch reads Relu's float16 output through a Cast of its own."""
    then = helper.make_graph([_constant("cb", np.full([4], value))], "then", [], [_vec("cb")])
    other = helper.make_graph([helper.make_node("Neg", ["r"], ["e"])], "else", [], [_vec("e")])
    model = _model(
        [helper.make_node("Relu", ["x"], ["r"], name="relu"), _if(then, other)],
        [_vec("x"), _vec("cond", 1, TensorProto.BOOL)],
        [_vec("y")],
    )
    half = _half(model)
    types = {v.name: v.type.tensor_type.elem_type for v in half.graph.value_info}
    assert types["r"] == TensorProto.FLOAT16  # Relu is still float16
    for cond in (True, False):
        feed = {"x": X, "cond": np.array([cond])}
        got, want = run(half, feed)["y"], run(model, feed)["y"]
        assert _relative(got, want) < 1e-3  # the parent: 4.96 (1e-8), 0.34 (1e5)


def test_a_loop_kept_float32_reads_the_float16_tensors_its_body_uses_through_casts():
    """A Loop blocked for its initial value of 1e5 left its body float32 reading Relu's float16
    output: an invalid model ('B has inconsistent type tensor(float16)')."""
    body = helper.make_graph(
        [
            helper.make_node("Add", ["v_in", "r"], ["v_out"], name="add"),
            helper.make_node("Identity", ["c_in"], ["c_out"], name="keep"),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("c_in", TensorProto.BOOL, []),
            _vec("v_in"),
        ],
        [helper.make_tensor_value_info("c_out", TensorProto.BOOL, []), _vec("v_out")],
    )
    model = _model(
        [
            helper.make_node("Relu", ["x"], ["r"], name="relu"),
            helper.make_node("Loop", ["n", "", "v0"], ["y"], body=body, name="loop"),
        ],
        [_vec("x")],
        [_vec("y")],
        [
            numpy_helper.from_array(np.array(3, np.int64), "n"),
            numpy_helper.from_array(np.full([4], 1e5, np.float32), "v0"),
        ],
    )
    half = _half(model)
    x = np.float32([1.0, 2.0, -3.0, 4.0])
    np.testing.assert_allclose(run(half, {"x": x})["y"], run(model, {"x": x})["y"], rtol=1e-3)


def test_a_constant_output_of_a_body_inside_a_body_keeps_the_main_graph_if_float32(caplog):
    """Was not kept float32, only named in a warning; now the main-graph If owning it stays
    float32, bodies and all (H199, tests/test_h199_fp16_nested_bodies.py), said at INFO."""
    inner_then = helper.make_graph(
        [_constant("cb", np.full([4], 1e5))], "inner_then", [], [_vec("cb")]
    )
    inner_else = helper.make_graph(
        [helper.make_node("Neg", ["x"], ["ie"])], "inner_else", [], [_vec("ie")]
    )
    then = helper.make_graph(
        [
            helper.make_node(
                "If",
                ["cond"],
                ["t"],
                name="inner",
                then_branch=inner_then,
                else_branch=inner_else,
            )
        ],
        "then",
        [],
        [_vec("t")],
    )
    other = helper.make_graph([helper.make_node("Neg", ["x"], ["e"])], "else", [], [_vec("e")])
    model = _model([_if(then, other)], [_vec("x"), _vec("cond", 1, TensorProto.BOOL)], [_vec("y")])
    with caplog.at_level(logging.INFO, logger="graphopt.backends.tensorrt"):
        half = _half(model)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    said = [r.getMessage() for r in caplog.records if "its body outputs cb" in r.getMessage()]
    assert len(said) == 1 and "'if'" in said[0], said
    (if_node,) = [n for n in half.graph.node if n.op_type == "If"]
    assert {a.g.output[0].type.tensor_type.elem_type for a in if_node.attribute} == {
        TensorProto.FLOAT
    }


@pytest.mark.realmodel
@pytest.mark.parametrize(
    ("name", "kept"),
    [
        ("common_det", {"1099"}),  # Resize's scales, float32 by the converter's own rule
        ("layout_cdla", set()),
        ("ppocr_det", {"batch_norm_0.w_2"}),
    ],
)
def test_real_detectors_keep_only_what_float16_cannot_hold_in_float32(real_model, name, kept):
    """Measured element by element, 65, 161 and 36 tensors of these detectors would stay
    float32 (most convolution weights hold some element below 6e-8); against each tensor's
    largest element, only PP-OCRv4 det's BatchNorm variance of 9.8e7."""
    half = fp16_model(onnx.load(str(real_model(name))))
    left = {t.name for t in half.graph.initializer if t.data_type == TensorProto.FLOAT}
    assert left == kept


def test_blocked_nodes_pass_float32_between_them_and_float16_to_the_rest():
    """Mul(x, 1e5) (blocked) writes output m, which TopK (blocked) and Relu (float16) read: m
    and TopK's input were rounded through float16 (100.00001 written as 100)."""
    model = onnx.parser.parse_model(
        """<ir_version: 8, opset_import: ["": 13]>
        g (float[4] x) => (float[4] m, float[2] v, float[4] r)
        <float big = {100000.0}, int64[1] k = {2}> {
            m = Mul(x, big)
            v, i = TopK(m, k)
            r = Relu(m)
        }"""
    )
    half = _half(model)
    x = np.float32([1.0000001e-3, 2e-2, -3e-3, 0.5])
    got, want = run(half, {"x": x}), run(model, {"x": x})
    np.testing.assert_array_equal(got["m"], want["m"])
    np.testing.assert_array_equal(got["v"], want["v"])
    np.testing.assert_allclose(got["r"], want["r"], rtol=1e-3)
    to_half = [
        n.input[0] for n in half.graph.node if n.op_type == "Cast" and n.attribute[0].i == 10
    ]
    assert to_half == ["m"]  # one float16 Cast, for Relu; none between Mul and TopK


SHAPE_CASES = {
    "resize-13-constant": """<ir_version: 8, opset_import: ["": 13]>
        g (float[1,1,300,300] x) => (float[1,1,?,?] y) {
            roi = Constant<value = float[0] {}>()
            s = Constant<value = float[4] {1.0, 1.0, 0.33333334, 0.33333334}>()
            y = Resize<mode = "nearest">(x, roi, s)
        }""",
    "resize-10-constant": """<ir_version: 8, opset_import: ["": 10]>
        g (float[1,1,300,300] x) => (float[1,1,?,?] y) {
            s = Constant<value = float[4] {1.0, 1.0, 0.33333334, 0.33333334}>()
            y = Resize<mode = "nearest">(x, s)
        }""",
    "upsample-9-constant": """<ir_version: 8, opset_import: ["": 9]>
        g (float[1,1,300,300] x) => (float[1,1,?,?] y) {
            s = Constant<value = float[4] {1.0, 1.0, 1.3333334, 1.3333334}>()
            y = Upsample<mode = "nearest">(x, s)
        }""",
    "resize-13-computed": """<ir_version: 8, opset_import: ["": 13]>
        g (float[1,1,300,300] x) => (float[1,1,?,?] y)
        <float[0] roi = {}, float[2] target = {100.0, 100.0}, float[2] one = {1.0, 1.0}> {
            r = Relu(x)
            shape = Shape(r)
            hw = Constant<value = int64[2] {2, 3}>()
            dims = Gather(shape, hw)
            size = Cast<to = 1>(dims)
            ratio = Div(target, size)
            s = Concat<axis = 0>(one, ratio)
            y = Resize<mode = "nearest">(r, roi, s)
        }""",
    "range-constant": """<ir_version: 8, opset_import: ["": 13]>
        g (float[1,1,300,300] x) => (float[?] y) {
            a = Constant<value = float {0.0}>()
            b = Constant<value = float {1.0}>()
            d = Constant<value = float {0.1}>()
            y = Range(a, b, d)
        }""",
}


@pytest.mark.parametrize("case", sorted(SHAPE_CASES))
def test_what_sets_an_output_shape_stays_float32(case):
    """Resize/Upsample scales and Range inputs made (or computed) in float16 changed the
    output's shape: scales of 1/3 became 0.33325 and Resize made 99 rows of 300, not 100
    (Upsample by 4/3: 399, not 400); Range(0, 1, 0.1) made 11 values, not 10."""
    model = onnx.parser.parse_model(SHAPE_CASES[case])
    half = _half(model)
    x = np.random.default_rng(7).standard_normal((1, 1, 300, 300)).astype(np.float32)
    got, want = run(half, {"x": x})["y"], run(model, {"x": x})["y"]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)
    if case == "resize-13-computed":  # Relu stays float16, and Shape reads it with no Cast
        types = {v.name: v.type.tensor_type.elem_type for v in half.graph.value_info}
        assert types["r"] == TensorProto.FLOAT16
        shape = next(n for n in half.graph.node if n.op_type == "Shape")
        assert shape.input[0] == "r"


@pytest.mark.parametrize("eps", ["1e-12", "1e-5"])
def test_an_epsilon_that_is_only_added_keeps_the_converters_clamp(eps):
    """A decomposed LayerNorm's Add(variance, eps): kept float32, its result went back to
    float16 with 1e-12 written as 0 (np.float16(1e-12) == 0) where the variance is 0, and
    Div(0, Sqrt(0)) is NaN on a float16 engine (onnxruntime's CPU kernels, float32 inside,
    hide it); clamped to 5.96e-8, it is 0 / 2.4e-4 = 0. And two Casts per LayerNorm."""
    model = onnx.parser.parse_model(
        f"""<ir_version: 8, opset_import: ["": 13]>
        g (float[2,8] x) => (float[2,8] y) <float e = {{{eps}}}, float two = {{2.0}}> {{
            mu = ReduceMean<axes = [-1]>(x)
            d = Sub(x, mu)
            sq = Pow(d, two)
            var = ReduceMean<axes = [-1]>(sq)
            ve = Add(var, e)
            sd = Sqrt(ve)
            y = Div(d, sd)
        }}"""
    )
    assert np.float16(float(eps)) == 0 or eps == "1e-5"
    half = _half(model)
    kept = {t.name: t.data_type for t in half.graph.initializer}
    assert kept["e"] == TensorProto.FLOAT16
    assert [n.name for n in half.graph.node if n.op_type == "Cast"] == [
        "graph_input_cast0",
        "graph_output_cast0",
    ]
    x = np.stack([np.full(8, 3.0, np.float32), np.linspace(-1, 1, 8, dtype=np.float32)])
    np.testing.assert_allclose(run(half, {"x": x})["y"], run(model, {"x": x})["y"], atol=2e-3)


def test_a_tiny_constant_both_added_and_multiplied_keeps_all_its_readers_float32():
    model = _model(
        [
            helper.make_node("Mul", ["x", "c"], ["p"], name="mul"),
            helper.make_node("Add", ["p", "c"], ["y"], name="add"),
        ],
        [_vec("x")],
        [_vec("y")],
        [numpy_helper.from_array(np.float32(1e-8), "c")],
    )
    half = _half(model)
    assert {t.name: t.data_type for t in half.graph.initializer}["c"] == TensorProto.FLOAT
    assert _relative(run(half, {"x": X})["y"], run(model, {"x": X})["y"]) < 1e-3


def _sparse_constant(name: str) -> onnx.NodeProto:
    values = numpy_helper.from_array(np.float32([0.3, 2.0]), f"{name}_values")
    indices = numpy_helper.from_array(np.int64([1, 3]), f"{name}_indices")
    return helper.make_node(
        "Constant", [], [name], sparse_value=helper.make_sparse_tensor(values, indices, [4])
    )


def test_a_sparse_float_constant_stays_float32_in_the_graph_and_in_a_body():
    """The converter declared its output float16 and left the sparse tensor float32: an
    invalid model ('Inferred elem type differs from existing elem type: (1) vs (10)')."""
    then = helper.make_graph(
        [_sparse_constant("cb"), helper.make_node("Mul", ["x", "cb"], ["t"])],
        "then",
        [],
        [_vec("t")],
    )
    other = helper.make_graph([helper.make_node("Neg", ["x"], ["e"])], "else", [], [_vec("e")])
    model = _model(
        [
            _sparse_constant("c"),
            helper.make_node("Mul", ["x", "c"], ["m"], name="mul"),
            _if(then, other),
        ],
        [_vec("x"), _vec("cond", 1, TensorProto.BOOL)],
        [_vec("m"), _vec("y")],
    )
    half = _half(model)
    x = np.float32([1.0, 2.0, 3.0, 4.0])
    for cond in (True, False):
        feed = {"x": x, "cond": np.array([cond])}
        got, want = run(half, feed), run(model, feed)
        for name in ("m", "y"):
            np.testing.assert_allclose(got[name], want[name], rtol=1e-3)


def test_two_blocked_nodes_in_a_branch_pass_float32_between_them():
    """Mul(x, 1e5) then Div(., 2e5), both blocked for their constants, in an If branch: the
    converter's Cast(float) of the first's float16 result stayed in the main graph, reading a
    name only the branch defines (onnx: 'Nodes in a graph must be topologically sorted');
    now the branch holds no Cast between them, and 1e5..4e5 is not inf. Since 480d988 the If
    stays float32, bodies and all (its branch output is written by a node kept float32):
    no Cast of Div's result to float16 either."""
    then = helper.make_graph(
        [
            helper.make_node("Mul", ["x", "big"], ["m"], name="mul"),
            helper.make_node("Div", ["m", "bigger"], ["t"], name="div"),
        ],
        "then",
        [],
        [_vec("t")],
        [
            numpy_helper.from_array(np.float32(1e5), "big"),
            numpy_helper.from_array(np.float32(2e5), "bigger"),
        ],
    )
    other = helper.make_graph([helper.make_node("Neg", ["x"], ["e"])], "else", [], [_vec("e")])
    model = _model([_if(then, other)], [_vec("x"), _vec("cond", 1, TensorProto.BOOL)], [_vec("y")])
    half = _half(model)
    for cond in (True, False):
        feed = {"x": np.float32([1.0, 2.0, 3.0, 4.0]), "cond": np.array([cond])}
        np.testing.assert_array_equal(run(half, feed)["y"], run(model, feed)["y"])
    owner = next(n for n in half.graph.node if n.op_type == "If")
    branch = next(a.g for a in owner.attribute if a.name == "then_branch")
    assert [n.op_type for n in branch.node].count("Cast") == 0
    assert branch.output[0].type.tensor_type.elem_type == TensorProto.FLOAT


def test_a_dequantize_with_output_dtype_float_dequantizes_to_float16():
    """Opset 23's DequantizeLinear(output_dtype=FLOAT): the converter made its scale float16
    and declared its output float16 but left the attribute, an invalid model ('Inferred elem
    type differs from existing elem type: (1) vs (10)')."""
    model = onnx.parser.parse_model(
        """<ir_version: 11, opset_import: ["": 23]>
        g (float[1,2,4,4] x) => (float[1,2,4,4] y)
        <float xs = {0.02}, int8 xz = {0}, int8[2,2,1,1] wq = {50, -25, 12, 100},
         float ws = {0.01}> {
            q = QuantizeLinear(x, xs, xz)
            dq = DequantizeLinear<output_dtype = 1>(q, xs, xz)
            w = DequantizeLinear<output_dtype = 1>(wq, ws)
            y = Conv(dq, w)
        }"""
    )
    half = _half(model)
    types = {v.name: v.type.tensor_type.elem_type for v in half.graph.value_info}
    assert types["dq"] == types["w"] == TensorProto.FLOAT16
    xfail_unless_onnxruntime_rounds_float16_quantize()
    x = np.random.default_rng(3).standard_normal((1, 2, 4, 4)).astype(np.float32)
    np.testing.assert_allclose(run(half, {"x": x})["y"], run(model, {"x": x})["y"], atol=2e-3)


def test_a_cast_to_float_writing_a_graph_output_or_feeding_a_blocked_node_stays_float32():
    """Cast(to=FLOAT) of int64 became Cast(to=FLOAT16): 70001 was inf and 2049 was 2048 in the
    graph output y and in CumSum's (blocked) result z."""
    model = onnx.parser.parse_model(
        """<ir_version: 8, opset_import: ["": 13]>
        g (int64[4] i) => (float[4] y, float[4] z) {
            y = Cast<to = 1>(i)
            axis = Constant<value = int64 {0}>()
            z = CumSum(y, axis)
        }"""
    )
    half = _half(model)
    feed = {"i": np.array([1, 70001, 3, 2049], np.int64)}
    got, want = run(half, feed), run(model, feed)
    for name in ("y", "z"):
        np.testing.assert_array_equal(got[name], want[name])


def test_what_sets_an_output_shape_in_a_branch_stays_float32():
    """Resize by a Constant 1/3 in an If branch made 99 rows of 300, not 100, as in the main
    graph."""
    then = helper.make_graph(
        [
            _constant("roi", np.zeros(0, np.float32)),
            _constant("s", np.float32([1, 1, 1 / 3, 1 / 3])),
            helper.make_node("Resize", ["x", "roi", "s"], ["t"], mode="nearest"),
        ],
        "then",
        [],
        [helper.make_tensor_value_info("t", TensorProto.FLOAT, None)],
    )
    other = helper.make_graph(
        [helper.make_node("MaxPool", ["x"], ["e"], kernel_shape=[3, 3], strides=[3, 3])],
        "else",
        [],
        [helper.make_tensor_value_info("e", TensorProto.FLOAT, None)],
    )
    model = _model(
        [_if(then, other)],
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 300, 300]),
            _vec("cond", 1, TensorProto.BOOL),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    half = fp16_model(model)
    feed = {"x": np.ones((1, 1, 300, 300), np.float32), "cond": np.array([True])}
    assert run(half, feed)["y"].shape == run(model, feed)["y"].shape == (1, 1, 100, 100)
    owner = next(n for n in half.graph.node if n.op_type == "If")
    branch = next(a.g for a in owner.attribute if a.name == "then_branch")
    assert not any(n.op_type == "Cast" for n in branch.node)  # the scales stay float32


def test_fp16_error_is_what_the_converter_writes():
    """fp16_error rounds with numpy and adds the converter's clamp of 0 < |v| < 2^-24 itself;
    checked against onnxruntime's own convert_np_to_float16 on tensors of 1e-12 .. 1e5."""
    from onnxruntime.transformers.float16 import convert_np_to_float16

    from graphopt.backends.tensorrt import fp16_error

    rng = np.random.default_rng(11)
    for _ in range(300):
        n = int(rng.integers(1, 40))
        v = (rng.standard_normal(n) * 10.0 ** rng.uniform(-12, 5, n)).astype(np.float32)
        v[0] = [np.inf, 0.0, v[0]][int(rng.integers(3))]
        finite = v[np.isfinite(v)].astype(np.float64)
        top = float(np.abs(finite).max()) if finite.size else 0.0
        if top > 65504:
            assert fp16_error(v) == float("inf")
        elif top > 0:
            half = convert_np_to_float16(finite.astype(np.float32)).astype(np.float64)
            assert fp16_error(v) == pytest.approx(float(np.abs(half - finite).max()) / top)


FLOAT32_ONLY_CASES = {
    # Mean and InvStdDev are stash_type's type, float32
    "layer-norm-statistics": (
        """<ir_version: 8, opset_import: ["": 17]>
        g (float[3,4] x) => (float[3,4] y, float[3,1] mean, float[3,1] inv) <float[4] w = {1.0,
         2.0, 0.5, 1.0}, float[4] b = {0.0, 0.1, 0.2, 0.3}> {
            y, mean, inv = LayerNormalization(x, w, b)
        }""",
        {"x": np.float32([[1, 2, 3, 4], [2, 2, 2, 3], [-1, 0, 1, 5]])},
    ),
    # x is float32 only
    "dynamic-quantize": (
        """<ir_version: 8, opset_import: ["": 11]>
        g (float[6] x) => (uint8[6] q, float s, uint8 z) {
            q, s, z = DynamicQuantizeLinear(x)
        }""",
        {"x": np.float32([0.0, 2.0, -3.0, -2.5, 1.34, 0.5])},
    ),
    # its output is float32 only
    "tf-idf": (
        """<ir_version: 8, opset_import: ["": 11]>
        g (int32[12] x) => (float[7] y) {
            y = TfIdfVectorizer<mode = "TF", min_gram_length = 2, max_gram_length = 2,
             max_skip_count = 0, ngram_counts = [0, 4], ngram_indexes = [0, 1, 2, 3, 4, 5, 6],
             pool_int64s = [2, 3, 5, 4, 5, 6, 7, 8, 6, 7]>(x)
        }""",
        {"x": np.int32([1, 1, 3, 3, 3, 7, 8, 6, 7, 5, 6, 8])},
    ),
    # float32 <-> int32 needs 32 bits on both sides
    "bitcast": (
        """<ir_version: 13, opset_import: ["": 26]>
        g (float[4] x, int32[4] i) => (int32[4] y, float[4] f) {
            y = BitCast<to = 6>(x)
            f = BitCast<to = 1>(i)
        }""",
        {"x": np.float32([1.0, -2.5, 3e5, 1e-9]), "i": np.int32([1065353216, 0, -1, 7])},
    ),
}


@pytest.mark.parametrize("case", sorted(FLOAT32_ONLY_CASES))
def test_ops_that_take_or_make_float32_only_stay_float32(case):
    """Each made an invalid model: the converter declared float16 what ONNX defines as
    float32 only (onnx.checker: 'Inferred elem type differs', 'has unsupported type:
    tensor(float16)', 'BitCast requires input and output types to have the same bit width')."""
    text, feed = FLOAT32_ONLY_CASES[case]
    model = onnx.parser.parse_model(text)
    half = _half(model)
    got, want = run(half, feed), run(model, feed)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name])


def test_mean_variance_normalization_stays_float32():
    """Its function body adds a float32 epsilon: onnxruntime refused the float16 model ('Type
    parameter (T) of Optype (Add) bound to different types'). (onnx.checker's full check
    refuses the float32 model already: not asked here.)"""
    model = onnx.parser.parse_model(
        """<ir_version: 8, opset_import: ["": 13]>
        g (float[1,2,3,3] x) => (float[1,2,3,3] y) {
            r = Relu(x)
            y = MeanVarianceNormalization(r)
        }"""
    )
    half = fp16_model(model)
    x = np.random.default_rng(5).standard_normal((1, 2, 3, 3)).astype(np.float32)
    np.testing.assert_allclose(run(half, {"x": x})["y"], run(model, {"x": x})["y"], atol=2e-3)


def test_an_output_named_twice_is_written_once_and_listed_twice():
    """The converter gave each listing of y a Cast writing y (LoadError: "tensor 'y' is
    produced by both 'graph_output_cast0' and 'graph_output_cast2'"); found in
    tests/test_h127_rule_fuzz.py's models."""
    model = onnx.parser.parse_model(
        """<ir_version: 8, opset_import: ["": 13]>
        g (float[4] x) => (float[4] y, float[4] z, float[4] y, float[4] x) {
            y = Relu(x)
            z = Neg(y)
        }"""
    )
    half = _half(model)
    assert [o.name for o in half.graph.output] == ["y", "z", "y", "x"]
    x = np.float32([1.0, -2.0, 3.0, -4.0])
    got, want = run(half, {"x": x}), run(model, {"x": x})
    for name in ("y", "z", "x"):
        np.testing.assert_array_equal(got[name], want[name])


TYPED_FLOAT32_CASES = {
    "celu": (
        """<ir_version: 8, opset_import: ["": 13]> g (float[4] x) => (float[4] y) {
            r = Relu(x)
            y = Celu<alpha = 2.0>(r)
        }""",
        {"x": np.float32([1.0, -2.0, 0.5, 4.0])},
    ),
    "isinf-13": (
        """<ir_version: 8, opset_import: ["": 13]> g (float[4] x) => (bool[4] y) {
            r = Relu(x)
            y = IsInf(r)
        }""",
        {"x": np.float32([1.0, -2.0, np.inf, 7e4])},
    ),
    "qlinearmatmul-10": (
        """<ir_version: 8, opset_import: ["": 10]>
        g (float[2,2] x) => (float[2,2] y) <float s = {0.05}, uint8 z = {128},
         uint8[2,2] w = {130, 120, 140, 128}, float ws = {0.02}, uint8 wz = {128},
         float ys = {0.01}, uint8 yz = {128}> {
            r = Relu(x)
            q = QuantizeLinear(r, s, z)
            m = QLinearMatMul(q, s, z, w, ws, wz, ys, yz)
            y = DequantizeLinear(m, ys, yz)
        }""",
        {"x": np.float32([[1.0, 0.5], [0.25, 2.0]])},
    ),
}


@pytest.mark.parametrize("case", sorted(TYPED_FLOAT32_CASES))
def test_ops_whose_schema_takes_float32_only_stay_float32(case):
    """Read from a float16 Relu, each made an invalid model ("X typestr: T, has unsupported
    type: tensor(float16)"): Celu is float32 only, IsInf below opset 20, QLinearMatMul's
    scales below 21 (the model moves to opset 19 for its Q/DQ, where they are still)."""
    text, feed = TYPED_FLOAT32_CASES[case]
    model = onnx.parser.parse_model(text)
    half = _half(model)
    got, want = run(half, feed), run(model, feed)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-3)


def test_a_branch_defining_the_graph_outputs_name_again_converts():
    """The If writes y and its branches write y too (as tests/test_input_fuzz12.py's 'deep'
    models do): the converter renamed every node output named y, in every graph, to its
    output Cast's input (LoadError: 'the graph has a cycle through node if1')."""
    inner = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "inner", [], [_vec("y")])
    other = helper.make_graph([helper.make_node("Neg", ["x"], ["y"])], "other", [], [_vec("y")])
    mid = helper.make_graph(
        [helper.make_node("If", ["c"], ["y"], name="if0", then_branch=inner, else_branch=other)],
        "mid",
        [],
        [_vec("y")],
    )
    model = _model(
        [helper.make_node("If", ["c"], ["y"], name="if1", then_branch=mid, else_branch=other)],
        [_vec("x"), helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
        [_vec("y")],
    )
    half = _half(model)
    for cond in (True, False):
        feed = {"x": np.float32([1.0, -2.0, 3.0, -4.0]), "c": np.array(cond)}
        np.testing.assert_array_equal(run(half, feed)["y"], run(model, feed)["y"])
