"""What `load` refuses that it loaded before, each a model onnx.checker refuses and graphopt
wrote back as it came (the output failed `check_model` too):

- an IR version newer than the installed onnx knows (onnxruntime refuses it as well), or
  below 0 (onnxruntime runs it; the IR < 4 handling passed it by);
- an initializer name given twice: two dense tensors (onnxruntime reads the last), a dense
  and a sparse one (onnxruntime reads the sparse one, graphopt's passes the dense one), or two
  sparse ones (onnxruntime refuses);
- a graph input declared twice (onnxruntime refuses).

Still loaded: an initializer that is also a graph input (an overridable default at IR ≥ 4, or
how IR 3 lists every weight), IR 0 (unset: read as current, as onnxruntime reads it; see
test_review_leftovers11) and the newest IR onnx knows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphopt
from graphopt.analysis import post_dominator_tree
from graphopt.cli import main
from graphopt.errors import BackendError, LoadError
from tests.fusion_models import run_at
from tests.test_cli_review3 import one_line_error

X = np.array([1.5, -2.0], np.float32)


def _weight(values: list[float], name: str = "w") -> onnx.TensorProto:
    return numpy_helper.from_array(np.array(values, np.float32), name)


def _sparse(value: float, name: str = "w") -> onnx.SparseTensorProto:
    indices = numpy_helper.from_array(np.array([0], np.int64), f"{name}_indices")
    return helper.make_sparse_tensor(_weight([value], name), indices, [2])


def _model(
    ir: int = 10,
    initializers: tuple[onnx.TensorProto, ...] = (),
    sparse: tuple[onnx.SparseTensorProto, ...] = (),
    inputs: tuple[str, ...] = ("x",),
) -> onnx.ModelProto:
    """y = Relu(x + w) (opset 17) at IR `ir`, `w` given by `initializers` / `sparse`."""
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["x", "w"], ["s"], name="add"),
            helper.make_node("Relu", ["s"], ["y"], name="relu"),
        ],
        "g",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, [2]) for name in inputs],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        list(initializers),
    )
    graph.sparse_initializer.extend(sparse)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = ir
    return model


REFUSED = {
    "IR newer than onnx knows": (_model(onnx.IR_VERSION + 1, (_weight([1, 2]),)), "IR version"),
    "IR 99": (_model(99, (_weight([1, 2]),)), "IR version 99 is newer than onnx"),
    "IR -1": (_model(-1, (_weight([1, 2]),)), "IR version -1"),
    "dense twins": (_model(10, (_weight([1, 2]), _weight([5, 6]))), "initializer 'w' is given"),
    "dense twins, IR 3 input": (
        _model(3, (_weight([1, 2]), _weight([5, 6])), inputs=("x", "w")),
        "initializer 'w' is given twice",
    ),
    "dense and sparse": (_model(10, (_weight([1, 2]),), (_sparse(7.0),)), "'w' is given twice"),
    "sparse twins": (_model(10, (), (_sparse(7.0), _sparse(8.0))), "'w' is given twice"),
    "input twice": (_model(10, (_weight([1, 2]),), inputs=("x", "x")), "graph input 'x' is"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_in_one_line(case: str) -> None:
    model, needle = REFUSED[case]
    with pytest.raises(onnx.checker.ValidationError):
        onnx.checker.check_model(model, full_check=True)
    for given in (model, model.SerializeToString()):
        with pytest.raises(LoadError, match=needle) as caught:
            graphopt.optimize(given)
        assert "\n" not in str(caught.value)
    with pytest.raises(LoadError, match=needle):
        post_dominator_tree(model)


@pytest.mark.parametrize("case", ["IR 99", "dense and sparse"])
def test_cli_refuses_with_exit_2(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, needle = REFUSED[case]
    source, out = tmp_path / "m.onnx", tmp_path / "out.onnx"
    source.write_bytes(model.SerializeToString())
    assert main(["optimize", str(source), "-o", str(out)]) == 2
    one_line_error(capsys, needle)
    assert not out.exists()


@pytest.mark.parametrize(
    "model",
    [
        _model(10, (_weight([1, 2]),), inputs=("x", "w")),  # an overridable default
        _model(3, (_weight([1, 2]),), inputs=("x", "w")),  # IR 3 lists every weight
        _model(onnx.IR_VERSION, (_weight([1, 2]),)),
        _model(0, (_weight([1, 2]),)),  # unset: read as current
        _model(10, (), (_sparse(7.0),)),
    ],
    ids=["IR 10 default", "IR 3 input", "newest IR", "IR 0", "sparse"],
)
def test_still_loaded(model: onnx.ModelProto) -> None:
    out = graphopt.optimize(model)
    feeds = {"x": X}
    if model.ir_version >= 4 and any(i.name == "w" for i in out.graph.input):
        feeds["w"] = np.array([3.0, 4.0], np.float32)  # still an input: overridden
    ran, ran_out = model, out
    try:
        want = run_at(ran, feeds, level="disable")["y"]
    except BackendError as e:
        # an onnx newer than the onnxruntime beside it (the GPU machine: onnx 1.23.1 writes IR
        # 14, onnxruntime 1.30 reads up to 13): both run at IR 10, where this graph means the same
        assert model.ir_version == onnx.IR_VERSION and "Unsupported model IR version" in str(e)
        ran, ran_out = onnx.ModelProto(), onnx.ModelProto()
        ran.CopyFrom(model)
        ran_out.CopyFrom(out)
        ran.ir_version = ran_out.ir_version = 10
        want = run_at(ran, feeds, level="disable")["y"]
    np.testing.assert_array_equal(run_at(ran_out, feeds, level="disable")["y"], want)
    if model.ir_version > 0 and not model.graph.sparse_initializer:  # (else refused before)
        onnx.checker.check_model(out, full_check=True)
