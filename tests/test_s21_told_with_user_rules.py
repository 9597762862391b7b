"""What a body's context is told of the graphs around it (`graphopt.subgraphs`) where the
user's rule files run: NO_RANGE_IN_BODIES says that no body below holds a Range, which no
built-in pass makes, but a user's rule may make one inside a nested body after its owner's
body was told; then the told fact would be stale and `dims_in_dispute` would skip the walk
that finds a disputed Range there. So it is told only without rule files."""

from __future__ import annotations

import onnx
import onnx.helper as oh

import graphopt
import graphopt.subgraphs as subgraphs
from graphopt.passes.constant_folding import NO_RANGE_IN_BODIES
from graphopt.passes.noop import NAN_BITS_AROUND
from tests.test_patterns_engine import QUICKGELU_RULE

F32 = onnx.TensorProto.FLOAT


def _if_model() -> onnx.ModelProto:
    def branch(name: str) -> onnx.GraphProto:
        return oh.make_graph(
            [oh.make_node("Relu", ["x"], [f"{name}_y"])],
            name,
            [],
            [oh.make_tensor_value_info(f"{name}_y", F32, [2])],
        )

    graph = oh.make_graph(
        [oh.make_node("If", ["c"], ["y"], then_branch=branch("then"), else_branch=branch("else"))],
        "g",
        [
            oh.make_tensor_value_info("c", onnx.TensorProto.BOOL, []),
            oh.make_tensor_value_info("x", F32, [2]),
        ],
        [oh.make_tensor_value_info("y", F32, [2])],
    )
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)])


def _told(monkeypatch, **options) -> list[dict]:
    seen: list[dict] = []
    inner = subgraphs._optimize_body

    def spy(*args, **kwargs):
        seen.append(dict(args[9] if len(args) > 9 else kwargs.get("told") or {}))
        return inner(*args, **kwargs)

    monkeypatch.setattr(subgraphs, "_optimize_body", spy)
    graphopt.optimize(_if_model(), **options)
    return seen


def test_without_rule_files_bodies_are_told_there_is_no_range(monkeypatch):
    told = _told(monkeypatch)
    assert told, "the If's branches were not optimized"
    assert all(t.get(NO_RANGE_IN_BODIES) is True for t in told)
    assert all(NAN_BITS_AROUND in t for t in told)


def test_with_rule_files_no_range_fact_is_told(monkeypatch, tmp_path):
    rules = tmp_path / "rules.yaml"
    # in a group the default pipeline runs (fuse-activations): rules no step runs are refused
    rules.write_text(
        QUICKGELU_RULE.replace("    doc:", "    group: activations\n    doc:"), encoding="utf-8"
    )
    told = _told(monkeypatch, rule_files=[rules])
    assert told, "the If's branches were not optimized"
    assert all(NO_RANGE_IN_BODIES not in t for t in told)
    assert all(NAN_BITS_AROUND in t for t in told)  # still told: see nan_bits_observable
