"""write_targets(threads=...) is checked with the other counts, before anything is made: 1.5
was onnxruntime's TypeError ('incompatible function arguments', five lines) and None or '2' a
TypeError comparing it, each after the targets folder had been made; -1 ran, where
distill-targets --threads -1 is refused. numpy integers are taken."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from graphopt.distill import DistillError, load_targets, write_targets


def _relu() -> onnx.ModelProto:
    return onnx.parser.parse_model(
        """<ir_version: 8, opset_import: ["" : 17]>
        g (float[N, 4] x) => (float[N, 4] y) { y = Relu(x) }"""
    )


def _feeds() -> list[dict[str, np.ndarray]]:
    return [{"x": np.array([[-1.0, 2.0, -3.0, 4.0]], np.float32)}]


@pytest.mark.parametrize(
    ("threads", "said"),
    [
        (1.5, "threads must be an integer, got 1.5"),
        (None, "threads must be an integer, got None"),
        ("2", "threads must be an integer, got '2'"),
        (-1, "threads must be 0 (onnxruntime's default, one per physical core) or more, got -1"),
    ],
)
def test_threads_that_are_no_count_are_refused_first(tmp_path: Path, threads, said) -> None:
    with pytest.raises(DistillError) as caught:
        write_targets(_relu(), _feeds(), tmp_path / "t", threads=threads)
    assert str(caught.value) == said
    assert not (tmp_path / "t").exists()


def test_a_numpy_integer_is_taken(tmp_path: Path) -> None:
    write_targets(_relu(), _feeds(), tmp_path / "t", threads=np.int64(1))
    np.testing.assert_array_equal(load_targets(tmp_path / "t")["y"], [[0.0, 2.0, 0.0, 4.0]])
