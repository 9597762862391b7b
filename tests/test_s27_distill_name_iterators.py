"""write_targets reads `logits`, `hints` and `outputs` once: given as a generator or an iterator
(`logits=(o.name for o in model.graph.output if ...)`), they were used up by the first look.
Logits were then stored raw, not as softmax(z/T), without a word (exit 0), and hints were
'teacher has no output' for a tensor that was named as a hint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from graphopt.distill import DistillError, load_targets, softmax, write_targets


def _teacher() -> onnx.ModelProto:
    return onnx.parser.parse_model(
        """<ir_version: 8, opset_import: ["" : 17]>
        g (float[N, 4] x) => (float[N, 4] y, float[N, 4] z) {
          r = Relu(x)
          y = Add(r, x)
          z = Neg(x)
        }"""
    )


def _feeds() -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    return [{"x": rng.standard_normal((1, 4)).astype(np.float32)} for _ in range(3)]


def _x() -> np.ndarray:
    return np.concatenate([f["x"] for f in _feeds()])


def test_logits_given_as_a_generator_are_stored_as_soft_targets(tmp_path: Path) -> None:
    manifest = write_targets(_teacher(), _feeds(), tmp_path / "t", logits=(n for n in ["y"]))
    assert manifest["tensors"]["y"]["kind"] == "soft"
    x = _x()
    y = np.maximum(x, 0) + x
    np.testing.assert_allclose(load_targets(tmp_path / "t")["y"], softmax(y), rtol=1e-6)


def test_hints_and_outputs_given_as_iterators(tmp_path: Path) -> None:
    # a hint that is also logits: 'teacher has no output 'r'' (the hints used up)
    manifest = write_targets(
        _teacher(), _feeds(), tmp_path / "t", hints=iter(["r"]), outputs=iter(["z"]), logits=["r"]
    )
    assert {k: v["kind"] for k, v in manifest["tensors"].items()} == {"z": "raw", "r": "soft"}
    targets = load_targets(tmp_path / "t")
    np.testing.assert_allclose(targets["r"], softmax(np.maximum(_x(), 0)), rtol=1e-6)
    np.testing.assert_array_equal(targets["z"], -_x())


def test_names_that_are_no_list_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(DistillError, match=r"^logits must be a list of names, got 5$"):
        write_targets(_teacher(), _feeds(), tmp_path / "t", logits=5)  # type: ignore[arg-type]
    assert not (tmp_path / "t").exists()
