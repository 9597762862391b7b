"""`optimize` checks a model's nodes while indexing them (`load(check_nodes=False)` +
`Graph(check_as=...)`): the errors must be exactly those of `load_model`."""

from __future__ import annotations

import onnx
import onnx.helper as oh
import pytest

import graphopt
from graphopt.errors import LoadError
from graphopt.ir import Graph, load, load_model

FLOAT = onnx.TensorProto.FLOAT


def _model(nodes, outputs=("y",), initializers=()):
    graph = oh.make_graph(
        nodes,
        "g",
        [oh.make_tensor_value_info("x", FLOAT, [1])],
        [oh.make_tensor_value_info(o, FLOAT, [1]) for o in outputs],
        initializer=list(initializers),
    )
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)])


def _error(fn) -> str:
    with pytest.raises(LoadError) as info:
        fn()
    return str(info.value)


BROKEN = {
    "undefined input": _model([oh.make_node("Relu", ["ghost"], ["y"], name="r")]),
    "nameless reader": _model([oh.make_node("Relu", ["ghost"], ["y"])]),
    "out of order": _model(
        [oh.make_node("Relu", ["t"], ["y"], name="b"), oh.make_node("Relu", ["x"], ["t"])]
    ),
    "undefined output": _model([oh.make_node("Relu", ["x"], ["y"])], outputs=("y", "z")),
    # produced twice AND an undefined output: load's check runs first, so its error wins
    "not SSA, undefined output": _model(
        [oh.make_node("Relu", ["x"], ["y"], name="a"), oh.make_node("Neg", ["x"], ["y"])],
        outputs=("y", "z"),
    ),
    # produced twice, and a later node reads an undefined tensor
    "not SSA, undefined input later": _model(
        [
            oh.make_node("Relu", ["x"], ["y"], name="a"),
            oh.make_node("Neg", ["x"], ["y"], name="b"),
            oh.make_node("Abs", ["ghost"], ["w"], name="c"),
        ]
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_optimize_raises_load_models_error(case, tmp_path):
    model = BROKEN[case]
    expected = _error(lambda: load_model(model))
    assert _error(lambda: graphopt.optimize(model)) == expected
    assert _error(lambda: graphopt.optimize(model.SerializeToString())) == expected.replace(
        "the given ModelProto", "the given bytes"
    )
    path = tmp_path / "broken.onnx"
    path.write_bytes(model.SerializeToString())
    assert _error(lambda: graphopt.optimize(str(path))) == _error(lambda: load_model(path))
    assert str(path) in _error(lambda: graphopt.optimize(path))
    assert "\n" not in expected


def test_errors_name_what_is_wrong():
    assert "node 'r' (Relu) reads tensor 'ghost'" in _error(
        lambda: load_model(BROKEN["undefined input"])
    )
    assert "node 'Relu' (Relu) reads tensor 'ghost'" in _error(
        lambda: load_model(BROKEN["nameless reader"])
    )
    assert "node 'b' (Relu) reads tensor 't'" in _error(lambda: load_model(BROKEN["out of order"]))
    assert "graph output 'z'" in _error(lambda: load_model(BROKEN["undefined output"]))
    assert "graph output 'z'" in _error(
        lambda: graphopt.optimize(BROKEN["not SSA, undefined output"])
    )
    assert "'ghost'" in _error(lambda: graphopt.optimize(BROKEN["not SSA, undefined input later"]))


def test_ssa_error_without_load_check():
    model = BROKEN["not SSA, undefined output"]
    assert "SSA" in _error(lambda: Graph(model))
    model = _model(
        [oh.make_node("Relu", ["x"], ["y"], name="a"), oh.make_node("Neg", ["x"], ["y"])]
    )
    message = _error(lambda: graphopt.optimize(model))
    assert "tensor 'y' is produced by both 'a' and 'Neg_1'" in message


@pytest.mark.parametrize(
    "nodes, initializers, message",
    [
        (  # a node writes an initializer's name
            [oh.make_node("Relu", ["x"], ["w"], name="r"), oh.make_node("Add", ["x", "w"], ["y"])],
            [oh.make_tensor("w", FLOAT, [1], [10.0])],
            "tensor 'w' is an initializer and is also produced by 'r'",
        ),
        (  # a node writes the graph input's name (was "the graph has a cycle")
            [
                oh.make_node("Relu", ["x"], ["x2"]),
                oh.make_node("Neg", ["x2"], ["x"], name="n"),
                oh.make_node("Add", ["x", "x2"], ["y"]),
            ],
            [],
            "tensor 'x' is a graph input and is also produced by 'n'",
        ),
        (  # a Constant node (made an initializer while indexing) writes an initializer's name
            [
                oh.make_node("Constant", [], ["w"], value=oh.make_tensor("v", FLOAT, [1], [2.0])),
                oh.make_node("Add", ["x", "w"], ["y"]),
            ],
            [oh.make_tensor("w", FLOAT, [1], [10.0])],
            "tensor 'w' is an initializer and is also produced by",
        ),
    ],
)
def test_a_node_writing_an_input_or_initializer_name_is_not_ssa(
    nodes, initializers, message, tmp_path, capsys
):
    """onnx.checker and onnxruntime refuse such a model ("Duplicate definition of name");
    optimize wrote one back (or blamed a cycle)."""
    from graphopt.cli import main

    model = _model(nodes, initializers=initializers)
    assert message in _error(lambda: graphopt.optimize(model))
    assert message in _error(lambda: Graph(model))
    path, out = tmp_path / "m.onnx", tmp_path / "o.onnx"
    path.write_bytes(model.SerializeToString())
    assert main(["optimize", str(path), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err] and message in err
    assert not out.exists()


def test_load_without_node_check_still_checks_opsets():
    model = _model([oh.make_node("Relu", ["ghost"], ["y"])])
    loaded = load(model, check_nodes=False)  # the nodes are left to Graph(check_as=...)
    assert loaded.where == "the given ModelProto"
    assert "'ghost'" in _error(lambda: Graph(loaded.model, check_as=loaded.where))
    model.opset_import[0].version = 99
    assert "unsupported opset 99" in _error(lambda: load(model, check_nodes=False))


def test_checked_graph_indexes_like_an_unchecked_one():
    model = _model(
        [
            oh.make_node("Relu", ["x"], ["t"]),
            oh.make_node("Relu", ["t"], ["u"]),  # nameless twins get unique names
            oh.make_node("Add", ["u", "w"], ["y"], name="Relu_1"),
        ],
        initializers=[oh.make_tensor("w", FLOAT, [1], [1.0])],
    )
    checked = Graph(load_model(model), check_as="m")
    plain = Graph(load_model(model))
    assert list(checked.nodes) == list(plain.nodes) == ["Relu_0", "Relu_1_1", "Relu_1"]
    assert checked.producer == plain.producer
    assert (
        checked.consumers
        == plain.consumers
        == {
            "x": {"Relu_0": None},
            "t": {"Relu_1_1": None},
            "u": {"Relu_1": None},
            "w": {"Relu_1": None},
        }
    )
    assert list(checked.initializers) == ["w"]


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_cli_names_the_file_and_writes_nothing(case, tmp_path, capsys):
    # The CLI loads once and hands the LoadedModel to optimize: the node check happens in the
    # indexing walk, and must still name the file, exit 2 and leave no output behind.
    from graphopt.cli import main

    path = tmp_path / "broken.onnx"
    path.write_bytes(BROKEN[case].SerializeToString())
    out = tmp_path / "out.onnx"
    assert main(["optimize", str(path), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err]  # one line, no traceback
    assert _error(lambda: load_model(path)) in err
    assert not out.exists()


def test_load_hands_a_loaded_model_over():
    loaded = load(BROKEN["undefined input"], check_nodes=False)
    assert load(loaded) is loaded  # not copied, not checked again


def test_cli_verify_compares_with_the_original(tmp_path, capsys, monkeypatch):
    # optimize edits the handed-over model in place; --verify must still run the original.
    from graphopt.backends import onnxruntime as ort_backend
    from graphopt.cli import main

    compared = []
    real_compare = ort_backend.compare

    def spy(reference, candidate, feeds, **options):
        compared.append([n.op_type for n in reference.graph.node])
        return real_compare(reference, candidate, feeds, **options)

    monkeypatch.setattr(ort_backend, "compare", spy)

    model = _model(
        [
            oh.make_node("Add", ["x", "zero"], ["t"], name="add0"),  # x + (-0): removed
            oh.make_node("Relu", ["t"], ["y"], name="r"),
        ],
        initializers=[oh.make_tensor("zero", FLOAT, [1], [-0.0])],
    )
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    out = tmp_path / "o.onnx"
    assert main(["optimize", str(path), "-o", str(out), "--verify"]) == 0
    printed = capsys.readouterr().out
    assert "verify: y: max abs diff 0" in printed
    assert compared == [["Add", "Relu"]]  # the original, not the optimized model
    assert [n.op_type for n in onnx.load(str(out)).graph.node] == ["Relu"]
    assert [n.op_type for n in onnx.load(str(path)).graph.node] == ["Add", "Relu"]


def test_a_hand_built_loaded_model_is_named_in_errors():
    from graphopt.ir import LoadedModel

    message = _error(lambda: graphopt.optimize(LoadedModel(BROKEN["undefined input"])))
    assert message.startswith("the given LoadedModel: node 'r' (Relu) reads tensor 'ghost'")
