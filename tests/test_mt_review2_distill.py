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


def test_logits_not_among_the_chosen_outputs_are_stored_and_names_count_once(tmp_path):
    """outputs=[peak], logits=[logits]: the logits were checked, then silently not stored (the
    targets held peak only); a name given twice made two files, one the manifest forgot."""
    from graphopt.backends.onnxruntime import run as ort_run
    from graphopt.distill import load_targets, softmax

    out = tmp_path / "t"
    manifest = write_targets(
        classifier(), ONE, out, outputs=["peak", "peak"], logits=["logits"], temperature=2.0
    )
    assert {k: v["kind"] for k, v in manifest["tensors"].items()} == {
        "peak": "raw",
        "logits": "soft",
    }
    assert sorted(p.name for p in out.iterdir()) == [
        "000_peak.npy",
        "001_logits.npy",
        "manifest.json",
    ]
    expected = ort_run(classifier(), ONE[0])
    targets = load_targets(out)
    np.testing.assert_allclose(targets["logits"], softmax(expected["logits"], 2.0), rtol=1e-6)
    np.testing.assert_array_equal(targets["peak"], expected["peak"])
