"""`check --target tensorrt` inside If/Loop/Scan bodies (graphopt/backends/trt_check.py
`check_subgraphs`): TensorRT's parser imports each body with the same importers, so a body is
checked with the same rules, its findings located by the path of enclosing nodes; plus the
rules importIf/importLoop/importScan add. check looked at the main graph only: a QuickGelu or
a com.microsoft FusedConv in an If branch gave "0 errors"."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.helper as oh
import pytest
from onnx import TensorProto, numpy_helper

from graphopt.backends.trt_check import check_tensorrt, errors

F = TensorProto.FLOAT
OPSETS = [oh.make_opsetid("", 17), oh.make_opsetid("com.microsoft", 1)]


def _vi(name: str, shape: list | None = None, dtype: int = F) -> onnx.ValueInfoProto:
    return oh.make_tensor_value_info(name, dtype, shape)


def _model(nodes, inputs, outputs, inits=()):  # type: ignore[no-untyped-def]
    graph = oh.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    return oh.make_model(graph, opset_imports=OPSETS, ir_version=8)


def _branch(nodes, out: str, shape: list | None = None, inits=()):  # type: ignore[no-untyped-def]
    return oh.make_graph(nodes, "b", [], [_vi(out, shape)], initializer=list(inits))


def _if(name: str, then, other, cond: str = "c", out: str = "y"):  # type: ignore[no-untyped-def]
    return oh.make_node("If", [cond], [out], name=name, then_branch=then, else_branch=other)


def _gelu_if_model():  # type: ignore[no-untyped-def]
    then = _branch(
        [oh.make_node("QuickGelu", ["x"], ["t"], name="qg", domain="com.microsoft")], "t", [1, 3]
    )
    other = _branch([oh.make_node("Relu", ["x"], ["e"], name="r")], "e", [1, 3])
    return _model(
        [_if("branch", then, other)],
        [_vi("x", [1, 3]), _vi("c", [], TensorProto.BOOL)],
        [_vi("y", [1, 3])],
    )


def test_an_op_in_an_if_branch_is_checked_and_located_by_its_enclosing_node():
    found = errors(check_tensorrt(_gelu_if_model()))
    assert [(f.rule, f.node, f.scope) for f in found] == [
        ("custom-domain", "qg", "If 'branch' then_branch")
    ]
    assert str(found[0]).startswith(
        "error: [custom-domain] If 'branch' then_branch > node 'qg' (com.microsoft::QuickGelu): "
    )


def test_the_same_op_at_the_top_is_the_same_finding_without_a_scope():
    top = _model(
        [oh.make_node("QuickGelu", ["x"], ["y"], name="qg", domain="com.microsoft")],
        [_vi("x", [1, 3])],
        [_vi("y", [1, 3])],
    )
    (inner,) = errors(check_tensorrt(_gelu_if_model()))
    (outer,) = errors(check_tensorrt(top))
    assert (outer.rule, outer.message, outer.scope) == (inner.rule, inner.message, "")
    assert str(outer).startswith("error: [custom-domain] node 'qg' (com.microsoft::QuickGelu): ")


def test_nested_bodies_name_the_whole_path():
    inner_if = _if(
        "inner",
        _branch([oh.make_node("Relu", ["x"], ["a"], name="ok")], "a", [1, 3]),
        _branch([oh.make_node("Unique", ["x"], ["u"], name="uniq")], "u", [3]),
        cond="c",
        out="i",
    )
    loop_body = oh.make_graph(
        [inner_if, oh.make_node("Identity", ["cond_in"], ["cond_out"], name="keep")],
        "body",
        [_vi("n", [], TensorProto.INT64), _vi("cond_in", [], TensorProto.BOOL)],
        [_vi("cond_out", [], TensorProto.BOOL), _vi("i", None)],
    )
    loop = oh.make_node("Loop", ["trip", ""], ["scan"], name="lp", body=loop_body)
    model = _model(
        [loop],
        [_vi("x", [1, 3]), _vi("c", [], TensorProto.BOOL)],
        [_vi("scan", None)],
        [numpy_helper.from_array(np.array(4, np.int64), "trip")],
    )
    found = errors(check_tensorrt(model))
    unsupported = [f for f in found if f.rule == "unsupported-op"]
    assert [(f.node, f.scope) for f in unsupported] == [
        ("uniq", "Loop 'lp' body > If 'inner' else_branch")
    ]
    assert " Loop 'lp' body > If 'inner' else_branch > node 'uniq' (Unique): " in str(
        unsupported[0]
    )


def test_a_body_sees_outer_constants_as_constants_and_its_own_initializers():
    """Squeeze axes from an outer initializer, a Constant of the main graph and the branch's
    own initializer are constants (TensorRT 10.6: axes must be one); from a graph input not."""
    axes = numpy_helper.from_array(np.array([0], np.int64), "axes_init")
    const = oh.make_node("Constant", [], ["axes_const"], name="k", value=axes)
    own = numpy_helper.from_array(np.array([0], np.int64), "axes_own")

    def squeeze_if(name: str, axes_name: str, own_inits=()):  # type: ignore[no-untyped-def]
        sq = oh.make_node("Squeeze", ["x", axes_name], [f"{name}_t"], name=f"{name}_sq")
        id_ = oh.make_node("Squeeze", ["x", axes_name], [f"{name}_e"], name=f"{name}_sq2")
        return _if(
            name,
            _branch([sq], f"{name}_t", [3], own_inits),
            _branch([id_], f"{name}_e", [3], own_inits),
            out=f"{name}_y",
        )

    nodes = [
        const,
        squeeze_if("from_init", "axes_init"),
        squeeze_if("from_const", "axes_const"),
        squeeze_if("from_own", "axes_own", [own]),
        squeeze_if("from_input", "axes_in"),
    ]
    model = _model(
        nodes,
        [
            _vi("x", [1, 3]),
            _vi("c", [], TensorProto.BOOL),
            _vi("axes_in", [1], TensorProto.INT64),
        ],
        [_vi(f"{n}_y", [3]) for n in ("from_init", "from_const", "from_own", "from_input")],
        [numpy_helper.from_array(np.array([0], np.int64), "axes_init")],
    )
    found = errors(check_tensorrt(model, "10.6"))
    assert sorted((f.node, f.scope) for f in found) == [
        ("from_input_sq", "If 'from_input' then_branch"),
        ("from_input_sq2", "If 'from_input' else_branch"),
    ]
    # 10.7+ takes a computed axes, resolvable at build time: one read from the outer graph's
    # input values is not (followed out of the body into the scope that defines it)
    later = errors(check_tensorrt(model, "10.8"))
    assert [f.node for f in later] == ["from_input_sq", "from_input_sq2"]
    assert "'axes_in' at run time" in later[0].message


def test_a_computed_axes_inside_a_body_is_followed_into_the_outer_graph():
    """Unsqueeze axes = Shape(x)[..] computed in the main graph from a static shape folds at
    build time (TensorRT 10.7+); check followed it only within one graph."""
    shape = oh.make_node("Shape", ["x"], ["s"], name="shape", start=0, end=1)
    sub = oh.make_node("Sub", ["s", "one"], ["ax"], name="sub")  # [1] - 1 = [0]
    uns = oh.make_node("Unsqueeze", ["x", "ax"], ["t"], name="uns")
    uns2 = oh.make_node("Unsqueeze", ["x", "ax"], ["e"], name="uns2")
    model = _model(
        [shape, sub, _if("i", _branch([uns], "t", [1, 1, 3]), _branch([uns2], "e", [1, 1, 3]))],
        [_vi("x", [1, 3]), _vi("c", [], TensorProto.BOOL)],
        [_vi("y", [1, 1, 3])],
        [numpy_helper.from_array(np.array([1], np.int64), "one")],
    )
    assert check_tensorrt(model, "10.8") == []
    found = errors(check_tensorrt(model, "10.6"))  # before 10.7: an initializer or a Constant
    assert [f.node for f in found] == ["uns", "uns2"]


def test_a_constant_condition_imports_only_the_branch_it_selects():
    """importIf: "For constant conditions, parse only the selected subgraph"."""
    then = _branch([oh.make_node("Unique", ["x"], ["t"], name="uniq")], "t", [3])
    other = _branch([oh.make_node("Relu", ["x"], ["e"], name="r")], "e", [1, 3])
    for value, bad in ((False, []), (True, ["uniq"])):
        cond = numpy_helper.from_array(np.array(value), "c")
        model = _model([_if("i", then, other)], [_vi("x", [1, 3])], [_vi("y", None)], [cond])
        assert [f.node for f in errors(check_tensorrt(model))] == bad, value


def test_if_branches_with_different_output_counts_or_ranks():
    x, c = _vi("x", [1, 3]), _vi("c", [], TensorProto.BOOL)
    two = oh.make_graph(
        [oh.make_node("Relu", ["x"], ["a"], name="r"), oh.make_node("Abs", ["x"], ["b"], name="a")],
        "two",
        [],
        [_vi("a", [1, 3]), _vi("b", [1, 3])],
    )
    one = _branch([oh.make_node("Relu", ["x"], ["e"], name="r2")], "e", [1, 3])
    model = _model([_if("i", two, one)], [x, c], [_vi("y", [1, 3])])
    assert [(f.rule, f.message) for f in errors(check_tensorrt(model))] == [
        (
            "if-branches",
            "then_branch has 2 outputs and else_branch 1; TensorRT needs the same number",
        )
    ]
    # ranks 2 and 1, the condition an input: the parser's addOutput refuses it
    flat = _branch(
        [
            oh.make_node("Flatten", ["x"], ["f0"], name="fl", axis=0),
            oh.make_node("Squeeze", ["f0", "zero"], ["f"], name="sq"),
        ],
        "f",
        [3],
        [numpy_helper.from_array(np.array([0], np.int64), "zero")],
    )
    model = _model([_if("i", one, flat)], [x, c], [_vi("y", None)])
    (found,) = errors(check_tensorrt(model))
    assert found.rule == "if-branches" and "rank 2" in found.message and "rank 1" in found.message
    assert "reads 'c'" in found.message
    # the same branches on a condition that is the rank of x (PyTorch's `if x.dim() == 2`):
    # a build-time constant
    rank = [
        oh.make_node("Shape", ["x"], ["s"], name="shape"),
        oh.make_node("Size", ["s"], ["n"], name="size"),
        oh.make_node("Equal", ["n", "two"], ["c"], name="eq"),
    ]
    model = _model(
        [*rank, _if("i", one, flat)],
        [x],
        [_vi("y", None)],
        [numpy_helper.from_array(np.array(2, np.int64), "two")],
    )
    assert errors(check_tensorrt(model)) == []


def _loop(trip: str, cond: str, body_nodes, body_out, outputs, extra_in=()):  # type: ignore[no-untyped-def]
    body = oh.make_graph(
        body_nodes,
        "body",
        [_vi("it", [], TensorProto.INT64), _vi("cond_in", [], TensorProto.BOOL), *extra_in],
        body_out,
    )
    return oh.make_node("Loop", [trip, cond], outputs, name="lp", body=body)


def test_loop_trip_limits_iteration_number_and_scan_outputs():
    """importLoop: an INT64 trip count >= INT32_MAX is dropped; without a trip count the body
    has no iteration number and scan outputs are 1024 long; ILoop needs a trip limit."""
    keep = oh.make_node("Identity", ["cond_in"], ["cond_out"], name="keep")
    use_it = oh.make_node("Cast", ["it"], ["itf"], name="cast", to=F)
    outs = [_vi("cond_out", [], TensorProto.BOOL), _vi("itf", [])]
    huge = numpy_helper.from_array(np.array(2**31 - 1, np.int64), "huge")
    four = numpy_helper.from_array(np.array(4, np.int64), "four")

    def run(trip: str, cond: str) -> list[tuple[str, str]]:
        node = _loop(trip, cond, [keep, use_it], outs, ["scan"])
        inputs = [_vi("go", [], TensorProto.BOOL)]
        model = _model([node], inputs, [_vi("scan", [None])], [huge, four])
        return [(f.rule, f.message) for f in errors(check_tensorrt(model))]

    assert run("four", "go") == []
    found = run("four", "")  # the body passes its condition input on: unset without one
    assert [r for r, _ in found] == ["loop-body"]
    assert "condition input 'cond_in'" in found[0][1]
    found = run("huge", "go")
    assert [r for r, _ in found] == ["loop-body", "loop-scan-output"]
    assert "iteration number input 'it'" in found[0][1]
    assert "1024 iterations long" in found[1][1]
    found = run("", "")
    assert [r for r, _ in found] == [
        "loop-trip-limit",
        "loop-body",
        "loop-body",
        "loop-scan-output",
    ]
    assert "condition input 'cond_in'" in found[2][1]


def test_a_scan_body_is_checked():
    body = oh.make_graph(
        [
            oh.make_node("Unique", ["xi"], ["u"], name="uniq"),
            oh.make_node("Identity", ["s"], ["s_out"], name="keep"),
        ],
        "body",
        [_vi("s", [3]), _vi("xi", [3])],
        [_vi("s_out", [3]), _vi("u", None)],
    )
    scan = oh.make_node(
        "Scan", ["s0", "xs"], ["s_last", "us"], name="sc", body=body, num_scan_inputs=1
    )
    model = _model([scan], [_vi("s0", [3]), _vi("xs", [2, 3])], [_vi("us", None)])
    assert [(f.node, f.scope) for f in errors(check_tensorrt(model))] == [
        ("uniq", "Scan 'sc' body")
    ]


def test_bodies_nested_deeper_than_the_parser_takes():
    """parseNode: more than 24 nested name scopes is refused."""

    def nest(depth: int):  # type: ignore[no-untyped-def]
        leaf = _branch([oh.make_node("Abs", ["x"], ["a0"], name="a")], "a0", [1, 3])
        body = _branch([oh.make_node("Relu", ["x"], ["r0"], name="r")], "r0", [1, 3])
        for k in range(1, depth + 1):
            node = _if(f"i{k}", body, leaf, out=f"r{k}")
            body = _branch([node], f"r{k}", [1, 3])
        inputs = [_vi("x", [1, 3]), _vi("c", [], TensorProto.BOOL)]
        return _model(list(body.node), inputs, [_vi(f"r{depth}", [1, 3])])

    assert errors(check_tensorrt(nest(24))) == []
    found = errors(check_tensorrt(nest(25)))
    assert {f.rule for f in found} == {"nested-bodies"} and found
    assert "25 bodies deep" in found[0].message


def test_the_callers_model_is_left_as_it_was():
    model = _gelu_if_model()
    model.graph.node[0].attribute[0].g.node[0].name = ""
    before = model.SerializeToString()
    check_tensorrt(model)
    assert model.SerializeToString() == before


@pytest.mark.realmodel
def test_silero_vad_ort_fusions_fusedconv_inside_if_bodies(tmp_path, capsys):
    """The user's reproducer: ort-fusions puts com.microsoft FusedConv nodes inside silero's If
    bodies; check said "0 errors"."""
    from graphopt.cli import main
    from graphopt.realmodels import fetch_model

    out = tmp_path / "o.onnx"
    assert (
        main(["optimize", str(fetch_model("silero_vad")), "-p", "ort-fusions", "-o", str(out)]) == 0
    )
    capsys.readouterr()
    found = [f for f in errors(check_tensorrt(onnx.load(str(out)))) if f.rule == "custom-domain"]
    assert len(found) == 10
    assert {f.op for f in found} == {"com.microsoft::FusedConv"}
    assert {f.scope for f in found} == {"If 'If_0' then_branch", "If 'If_0' else_branch"}
    assert main(["check", str(out), "--target", "tensorrt"]) == 1
    text = capsys.readouterr().out
    assert "If 'If_0' then_branch > node '" in text and "(com.microsoft::FusedConv)" in text
    assert "TensorRT 10.15: 0 errors" not in text
    # the original's bodies: PyTorch's squeeze-if-the-dim-is-1 Ifs (then Squeeze, else Identity)
    # on a dynamic dimension, which the parser's IIfConditional refuses (ranks differ)
    original = errors(check_tensorrt(fetch_model("silero_vad")))
    assert {f.rule for f in original} == {"if-branches"} and len(original) == 10
    assert all("reads the dynamic shape of" in f.message for f in original)


def test_a_body_dequantizes_a_q_of_the_outer_graph():
    """The DQ in the branch reads the main graph's Q: it comes from a Q (looked up in the scope
    that defines it), not "from neither a QuantizeLinear nor a constant". The pair split by the
    If is the DQ's finding (an IIfConditionalInputLayer between the two: test_trt_check14_gaps),
    no longer the Q's "it feeds If 'i'"."""
    q = oh.make_node("QuantizeLinear", ["x", "s", "zp"], ["q"], name="q")
    dq = oh.make_node("DequantizeLinear", ["q", "s", "zp"], ["d"], name="dq")
    then = _branch([dq, oh.make_node("Relu", ["d"], ["t"], name="r")], "t", [1, 3])
    other = _branch([oh.make_node("Abs", ["x"], ["e"], name="a")], "e", [1, 3])
    inits = [
        numpy_helper.from_array(np.array(0.1, np.float32), "s"),
        numpy_helper.from_array(np.array(0, np.int8), "zp"),
    ]
    model = _model(
        [q, _if("i", then, other)],
        [_vi("x", [1, 3]), _vi("c", [], TensorProto.BOOL)],
        [_vi("y", [1, 3])],
        inits,
    )
    found = check_tensorrt(model)
    assert [(f.rule, f.node, f.scope) for f in found] == [("qdq-pair", "dq", "If 'i' then_branch")]
    assert "IIfConditionalInputLayer" in found[0].message


def test_scan_8_sequence_lens_is_refused():
    """importScan: "TensorRT doesn't support sequence_lens input for this node!" (opset 8)."""
    body = oh.make_graph(
        [oh.make_node("Add", ["s", "xi"], ["s_out"], name="add")],
        "body",
        [_vi("s", [1, 3]), _vi("xi", [1, 3])],
        [_vi("s_out", [1, 3])],
    )

    def scan(lens: str) -> onnx.ModelProto:
        node = oh.make_node(
            "Scan", [lens, "s0", "xs"], ["s_last"], name="sc", body=body, num_scan_inputs=1
        )
        graph = oh.make_graph(
            [node],
            "g",
            [_vi("s0", [1, 3]), _vi("xs", [1, 2, 3]), _vi("lens", [1], TensorProto.INT32)],
            [_vi("s_last", [1, 3])],
        )
        return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 8)], ir_version=4)

    assert errors(check_tensorrt(scan(""))) == []
    (found,) = errors(check_tensorrt(scan("lens")))
    assert found.node == "sc" and "sequence_lens 'lens' is not supported" in found.message


def test_a_loop_carried_value_must_keep_its_shape():
    """IRecurrenceLayer: the next value "must have the same dimensions as" the initial one. A
    body that Concats onto its carried value grows it every iteration (ONNX allows that; the
    body declares its input without a shape); one that Adds to it keeps it."""

    def loop(op: str) -> onnx.ModelProto:
        step = oh.make_node(
            op, ["v", "x"], ["v_next"], name="step", **({"axis": 0} if op == "Concat" else {})
        )
        keep = oh.make_node("Identity", ["cond_in"], ["cond_out"], name="keep")
        body = oh.make_graph(
            [step, keep],
            "body",
            [
                _vi("it", [], TensorProto.INT64),
                _vi("cond_in", [], TensorProto.BOOL),
                _vi("v", None),
            ],
            [_vi("cond_out", [], TensorProto.BOOL), _vi("v_next", None)],
        )
        node = oh.make_node("Loop", ["four", "go", "v0"], ["v_last"], name="lp", body=body)
        return _model(
            [node],
            [_vi("x", [1, 3]), _vi("v0", [1, 3]), _vi("go", [], TensorProto.BOOL)],
            [_vi("v_last", None)],
            [numpy_helper.from_array(np.array(4, np.int64), "four")],
        )

    assert errors(check_tensorrt(loop("Add"))) == []
    (found,) = errors(check_tensorrt(loop("Concat")))
    assert (found.rule, found.node) == ("loop-carried", "lp")
    assert "'v0' is [1, 3] and the body makes it [2, 3]" in found.message
