"""merge --tolerance identifies a weight only with a near weight of another model.

The ConstantTable compared each weight with every earlier one of its dtype and shape, those
of its own model too: two near weights of one model became one, and the model changed though
it shared nothing. ppocr_det's MobileOne scales mobile_one_block_3.w_0 and _25.w_0 are 0.19%
apart: merged at tolerance 0.01 with a model it shares nothing with, 4 of its params went and
its output moved by 1.1e-6. A weight is now identified only with a near one of another model
(the later task reads the earlier task's weights, as the README says).
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper, parser

from graphopt.multitask import merge_with_report
from graphopt.multitask.hashing import ConstantTable
from graphopt.realmodels import image_paths, load_image, preprocess
from tests.fusion_models import run_at

OTHER = parser.parse_model(
    '<ir_version: 8, opset_import: ["" : 13]>\ng (float[1,2] z) => (float[1,2] w) { w = Relu(z) }'
)
RNG = np.random.default_rng(202)
W1 = RNG.standard_normal((2, 2, 1, 1)).astype(np.float32)


def _two_convs(first: np.ndarray, second: np.ndarray) -> onnx.ModelProto:
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "W1"], ["c"]),
            helper.make_node("Conv", ["c", "W2"], ["y"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 3, 3])],
        initializer=[numpy_helper.from_array(first, "W1"), numpy_helper.from_array(second, "W2")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_two_near_weights_of_one_model_stay_two() -> None:
    model = _two_convs(W1, W1 * np.float32(1.004))  # 0.4% apart, within tolerance 0.01
    merged, report = merge_with_report([model, OTHER], tolerance=0.01)
    x = RNG.standard_normal((1, 2, 3, 3)).astype(np.float32)
    got = run_at(merged, {"x": x, "z": np.zeros((1, 2), np.float32)}, "disable")["m0_y"]
    np.testing.assert_array_equal(got, run_at(model, {"x": x}, "disable")["y"])
    assert report.params_merged == 2 * W1.size


def test_a_near_weight_of_another_model_is_still_shared() -> None:
    a = _two_convs(W1, -W1)
    b = _two_convs(W1 * np.float32(1.004), -W1)
    _, report = merge_with_report([a, b], tolerance=0.01)
    assert report.shared_params == 2 * W1.size and report.shared_nodes == 2


def test_the_table_keeps_an_owners_near_values_apart() -> None:
    table = ConstantTable(tolerance=1e-2)
    x = np.linspace(1, 2, 6, dtype=np.float32)
    first = table.key(x, owner=0)
    assert table.key(x * np.float32(1.001), owner=0) != first  # its own near value
    assert table.key(x * np.float32(1.0002), owner=1) == first  # another model's


@pytest.mark.realmodel
def test_ppocr_det_merged_at_a_tolerance_with_a_stranger_computes_its_own_values(
    real_model,
) -> None:
    teacher = onnx.load(real_model("ppocr_det"))
    merged, report = merge_with_report([teacher, OTHER], tolerance=0.01)
    photo = load_image(image_paths()[0])
    x = preprocess(photo, (320, 320), mean=(0.5,) * 3, std=(0.5,) * 3, scale=1 / 255, bgr=True)
    own = run_at(teacher, {"x": x}, "disable")["sigmoid_0.tmp_0"]
    got = run_at(merged, {"x": x, "z": np.zeros((1, 2), np.float32)}, "disable")
    np.testing.assert_array_equal(got["m0_sigmoid_0.tmp_0"], own)
    # every one of its params kept (OTHER has none); 1_171_736 before H231 kept its 105 elements
    # of constants holding one value under several names once
    assert report.params_merged == 1_171_841
