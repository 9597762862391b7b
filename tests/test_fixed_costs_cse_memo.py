"""CSE remembers large initializers' fingerprints between runs (`Graph.content_keys`): a tensor
replaced or written in place is fingerprinted again, and a remembered key never merges
tensors whose bytes differ."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from graphopt.ir import Graph
from graphopt.passes.base import PassContext
from graphopt.passes.constants import adopt_tensor
from graphopt.passes.cse import EliminateCommonSubexpressions
from tests.conftest import assert_same_outputs
from tests.models_util import run

F32 = np.float32


def _two_weights(a: np.ndarray, b: np.ndarray) -> onnx.ModelProto:
    """y1 = x + A, y2 = x + B, with A and B initializers (64 floats: over the 128-byte size
    whose bytes are their own key)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [64])
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [64]) for n in ("y1", "y2")]
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "A"], ["y1"]), helper.make_node("Add", ["x", "B"], ["y2"])],
        "g",
        [x],
        outs,
        [numpy_helper.from_array(a, "A"), numpy_helper.from_array(b, "B")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _cse(graph: Graph) -> int:
    result = EliminateCommonSubexpressions().run(graph, PassContext())
    return result.stats["initializers"]


A = np.arange(64, dtype=F32)
B = A.copy()
B[30] = -1.0  # same first and last 64 bytes as A: the fingerprints collide, the bytes differ


def test_a_tensor_written_in_place_is_fingerprinted_again():
    graph = Graph(_two_weights(A, A + 1))
    assert _cse(graph) == 0
    assert set(graph.content_keys) == {"A", "B"}
    graph.initializers["B"].raw_data = A.tobytes()  # now a twin of A
    graph.initializer_written("B")
    assert "B" not in graph.content_keys
    assert _cse(graph) == 1
    assert "B" not in graph.initializers
    assert graph.inputs_of(graph.producer["y2"]) == ("x", "A")


def test_a_writer_that_gives_the_bytes_it_wrote_has_their_key_remembered():
    graph = Graph(_two_weights(A, A + 1))
    assert _cse(graph) == 0
    graph.initializers["B"].raw_data = A.tobytes()
    graph.initializer_written("B", A.tobytes())
    assert graph.content_keys["B"][1] == graph.content_keys["A"][1]
    assert _cse(graph) == 1
    assert "B" not in graph.initializers


def test_a_key_given_for_other_bytes_than_written_merges_nothing():
    graph = Graph(_two_weights(A, A + 1))
    graph.initializer_written("B", A.tobytes())  # says A's bytes; B still holds A + 1
    assert _cse(graph) == 0
    assert set(graph.initializers) == {"A", "B"}


def test_a_replaced_initializer_is_not_read_from_the_memo():
    graph = Graph(_two_weights(A, A + 1))
    assert _cse(graph) == 0
    adopt_tensor(graph, "B", numpy_helper.from_array(A, "B"))  # a new proto under the name
    assert _cse(graph) == 1
    assert "B" not in graph.initializers


def test_a_remembered_key_is_confirmed_on_the_bytes():
    graph = Graph(_two_weights(A, B))
    assert _cse(graph) == 0  # colliding fingerprints, bytes compared
    # A stale memo (e.g. a write that did not call initializer_written) that says B's key is
    # A's: the bytes still differ, so nothing is merged.
    graph.content_keys["B"] = (graph.initializers["B"], graph.content_keys["A"][1])
    assert _cse(graph) == 0
    assert set(graph.initializers) == {"A", "B"}


def _conv_bn(index: int, weight: np.ndarray, var: float) -> tuple[list, list]:
    c = str(index)
    nodes = [
        helper.make_node("Conv", ["x" + c, "W" + c], ["c" + c], pads=[1, 1, 1, 1]),
        helper.make_node(
            "BatchNormalization",
            ["c" + c, "g", "b" + c, "m", "v" + c],
            ["y" + c],
            epsilon=0.25,
        ),
    ]
    inits = [
        numpy_helper.from_array(weight, "W" + c),
        numpy_helper.from_array(np.full(8, 0.5 * index, F32), "b" + c),
        numpy_helper.from_array(np.full(8, var, F32), "v" + c),
    ]
    return nodes, inits


def test_weights_that_the_batchnorm_fold_makes_equal_are_merged_by_the_later_cse():
    """W1·(γ/√(0.75+0.25)) and (2·W1)·(γ/√(3.75+0.25)) are the same floats once folded: the
    fold writes them over the spare W1 and W2 in place, and the clean-up loop's CSE, which
    remembered W1's and W2's keys from the first run, must see the new bytes."""
    rng = np.random.default_rng(0)
    w1 = (rng.integers(-8, 8, size=(8, 4, 3, 3)) / 8).astype(F32)
    n1, i1 = _conv_bn(1, w1, 0.75)
    n2, i2 = _conv_bn(2, 2 * w1, 3.75)
    shared = [
        numpy_helper.from_array(np.linspace(0.5, 2.0, 8, dtype=F32), "g"),
        numpy_helper.from_array(np.full(8, 0.25, F32), "m"),
    ]
    inputs = [
        helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 4, 6, 6]) for n in ("x1", "x2")
    ]
    outputs = [
        helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 8, 6, 6]) for n in ("y1", "y2")
    ]
    graph = helper.make_graph(n1 + n2, "g", inputs, outputs, i1 + i2 + shared)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model, full_check=True)
    out = run(
        model,
        "constants-to-initializers",
        "eliminate-common-subexpressions",
        "fold-batchnorm",
        "eliminate-common-subexpressions",
        "eliminate-dead-code",
    )
    assert [n.op_type for n in out.graph.node] == ["Conv", "Conv"]
    weights = [t for t in out.graph.initializer if list(t.dims) == [8, 4, 3, 3]]
    assert len(weights) == 1  # the second fold's weight merged into the first
    assert out.graph.node[0].input[1] == out.graph.node[1].input[1]
    feeds = {n: rng.standard_normal((1, 4, 6, 6)).astype(F32) for n in ("x1", "x2")}
    assert_same_outputs(model, out, feeds)
