"""The expose-tensors pass: intermediate tensors become extra graph outputs, others unchanged."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphopt
from graphopt.backends.onnxruntime import run as ort_run
from graphopt.backends.onnxruntime import session
from graphopt.errors import PassError
from graphopt.pipeline import PassStep, Pipeline, parse_pipeline

RNG = np.random.default_rng(3)


def model() -> onnx.ModelProto:
    """x → Conv → Relu → Conv → Add(bias) → Sigmoid → y ; also Relu → GlobalAveragePool → g."""
    w1 = numpy_helper.from_array(RNG.standard_normal((4, 3, 3, 3)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(RNG.standard_normal((2, 4, 1, 1)).astype(np.float32), "w2")
    bias = numpy_helper.from_array(np.full((1, 2, 1, 1), 0.5, np.float32), "bias")
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], name="conv2"),
        helper.make_node("Add", ["c2", "bias"], ["a2"], name="add2"),
        helper.make_node("Sigmoid", ["a2"], ["y"], name="sig"),
        helper.make_node("GlobalAveragePool", ["r1"], ["g"], name="gap"),
    ]
    graph = helper.make_graph(
        nodes,
        "m",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 8, 8])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 2, 8, 8]),
            helper.make_tensor_value_info("g", TensorProto.FLOAT, ["n", 4, 1, 1]),
        ],
        initializer=[w1, w2, bias],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def expose(m: onnx.ModelProto, **options) -> onnx.ModelProto:
    from graphopt.passes.expose_tensors import ExposeTensors

    return graphopt.optimize(m, Pipeline("expose", [PassStep(ExposeTensors(**options))]))


def feeds() -> dict[str, np.ndarray]:
    return {"x": RNG.standard_normal((2, 3, 8, 8)).astype(np.float32)}


def reference_intermediates(m: onnx.ModelProto, x: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every tensor's value, from a session with all optimizations off."""
    probe = onnx.ModelProto()
    probe.CopyFrom(m)
    for n in probe.graph.node:
        for o in n.output:
            if o not in {v.name for v in probe.graph.output}:
                probe.graph.output.append(onnx.ValueInfoProto(name=o))
    return ort_run(session(probe, level="disable"), x)


def test_names_are_appended_after_the_existing_outputs():
    m = model()
    out = expose(m, names=["r1", "c2"])
    onnx.checker.check_model(out, full_check=True)
    assert [o.name for o in out.graph.output] == ["y", "g", "r1", "c2"]
    assert out.graph.output[0] == m.graph.output[0]  # unchanged
    assert out.graph.output[1] == m.graph.output[1]
    dims = out.graph.output[2].type.tensor_type.shape.dim
    assert [d.dim_value or d.dim_param for d in dims] == ["n", 4, 8, 8]
    x = feeds()
    ref = reference_intermediates(m, x)
    got = ort_run(session(out, level="disable"), x)
    for name in ("y", "g", "r1", "c2"):
        np.testing.assert_array_equal(got[name], ref[name], err_msg=name)
    # with onnxruntime's own fusions on, existing outputs stay within fp32 tolerance
    base = ort_run(m, x)
    full = ort_run(out, x)
    for name in ("y", "g"):
        np.testing.assert_allclose(full[name], base[name], rtol=1e-4, atol=1e-5)


def test_op_types_expose_every_output_of_those_ops_in_topological_order():
    out = expose(model(), op_types=["Conv", "Relu"])
    assert [o.name for o in out.graph.output] == ["y", "g", "c1", "r1", "c2"]


def test_existing_outputs_inputs_and_constants_are_not_duplicated():
    out = expose(model(), names=["y", "r1", "r1"], op_types=["Sigmoid"])
    assert [o.name for o in out.graph.output] == ["y", "g", "r1"]
    same = expose(model(), names=["y"])
    assert [o.name for o in same.graph.output] == ["y", "g"]
    skipped = expose(model(), names=["x", "w1"])
    assert [o.name for o in skipped.graph.output] == ["y", "g"]


def test_unknown_name_is_a_pass_error():
    with pytest.raises(PassError, match="no tensor named 'nope'"):
        expose(model(), names=["nope"])


def test_yaml_pipeline_names_the_pass():
    pipe = parse_pipeline(
        "passes:\n  - expose-tensors: {names: [a2], op_types: [GlobalAveragePool]}\n"
    )
    out = graphopt.optimize(model(), pipe)
    assert [o.name for o in out.graph.output] == ["y", "g", "a2"]


def test_fusion_group_outputs():
    pytest.importorskip("graphopt.analysis.fuse_ops")
    from graphopt.analysis.fuse_ops import fuse_ops

    m = model()
    groups = fuse_ops(m)
    out = expose(m, fusion_group_outputs=True)
    onnx.checker.check_model(out, full_check=True)
    names = [o.name for o in out.graph.output]
    assert names[:2] == ["y", "g"]
    producer = {o: n.name for n in m.graph.node for o in n.output}
    group_of = {n: i for i, g in enumerate(groups) for n in g}
    consumers: dict[str, list[str]] = {}
    for n in m.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n.name)
    expected = [
        t
        for g in groups
        for n in g
        for t in next(x for x in m.graph.node if x.name == n).output
        if any(group_of[c] != group_of[producer[t]] for c in consumers.get(t, []))
        and t not in ("y", "g")
    ]
    assert expected  # r1 leaves the Conv+Relu group towards conv2 and the pool
    assert names[2:] == list(dict.fromkeys(expected))
    x = feeds()
    ref = reference_intermediates(m, x)
    got = ort_run(session(out, level="disable"), x)
    for name in names:
        np.testing.assert_array_equal(got[name], ref[name], err_msg=name)


@pytest.mark.realmodel
def test_real_detector_hint_features(real_model, real_feeds):
    m = onnx.load(str(real_model("layout_cdla")))
    out = expose(m, op_types=["Conv"])
    onnx.checker.check_model(out, full_check=True)
    original = [o.name for o in m.graph.output]
    names = [o.name for o in out.graph.output]
    assert names[: len(original)] == original
    convs = [n.output[0] for n in m.graph.node if n.op_type == "Conv"]
    assert names[len(original) :] == [c for c in convs if c not in original]
    f = real_feeds("layout_cdla", 1)[0]
    base = ort_run(session(m, level="disable"), f)
    got = ort_run(session(out, level="disable"), f)
    for name in original:
        np.testing.assert_array_equal(got[name], base[name])
    assert got[convs[0]].shape == (1, 16, 400, 304)


def test_an_op_type_no_node_has_is_warned_with_the_closest_op(caplog):
    # `Reluu` for `Relu` exposed nothing and said nothing
    with caplog.at_level("WARNING", logger="graphopt"):
        out = expose(model(), op_types=["Reluu", "Conv", "Reluu", "LSTM"])
    assert [o.name for o in out.graph.output] == ["y", "g", "c1", "c2"]
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warned == [
        "expose-tensors: no node has op type 'Reluu' (did you mean 'Relu'?); it exposes nothing",
        "expose-tensors: no node has op type 'LSTM'; it exposes nothing",
    ]


def test_op_types_every_node_has_warn_nothing(caplog):
    with caplog.at_level("WARNING", logger="graphopt"):
        expose(model(), op_types=["Conv", "Relu"])
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def test_a_name_only_a_body_computes_is_said_to_be_inside_it():
    # a hint inside an If branch was "no tensor named 't' in the graph", as a typo reads
    then = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["t"]), helper.make_node("Neg", ["t"], ["u"])],
        "then",
        [],
        [helper.make_tensor_value_info("u", TensorProto.FLOAT, [2])],
    )
    other = helper.make_graph(
        [helper.make_node("Abs", ["x"], ["v"])],
        "else",
        [],
        [helper.make_tensor_value_info("v", TensorProto.FLOAT, [2])],
    )
    graph = helper.make_graph(
        [helper.make_node("If", ["c"], ["y"], name="branch", then_branch=then, else_branch=other)],
        "g",
        [
            helper.make_tensor_value_info("c", TensorProto.BOOL, []),
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [2]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(PassError) as info:
        expose(m, names=["t"])
    assert (
        "no tensor named 't' in the graph (the If/Loop/Scan body of 'branch' computes 't'"
        in str(info.value)
    )
    with pytest.raises(PassError) as info:
        expose(m, names=["nope"])
    assert "body" not in str(info.value)
