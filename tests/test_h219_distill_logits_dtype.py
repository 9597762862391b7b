"""write_targets refuses bool logits.

softmax(z/T) of a bool output was stored as soft targets, exit 0: PP-OCR's direction
classifier with a mask of its confident classes (Greater, bool) named as logits gave
"probabilities" of True/False. Integer logits are still taken (test_distill: their float
softmax is stored). A float output is stored as before, and the integer and bool outputs raw.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from graphopt.distill import DistillError, load_targets, write_targets
from graphopt.realmodels import PREPROCESS, fetch_model, image_paths

PROBS = "save_infer_model/scale_0.tmp_1"


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = onnx.load(str(fetch_model("ppocr_cls")))
    half = helper.make_tensor("half", onnx.TensorProto.FLOAT, [], [0.9])
    model.graph.initializer.append(half)
    model.graph.node.extend(
        [
            helper.make_node("ArgMax", [PROBS], ["cls"], axis=1, keepdims=1),
            helper.make_node("Greater", [PROBS, "half"], ["sure"]),
        ]
    )
    model.graph.output.extend(
        [
            helper.make_tensor_value_info("cls", onnx.TensorProto.INT64, [None, 1]),
            helper.make_tensor_value_info("sure", onnx.TensorProto.BOOL, [None, 2]),
        ]
    )
    onnx.checker.check_model(model, full_check=True)
    path = tmp_path_factory.mktemp("teacher") / "cls.onnx"
    onnx.save(model, path)
    return path


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    for path in image_paths()[:3]:
        shutil.copy(path, folder)
    return folder


PREP = PREPROCESS["ppocr_cls"]


def test_bool_logits_are_refused(teacher: Path, photos: Path, tmp_path: Path) -> None:
    with pytest.raises(DistillError, match="logits 'sure' are bool values"):
        write_targets(teacher, photos, tmp_path / "t", logits=["sure"], axis=1, preprocess=PREP)
    assert not (tmp_path / "t" / "manifest.json").exists()


def test_float_logits_soft_and_the_others_raw(teacher: Path, photos: Path, tmp_path: Path) -> None:
    write_targets(teacher, photos, tmp_path / "t", logits=[PROBS], temperature=2.0, preprocess=PREP)
    got = load_targets(tmp_path / "t")
    assert got["cls"].dtype == np.int64 and got["sure"].dtype == np.bool_
    assert got[PROBS].shape == (3, 2)
    np.testing.assert_allclose(got[PROBS].sum(axis=1), 1.0, rtol=1e-6)
    # the soft targets are those of the classes the ArgMax stored
    assert np.array_equal(np.argmax(got[PROBS], axis=1), got["cls"][:, 0])
