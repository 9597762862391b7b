"""ort-nchwc-layout with `fallback: true`: the NCHWc graph behind a block-size guard, the NCHW
graph in the other branch; right on every CPU (a wrong block size takes the fallback)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

import graphopt
from graphopt.backends.onnxruntime import session
from graphopt.passes.nchwc_fallback import with_block_size
from graphopt.passes.ort_nchwc import NCHWC_DOMAIN, OrtNchwcLayout
from graphopt.pipeline import make_pipeline
from tests.test_pass_ort_nchwc import BLOCK, conv, model, needs_nchwc

RNG = np.random.default_rng(11)  # its own: drawing from the other module's would change its data


def rand(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def weight(*shape: int) -> np.ndarray:
    return rand(*shape) / np.float32(np.sqrt(np.prod(shape[1:])))


def guarded(m: onnx.ModelProto, **options) -> tuple[onnx.ModelProto, dict]:  # type: ignore[no-untyped-def]
    pipe = make_pipeline("t", [OrtNchwcLayout(fallback=True, **options)])
    out, report = graphopt.optimize_with_report(m, pipe, explain=True)
    return out, report.records[0].stats | {"explain": report.explain}


def chain() -> onnx.ModelProto:
    nodes = [
        conv("x", "W0", "a", "B0", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a"], ["r"]),
        conv("r", "W1", "c", pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Add", ["c", "c"], ["y"]),
    ]
    inits = {"W0": weight(32, 16, 3, 3), "B0": rand(32), "W1": weight(32, 32, 3, 3)}
    return model(nodes, [1, 16, 12, 12], inits)


def branches(m: onnx.ModelProto) -> dict[str, onnx.GraphProto]:
    (node,) = [n for n in m.graph.node if n.op_type == "If"]
    return {a.name: a.g for a in node.attribute}


@needs_nchwc
def test_guarded_model_checks_and_matches_on_both_branches() -> None:
    original = chain()
    out, stats = guarded(original)
    assert stats["guarded"] == 1 and stats["block_size"] == BLOCK
    onnx.checker.check_model(out, full_check=True)
    assert [n.op_type for n in out.graph.node] == ["ReorderInput", "Shape", "Gather", "Equal", "If"]
    assert [o.name for o in out.graph.output] == ["y"]
    parts = branches(out)
    assert any(n.domain == NCHWC_DOMAIN and n.op_type == "Conv" for n in parts["then_branch"].node)
    assert not any(n.domain == NCHWC_DOMAIN for n in parts["else_branch"].node)
    # the original filters stay for the NCHW branch, the reordered ones join them
    names = {t.name for t in out.graph.initializer}
    assert {"W0", "B0", "W1"} <= names and len(names) > 3 + 3
    # the branches declare their outputs' element types only: onnxruntime holds a branch to a
    # declared shape, and an exporter's wrong one (PP-OCRv5 rec: rank 0) stopped the model
    for part in parts.values():
        assert [o.type.tensor_type.HasField("shape") for o in part.output] == [False]
        assert part.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert out.graph.output[0].type.tensor_type.HasField("shape")  # the model's stays
    feeds = {"x": rand(1, 16, 12, 12)}
    expected = session(original, threads=1, level="disable").run(None, feeds)
    for block in (BLOCK, BLOCK + 1):  # the matching CPU, then any other one
        got = session(with_block_size(out, block), threads=1, level="disable").run(None, feeds)
        np.testing.assert_allclose(got[0], expected[0], rtol=1e-4, atol=1e-5)


@needs_nchwc
def test_a_wrong_block_size_without_the_guard_is_silently_wrong() -> None:
    """Why the guard exists: filters reordered for another block size compute garbage and
    onnxruntime does not notice."""
    other = 8 if BLOCK == 16 else 16
    original = chain()
    pipe = make_pipeline("t", [OrtNchwcLayout(block_size=other)])
    unguarded = graphopt.optimize(original, pipe)
    feeds = {"x": rand(1, 16, 12, 12)}
    expected = session(original, threads=1, level="disable").run(None, feeds)[0]
    try:
        got = session(unguarded, threads=1, level="disable").run(None, feeds)[0]
    except Exception:  # onnxruntime may also refuse the shapes: not wrong values, but no run
        return
    assert not np.allclose(got, expected, rtol=1e-3, atol=1e-3)
    safe, _ = guarded(original, block_size=other)
    got = session(safe, threads=1, level="disable").run(None, feeds)[0]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


@needs_nchwc
def test_an_output_that_is_an_input_is_not_guarded() -> None:
    nodes = [conv("x", "W0", "y", pads=[1, 1, 1, 1])]
    original = model(nodes, [1, 16, 8, 8], {"W0": weight(32, 16, 3, 3)}, outputs=("y", "x"))
    out, stats = guarded(original)
    assert "guarded" not in stats
    assert not any(n.domain == NCHWC_DOMAIN or n.op_type == "If" for n in out.graph.node)
    assert (
        "ort-nchwc-layout",
        "(graph)",
        "refused",
        "graph output 'x' is not produced by a node",
    ) in stats["explain"]


def test_nothing_changes_without_nchwc_kernels(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from graphopt.passes import ort_nchwc

    monkeypatch.setattr(ort_nchwc, "measured_block_size", lambda: (0, "no NCHWc kernels"))
    out, stats = guarded(chain())
    assert [n.op_type for n in out.graph.node] == ["Conv", "Relu", "Conv", "Add"]
    assert "guarded" not in stats


@needs_nchwc
@pytest.mark.realmodel
def test_ort_cpu_on_common_det_runs_both_branches(real_model, real_feeds) -> None:  # type: ignore[no-untyped-def]
    original = onnx.load(str(real_model("common_det")))
    out = graphopt.optimize(original, "ort-cpu")
    assert out.graph.node[-1].op_type == "If"
    feeds = real_feeds("common_det", 1)[0]
    reference = session(original, threads=2, level="all").run(None, feeds)[0]
    scale = float(np.max(np.abs(reference)))
    for block in (BLOCK, 4):
        got = session(with_block_size(out, block), threads=2, level="disable").run(None, feeds)[0]
        assert float(np.max(np.abs(got - reference))) <= 1e-4 * scale


@needs_nchwc
def test_cli_counts_the_nchwc_graph_and_its_fallback(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from graphopt.cli import main
    from graphopt.passes.nchwc_fallback import branches

    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(chain(), src)
    assert main(["optimize", str(src), "-o", str(out), "--pipeline", "ort-cpu"]) == 0
    then, fallback = branches(onnx.load(out))
    printed = capsys.readouterr().out
    assert (
        f"4 -> {len(then.node)} nodes (NCHWc graph; {len(fallback.node)} in its NCHW fallback)"
        in printed
    )
    assert branches(chain()) is None


@needs_nchwc
def test_verify_checks_both_branches(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from graphopt.cli import main

    src, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    onnx.save(chain(), src)
    assert main(["optimize", str(src), "-o", str(out), "--pipeline", "ort-cpu", "--verify"]) == 0
    printed = capsys.readouterr().out
    assert "verify: y: max abs diff" in printed
    assert "verify (NCHW fallback): y: max abs diff" in printed
    with pytest.raises(ValueError, match="not a guarded"):
        with_block_size(chain(), 8)


@needs_nchwc
def test_inspect_names_the_guard(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from graphopt.commands.inspect import format_report, inspect_model

    out = tmp_path / "o.onnx"
    onnx.save(guarded(chain())[0], out)
    report = inspect_model(str(out))
    guard = report["nchwc_guard"]
    assert guard["block_size"] == BLOCK and guard["nchw_nodes"] == 4
    assert guard["nchwc_ops"]["com.microsoft.nchwc.Conv"] == 2
    assert f"NCHWc guard: If(this CPU's block size = {BLOCK})" in format_report(report)
    src = tmp_path / "m.onnx"
    onnx.save(chain(), src)
    assert inspect_model(str(src))["nchwc_guard"] is None


def _conv_relu_beside(
    extra_nodes: list[onnx.NodeProto],
    extra_inputs: list[onnx.ValueInfoProto],
    extra_output: onnx.ValueInfoProto,
    constants: dict[str, np.ndarray],
) -> onnx.ModelProto:
    """y = Relu(Conv(x, W)) (what the guard guards), and beside it a computation of the model's
    own that reads `constants` (values the guard's probe needs too)."""
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", 8, "h", "w"])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["n", 16, "h", "w"])
    inits = {"W": weight(16, 8, 3, 3), **constants}
    guarded_part = [conv("x", "W", "c", pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])]
    graph = helper.make_graph(
        [*guarded_part, *extra_nodes],
        "g",
        [x, *extra_inputs],
        [y, extra_output],
        [onnx.numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _guarded_twice_and_checked(
    original: onnx.ModelProto, feeds: dict[str, np.ndarray]
) -> onnx.ModelProto:
    """ort-cpu's output, which a second ort-cpu run leaves byte for byte, and which gives the
    original's outputs on both branches (this CPU's block size, and another's)."""
    once = graphopt.optimize(original, "ort-cpu")
    assert graphopt.optimize(once, "ort-cpu").SerializeToString() == once.SerializeToString()
    expected = session(original, threads=1, level="disable").run(None, feeds)
    for block in (BLOCK, BLOCK + 1):
        got = session(with_block_size(once, block), threads=1, level="disable").run(None, feeds)
        for g, e in zip(got, expected, strict=True):
            np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5)
    return once


@needs_nchwc
def test_the_guard_reads_the_models_own_int64_one() -> None:
    """The probe's axis (an int64 1) was a new initializer added after the clean-up: a second
    ort-cpu run merged it into the model's own 1, so the result was not byte-idempotent (Yahoo
    open_nsfw; a sweep's find)."""
    original = _conv_relu_beside(
        [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Gather", ["s", "one"], ["ch"])],
        [],
        helper.make_tensor_value_info("ch", onnx.TensorProto.INT64, []),
        {"one": np.array(1, np.int64)},
    )
    once = _guarded_twice_and_checked(original, {"x": rand(1, 8, 6, 6)})
    probe = next(n for n in once.graph.node if n.name == "nchwc_probe_block")
    assert probe.input[1] == "one"


@needs_nchwc
def test_the_guard_reads_the_models_own_int64_block_size() -> None:
    """The block size (an int64 b) was a new initializer added after the clean-up, like the
    probe's axis: a second ort-cpu run merged it with the model's own int64 b (here z = c + b),
    so the result was not idempotent, and `with_block_size` then rewrote the model's b for
    every reader (z came out c + b + 1 on the fallback branch of the verification copy)."""
    original = _conv_relu_beside(
        [
            helper.make_node("Shape", ["x"], ["s"]),
            helper.make_node("Gather", ["s", "zero"], ["n"]),
            helper.make_node("Add", ["n", "b"], ["z"]),
        ],
        [],
        helper.make_tensor_value_info("z", onnx.TensorProto.INT64, []),
        {"zero": np.array(0, np.int64), "b": np.array(BLOCK, np.int64)},
    )
    feeds = {"x": rand(2, 8, 6, 6)}
    assert session(original, threads=1, level="disable").run(None, feeds)[1] == 2 + BLOCK
    _guarded_twice_and_checked(original, feeds)


@needs_nchwc
def test_the_guard_reads_the_models_own_probe_zeros() -> None:
    """The probe (zeros [1, 4, 1, 1]) was a new initializer too: a second ort-cpu run merged it
    with a model's own equal one (here z = Max(x4, 0[1, 4, 1, 1])): not idempotent."""
    original = _conv_relu_beside(
        [helper.make_node("Max", ["x4", "zeros"], ["z"])],
        [helper.make_tensor_value_info("x4", onnx.TensorProto.FLOAT, ["n", 4, "h", "w"])],
        helper.make_tensor_value_info("z", onnx.TensorProto.FLOAT, ["n", 4, "h", "w"]),
        {"zeros": np.zeros((1, 4, 1, 1), np.float32)},
    )
    _guarded_twice_and_checked(original, {"x": rand(2, 8, 6, 6), "x4": rand(2, 4, 6, 6)})
