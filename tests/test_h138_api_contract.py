"""The public Python API against DESIGN.md's contract and README.md's "Python API" section,
exercised as a user calls it, on the real detectors where it matters.

- `graphopt.optimize(model, pipeline=None, **options)`: takes a path (str or Path), bytes, a
  ModelProto or an onnx-graphsurgeon Graph; never mutates the caller's model (nor a model's
  external data files); returns a ModelProto that passes the full checker and keeps the graph's
  inputs and outputs. An option of the wrong type is a `PipelineError` naming what it takes
  (a number or bytes was a bare TypeError from `list()` / `pathlib`).
- `graphopt.analysis.post_dominator_tree` / `dominator_tree` / `fuse_ops` /
  `topological_order`: take what `optimize` takes but a gs.Graph (bytes were refused), key
  their answers by node name, agree with a brute-force definition computed here from the
  protobuf alone (If bodies' outer-scope reads, dead nodes, several outputs), and a bad method
  or group size is a `GraphoptError` (it was a bare ValueError), still a ValueError.
- `from graphopt import *` gives every public entry point (`quantize`, `merge`, `split` were
  missing from `__all__`).
"""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import graphopt
from graphopt import errors
from graphopt.analysis import dominator_tree, fuse_ops, post_dominator_tree, topological_order
from graphopt.errors import GraphoptError, PipelineError

pytestmark = pytest.mark.realmodel


def _io(model: onnx.ModelProto) -> tuple[list[tuple[str, bytes]], list[tuple[str, bytes]]]:
    weights = {t.name for t in model.graph.initializer}
    inputs = [(v.name, v.type.SerializeToString()) for v in model.graph.input]
    return (
        [i for i in inputs if i[0] not in weights],
        [(v.name, v.type.SerializeToString()) for v in model.graph.output],
    )


# ---------------------------------------------------------------------------- optimize


@pytest.fixture(scope="module")
def common_det(real_model) -> onnx.ModelProto:
    return onnx.load(str(real_model("common_det")))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"pipeline": 3}, r"pipeline must be None, a built-in name \(default, .*got int 3"),
        ({"pipeline": b"default"}, r"pipeline must be None, .*got bytes b'default'"),
        ({"disable": 5}, "disable must be a pass name or a list of them, got 5"),
        ({"disable": [1]}, r"disable must be a pass name or a list of them, got \[1\]"),
        ({"dump_dir": 123}, "dump_dir must be the path of a folder, got 123"),
        ({"rule_files": 123}, "rule_files must be a path or a list of them, got 123"),
        ({"rule_files": [123]}, r"rule_files must be a path or a list of them, got \[123\]"),
    ],
)
def test_an_option_of_the_wrong_type_is_a_pipeline_error_naming_what_it_takes(
    common_det, options, message, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    before = common_det.SerializeToString()
    with pytest.raises(PipelineError, match=message) as raised:
        graphopt.optimize(common_det, **options)
    assert "\n" not in str(raised.value)
    assert common_det.SerializeToString() == before
    assert list(tmp_path.iterdir()) == []  # no dump folder, nothing half-written


def test_options_of_the_documented_types_still_work(common_det, tmp_path):
    plain = graphopt.optimize(common_det).SerializeToString()
    # a pass name alone, a tuple of them, a Path or str pipeline file, a Path dump folder
    from graphopt.pipeline import builtin_pipelines

    disabled = []
    for options in (
        {"disable": "focus-to-space-to-depth"},
        {"disable": ("focus-to-space-to-depth",)},
        {"pipeline": builtin_pipelines()["default"]},
        {"pipeline": str(builtin_pipelines()["default"])},
        {"dump_dir": tmp_path / "dumps", "disable": None},
    ):
        out = graphopt.optimize(common_det, **options)
        onnx.checker.check_model(out, full_check=True)
        if options.get("disable"):
            disabled.append(out.SerializeToString())
        else:
            assert out.SerializeToString() == plain, options
    assert disabled[0] == disabled[1] != plain  # the Focus slices stay Slices
    assert any((tmp_path / "dumps").iterdir())


def test_optimize_takes_every_documented_kind_of_model_and_mutates_none(real_model):
    path = real_model("layout_cdla")  # 878 unnamed nodes: named on a copy only
    data = path.read_bytes()
    proto = onnx.load(str(path))
    before = proto.SerializeToString()
    results = {
        "str": graphopt.optimize(str(path)),
        "Path": graphopt.optimize(path),
        "bytes": graphopt.optimize(data),
        "ModelProto": graphopt.optimize(proto),
    }
    try:
        import onnx_graphsurgeon as gs
    except ImportError:
        pass
    else:
        results["gs.Graph"] = graphopt.optimize(gs.import_onnx(onnx.load(str(path))))
    assert proto.SerializeToString() == before
    assert path.read_bytes() == data
    first = results["str"].SerializeToString()
    for kind, out in results.items():
        assert isinstance(out, onnx.ModelProto), kind
        onnx.checker.check_model(out, full_check=True)
        assert _io(out) == _io(proto), kind
        assert len(out.graph.node) < len(proto.graph.node), kind
        if kind != "gs.Graph":  # (gs names the unnamed nodes its own way)
            assert out.SerializeToString() == first, kind


def _digests(folder: Path) -> dict[str, str]:
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in folder.iterdir()}


def test_a_model_with_external_data_and_its_files_are_left_alone(real_model, tmp_path):
    source = real_model("khmer_seg")  # torch dynamo export, weights in model.onnx.data
    for f in source.parent.iterdir():
        shutil.copy(f, tmp_path)
    path = tmp_path / source.name
    files = _digests(tmp_path)
    assert len(files) >= 2
    from_path = graphopt.optimize(path, "ort-cpu")
    proto = onnx.load(str(path))  # weights read in
    before = proto.SerializeToString()
    from_proto = graphopt.optimize(proto, "ort-cpu")
    post_dominator_tree(path)
    fuse_ops(proto)
    assert proto.SerializeToString() == before
    assert _digests(tmp_path) == files
    for out in (from_path, from_proto):
        onnx.checker.check_model(out, full_check=True)
        assert _io(out) == _io(proto)
    # the weights stay in the external file: the skeleton of the proto is all analysis needs
    bare = onnx.load(str(path), load_external_data=False)
    bare_before = bare.SerializeToString()
    assert post_dominator_tree(bare) == post_dominator_tree(proto)
    assert bare.SerializeToString() == bare_before


def test_a_model_with_if_subgraphs_is_optimized_without_touching_the_callers(real_model):
    proto = onnx.load(str(real_model("silero_vad")))  # the network inside If branches
    assert any(n.op_type == "If" for n in proto.graph.node)
    before = proto.SerializeToString()
    for pipeline in (None, "tensorrt", "ort-fusions"):
        out = graphopt.optimize(proto, pipeline, verify_each=True)
        onnx.checker.check_model(out, full_check=True)
        assert _io(out) == _io(proto)
    assert proto.SerializeToString() == before


# ---------------------------------------------------------------------------- analysis


def test_analysis_takes_the_bytes_optimize_takes(real_model):
    path = real_model("layout_cdla")
    data = path.read_bytes()
    for fn in (post_dominator_tree, dominator_tree, fuse_ops, topological_order):
        assert fn(data) == fn(path), fn.__name__
    assert post_dominator_tree(bytearray(data), method="lca") == post_dominator_tree(path)
    with pytest.raises(graphopt.LoadError, match="the given bytes: not an ONNX model"):
        post_dominator_tree(b"not a model")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: post_dominator_tree(m, method="magic"), "unknown post-dominator method"),
        (lambda m: fuse_ops(m, max_group_size=0), "max_group_size must be at least 1, got 0"),
        (lambda m: fuse_ops(m, max_group_size="8"), "max_group_size must be an integer, got '8'"),
        (lambda m: fuse_ops(m, max_group_size=True), "max_group_size must be an integer"),
        (lambda m: fuse_ops(m, max_group_size=2.5), "max_group_size must be an integer"),
    ],
)
def test_a_bad_analysis_argument_is_a_graphopt_error(common_det, call, message):
    with pytest.raises(errors.OptionError, match=message) as raised:
        call(common_det)
    assert isinstance(raised.value, GraphoptError)
    assert isinstance(raised.value, ValueError)  # what it was: callers catching that still do


def test_a_numpy_integer_group_size_is_an_integer(common_det):
    assert fuse_ops(common_det, max_group_size=np.int64(3)) == fuse_ops(common_det, 3)


def _reads(node: onnx.NodeProto) -> set[str]:
    """Every tensor `node` reads, its bodies' reads of outer names included (computed from the
    protobuf, independently of graphopt's index)."""
    out = {t for t in node.input if t}
    for attr in node.attribute:
        for body in [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs):
            defined = {v.name for v in body.input} | {t.name for t in body.initializer}
            inner: set[str] = set()
            for n in body.node:
                inner |= _reads(n)
                defined |= set(n.output)
            out |= inner - defined
    return out


def _brute_force_post_dominators(model: onnx.ModelProto) -> dict[str, str | None]:
    """pdom(u) = {u} ∪ ⋂ pdom(consumers of u, and the exit where u writes a graph output or
    nobody reads it); ipdom(u) = the closest strict post-dominator (the one with the largest
    set), None where only the exit is left."""
    nodes = list(model.graph.node)
    producer = {t: n.name for n in nodes for t in n.output if t}
    outputs = {o.name for o in model.graph.output}
    succ: dict[str, set[str]] = {n.name: set() for n in nodes}
    for n in nodes:
        for t in _reads(n):
            if t in producer and producer[t] != n.name:
                succ[producer[t]].add(n.name)
    pdom: dict[str, frozenset[str]] = {}
    pending = [n.name for n in nodes]
    while pending:  # nodes in any order: take those whose consumers are done
        later = []
        for u in pending:
            if any(v not in pdom for v in succ[u]):
                later.append(u)
                continue
            to_exit = not succ[u] or any(t in outputs for t in producer_outputs(nodes, u))
            sets = [pdom[v] for v in succ[u]] + ([frozenset({"<exit>"})] if to_exit else [])
            pdom[u] = frozenset({u}) | frozenset.intersection(*sets)
        assert len(later) < len(pending)
        pending = later
    tree: dict[str, str | None] = {}
    for u, s in pdom.items():
        strict = s - {u, "<exit>"}
        tree[u] = max(strict, key=lambda v: len(pdom[v])) if strict else None
    return tree


def producer_outputs(nodes: list[onnx.NodeProto], name: str) -> list[str]:
    return next(list(n.output) for n in nodes if n.name == name)


def _if_model() -> onnx.ModelProto:
    """Dead nodes, a graph input that is also an output, a node writing an output that is read
    too, and an If whose branches read outer tensors (relu's and sig's) by name only."""
    vi = helper.make_tensor_value_info
    then = helper.make_graph(
        [helper.make_node("Neg", ["a"], ["t"], name="then_neg")], "then", [], [vi("t", 1, [2])]
    )
    other = helper.make_graph(
        [helper.make_node("Abs", ["b"], ["e"], name="else_abs")], "else", [], [vi("e", 1, [2])]
    )
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="relu"),
        helper.make_node("Sigmoid", ["x"], ["b"], name="sig"),
        helper.make_node("ReduceSum", ["x"], ["s"], name="rsum", keepdims=0),
        helper.make_node("Greater", ["s", "zero"], ["c"], name="gt"),
        helper.make_node("If", ["c"], ["y"], name="if", then_branch=then, else_branch=other),
        helper.make_node("Exp", ["y"], ["z"], name="exp"),
        helper.make_node("Tanh", ["a"], ["dead"], name="dead_tanh"),
        helper.make_node("Identity", ["b"], ["o2"], name="id2"),
        helper.make_node("Neg", ["o2"], ["o3"], name="neg3"),
        helper.make_node("Softplus", ["o3"], ["dead2"], name="dead_softplus"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [vi("x", TensorProto.FLOAT, [2])],
        [vi("z", 1, [2]), vi("o2", 1, [2]), vi("x", 1, [2])],
        [onnx.numpy_helper.from_array(np.array(0, np.float32), "zero")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=9)
    onnx.checker.check_model(model, full_check=True)
    return model


def test_trees_on_dead_nodes_several_outputs_and_if_bodies():
    model = _if_model()
    before = model.SerializeToString()
    tree = post_dominator_tree(model)
    assert tree == post_dominator_tree(model, method="lca") == _brute_force_post_dominators(model)
    # relu is read by the If's then-branch and by a dead Tanh: only the exit is common
    assert tree["relu"] is None and tree["rsum"] == "gt" and tree["gt"] == "if"
    assert tree["if"] == "exp" and tree["id2"] is None  # id2 writes an output that neg3 reads
    assert tree["neg3"] == "dead_softplus" and tree["dead_softplus"] is None
    idom = dominator_tree(model)
    assert idom["exp"] == "if" and idom["dead_tanh"] == "relu" and idom["if"] is None
    groups = fuse_ops(model)
    assert sorted(n for g in groups for n in g) == sorted(tree)
    assert ["if"] in groups  # control flow is opaque: a group of its own
    order = [n for g in groups for n in g]
    assert order.index("relu") < order.index("if") and order.index("sig") < order.index("if")
    assert model.SerializeToString() == before
    out = graphopt.optimize(model)
    onnx.checker.check_model(out, full_check=True)
    assert _io(out) == _io(model)
    assert "dead_tanh" not in {n.name for n in out.graph.node}
    assert model.SerializeToString() == before


@pytest.mark.parametrize("name", ["common_det", "silero_vad", "silero_vad_v6"])
def test_post_dominator_tree_of_real_models_is_the_brute_force_one(real_model, name):
    model = onnx.load(str(real_model(name)), load_external_data=False)
    for i, node in enumerate(model.graph.node):  # (v6 has two unnamed nodes)
        node.name = node.name or f"unnamed_{i}"
    tree = post_dominator_tree(model)
    assert set(tree) == {n.name for n in model.graph.node}
    assert tree == _brute_force_post_dominators(model)


# ---------------------------------------------------------------------------- package


def test_star_import_and_dir_give_every_public_entry_point():
    names: dict[str, object] = {}
    exec("from graphopt import *", names)
    for entry in ("optimize", "optimize_with_report", "quantize", "merge", "split"):
        assert callable(names[entry]), entry
        assert entry in dir(graphopt), entry
    from graphopt import multitask
    from graphopt.quant.api import quantize

    assert names["quantize"] is quantize
    assert names["merge"] is multitask.merge and names["split"] is multitask.split
    for error in ("GraphoptError", "LoadError", "PassError", "PipelineError", "VerifyError"):
        assert error in names
    for error in ("QuantizeError", "BackendError", "SaveError", "OptionError"):
        assert issubclass(names[error], GraphoptError)  # type: ignore[arg-type]


def _broken(kind: str) -> onnx.ModelProto:
    vi = helper.make_tensor_value_info
    nodes = {  # a cycle p ⇄ q; a read of nothing; a graph output nothing writes
        "cycle": [
            helper.make_node("Add", ["x", "b"], ["a"], name="p"),
            helper.make_node("Relu", ["a"], ["b"], name="q"),
            helper.make_node("Relu", ["a"], ["y"], name="r"),
        ],
        "undefined read": [helper.make_node("Relu", ["nope"], ["y"], name="r")],
        "undefined output": [helper.make_node("Relu", ["x"], ["a"], name="r")],
    }[kind]
    graph = helper.make_graph(nodes, "g", [vi("x", 1, [2])], [vi("y", 1, [2])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=9)


@pytest.mark.parametrize("kind", ["cycle", "undefined read", "undefined output"])
def test_a_broken_model_proto_is_refused_by_the_analyses_as_optimize_refuses_it(kind, tmp_path):
    """A ModelProto skipped load's checks: a cycle got a post-dominator tree ({'p': 'r', 'q':
    'p', 'r': None}), an undefined read or output a tree and groups, where optimize and the
    same model's file are refused with a one-line LoadError."""
    model = _broken(kind)
    before = model.SerializeToString()
    with pytest.raises(graphopt.LoadError) as raised:
        graphopt.optimize(model)
    expected = str(raised.value)
    assert expected.startswith("the given ModelProto: ")
    path = tmp_path / "m.onnx"
    path.write_bytes(before)
    for fn in (post_dominator_tree, dominator_tree, fuse_ops, topological_order):
        with pytest.raises(graphopt.LoadError) as raised:
            fn(model)
        assert str(raised.value) == expected, fn.__name__
        with pytest.raises(graphopt.LoadError) as raised:
            fn(path)
        assert str(raised.value) == expected.replace("the given ModelProto", str(path))
    assert model.SerializeToString() == before


_RANDOM = {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike"}
_RANDOM |= {"Multinomial", "Bernoulli"}


def _brute_force_dominators(model: onnx.ModelProto) -> dict[str, str | None]:
    """dominator_tree's documented definition, computed from the protobuf: constants (default
    domain, not random, no bodies, reading only weights and other constants) are no way in
    for the nodes that read them; a node reading a graph input, or nothing else, hangs off the
    entry; dom(n) = {n} ∪ ⋂ dom(its predecessors); idom = the closest strict dominator."""
    nodes = list(model.graph.node)  # (a loaded file is in topological order)
    inputs = {v.name for v in model.graph.input}
    producer = {t: n.name for n in nodes for t in n.output if t}
    bodies = (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
    constant: set[str] = set()
    for n in nodes:
        if n.domain not in ("", "ai.onnx") or n.op_type in _RANDOM:
            continue
        if any(a.type in bodies for a in n.attribute):
            continue
        if all(t not in inputs and producer.get(t, "") in constant | {""} for t in _reads(n)):
            constant.add(n.name)
    dom: dict[str, frozenset[str]] = {}
    for n in nodes:
        reads = _reads(n)
        preds = {producer[t] for t in reads if t in producer and producer[t] != n.name}
        if n.name not in constant:
            preds -= constant
        sets = [dom[p] for p in preds]
        if not preds or reads & inputs:
            sets.append(frozenset({"<entry>"}))
        dom[n.name] = frozenset({n.name}) | frozenset.intersection(*sets)
    tree: dict[str, str | None] = {}
    for u, s in dom.items():
        strict = s - {u, "<entry>"}
        tree[u] = max(strict, key=lambda v: len(dom[v])) if strict else None
    return tree


@pytest.mark.parametrize("name", ["layout_cdla", "silero_vad", "fsmn_vad"])
def test_dominator_tree_of_real_models_is_the_brute_force_one(real_model, name):
    model = onnx.load(str(real_model(name)), load_external_data=False)
    for i, node in enumerate(model.graph.node):  # (layout_cdla: 878 unnamed Constant nodes)
        node.name = node.name or f"unnamed_{i}"
    tree = dominator_tree(model)
    assert set(tree) == {n.name for n in model.graph.node}
    assert tree == _brute_force_dominators(model)
    assert any(v is not None for v in tree.values())


def test_a_sparse_initializer_is_a_defined_tensor_for_the_analyses(tmp_path):
    """The analyses' skeleton copy left sparse initializers out; since the ModelProto is
    checked as a path is (4866846), a node reading one was refused as reading an undefined
    tensor. onnxruntime runs the model (it densifies sparse initializers)."""
    import onnxruntime as ort

    sparse = helper.make_sparse_tensor(
        onnx.numpy_helper.from_array(np.array([1.0, 2.0], np.float32), "w"),
        onnx.numpy_helper.from_array(np.array([0, 3], np.int64), "w_index"),
        [4],
    )
    vi = helper.make_tensor_value_info
    graph = helper.make_graph(
        [  # an unnamed node named like the sparse tensor would be: it must take another name
            helper.make_node("Add", ["x", "w"], ["a"]),
            helper.make_node("Relu", ["a"], ["y"], name="relu"),
        ],
        "g",
        [vi("x", TensorProto.FLOAT, [4])],
        [vi("y", TensorProto.FLOAT, [4])],
        sparse_initializer=[sparse],
    )
    graph.sparse_initializer[0].values.name = "Add_0"
    graph.node[0].input[1] = "Add_0"
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=9)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    y = session.run(None, {"x": np.full(4, -1.5, np.float32)})[0]
    assert y.tolist() == [0.0, 0.0, 0.0, 0.5]
    before = model.SerializeToString()
    path = tmp_path / "sparse.onnx"
    path.write_bytes(before)
    tree = post_dominator_tree(model)
    assert tree == post_dominator_tree(path) == post_dominator_tree(before)
    assert set(tree) == {"Add_0_1", "relu"} and tree["Add_0_1"] == "relu"
    assert fuse_ops(model) == fuse_ops(path) == [["Add_0_1", "relu"]]
    assert dominator_tree(model) == dominator_tree(path)
    assert model.SerializeToString() == before


def test_an_unknown_option_names_every_option_optimize_takes(common_det):
    """input_shapes, popped before the others are checked, was missing from the list."""
    with pytest.raises(PipelineError) as raised:
        graphopt.optimize(common_det, input_shape={"images": [1, 3, 416, 416]})
    message = str(raised.value)
    assert message.startswith("unknown option 'input_shape': use ")
    named = set(re.findall(r"[a-z_]+", message.split(": use ", 1)[1])) - {"or"}
    import inspect

    from graphopt.passes.base import CONTEXT_OPTIONS

    signature = inspect.signature(graphopt.api.make_context).parameters
    takes = {n for n, p in signature.items() if p.kind is p.KEYWORD_ONLY}
    assert named == takes | set(CONTEXT_OPTIONS) | {"input_shapes"}
    for option in named:  # each one named is taken (a wrong value is another error)
        with pytest.raises(PipelineError) as raised:
            graphopt.optimize(common_det, **{option: object()})
        assert "unknown option" not in str(raised.value), option
