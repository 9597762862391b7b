"""Review of distillation targets (second adversarial review of graphopt.distill)."""

from __future__ import annotations

import numpy as np
import pytest

from graphopt.distill import DistillError, write_targets
from tests.test_distill import classifier

ONE = [{"x": np.ones((1, 4), np.float32)}]


def test_no_samples_is_a_distill_error(tmp_path):
    """An empty feed sequence (or a data folder whose every sample sits in the targets folder)
    failed on `assert manifest is not None`, no one-line error."""
    with pytest.raises(DistillError, match="no samples to run the teacher on"):
        write_targets(classifier(), [], tmp_path / "t")
    np.save(tmp_path / "a.npy", ONE[0]["x"])
    with pytest.raises(DistillError, match="every sample is inside the targets folder"):
        write_targets(classifier(), tmp_path, tmp_path)


def test_nothing_to_store_is_a_distill_error(tmp_path):
    """outputs=[] (the CLI's --outputs '') and no hints: onnxruntime's run([]) returns every
    output, and the writer crashed in zip() (ValueError)."""
    with pytest.raises(DistillError, match="nothing to store"):
        write_targets(classifier(), ONE, tmp_path / "t", outputs=[])
