"""merge --tolerance identifies a weight with the nearest weight of another model, not the
first one within the tolerance.

ppocr_det's MobileOne scales mobile_one_block_3.w_0 and _25.w_0 are 0.19% apart. A copy of it
with every weight moved by up to 1e-4 of itself (a light fine-tune), merged at tolerance 0.01:
the copy's block-25 scale was identified with block 3's (met first), so its block 25 read
another value and nothing after it was shared: 24 of its 330 nodes shared, where tolerance
0.001 shared all 330. The nearest weight within the tolerance is taken now.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.multitask import merge_with_report
from graphopt.multitask.hashing import ConstantTable, weight_tensors
from graphopt.realmodels import image_paths, load_image, preprocess
from tests.fusion_models import run_at


def test_the_nearest_value_of_another_model_is_taken() -> None:
    table = ConstantTable(tolerance=1e-2)
    first = table.key(np.array([1.0], np.float32), owner=0)
    second = table.key(np.array([1.0019], np.float32), owner=0)
    assert first != second  # one model's two values stay two
    assert table.key(np.array([1.0018], np.float32), owner=1) == second  # 0.01% from it
    assert table.key(np.array([1.0001], np.float32), owner=1) == first


def _scaled(model: onnx.ModelProto, seed: int) -> onnx.ModelProto:
    """`model` with every float weight moved by up to 1e-4 of itself."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    weights = weight_tensors(copy.graph)
    rng = np.random.default_rng(seed)

    def moved(t: onnx.TensorProto) -> onnx.TensorProto:
        v = numpy_helper.to_array(t)
        if v.dtype.kind != "f":
            return t
        v = (v * (1 + 1e-4 * rng.uniform(-1, 1, v.shape))).astype(v.dtype)
        return numpy_helper.from_array(v, t.name)

    for init in copy.graph.initializer:
        if init.name in weights:
            init.CopyFrom(moved(init))
    for node in copy.graph.node:
        if node.op_type == "Constant" and node.output[0] in weights:
            node.attribute[0].t.CopyFrom(moved(node.attribute[0].t))
    return copy


def test_two_close_scales_each_meet_their_own_twin() -> None:
    def model(s1: float, s2: float) -> onnx.ModelProto:
        graph = helper.make_graph(
            [
                helper.make_node("Conv", ["x", "W"], ["c"]),
                helper.make_node("Mul", ["c", "s1"], ["m"]),
                helper.make_node("Conv", ["m", "W"], ["d"]),
                helper.make_node("Mul", ["d", "s2"], ["y"]),
            ],
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3, 3])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 3, 3])],
            initializer=[
                numpy_helper.from_array(np.eye(2, dtype=np.float32).reshape(2, 2, 1, 1), "W"),
                numpy_helper.from_array(np.array([s1], np.float32), "s1"),
                numpy_helper.from_array(np.array([s2], np.float32), "s2"),
            ],
        )
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])

    a, b = model(1.0, 1.0019), model(1.0001, 1.0018)
    merged, report = merge_with_report([a, b], tolerance=0.01)
    assert report.shared_nodes == 4  # every node of b reads a's twins
    x = np.random.default_rng(202).standard_normal((1, 2, 3, 3)).astype(np.float32)
    got = run_at(merged, {"x": x}, "disable")["m1_y"]
    np.testing.assert_allclose(got, run_at(b, {"x": x}, "disable")["y"], rtol=2e-4)


@pytest.mark.realmodel
def test_a_lightly_tuned_ppocr_det_shares_every_node_at_tolerance_001(real_model) -> None:
    teacher = onnx.load(real_model("ppocr_det"))
    tuned = _scaled(teacher, 202)
    merged, report = merge_with_report([teacher, tuned], tolerance=0.01)
    assert report.tasks[1].shared_nodes == report.tasks[1].nodes == 330
    photo = load_image(image_paths()[0])
    x = preprocess(photo, (320, 320), mean=(0.5,) * 3, std=(0.5,) * 3, scale=1 / 255, bgr=True)
    own = run_at(tuned, {"x": x}, "disable")["sigmoid_0.tmp_0"]
    got = run_at(merged, {"x": x}, "disable")["m1_sigmoid_0.tmp_0"]
    assert float(np.abs(got - own).max()) < 1e-5
