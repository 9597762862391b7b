"""H216: the FuseOps partition does not depend on the order the file lists its nodes in.

The phases visit the nodes in order and, where two nodes compete for one post-dominator, the
first wins: of two Convs read by one Add only one may take it as its elementwise epilogue, and
under the size cap the first fusion into a sink fills it. The order was the file's, so one
graph listed two ways gave two partitions. It is now TVM's post-DFS order (the writers of a
node's inputs, in input order, before it, from the graph outputs), as TVM's IndexedForwardGraph
visits `add(conv1, conv2)`: conv1 fuses.
"""

from __future__ import annotations

import itertools
import random

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from graphopt.analysis import fuse_ops

SHAPE = [1, 4, 5, 5]


def _model(nodes: list[onnx.NodeProto], inits: list[onnx.TensorProto]) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, SHAPE)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, SHAPE)],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _weight(name: str) -> onnx.TensorProto:
    values = np.linspace(-0.5, 0.5, 16, dtype=np.float32).reshape(4, 4, 1, 1)
    return numpy_helper.from_array(values, name)


def _same_groups(a: list[list[str]], b: list[list[str]]) -> bool:
    return sorted(map(sorted, a)) == sorted(map(sorted, b))


def test_two_convs_into_one_add_the_first_input_fuses_in_either_file_order():
    nodes = {
        "c1": helper.make_node("Conv", ["x", "w1"], ["a"], name="c1"),
        "c2": helper.make_node("Conv", ["x", "w2"], ["b"], name="c2"),
        "add": helper.make_node("Add", ["a", "b"], ["y"], name="add"),
    }
    inits = [_weight("w1"), _weight("w2")]
    for order in (["c1", "c2", "add"], ["c2", "c1", "add"]):
        groups = fuse_ops(_model([nodes[n] for n in order], inits))
        assert _same_groups(groups, [["c1", "add"], ["c2"]]), (order, groups)


def test_the_size_cap_is_filled_in_the_same_order_whatever_the_file_order():
    # three Relus of x read by one Sum: with a cap of 2 one Relu joins the Sum, the same one
    # in every order of the file
    relus = [helper.make_node("Relu", ["x"], [f"r{i}"], name=f"relu{i}") for i in range(3)]
    total = helper.make_node("Sum", ["r0", "r1", "r2"], ["y"], name="sum")
    seen = set()
    for perm in itertools.permutations(relus):
        groups = fuse_ops(_model([*perm, total], []), max_group_size=2)
        seen.add(tuple(sorted(map(tuple, map(sorted, groups)))))
    assert seen == {(("relu0", "sum"), ("relu1",), ("relu2",))}


def _random_topological_order(model: onnx.ModelProto, rng: random.Random) -> onnx.ModelProto:
    nodes = list(model.graph.node)
    writer = {t: i for i, n in enumerate(nodes) for t in n.output}
    deps = [{writer[t] for t in n.input if t in writer} for n in nodes]
    done: list[int] = []
    while len(done) < len(nodes):
        ready = [i for i in range(len(nodes)) if i not in done and deps[i] <= set(done)]
        done.append(rng.choice(ready))
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.node[:]
    out.graph.node.extend(nodes[i] for i in done)
    return out


def test_a_residual_block_with_a_projection_shortcut_partitions_the_same_in_any_order():
    # ResNet's downsampling block: Add(Conv-Mul-Conv-Mul of x, Conv-Mul of x), then Relu
    def conv(i: int, src: str) -> list[onnx.NodeProto]:
        return [
            helper.make_node("Conv", [src, f"w{i}"], [f"c{i}"], name=f"conv{i}"),
            helper.make_node("Mul", [f"c{i}", f"s{i}"], [f"m{i}"], name=f"mul{i}"),
        ]

    nodes = [
        *conv(0, "x"),
        helper.make_node("Relu", ["m0"], ["r0"], name="relu0"),
        *conv(1, "r0"),
        *conv(2, "x"),
        helper.make_node("Add", ["m1", "m2"], ["sum"], name="add"),
        helper.make_node("Relu", ["sum"], ["y"], name="relu"),
    ]
    inits = [_weight(f"w{i}") for i in range(3)]
    inits += [
        numpy_helper.from_array(np.full((1, 4, 1, 1), 0.5, np.float32), f"s{i}") for i in range(3)
    ]
    model = _model(nodes, inits)
    want = fuse_ops(model)
    assert ["conv1", "mul1", "add", "relu"] in want  # the Add's first input's Conv, as TVM
    rng = random.Random(216)
    for _ in range(20):
        assert _same_groups(fuse_ops(_random_topological_order(model, rng)), want)
