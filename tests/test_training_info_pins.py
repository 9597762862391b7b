"""training_info reads and binds inference-graph tensors by name (graphopt/ir/training.py):
what it names stays as it was through every built-in pipeline."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.helper as oh
import pytest
from onnx import TensorProto, numpy_helper

import graphopt
from graphopt.errors import LoadError
from graphopt.ir.training import pin_training_names, training_names, unpin_training_names
from tests.conftest import assert_same_outputs

PIPELINES = ["default", "simplify", "ort-cpu", "ort-fusions", "tensorrt"]
FEEDS = {"x": np.random.default_rng(1).standard_normal((1, 4, 8, 8)).astype(np.float32)}


def _conv_bn(algorithm_reads: str = "mu", bind: str | None = "mu") -> onnx.ModelProto:
    model = onnx.parser.parse_model("""
<ir_version: 9, opset_import: ["" : 17]>
g (float[1,4,8,8] x) => (float[1,4,8,8] y) {
  c = Conv(x, W)
  y = BatchNormalization(c, s, b, mu, var)
}""")
    rng = np.random.default_rng(0)
    for name, shape in (("W", (4, 4, 1, 1)), ("s", (4,)), ("b", (4,)), ("mu", (4,)), ("var", (4,))):
        model.graph.initializer.append(
            numpy_helper.from_array(rng.random(shape).astype(np.float32) + 0.5, name)
        )
    training = model.training_info.add()
    shape = [4] if algorithm_reads != "c" else [1, 4, 8, 8]
    training.algorithm.CopyFrom(
        oh.make_graph(
            [oh.make_node("Identity", [algorithm_reads], ["new"])],
            "algo",
            [],
            [oh.make_tensor_value_info("new", TensorProto.FLOAT, shape)],
        )
    )
    if bind:
        training.update_binding.add(key=bind, value="new")
    return model


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_a_bound_initializer_keeps_its_name_and_value(pipeline):
    model = _conv_bn()
    out = graphopt.optimize(model, pipeline)
    inits = {t.name: t for t in out.graph.initializer}
    assert "mu" in inits
    np.testing.assert_array_equal(
        numpy_helper.to_array(inits["mu"]),
        numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == "mu")),
    )
    assert [i.name for i in out.graph.input] == ["x"]  # the temporary input is gone
    assert [o.name for o in out.graph.output] == ["y"]
    assert out.training_info[0].update_binding[0].key == "mu"
    onnx.checker.check_model(out, full_check=True)
    if pipeline in ("default", "simplify", "tensorrt"):
        assert_same_outputs(model, out, FEEDS)


def test_without_training_info_the_batchnorm_still_folds():
    model = _conv_bn()
    del model.training_info[:]
    out = graphopt.optimize(model)
    assert [n.op_type for n in out.graph.node] == ["Conv"]


def test_the_weight_the_algorithm_reads_is_not_rewritten_by_the_fold():
    """The algorithm reads W (no binding): folding the BN into the Conv would hand it W·s."""
    model = _conv_bn(algorithm_reads="W", bind=None)
    out = graphopt.optimize(model)
    w = next(t for t in out.graph.initializer if t.name == "W")
    original = next(t for t in model.graph.initializer if t.name == "W")
    np.testing.assert_array_equal(numpy_helper.to_array(w), numpy_helper.to_array(original))
    assert_same_outputs(model, out, FEEDS)


def test_a_node_output_the_algorithm_reads_is_still_produced():
    model = _conv_bn(algorithm_reads="c", bind=None)
    out = graphopt.optimize(model)
    assert "c" in {o for n in out.graph.node for o in n.output}
    assert [o.name for o in out.graph.output] == ["y"]
    onnx.checker.check_model(out, full_check=True)
    assert_same_outputs(model, out, FEEDS)


def test_an_untyped_node_output_it_reads_is_a_one_line_error():
    model = onnx.parser.parse_model("""
<ir_version: 9, opset_import: ["" : 17, "custom" : 1]>
g (float[4] x) => (float[4] y) {
  t = custom.Mystery(x)
  y = Relu(t)
}""")
    training = model.training_info.add()
    training.algorithm.CopyFrom(
        oh.make_graph(
            [oh.make_node("Identity", ["t"], ["new"])],
            "algo",
            [],
            [oh.make_tensor_value_info("new", TensorProto.FLOAT, [4])],
        )
    )
    with pytest.raises(LoadError, match=r"training_info reads tensor 't'.*not known") as e:
        graphopt.optimize(model)
    assert len(str(e.value).splitlines()) == 1


def test_pin_and_unpin_leave_existing_inputs_and_outputs_alone():
    model = _conv_bn(algorithm_reads="x", bind="W")
    model.graph.input.append(oh.make_tensor_value_info("mu", TensorProto.FLOAT, [4]))
    training = model.training_info[0]
    training.update_binding.add(key="mu", value="new")
    assert training_names(model) == {"x", "W", "mu"}
    before = model.SerializeToString()
    pinned = pin_training_names(model)
    assert pinned.inputs == ["W"] and pinned.outputs == []
    unpin_training_names(model, pinned)
    assert model.SerializeToString() == before
