"""Review of the NCHWc guard (`ort-nchwc-layout` with `fallback: true`, the `ort-cpu` pipeline):
models the first tests did not cover. Each guarded model must keep its inputs and outputs, pass
the ONNX checker (full check) and match the original in onnxruntime on both branches."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import graphopt
from graphopt.backends.onnxruntime import session
from graphopt.ir import Graph
from graphopt.passes.base import PassContext
from graphopt.passes.nchwc_fallback import with_block_size
from graphopt.passes.ort_nchwc import NCHWC_DOMAIN, OrtNchwcLayout
from graphopt.pipeline import PassManager, make_pipeline
from tests.test_pass_ort_nchwc import BLOCK, needs_nchwc

RNG = np.random.default_rng(23)
F = TensorProto.FLOAT


def rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def weight(*shape: int) -> np.ndarray:
    return rand(*shape) / np.float32(np.sqrt(np.prod(shape[1:])))


def two_input_model(outputs: list[str], opset: int = 17, ir_version: int | None = None):  # type: ignore[no-untyped-def]
    """x, z → Conv+Relu, Conv → Add → y → Sigmoid → s; `outputs` picks the graph outputs."""
    nodes = [
        helper.make_node("Conv", ["x", "W0", "B0"], ["a"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a"], ["r"]),
        helper.make_node("Conv", ["z", "W1"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["r", "c"], ["y"]),
        helper.make_node("Sigmoid", ["y"], ["s"]),
    ]
    inits = {"W0": weight(32, 16, 3, 3), "B0": rand(32), "W1": weight(32, 16, 3, 3)}
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(n, F, [1, 16, 8, 8]) for n in ("x", "z")],
        [helper.make_tensor_value_info(o, F, [1, 32, 8, 8]) for o in outputs],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    if ir_version is not None:
        m.ir_version = ir_version
    return m


def guarded(m: onnx.ModelProto) -> onnx.ModelProto:
    return graphopt.optimize(m, make_pipeline("t", [OrtNchwcLayout(fallback=True)]))


def assert_guard_is_right(original: onnx.ModelProto, out: onnx.ModelProto) -> None:
    assert [(o.name, o.type) for o in out.graph.output] == [
        (o.name, o.type) for o in original.graph.output
    ]
    assert [(i.name, i.type) for i in out.graph.input] == [
        (i.name, i.type) for i in original.graph.input
    ]
    onnx.checker.check_model(out, full_check=True)
    feeds = {"x": rand(1, 16, 8, 8), "z": rand(1, 16, 8, 8)}
    expected = session(original, threads=1, level="disable").run(None, feeds)
    for block in (BLOCK, BLOCK + 1):  # the NCHWc branch, then the NCHW fallback
        for level in ("disable", "all"):
            m = with_block_size(out, block)
            got = session(m, threads=1, level=level).run(None, feeds)
            for e, g in zip(expected, got, strict=True):
                np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5)


@needs_nchwc
def test_a_graph_output_listed_twice_is_guarded_into_a_valid_model() -> None:
    """An If output must be written once (SSA): the If writes y once, the graph lists it twice
    as before (was: If(...) -> [y, s, y], which onnxruntime refused to load)."""
    original = two_input_model(["y", "s", "y"])
    out = guarded(original)
    assert out.graph.node[-1].op_type == "If"
    assert_guard_is_right(original, out)


@needs_nchwc
def test_ir3_model_with_constant_node_weights_is_left_alone() -> None:
    """IR < 4 needs every initializer listed as a graph input (then an overridable input, not a
    constant): the layout pass cannot add its reordered filters there (was: W0_nchwc in
    initializer but not in graph input; onnxruntime refused to load)."""
    source = two_input_model(["y", "s"], opset=8, ir_version=3)
    weights = list(source.graph.initializer)
    del source.graph.initializer[:]
    nodes = [helper.make_node("Constant", [], [t.name], value=t) for t in weights]
    nodes += list(source.graph.node)
    del source.graph.node[:]
    source.graph.node.extend(nodes)
    onnx.checker.check_model(source, full_check=True)
    for fallback in (True, False):  # a Graph that stays at IR 3 (optimize raises the IR first)
        pipe = make_pipeline("t", [OrtNchwcLayout(fallback=fallback)])
        graph = Graph(onnx.ModelProto.FromString(source.SerializeToString()))
        ctx = PassContext(record_explanations=True)
        PassManager(pipe).run(graph, ctx)
        out = graph.commit()
        onnx.checker.check_model(out, full_check=True)
        assert not any(n.domain == NCHWC_DOMAIN for n in out.graph.node)
        assert ("ort-nchwc-layout", "*", "refused") in {e[:3] for e in ctx.explain}
    out = graphopt.optimize(source, "ort-cpu")
    assert out.ir_version >= 4
    onnx.checker.check_model(out, full_check=True)
    feeds = {"x": rand(1, 16, 8, 8), "z": rand(1, 16, 8, 8)}
    expected = session(source, threads=1, level="disable").run(None, feeds)
    got = session(out, threads=1, level="disable").run(None, feeds)
    for e, g in zip(expected, got, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5)


@needs_nchwc
def test_a_model_using_the_guards_tensor_names_is_guarded_with_fresh_ones() -> None:
    """The guard's tensors take fresh names (the docstring said such a model was refused)."""
    original = two_input_model(["y", "s"])
    for node in original.graph.node:  # a → nchwc_probe, r → nchwc_block_size
        rename = {"a": "nchwc_probe", "r": "nchwc_block_size"}
        node.input[:] = [rename.get(t, t) for t in node.input]
        node.output[:] = [rename.get(t, t) for t in node.output]
    out = guarded(original)
    assert out.graph.node[-1].op_type == "If"
    equal = out.graph.node[-2]
    assert equal.op_type == "Equal" and equal.input[1] != "nchwc_block_size"
    onnx.checker.check_model(out, full_check=True)
    feeds = {"x": rand(1, 16, 8, 8), "z": rand(1, 16, 8, 8)}
    expected = session(original, threads=1, level="disable").run(None, feeds)
    for block in (BLOCK, BLOCK + 1):
        flipped = onnx.ModelProto()
        flipped.CopyFrom(out)
        for t in flipped.graph.initializer:
            if t.name == equal.input[1]:
                t.CopyFrom(numpy_helper.from_array(np.array(block, np.int64), t.name))
        got = session(flipped, threads=1, level="disable").run(None, feeds)
        for e, g in zip(expected, got, strict=True):
            np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5)


@needs_nchwc
def test_cli_counts_a_guarded_input_like_a_guarded_output(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    """Optimizing an ort-cpu model again changes nothing and says so (was: "5 -> 8 nodes", the
    five guard nodes against the NCHWc graph)."""
    from graphopt.cli import main
    from graphopt.passes.nchwc_fallback import branches

    src, once, twice = tmp_path / "m.onnx", tmp_path / "o1.onnx", tmp_path / "o2.onnx"
    onnx.save(two_input_model(["y", "s"]), src)
    assert main(["optimize", str(src), "-o", str(once), "--pipeline", "ort-cpu"]) == 0
    then, fallback = branches(onnx.load(once))
    capsys.readouterr()
    assert main(["optimize", str(once), "-o", str(twice), "--pipeline", "ort-cpu"]) == 0
    n, m = len(then.node), len(fallback.node)
    assert f": {n} -> {n} nodes (NCHWc graph; {m} in its NCHW fallback)" in capsys.readouterr().out
