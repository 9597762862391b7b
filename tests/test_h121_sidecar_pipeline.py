"""H121: the sidecar records the optimize pipeline its run took; another one is not applied.

`quantize --cache F` wrote the nodes its run kept float, named as the model optimized by its
pipeline. A later `--cache-in F --pipeline P` with another pipeline whose node names happened to
match (ppocr_det: written after `tensorrt`, read after `default`) applied those choices to
another graph, silently (50 nodes quantized; 74 with the sidecar not applied). The sidecar now
holds {"pipeline": {"name", "sha256" of its YAML file}}; another pipeline is "not applied" with
one warning naming both, as for another model or target. A sidecar without the field (written
before) is applied as before.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from graphopt._resources import builtin_dir
from graphopt.cli import main
from graphopt.errors import QuantizeError
from graphopt.quant import sidecar as sidecar_io
from graphopt.realmodels import IMAGE_NAMES, fetch_model, image_paths

SIZE = "320x320"


@dataclass
class Written:
    model: str  # the float ppocr_det
    root: Path
    cache: Path  # written after the default pipeline (tensorrt), its sidecar beside it


def _write(model: str, root: Path, cache: Path, *more: str) -> None:
    argv = ["quantize", model, "-o", str(root / "q.onnx"), "--calib", str(root / "calib")]
    argv += ["--size", SIZE, "--keep-float", "2", "--accuracy-target", "0", *more]
    assert main([*argv, "--cache", str(cache), "--no-progress"]) == 0


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Written:
    root = tmp_path_factory.mktemp("h121_pipeline")
    (root / "calib").mkdir()
    for path in image_paths(IMAGE_NAMES[1:3]):  # chelsea.png, coffee.png: real photographs
        shutil.copy(path, root / "calib")
    model = str(fetch_model("ppocr_det"))
    cache = root / "c.cache"
    _write(model, root, cache)
    return Written(model, root, cache)


def _from_cache(
    written: Written, cache: Path, out: Path, caplog: pytest.LogCaptureFixture, *more: str
) -> str:
    """Run `quantize --cache-in cache` (exit 0); its warnings."""
    caplog.clear()
    argv = ["quantize", written.model, "-o", str(out), "--cache-in", str(cache), *more]
    with caplog.at_level("WARNING", logger="graphopt"):
        assert main([*argv, "--no-progress"]) == 0
    return caplog.text


def _copy(written: Written, folder: Path, side: dict | None = None) -> Path:
    cache = folder / "in.cache"
    shutil.copy(written.cache, cache)
    text = json.dumps(side, indent=1) if side is not None else None
    source = sidecar_io.path_of(written.cache)
    sidecar_io.path_of(cache).write_text(text or source.read_text())
    return cache


@pytest.mark.realmodel
def test_another_pipeline_is_not_applied_and_the_warning_names_both(
    written: Written, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    side = json.loads(sidecar_io.path_of(written.cache).read_text())
    assert side["accuracy_search"]["nodes"], "the search kept nothing float: no test"
    cache = _copy(written, tmp_path)
    err = _from_cache(written, cache, tmp_path / "q.onnx", caplog, "--pipeline", "default")
    said = "written for optimize pipeline 'tensorrt', this run optimizes with 'default'"
    assert "not applied" in err and said in err, err
    assert side["pipeline"]["name"] == "tensorrt" and len(side["pipeline"]["sha256"]) == 64
    assert len([line for line in err.splitlines() if "not applied" in line]) == 1, err
    # the model is the cache's scales alone, as with no sidecar at all
    sidecar_io.path_of(cache).unlink()
    _from_cache(written, cache, tmp_path / "alone.onnx", caplog, "--pipeline", "default")
    assert (tmp_path / "q.onnx").read_bytes() == (tmp_path / "alone.onnx").read_bytes()


@pytest.mark.realmodel
def test_the_same_pipeline_by_name_or_by_path_is_applied(
    written: Written, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "q.onnx"
    err = _from_cache(written, written.cache, out, caplog)
    assert "not applied" not in err, err
    path = builtin_dir("passes") / "tensorrt.yaml"  # its file: the same bytes
    err = _from_cache(written, written.cache, tmp_path / "p.onnx", caplog, "--pipeline", str(path))
    assert "not applied" not in err, err
    assert (tmp_path / "p.onnx").read_bytes() == out.read_bytes()


@pytest.mark.realmodel
def test_a_pipeline_file_changed_since_is_not_applied(
    written: Written, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    mine = tmp_path / "mine.yaml"
    shutil.copy(builtin_dir("passes") / "tensorrt.yaml", mine)
    cache = tmp_path / "mine.cache"
    _write(written.model, written.root, cache, "--pipeline", str(mine))
    err = _from_cache(written, cache, tmp_path / "q.onnx", caplog, "--pipeline", str(mine))
    assert "not applied" not in err, err
    mine.write_text(mine.read_text().replace("fold-batchnorm\n", "fold-batchnorm  # edited\n"))
    err = _from_cache(written, cache, tmp_path / "q.onnx", caplog, "--pipeline", str(mine))
    said = f"written for optimize pipeline {str(mine)!r} as its file read then (sha256 "
    assert "not applied" in err and said in err and "this run's reads otherwise" in err, err
    assert json.loads(sidecar_io.path_of(cache).read_text())["pipeline"]["name"] == str(mine)


@pytest.mark.realmodel
def test_a_sidecar_written_before_without_the_pipeline_is_applied_as_before(
    written: Written, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    side = json.loads(sidecar_io.path_of(written.cache).read_text())
    del side["pipeline"]
    cache = _copy(written, tmp_path, side)
    err = _from_cache(written, cache, tmp_path / "q.onnx", caplog, "--pipeline", "default")
    assert "not applied" not in err, err


def test_the_pipeline_field_is_checked_and_round_trips() -> None:
    base = {
        "format": sidecar_io.FORMAT,
        "version": 1,
        "model_sha256": "0" * 64,
        "cache_sha256": "0" * 64,
        "target": "tensorrt",
    }
    for bad in (
        "tensorrt",
        {"name": "x"},
        {"name": "x", "sha256": "12"},
        {"name": 1, "sha256": ""},
    ):
        with pytest.raises(QuantizeError, match="'pipeline"):
            sidecar_io.loads(json.dumps({**base, "pipeline": bad}), "s.json")
    identity = sidecar_io.pipeline_identity(None, "tensorrt")
    assert identity == sidecar_io.pipeline_identity("tensorrt", "onnxruntime")
    assert identity[0] == "tensorrt" and len(identity[1]) == 64
    assert sidecar_io.pipeline_identity(None, "onnxruntime")[0] == "default"
    assert sidecar_io.pipeline_identity(False, "tensorrt") == ("none", "")
    side = sidecar_io.loads(json.dumps({**base, "pipeline": {"name": "none", "sha256": ""}}), "s")
    assert side.pipeline == ("none", "")
    back = sidecar_io.loads(sidecar_io.dumps(side), "s")
    assert back.pipeline == ("none", "")
    assert back.mismatch("0" * 64, "0" * 64, "tensorrt", pipeline=("none", "")) is None
    assert "this run optimizes with 'tensorrt'" in str(
        back.mismatch("0" * 64, "0" * 64, "tensorrt", pipeline=identity)
    )
