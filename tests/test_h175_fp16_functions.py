"""`fp16_model` (the TensorRT 11 FP16 path) on models with model-local functions (H175).

onnxruntime's float16 converter never enters a function body and onnx's version converter
refuses a model with functions, so a call came out reading float16 into the body's float32
constants or Q/DQ: a model onnx.checker and onnxruntime refuse. The functions are now inlined
first (as TensorRT's parser does); what onnx cannot inline is a one-line BackendError naming
the function. Results are checked with onnx.checker (full) and run in onnxruntime
(ORT_DISABLE_ALL) against the float32 original.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser
import pytest
from onnx import TensorProto

from graphopt.backends.onnxruntime import run as ort_run
from graphopt.backends.tensorrt import fp16_model
from graphopt.errors import BackendError

X = np.array([[0.1, -1.0, 2.0, 3.3], [-0.45, 0.7, 1.25, -2.6]], np.float32)
STEP = 0.05  # the Q/DQ scale below: float16 QuantizeLinear may round or truncate (one step)

MUL = """
  two = Constant <value = float[4] {2.0, 0.5, -1.5, 3.0}> ()
  u = Mul (t, two)"""
QDQ = """
  s = Constant <value = float {0.05}> ()
  z = Constant <value = int8 {0}> ()
  q = QuantizeLinear (t, s, z)
  u = DequantizeLinear (q, s, z)"""


def with_function(opset: int, body: str, check: bool = True) -> onnx.ModelProto:
    text = f"""<ir_version: 8, opset_import: ["" : {opset}, "local" : 1]>
g (float[2, 4] x) => (float[2, 4] y) {{
  a = Relu (x)
  y = local.F (a)
}}
<domain: "local", opset_import: ["" : {opset}]>
F (t) => (u) {{{body}
}}
"""
    model = onnx.parser.parse_model(text)
    if check:
        onnx.checker.check_model(model, full_check=True)
    return model


def converted_and_close(model: onnx.ModelProto, atol: float) -> onnx.ModelProto:
    half = fp16_model(model)
    onnx.checker.check_model(half, full_check=True)
    assert not half.functions
    assert half.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    want = ort_run(model, {"x": X}, level="disable")["y"]
    got = ort_run(half, {"x": X}, level="disable")["y"]
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=2e-3, atol=atol)
    return half


def float16_initializers(model: onnx.ModelProto) -> list[str]:
    return [t.name for t in model.graph.initializer if t.data_type == TensorProto.FLOAT16]


@pytest.mark.parametrize("opset", [13, 19])
def test_float_ops_in_a_function_become_float16(opset):
    half = converted_and_close(with_function(opset, MUL), atol=1e-2)
    assert "Mul" in [n.op_type for n in half.graph.node]
    consts = [n for n in half.graph.node if n.op_type == "Constant"]
    assert float16_initializers(half) or any(
        n.attribute[0].t.data_type == TensorProto.FLOAT16 for n in consts
    )


@pytest.mark.parametrize("opset", [13, 19])
def test_qdq_in_a_function_get_opset_19_and_float16_scales(opset):
    half = converted_and_close(with_function(opset, QDQ), atol=STEP + 1e-2)
    assert next(o.version for o in half.opset_import if o.domain == "") == 19
    dq = next(n for n in half.graph.node if n.op_type == "DequantizeLinear")
    producers = {o: n for n in half.graph.node for o in n.output}
    scale = dq.input[1]
    value = next((t for t in half.graph.initializer if t.name == scale), None)
    if value is None:
        value = producers[scale].attribute[0].t
    assert value.data_type == TensorProto.FLOAT16


def test_nested_calls_attributes_and_calls_in_if_bodies_are_inlined():
    text = """<ir_version: 8, opset_import: ["" : 13, "local" : 1]>
g (float[2, 4] x) => (float[2, 4] y) {
  s = ReduceSum <keepdims = 0> (x)
  zero = Constant <value = float {0.0}> ()
  c = Greater (s, zero)
  a = local.F <alpha = 0.25> (x)
  y = If (c) <then_branch = t () => (float[2, 4] o) { o = local.G (a) },
              else_branch = e () => (float[2, 4] o2) { o2 = Relu (a) }>
}
<domain: "local", opset_import: ["" : 13, "local" : 1]>
F <alpha> (t) => (u) { l = LeakyRelu <alpha: float = @alpha> (t)
  u = local.G (l) }
<domain: "local", opset_import: ["" : 13]>
G (t) => (u) { k = Constant <value = float {1.5}> ()
  u = Mul (t, k) }
<domain: "local", opset_import: ["" : 13]>
Unused (t) => (u) { u = Relu (t) }
"""
    model = onnx.parser.parse_model(text)
    onnx.checker.check_model(model, full_check=True)
    converted_and_close(model, atol=1e-2)
    negative = -np.abs(X)  # the else branch
    half = fp16_model(model)
    np.testing.assert_allclose(
        ort_run(half, {"x": negative}, level="disable")["y"],
        ort_run(model, {"x": negative}, level="disable")["y"],
        rtol=2e-3,
        atol=1e-2,
    )


def test_out_of_range_constant_in_a_function_stays_float32():
    # 1e5 is beyond float16 (the converter would clamp it to 65504): the Mul reading it stays
    # float32, as for a constant of the main graph; y = x * 1e-4 * [1e5, 1, 1, 1]
    text = """<ir_version: 8, opset_import: ["" : 13, "local" : 1]>
g (float[2, 4] x) => (float[2, 4] y) {
  k = Constant <value = float {1e-4}> ()
  a = Mul (x, k)
  y = local.F (a)
}
<domain: "local", opset_import: ["" : 13]>
F (t) => (u) {
  big = Constant <value = float[4] {1e5, 1.0, 1.0, 1.0}> ()
  u = Mul (t, big)
}
"""
    model = onnx.parser.parse_model(text)
    onnx.checker.check_model(model, full_check=True)
    half = fp16_model(model)
    onnx.checker.check_model(half, full_check=True)
    want = ort_run(model, {"x": X}, level="disable")["y"]
    got = ort_run(half, {"x": X}, level="disable")["y"]
    np.testing.assert_allclose(got[:, 0], want[:, 0], rtol=2e-3)


def test_a_recursive_function_is_one_backend_error_naming_it():
    model = with_function(13, "\n  u = local.F (t)", check=False)
    del model.functions[0].opset_import[:]
    model.functions[0].opset_import.extend(
        [onnx.helper.make_opsetid("", 13), onnx.helper.make_opsetid("local", 1)]
    )
    with pytest.raises(BackendError, match=r"local function\(s\) local\.F \(") as e:
        fp16_model(model)
    assert "\n" not in str(e.value)


def test_a_function_onnx_does_not_inline_is_one_backend_error_naming_it():
    # a body at another opset than the model's: onnx's inliner leaves the function as it is
    model = with_function(13, "\n  u = Relu (t)", check=False)
    model.functions[0].opset_import[0].version = 19
    with pytest.raises(
        BackendError, match=r"does not inline its local function\(s\) local\.F"
    ) as e:
        fp16_model(model)
    assert "\n" not in str(e.value)


def test_models_without_functions_do_not_go_through_the_inliner(monkeypatch):
    import onnx.inliner

    def refuse(*args, **kwargs):
        raise AssertionError("inliner called")

    text = """<ir_version: 8, opset_import: ["" : 13]>
g (float[2, 4] x) => (float[2, 4] y) {
  a = Relu (x)
  two = Constant <value = float[4] {2.0, 0.5, -1.5, 3.0}> ()
  y = Mul (a, two)
}
"""
    model = onnx.parser.parse_model(text)
    before = fp16_model(model).SerializeToString(deterministic=True)
    monkeypatch.setattr(onnx.inliner, "inline_local_functions", refuse)
    assert fp16_model(model).SerializeToString(deterministic=True) == before
    converted_and_close(model, atol=1e-2)


# -- blocked ops in If/Loop bodies ---------------------------------------------------------------
# onnxruntime's converter keeps some ops float32 (TopK, Max, Min, NonMaxSuppression, Range, ...)
# behind Casts, and puts those Casts in the main graph even for a node of a body: they read a
# name only the body defines (onnx.checker: not topologically sorted; onnxruntime refuses).

IF_MAX = """<ir_version: 8, opset_import: ["" : 13]>
g (float[2, 4] x, bool c) => (float[2, 4] y) {
  y = If (c) <then_branch = t () => (float[2, 4] o) { h = Constant <value = float {0.5}> ()
                                                    o = Max (x, h) },
              else_branch = e () => (float[2, 4] o2) { o2 = Relu (x) }>
}"""
IF_TOPK = """<ir_version: 8, opset_import: ["" : 13]>
g (float[2, 4] x, bool c) => (float[2, 2] y) {
  y = If (c) <then_branch = t () => (float[2, 2] o) { k = Constant <value = int64[1] {2}> ()
                                                    o, i = TopK (x, k) },
              else_branch = e () => (float[2, 2] o2) { s = Constant <value = int64[1] {0}> ()
                                                     n = Constant <value = int64[1] {2}> ()
                                                     a = Constant <value = int64[1] {1}> ()
                                                     o2 = Slice (x, s, n, a) }>
}"""
LOOP_MAX = """<ir_version: 8, opset_import: ["" : 13]>
g (float[2, 4] x) => (float[2, 4] y) {
  n = Constant <value = int64 {3}> ()
  t = Constant <value = bool {1}> ()
  y = Loop (n, t, x) <body = b (int64 i, bool cin, float[2, 4] v) => (bool cout, float[2, 4] w) {
    cout = Identity (cin)
    h = Constant <value = float {0.25}> ()
    m = Max (v, h)
    w = Add (m, x) }>
}"""
NESTED_IF = """<ir_version: 8, opset_import: ["" : 13]>
g (float[2, 4] x, bool c) => (float[2, 4] y) {
  r = Relu (x)
  y = If (c) <then_branch = t () => (float[2, 4] o) {
                o = If (c) <then_branch = t2 () => (float[2, 4] p) { q = Neg (x)
                                                                  p = Min (q, r) },
                            else_branch = e2 () => (float[2, 4] p2) { p2 = Relu (x) }> },
              else_branch = e () => (float[2, 4] o2) { o2 = Max (r, x) }>
}"""

# then and else may both define h and o: each needs its own Casts
SIBLINGS = """<ir_version: 8, opset_import: ["" : 13]>
g (float[2, 4] x, bool c) => (float[2, 4] y) {
  y = If (c) <then_branch = t () => (float[2, 4] o) { h = Constant <value = float {0.5}> ()
                                                    o = Max (x, h) },
              else_branch = e () => (float[2, 4] o) { h = Constant <value = float {0.25}> ()
                                                    o = Min (x, h) }>
}"""


@pytest.mark.parametrize(
    "text",
    [IF_MAX, IF_TOPK, LOOP_MAX, NESTED_IF, SIBLINGS],
    ids=["if-max", "if-topk", "loop", "nested", "siblings"],
)
def test_blocked_ops_in_bodies_get_their_casts_in_the_body(text):
    model = onnx.parser.parse_model(text)
    onnx.checker.check_model(model, full_check=True)
    half = fp16_model(model)
    onnx.checker.check_model(half, full_check=True)
    feeds = [{"x": X}, {"x": -X}]
    if any(i.name == "c" for i in model.graph.input):
        feeds = [{**f, "c": np.array(c)} for f in feeds for c in (True, False)]
    for f in feeds:
        want = ort_run(model, f, level="disable")["y"]
        got = ort_run(half, f, level="disable")["y"]
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=2e-3, atol=1e-2)
    names = {o for n in half.graph.node for o in n.output} | {i.name for i in half.graph.input}
    casts = [n for n in half.graph.node if n.op_type == "Cast"]
    assert all(n.input[0] in names for n in casts)


BODY_BIG = """<ir_version: 8, opset_import: ["" : 13]>
g (float[2, 4] x, bool c) => (float[2, 4] y) {
  k = Constant <value = float {1e-4}> ()
  s = Mul (x, k)
  y = If (c) <then_branch = t () => (float[2, 4] o) {
                big = Constant <value = float[4] {1e5, 1.0, 1.0, 1.0}> ()
                o = Mul (s, big) },
              else_branch = e () => (float[2, 4] o) {
                o = If (c) <then_branch = t2 () => (float[2, 4] p) { p = Relu (s) },
                            else_branch = e2 () => (float[2, 4] p) {
                              big = Constant <value = float[4] {1.0, 2e5, 1.0, 1.0}> ()
                              p = Mul (s, big) }> }>
}"""


@pytest.mark.parametrize("c", [True, False])
def test_out_of_range_constant_in_a_body_stays_float32(c):
    # a body's constant of 1e5 became 65504 (the converter clamps it): y = x * 1e-4 * 1e5
    # came out 0.655 x instead of x; the Mul reading it now stays float32, as in the main graph
    model = onnx.parser.parse_model(BODY_BIG)
    onnx.checker.check_model(model, full_check=True)
    half = fp16_model(model)
    onnx.checker.check_model(half, full_check=True)
    feeds = {"x": X, "c": np.array(c)}
    want = ort_run(model, feeds, level="disable")["y"]
    got = ort_run(half, feeds, level="disable")["y"]
    np.testing.assert_allclose(got, want, rtol=2e-3, atol=1e-6)


def branch_with_weight(name: str, value: float) -> onnx.GraphProto:
    from onnx import helper, numpy_helper

    return helper.make_graph(
        [helper.make_node("Mul", ["x", "w"], ["o"])],
        name,
        [],
        [helper.make_tensor_value_info("o", TensorProto.FLOAT, [2, 4])],
        [numpy_helper.from_array(np.full(4, value, np.float32), "w")],
    )


def test_then_and_else_initializers_of_one_name_convert():
    # valid ONNX (each branch its own scope); the converter tracks initializers by name over
    # all graphs and stopped on the second 'w' ("cannot convert the model to float16: ")
    from onnx import helper

    graph = helper.make_graph(
        [
            helper.make_node(
                "If",
                ["c"],
                ["y"],
                then_branch=branch_with_weight("t", 2.0),
                else_branch=branch_with_weight("e", 3.0),
            )
        ],
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4]),
            helper.make_tensor_value_info("c", TensorProto.BOOL, []),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    half = fp16_model(model)
    onnx.checker.check_model(half, full_check=True)
    for c in (True, False):
        feeds = {"x": X, "c": np.array(c)}
        np.testing.assert_allclose(
            ort_run(half, feeds, level="disable")["y"],
            ort_run(model, feeds, level="disable")["y"],
            rtol=2e-3,
            atol=1e-2,
        )
