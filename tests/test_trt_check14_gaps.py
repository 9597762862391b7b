"""`check --target tensorrt` gaps closed in session 14 (graphopt/backends/trt_check.py):

1. an If whose branch outputs have one rank but different static shapes, on a run-time
   condition: TensorRT before 10.11 refuses it (NvInfer.h 10.0 .. 10.10: "the same type and
   shape"; NVIDIA/TensorRT#4558: "Shapes are [2] and [1]" on 10.3, built on 10.13);
2. model-local functions: TensorRT's parser imports each call's body node by node, so the body
   is checked as if inlined, each finding naming the calling node;
3. a QuantizeLinear outside an If whose DequantizeLinear sits in a branch: the parser puts an
   IIfConditionalInputLayer between the two, and a conditional carries no quantized type;
4. node names in bodies that are not UTF-8 print as the top-level ones do (escaped), not b'…'.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx.helper as oh
import onnx.parser
import onnxruntime as ort
import pytest
from onnx import TensorProto, numpy_helper

from graphopt.backends.trt_check import check_tensorrt, errors
from graphopt.errors import LoadError

F = TensorProto.FLOAT
I64 = TensorProto.INT64


def _vi(name: str, shape: list | None, dtype: int = F) -> onnx.ValueInfoProto:
    return oh.make_tensor_value_info(name, dtype, shape)


def _int64(name: str, values: list[int]) -> onnx.TensorProto:
    return numpy_helper.from_array(np.array(values, np.int64), name)


def _model(nodes, inputs, outputs, inits=(), opset: int = 17):  # type: ignore[no-untyped-def]
    graph = oh.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset)], ir_version=8)


def _run(model: onnx.ModelProto, feeds: dict) -> list:  # type: ignore[type-arg]
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


# -- 1. If branches of one rank and different static shapes ------------------------------------


def _slice_branch(out: str, end: int) -> onnx.GraphProto:
    """x[:, :end] of the outer x: [1, 8] -> [1, end]."""
    names = [f"{out}_start", f"{out}_end", f"{out}_axis"]
    return oh.make_graph(
        [oh.make_node("Slice", ["x", *names], [out], name=f"slice_{out}")],
        out,
        [],
        [_vi(out, [1, None])],
        initializer=[_int64(names[0], [0]), _int64(names[1], [end]), _int64(names[2], [1])],
    )


def _shapes_if(cond_nodes: list, cond: str, x_shape: list, inputs: list):  # type: ignore[no-untyped-def]
    pick = oh.make_node(
        "If",
        [cond],
        ["y"],
        name="pick",
        then_branch=_slice_branch("t", 4),
        else_branch=_slice_branch("e", 2),
    )
    return _model([*cond_nodes, pick], [_vi("x", x_shape), *inputs], [_vi("y", [1, None])])


def test_branch_shapes_that_differ_on_a_runtime_condition_are_refused_before_10_11():
    model = _shapes_if([], "c", [1, 8], [_vi("c", [], TensorProto.BOOL)])
    onnx.checker.check_model(model, full_check=True)
    x = np.arange(8, dtype=np.float32).reshape(1, 8)
    assert _run(model, {"x": x, "c": np.array(False)})[0].shape == (1, 2)  # valid ONNX
    for version in ("10.3", "10.10"):
        found = check_tensorrt(model, version)
        assert [(f.severity, f.rule, f.node) for f in found] == [("error", "if-branches", "pick")]
        assert "output 't' is [1, 4] and else_branch output 'e' [1, 2]" in found[0].message
        assert f"TensorRT {version} needs the same shape" in found[0].message
        assert "it reads 'c'" in found[0].message
    # NvInfer.h 10.11: the same rank suffices (the [2]/[1] If of #4558 built on 10.13)
    for version in ("10.11", "10", "11"):
        assert check_tensorrt(model, version) == []


def test_branch_shapes_on_a_condition_folded_at_build_time_are_fine():
    """`x.shape[1] == 8` on a static x folds when TensorRT builds: no finding."""
    nodes = [
        oh.make_node("Shape", ["x"], ["s"], name="shape"),
        oh.make_node("Gather", ["s", "one"], ["d"], name="dim", axis=0),
        oh.make_node("Equal", ["d", "eight"], ["c"], name="eq"),
    ]
    model = _shapes_if(nodes, "c", [1, 8], [])
    model.graph.initializer.extend([_scalar("one", 1), _scalar("eight", 8)])
    assert check_tensorrt(model, "10.10") == []


def _scalar(name: str, value: int) -> onnx.TensorProto:
    return numpy_helper.from_array(np.array(value, np.int64), name)


def test_branch_shapes_on_a_dynamic_dimension_are_refused_before_10_11():
    nodes = [
        oh.make_node("Shape", ["x"], ["s"], name="shape"),
        oh.make_node("Gather", ["s", "zero"], ["d"], name="dim", axis=0),
        oh.make_node("Equal", ["d", "one"], ["c"], name="eq"),
    ]
    model = _shapes_if(nodes, "c", ["batch", 8], [])
    model.graph.initializer.extend([_scalar("zero", 0), _scalar("one", 1)])
    found = errors(check_tensorrt(model, "10.8", shapes={"x": None}))
    assert [(f.rule, f.node) for f in found] == [("if-branches", "pick")]
    assert "reads the dynamic shape of 'x'" in found[0].message
    assert errors(check_tensorrt(model, "10.15", shapes={"x": None})) == []


def test_branch_dimensions_unknown_on_one_side_are_not_judged():
    """[1, ?] against [1, 2]: nothing this check can prove, so nothing said."""
    then = oh.make_graph(
        [oh.make_node("Identity", ["x"], ["t"], name="same")], "t", [], [_vi("t", [1, None])]
    )
    pick = oh.make_node(
        "If", ["c"], ["y"], name="pick", then_branch=then, else_branch=_slice_branch("e", 2)
    )
    model = _model(
        [pick], [_vi("x", [1, "n"]), _vi("c", [], TensorProto.BOOL)], [_vi("y", [1, None])]
    )
    assert check_tensorrt(model, "10.3", shapes={"x": None}) == []


# -- 2. model-local functions ------------------------------------------------------------------

_FUNCTIONS = """
<ir_version: 8, opset_import: ["" : 17, "local" : 1]>
agraph (float[2,3] x, float[3,4] w) => (float[2,4] z) {
  t = Relu(x)
  z = local.Block <equation = "IJ,JK->IK"> (t, w)
}
<domain: "local", opset_import: ["" : 17, "local" : 1]>
Block <equation> (a, b) => (out) {
  prod = Einsum <equation: string = @equation> (a, b)
  out = local.Inner (prod)
}
<domain: "local", opset_import: ["" : 17]>
Inner (p) => (q) {
  q = Sigmoid(p)
}
"""


def _function_model(equation: str = "IJ,JK->IK", inner_op: str = "Sigmoid") -> onnx.ModelProto:
    model = onnx.parser.parse_model(_FUNCTIONS.replace("IJ,JK->IK", equation))
    model.graph.node[1].name = "block"
    model.functions[0].node[0].name = "einsum"
    model.functions[0].node[1].name = "call_inner"
    model.functions[1].node[0].name = "inner_op"
    model.functions[1].node[0].op_type = inner_op
    return model


def test_a_function_body_is_checked_with_its_attribute_references_bound():
    """Einsum's equation comes from the call (`@equation`): capitals, which the parser's
    Einsum checker refuses; the finding names the calling node."""
    model = _function_model()
    x, w = np.ones((2, 3), np.float32), np.ones((3, 4), np.float32)
    assert _run(model, {"x": x, "w": w})[0].shape == (2, 4)  # onnxruntime runs it
    before = model.SerializeToString()
    found = errors(check_tensorrt(model))
    assert model.SerializeToString() == before  # the caller's model is left as it was
    assert [(f.rule, f.node, f.scope) for f in found] == [
        ("unsupported-attribute", "einsum", "Block 'block' function body")
    ]
    assert "'IJ,JK->IK'" in found[0].message
    assert str(found[0]).startswith(
        "error: [unsupported-attribute] Block 'block' function body > node 'einsum' (Einsum): "
    )
    assert errors(check_tensorrt(_function_model("ij,jk->ik"))) == []


def test_a_function_called_inside_a_function_is_checked_through_both_calls():
    found = errors(check_tensorrt(_function_model("ij,jk->ik", inner_op="Unique")))
    assert [(f.rule, f.node, f.scope) for f in found] == [
        (
            "unsupported-op",
            "inner_op",
            "Block 'block' function body > Inner 'call_inner' function body",
        )
    ]


def test_each_call_of_a_function_is_its_own_finding():
    model = _function_model()
    second = oh.make_node(
        "Block", ["z", "w2"], ["z2"], name="again", domain="local", equation="IJ,JK->IK"
    )
    model.graph.node.append(second)
    model.graph.input.append(_vi("w2", [4, 4]))
    model.graph.output[0].CopyFrom(_vi("z2", [2, 4]))
    scopes = [f.scope for f in errors(check_tensorrt(model))]
    assert scopes == ["Block 'block' function body", "Block 'again' function body"]


def test_a_call_with_fewer_inputs_than_the_function_is_refused():
    """LocalFunctionImporter: "LocalFunction has an unexpected number of inputs"."""
    model = _function_model("ij,jk->ik")
    model.functions[1].input.append("unused")
    model.functions[0].node[1].input.append("b")  # Inner(prod, b): as many as it takes
    assert errors(check_tensorrt(model)) == []
    del model.functions[0].node[1].input[1:]
    found = errors(check_tensorrt(model))
    assert [(f.rule, f.node, f.scope) for f in found] == [
        ("local-function", "call_inner", "Block 'block' function body")
    ]
    assert "gives 1 inputs and function local::Inner takes 2" in found[0].message


def test_a_function_calling_itself_is_refused_not_followed_forever():
    """Refused at load, as by every command (onnx's checker: 'Model-local functions must not be
    recursive'), before the check would follow it."""
    model = _function_model("ij,jk->ik", inner_op="Sigmoid")
    model.functions[1].node[0].op_type = "Inner"  # Inner calls Inner
    model.functions[1].node[0].domain = "local"
    with pytest.raises(LoadError, match=r"in a cycle \(local::Inner -> local::Inner\)"):
        check_tensorrt(model)


def test_calls_inside_bodies_and_bodies_inside_calls_are_located_through_both():
    uniq = oh.make_function(
        "local",
        "G",
        ["a"],
        ["b"],
        [oh.make_node("Unique", ["a"], ["b"], name="uniq")],
        [oh.make_opsetid("", 17)],
    )
    then = oh.make_graph(
        [oh.make_node("G", ["x"], ["t"], name="call_g", domain="local")], "t", [], [_vi("t", [3])]
    )
    other = oh.make_graph([oh.make_node("Abs", ["x"], ["e"], name="abs")], "e", [], [_vi("e", [3])])
    branching = oh.make_function(  # H(x, c) = If c then G(x) else |x|
        "local",
        "H",
        ["x", "c"],
        ["y"],
        [oh.make_node("If", ["c"], ["y"], name="inner_if", then_branch=then, else_branch=other)],
        [oh.make_opsetid("", 17), oh.make_opsetid("local", 1)],
    )
    model = _model(
        [oh.make_node("H", ["v", "flag"], ["w"], name="call_h", domain="local")],
        [_vi("v", [3]), _vi("flag", [], TensorProto.BOOL)],
        [_vi("w", [3])],
    )
    model.opset_import.append(oh.make_opsetid("local", 1))
    model.functions.extend([uniq, branching])
    onnx.checker.check_model(model)
    found = errors(check_tensorrt(model))
    assert [(f.rule, f.node, f.scope) for f in found] == [
        (
            "unsupported-op",
            "uniq",
            "H 'call_h' function body > If 'inner_if' then_branch > G 'call_g' function body",
        )
    ]


def _call_chain(length: int) -> onnx.ModelProto:
    """F0 calls F1 calls ... F{length-1}, whose body is a Relu."""
    functions = []
    for k in range(length):
        last = k == length - 1
        node = oh.make_node(
            "Relu" if last else f"F{k + 1}",
            ["a"],
            ["b"],
            name=f"in_f{k}",
            domain="" if last else "local",
        )
        functions.append(
            oh.make_function(
                "local",
                f"F{k}",
                ["a"],
                ["b"],
                [node],
                [oh.make_opsetid("", 17), oh.make_opsetid("local", 1)],
            )
        )
    model = _model(
        [oh.make_node("F0", ["x"], ["y"], name="top", domain="local")],
        [_vi("x", [1, 3])],
        [_vi("y", [1, 3])],
    )
    model.opset_import.append(oh.make_opsetid("local", 1))
    model.functions.extend(functions)
    return model


def test_calls_nested_past_the_parsers_24_levels_are_refused():
    """parseNode counts each local-function call as a nesting level (kMAX_NESTED_SUBGRAPHS)."""
    x = np.array([[-1.0, 0.0, 2.0]], np.float32)
    np.testing.assert_allclose(_run(_call_chain(25), {"x": x})[0], [[0.0, 0.0, 2.0]])
    assert check_tensorrt(_call_chain(24)) == []
    found = errors(check_tensorrt(_call_chain(25)))
    assert [(f.rule, f.node) for f in found] == [("nested-bodies", "in_f23")]
    assert "its body sits 25 levels deep" in found[0].message
    assert found[0].scope.startswith("F0 'top' function body > F1 'in_f0' function body > ")


def test_a_function_input_named_like_a_tensor_of_the_calling_scope_is_refused():
    """LocalFunctionImporter binds a function input to the call's tensor only where the scope
    has no tensor of the input's name ("does not correspond to an outside scope name.
    Behavior may be incorrect"): Block(t, w) with Block's input named `x`, the graph's input,
    reads x (not Relu(x)) in TensorRT."""
    model = _function_model("ij,jk->ik")
    x, w = np.array([[-1.0, 2.0, 3.0], [4.0, -5.0, 6.0]], np.float32), np.ones((3, 4), np.float32)
    expected = _run(model, {"x": x, "w": w})[0]
    model.functions[0].input[0] = "x"
    model.functions[0].node[0].input[0] = "x"
    np.testing.assert_allclose(_run(model, {"x": x, "w": w})[0], expected)  # same model
    found = errors(check_tensorrt(model))
    assert [(f.rule, f.node, f.scope) for f in found] == [("local-function", "block", "")]
    assert "names its input 'x'" in found[0].message
    assert "not the call's input 't'" in found[0].message
    # the same name as the call's own input is what the parser expects (no binding needed)
    model.graph.node[1].input[0] = "x"
    assert errors(check_tensorrt(model)) == []


def test_a_function_handing_an_input_out_as_is_is_inlined():
    """F(a) => (a, n): the call's first output is its input (valid ONNX; the parser looks the
    output up by name). Inlined, the graph defines it from the call's input: an If on it reads
    the input `c` (an error on a rank change), not a tensor nothing produces (a warning)."""
    function = oh.make_function(
        "local",
        "F",
        ["a"],
        ["a", "n"],
        [oh.make_node("Not", ["a"], ["n"], name="negate")],
        [oh.make_opsetid("", 17)],
    )
    then = oh.make_graph(
        [oh.make_node("Identity", ["x"], ["t"], name="keep")], "then", [], [_vi("t", [1, 3])]
    )
    other = oh.make_graph(
        [oh.make_node("Squeeze", ["x", "zero"], ["e"], name="drop")],
        "else",
        [],
        [_vi("e", [3])],
        initializer=[_int64("zero", [0])],
    )
    nodes = [
        oh.make_node("F", ["c"], ["y", "not_c"], name="call", domain="local"),
        oh.make_node("If", ["y"], ["z"], name="pick", then_branch=then, else_branch=other),
    ]
    model = _model(
        nodes,
        [_vi("c", [], TensorProto.BOOL), _vi("x", [1, 3])],
        [_vi("z", [None, None]), _vi("not_c", [], TensorProto.BOOL)],
    )
    model.opset_import.append(oh.make_opsetid("local", 1))
    model.functions.append(function)
    onnx.checker.check_model(model)
    found = check_tensorrt(model)
    assert [(f.severity, f.rule, f.node) for f in found] == [("error", "if-branches", "pick")]
    assert found[0].message.endswith("and it reads 'c'")


def test_a_qdq_pair_split_by_a_function_call_is_one_pair():
    """Q in the main graph, its DQ in the function: the parser inlines the call, so the pair
    is whole (before, the call's body was not read and its Q/DQ pairs not judged: a nonzero
    zero point inside went unseen)."""
    text = """
    <ir_version: 8, opset_import: ["" : 17, "local" : 1]>
    agraph (float[1,3] x) => (float[1,3] y) {
      s = Constant <value = float {0.1}> ()
      zp = Constant <value = int8 {0}> ()
      q = QuantizeLinear(x, s, zp)
      y = local.Deq (q, s, zp)
    }
    <domain: "local", opset_import: ["" : 17]>
    Deq (v, scale, zero) => (out) {
      d = DequantizeLinear(v, scale, zero)
      out = Relu(d)
    }
    """
    model = onnx.parser.parse_model(text)
    model.graph.node[2].name = "q"
    model.graph.node[3].name = "deq"
    model.functions[0].node[0].name = "dq"
    assert check_tensorrt(model) == []  # no "feeds Deq 'deq'", no "from neither a Q"
    model.graph.node[1].attribute[0].t.CopyFrom(numpy_helper.from_array(np.int8(3), "zp"))
    found = errors(check_tensorrt(model))
    assert {(f.rule, f.node, f.scope) for f in found} == {
        ("qdq-zero-point", "dq", "Deq 'deq' function body"),
        ("qdq-zero-point", "q", ""),
    }


@pytest.mark.realmodel
def test_materialized_fusion_groups_are_checked_as_the_model_they_stand_for(real_model, tmp_path):
    """layout_cdla quantized for TensorRT, its fusion groups made model-local functions
    (materialize-fusion-groups, 120 calls holding 164 Q/DQ nodes): the same findings as the
    model without functions, each inside its call. A nonzero zero point that a group reads
    went unreported (0 errors) while the functions were not read."""
    import graphopt
    from graphopt.realmodels import model_inputs

    q = graphopt.quantize(
        str(real_model("layout_cdla")),
        model_inputs("layout_cdla", 2),
        method="minmax",
        target="tensorrt",
    )
    assert check_tensorrt(q) == []
    recipe = tmp_path / "materialize.yaml"
    recipe.write_text("passes:\n  - materialize-fusion-groups: {min_size: 2}\n")
    grouped = graphopt.optimize(q, str(recipe))
    assert len(grouped.functions) > 50
    assert check_tensorrt(grouped) == []
    # the zero point a group's Q and DQ read (a function input bound to an initializer)
    called = {n.op_type: n for n in grouped.graph.node if n.domain == "graphopt.fused"}
    function = next(
        f for f in grouped.functions if any(n.op_type == "QuantizeLinear" for n in f.node)
    )
    call = called[function.name]
    quantize = next(n for n in function.node if n.op_type == "QuantizeLinear")
    zero = call.input[list(function.input).index(quantize.input[2])]
    for model in (grouped, q):
        init = next(t for t in model.graph.initializer if t.name == zero)
        init.CopyFrom(numpy_helper.from_array(np.full_like(numpy_helper.to_array(init), 1), zero))
    flat = {(f.rule, f.node) for f in errors(check_tensorrt(q))}
    found = errors(check_tensorrt(grouped))
    assert flat and {(f.rule, f.node) for f in found} == flat
    inside = [f for f in found if f.node == quantize.name]
    assert [f.scope for f in inside] == [f"{function.name} {call.name!r} function body"]


# -- 3. a Q/DQ pair split by an If -------------------------------------------------------------


def _split_pair(cond_value: bool | None = None, reader: str = "DequantizeLinear"):  # type: ignore[no-untyped-def]
    """Q(x) in the main graph, read in the then_branch by `reader`; the condition an input,
    or a constant `cond_value`."""
    if reader == "DequantizeLinear":
        inner = [oh.make_node("DequantizeLinear", ["xq", "s", "zp"], ["xd"], name="dq_in")]
    else:
        inner = [oh.make_node(reader, ["xq"], ["xr"], name="reader")]
        inner.append(oh.make_node("Cast", ["xr"], ["xd"], name="to_float", to=F))
    inner.append(oh.make_node("Relu", ["xd"], ["t"], name="relu"))
    then = oh.make_graph(inner, "then", [], [_vi("t", [1, 3])])
    other = oh.make_graph(
        [oh.make_node("Abs", ["x"], ["e"], name="abs")], "else", [], [_vi("e", [1, 3])]
    )
    inits = [
        numpy_helper.from_array(np.array(0.1, np.float32), "s"),
        numpy_helper.from_array(np.array(0, np.int8), "zp"),
    ]
    inputs = [_vi("x", [1, 3])]
    if cond_value is None:
        inputs.append(_vi("c", [], TensorProto.BOOL))
    else:
        inits.append(numpy_helper.from_array(np.array(cond_value), "c"))
    nodes = [
        oh.make_node("QuantizeLinear", ["x", "s", "zp"], ["xq"], name="q_out"),
        oh.make_node("If", ["c"], ["y"], name="branch", then_branch=then, else_branch=other),
    ]
    return _model(nodes, inputs, [_vi("y", [1, 3])], inits)


def test_a_dq_in_a_branch_of_a_q_outside_the_if_is_refused_at_the_dq():
    model = _split_pair()
    onnx.checker.check_model(model, full_check=True)
    x = np.array([[-1.0, 0.5, 2.0]], np.float32)
    np.testing.assert_allclose(
        _run(model, {"x": x, "c": np.array(True)})[0], [[0.0, 0.5, 2.0]], rtol=1e-6
    )
    found = check_tensorrt(model)
    assert [(f.severity, f.rule, f.node, f.scope) for f in found] == [
        ("error", "qdq-pair", "dq_in", "If 'branch' then_branch")
    ]
    assert "QuantizeLinear 'q_out' quantizes outside the If" in found[0].message
    assert "IIfConditionalInputLayer" in found[0].message


def test_the_same_pair_under_a_constant_condition_is_imported_inline():
    """importIf parses only the branch a constant condition selects, in the main scope: no
    conditional boundary between Q and DQ (before, "it feeds If 'branch'": an error)."""
    assert check_tensorrt(_split_pair(cond_value=True)) == []


def test_a_loop_body_dequantizing_an_outer_q_is_one_pair():
    """A Loop body reads outer tensors directly (no boundary layer): the pair is whole."""
    body = oh.make_graph(
        [
            oh.make_node("DequantizeLinear", ["xq", "s", "zp"], ["xd"], name="dq_in"),
            oh.make_node("Add", ["acc", "xd"], ["acc_out"], name="add"),
            oh.make_node("Identity", ["cond"], ["cond_out"], name="keep_going"),
        ],
        "body",
        [_vi("i", [], I64), _vi("cond", [], TensorProto.BOOL), _vi("acc", [1, 3])],
        [_vi("cond_out", [], TensorProto.BOOL), _vi("acc_out", [1, 3])],
    )
    inits = [
        numpy_helper.from_array(np.array(0.1, np.float32), "s"),
        numpy_helper.from_array(np.array(0, np.int8), "zp"),
        numpy_helper.from_array(np.array(3, np.int64), "trips"),
        numpy_helper.from_array(np.zeros((1, 3), np.float32), "zeros"),
        numpy_helper.from_array(np.array(True), "go"),
    ]
    nodes = [
        oh.make_node("QuantizeLinear", ["x", "s", "zp"], ["xq"], name="q_out"),
        oh.make_node("Loop", ["trips", "go", "zeros"], ["y"], name="loop", body=body),
    ]
    model = _model(nodes, [_vi("x", [1, 3])], [_vi("y", [1, 3])], inits)
    x = np.array([[1.0, 2.0, 3.0]], np.float32)
    np.testing.assert_allclose(_run(model, {"x": x})[0], 3 * x, rtol=1e-6)
    assert check_tensorrt(model) == []


def test_a_branch_handing_out_a_quantized_tensor_is_refused_saying_why():
    """Q in each branch, the DQ after the If: the branch outputs are INT8, which the
    IIfConditionalOutputLayer would carry (was: "a QuantizeLinear must feed only
    DequantizeLinear nodes", which did not say why)."""
    inits = [
        numpy_helper.from_array(np.array(0.1, np.float32), "s"),
        numpy_helper.from_array(np.array(0, np.int8), "zp"),
    ]

    def branch(op: str) -> onnx.GraphProto:
        nodes = [
            oh.make_node(op, ["x"], [f"{op}_out"], name=op.lower()),
            oh.make_node("QuantizeLinear", [f"{op}_out", "s", "zp"], [f"{op}_q"], name=f"q_{op}"),
        ]
        return oh.make_graph(nodes, op, [], [_vi(f"{op}_q", [1, 3], TensorProto.INT8)])

    nodes = [
        oh.make_node(
            "If",
            ["c"],
            ["yq"],
            name="branch",
            then_branch=branch("Relu"),
            else_branch=branch("Abs"),
        ),
        oh.make_node("DequantizeLinear", ["yq", "s", "zp"], ["y"], name="dq_after"),
    ]
    model = _model(
        nodes, [_vi("x", [1, 3]), _vi("c", [], TensorProto.BOOL)], [_vi("y", [1, 3])], inits
    )
    onnx.checker.check_model(model, full_check=True)
    x = np.array([[-1.0, 0.5, 2.0]], np.float32)
    np.testing.assert_allclose(_run(model, {"x": x, "c": np.array(False)})[0], [[1.0, 0.5, 2.0]])
    found = [f for f in errors(check_tensorrt(model)) if f.scope]
    assert [(f.rule, f.node, f.scope) for f in found] == [
        ("qdq-pair", "q_Relu", "If 'branch' then_branch"),
        ("qdq-pair", "q_Abs", "If 'branch' else_branch"),
    ]
    assert "its output 'Relu_q' leaves the If branch quantized" in found[0].message
    assert "IIfConditionalOutputLayer" in found[0].message


def test_a_q_read_by_another_op_inside_a_branch_is_still_a_stray():
    found = errors(check_tensorrt(_split_pair(cond_value=True, reader="Identity")))
    assert [(f.rule, f.node) for f in found] == [("qdq-pair", "q_out")]
    assert found[0].message.endswith("it feeds Identity 'reader'")


# -- 4. node names in bodies that are not UTF-8 --------------------------------------------------


def _unicode_broken(tmp_path):  # type: ignore[no-untyped-def]
    """An If named b"br\\xff\\xfe" whose then_branch holds a QuickGelu named b"qg\\xff\\xfe"."""
    then = oh.make_graph(
        [oh.make_node("QuickGelu", ["x"], ["t"], name="qgZZ", domain="com.microsoft")],
        "then",
        [],
        [_vi("t", [1, 3])],
    )
    other = oh.make_graph(
        [oh.make_node("Relu", ["x"], ["e"], name="r")], "else", [], [_vi("e", [1, 3])]
    )
    model = _model(
        [oh.make_node("If", ["c"], ["y"], name="brYY", then_branch=then, else_branch=other)],
        [_vi("x", [1, 3]), _vi("c", [], TensorProto.BOOL)],
        [_vi("y", [1, 3])],
    )
    model.opset_import.append(oh.make_opsetid("com.microsoft", 1))
    data = model.SerializeToString().replace(b"qgZZ", b"qg\xff\xfe")
    path = tmp_path / "names.onnx"
    path.write_bytes(data.replace(b"brYY", b"br\xff\xfe"))
    return path


def test_a_body_node_name_that_is_not_utf8_prints_escaped_like_a_top_level_one(tmp_path, capsys):
    from graphopt.cli import main

    path = _unicode_broken(tmp_path)
    assert main(["check", str(path), "--target", "tensorrt"]) == 1
    text = capsys.readouterr().out
    assert (
        "If 'br\\\\xff\\\\xfe' then_branch > node 'qg\\\\xff\\\\xfe' (com.microsoft::QuickGelu)"
        in text
    )
    assert "b'" not in text


def test_the_api_takes_a_model_whose_node_names_are_not_utf8(tmp_path):
    """check_tensorrt gave the caller's node names back after indexing, and protobuf refuses
    to set one that is not UTF-8 (UnicodeDecodeError); it works on a copy for those now."""
    model = onnx.load(str(_unicode_broken(tmp_path)))
    assert model.graph.node[0].name == b"br\xff\xfe"
    (found,) = check_tensorrt(model)
    # the text with the bad bytes escaped, shown by repr as check shows top-level names
    assert (found.node, found.scope) == ("qg\\xff\\xfe", "If 'br\\\\xff\\\\xfe' then_branch")
    assert model.graph.node[0].name == b"br\xff\xfe"
