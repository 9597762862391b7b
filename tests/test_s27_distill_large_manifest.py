"""The manifest of a run over millions of samples is read back: it names every sample (~100
bytes each: its path, size and time), and it was read with a calibration cache's limit of
256 MiB, so load_targets, the resume and the data listing refused the manifest write_targets
had written for a data set of more than ~2.9M samples (measured: 3M ImageNet-style paths,
283 MiB: 'cannot read distillation manifest: 297000544 bytes, more than such a file holds
(256 MiB at most)'). Here a small run's manifest is padded past 256 MiB with the whitespace
JSON allows, which reads the same."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from graphopt.distill import data_sources, load_targets, write_targets


def _relu() -> onnx.ModelProto:
    return onnx.parser.parse_model(
        """<ir_version: 8, opset_import: ["" : 17]>
        g (float[N, 4] x) => (float[N, 4] y) { y = Relu(x) }"""
    )


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete targets folder (inside a data folder) whose manifest is over 256 MiB."""
    data = tmp_path_factory.mktemp("large") / "data"
    data.mkdir()
    np.save(data / "s0.npy", np.array([[-1.0, 2.0, -3.0, 4.0]], np.float32))
    out = data / "targets"
    write_targets(_relu(), data, out)
    manifest = out / "manifest.json"
    with open(manifest, "ab") as f:  # JSON's trailing whitespace, 1 MiB at a time
        for _ in range(257):
            f.write(b" " * (1 << 20))
    assert manifest.stat().st_size > 256 << 20
    return out


def test_load_targets_and_a_rerun_read_a_manifest_over_256_mib(large: Path) -> None:
    np.testing.assert_array_equal(load_targets(large)["y"], [[0.0, 2.0, 0.0, 4.0]])
    manifest = write_targets(_relu(), large.parent, large)  # complete: nothing to run
    assert manifest["complete"] and manifest["sources"] == ["s0.npy"]


def test_its_files_are_no_samples_of_the_data_folder_holding_it(large: Path) -> None:
    assert [s.name for s in data_sources(large.parent)] == ["s0.npy"]
