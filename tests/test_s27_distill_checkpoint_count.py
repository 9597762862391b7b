"""By default a run checkpoints at most ~256 times: every 64 samples, or every 1/256 of a data
set of more than 16384 samples. The manifest names every sample (its source and its file's size
and time) and is rewritten whole at each checkpoint, so checkpointing every 64 samples made a run
write O(n²) bytes: for ImageNet's 1.28M photographs a 126 MB manifest, ~5 s a checkpoint,
20,000 checkpoints, ~28 h of manifest writing for a teacher run of a few hours. An explicit
`checkpoint` is kept as given."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

import graphopt.distill as distill
from graphopt.cli import main
from graphopt.distill import load_targets, write_targets


def _relu() -> onnx.ModelProto:
    return onnx.parser.parse_model(
        """<ir_version: 8, opset_import: ["" : 17]>
        g (float[N, 4] x) => (float[N, 4] y) { y = Relu(x) }"""
    )


def _feeds(count: int) -> list[dict[str, np.ndarray]]:
    return [{"x": np.full((1, 4), i, np.float32)} for i in range(count)]


@pytest.fixture
def manifest_writes(monkeypatch) -> list[int]:
    """The `done` of every manifest written (the first, 0 done, before the files are made)."""
    written: list[int] = []
    write = distill._write_manifest

    def counted(out: Path, manifest: dict) -> None:
        written.append(manifest["done"])
        write(out, manifest)

    monkeypatch.setattr(distill, "_write_manifest", counted)
    return written


def test_a_large_data_set_checkpoints_at_most_256_times(tmp_path, manifest_writes) -> None:
    count = 40000
    write_targets(_relu(), _feeds(count), tmp_path / "t", batch_size=100)
    # every 157 samples (40000 / 256, rounded up): at each second batch of 100, and the end
    assert len(manifest_writes) - 1 <= 256  # (every 64 samples: 400, one per batch)
    assert manifest_writes[:3] == [0, 200, 400] and manifest_writes[-1] == count
    y = load_targets(tmp_path / "t")["y"]
    np.testing.assert_array_equal(y[:, 0], np.arange(count, dtype=np.float32))


def test_a_small_data_set_and_an_explicit_checkpoint_are_as_before(
    tmp_path, manifest_writes
) -> None:
    write_targets(_relu(), _feeds(1000), tmp_path / "default")
    assert manifest_writes == [0, *range(64, 1000, 64), 1000]  # every 64
    manifest_writes.clear()
    write_targets(_relu(), _feeds(20000), tmp_path / "given", batch_size=100, checkpoint=64)
    assert len(manifest_writes) == 1 + 200  # every batch of 100, as asked


def test_the_cli_takes_the_default_and_refuses_zero(tmp_path, manifest_writes, capsys) -> None:
    teacher = tmp_path / "teacher.onnx"
    onnx.save(_relu(), teacher)
    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        np.save(data / f"s{i}.npy", np.full((1, 4), i, np.float32))
    argv = ["distill-targets", str(teacher), "--data", str(data), "--no-progress"]
    assert main([*argv, "-o", str(tmp_path / "t")]) == 0
    assert manifest_writes == [0, 3]
    assert main([*argv, "-o", str(tmp_path / "z"), "--checkpoint", "0"]) == 2
    assert "--checkpoint must be 1 or more, got 0" in capsys.readouterr().err
