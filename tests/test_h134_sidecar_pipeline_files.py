"""H134: the sidecar's pipeline digest covers every file the pipeline loads.

`quantize --cache F` recorded the optimize pipeline as its name and the sha256 of its YAML file
alone (e4e94e9): editing a file it pulls in (a `rules:` file of user rules, an `include:`d
pipeline) left the digest equal, and a later `--cache-in F` applied the sidecar's float choices
to a model optimized otherwise, without a word. The digest now covers the file, the files its
includes read and the rule files (`"pipeline_digest": 2`); a sidecar without that field
(written before) is compared by what it recorded, the pipeline file's own bytes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from graphopt._resources import builtin_dir
from graphopt.cli import main
from graphopt.quant import sidecar as sidecar_io
from graphopt.realmodels import IMAGE_NAMES, fetch_model, image_paths

# a user rule that matches nothing in ppocr_det (no Mul(x, Sigmoid(x))): editing it changes
# what the pipeline would do elsewhere, not the node names the sidecar records
RULES = """rules:
  - name: my-silu
    doc: x·σ(x) ⇒ QuickGelu(x)
    target: y = Mul(x, Sigmoid(x))
    replacement: y = com.microsoft.QuickGelu(x, alpha=1.0)
"""
PIPELINE = "rules: [mine_rules.yaml]\npasses:\n  - include: inner.yaml\n  - fuse-patterns\n"


def _pipeline(folder: Path) -> Path:
    (folder / "mine_rules.yaml").write_text(RULES)
    shutil.copy(builtin_dir("passes") / "tensorrt.yaml", folder / "inner.yaml")
    path = folder / "mine.yaml"
    path.write_text(PIPELINE)
    return path


def _edit_rules(folder: Path) -> None:
    rules = folder / "mine_rules.yaml"
    rules.write_text(rules.read_text().replace("alpha=1.0", "alpha=1.702"))


def _side(identity: tuple[str, str], **more: object) -> sidecar_io.Sidecar:
    base = {
        "format": sidecar_io.FORMAT,
        "version": 1,
        "model_sha256": "0" * 64,
        "cache_sha256": "0" * 64,
        "target": "tensorrt",
        "pipeline": {"name": identity[0], "sha256": identity[1]},
        **more,
    }
    return sidecar_io.loads(json.dumps(base), "s.json")


def _mismatch(side: sidecar_io.Sidecar, identity: tuple[str, str]) -> str | None:
    return side.mismatch("0" * 64, "0" * 64, "tensorrt", pipeline=identity)


def test_an_edited_rules_or_included_file_is_another_pipeline(tmp_path: Path) -> None:
    path = _pipeline(tmp_path)
    written = sidecar_io.pipeline_identity(str(path), "tensorrt")
    side = sidecar_io.loads(
        sidecar_io.dumps(sidecar_io.Sidecar("0" * 64, "0" * 64, "tensorrt", pipeline=written)),
        "s.json",
    )
    assert side.pipeline_digest == sidecar_io.PIPELINE_DIGEST and side.pipeline == written
    assert _mismatch(side, sidecar_io.pipeline_identity(str(path), "tensorrt")) is None
    _edit_rules(tmp_path)
    edited = sidecar_io.pipeline_identity(str(path), "tensorrt")
    assert edited[0] == written[0] and edited[1] != written[1]
    why = _mismatch(side, edited)
    assert why is not None and "as its file read then" in why, why
    # an included pipeline edited: another pipeline too
    rules_edited = edited
    inner = tmp_path / "inner.yaml"
    inner.write_text(inner.read_text().replace("  - fold-batchnorm\n", "", 1))
    assert sidecar_io.pipeline_identity(str(path), "tensorrt")[1] not in (
        written[1],
        rules_edited[1],
    )


def test_a_pipeline_of_one_file_and_the_built_ins_keep_their_digest(tmp_path: Path) -> None:
    """The digest of a file that loads nothing else is its bytes' (what sidecars recorded
    before); a built-in, by name or by its file's path, is its file's bytes as before (digest
    2: digest 3 adds graphopt's built-in rule files, tests/test_h137_sidecar_builtin_rules.py)."""
    import hashlib

    alone = tmp_path / "alone.yaml"
    alone.write_text("passes:\n  - fold-batchnorm\n")
    assert sidecar_io.pipeline_identity(str(alone), "tensorrt", digest=2) == (
        str(alone),
        hashlib.sha256(alone.read_bytes()).hexdigest(),
    )
    builtin = builtin_dir("passes") / "tensorrt.yaml"
    digest = hashlib.sha256(builtin.read_bytes()).hexdigest()
    assert sidecar_io.pipeline_identity("tensorrt", "tensorrt", digest=2) == ("tensorrt", digest)
    assert sidecar_io.pipeline_identity(str(builtin), "tensorrt", digest=2) == (
        str(builtin),
        digest,
    )


def test_an_older_sidecar_is_compared_by_the_pipeline_file_it_recorded(tmp_path: Path) -> None:
    """Without "pipeline_digest" the sidecar's sha256 is of the pipeline file alone: compared
    with the run's file alone (an edited rules file is not seen, as when it was written; an
    edited pipeline file is). A digest this graphopt does not take is not applied."""
    path = _pipeline(tmp_path)
    own = sidecar_io.pipeline_identity(str(path), "tensorrt", whole=False)
    old = _side(own)
    assert old.pipeline_digest == 1
    assert _mismatch(old, sidecar_io.pipeline_identity(str(path), "tensorrt")) is None
    _edit_rules(tmp_path)
    assert _mismatch(old, sidecar_io.pipeline_identity(str(path), "tensorrt")) is None
    path.write_text(PIPELINE + "  - eliminate-dead-code\n")
    why = _mismatch(old, sidecar_io.pipeline_identity(str(path), "tensorrt"))
    assert why is not None and "as its file read then" in why, why
    newer = _side(own, pipeline_digest=4)
    why = _mismatch(newer, own)
    assert why is not None and "pipeline_digest 4" in why, why
    with pytest.raises(Exception, match="'pipeline_digest' is not a whole number"):
        _side(own, pipeline_digest="2")


@pytest.mark.realmodel
def test_quantize_cache_in_after_the_rules_file_was_edited_does_not_apply_the_sidecar(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "calib").mkdir()
    for image in image_paths(IMAGE_NAMES[1:3]):  # chelsea.png, coffee.png: real photographs
        shutil.copy(image, tmp_path / "calib")
    model = str(fetch_model("ppocr_det"))
    pipeline = _pipeline(tmp_path)
    cache = tmp_path / "c.cache"
    argv = ["quantize", model, "-o", str(tmp_path / "q.onnx"), "--calib", str(tmp_path / "calib")]
    argv += ["--size", "320x320", "--keep-float", "2", "--accuracy-target", "0"]
    argv += ["--pipeline", str(pipeline), "--no-progress"]
    assert main([*argv, "--cache", str(cache)]) == 0
    side = json.loads(sidecar_io.path_of(cache).read_text())
    assert side["accuracy_search"]["nodes"], "the search kept nothing float: no test"

    def from_cache() -> str:
        caplog.clear()
        out = str(tmp_path / "r.onnx")
        run = ["quantize", model, "-o", out, "--cache-in", str(cache)]
        with caplog.at_level("WARNING", logger="graphopt"):
            assert main([*run, "--pipeline", str(pipeline), "--no-progress"]) == 0
        return caplog.text

    err = from_cache()
    assert "not applied" not in err, err  # the same files: applied
    _edit_rules(tmp_path)
    err = from_cache()
    said = f"written for optimize pipeline {str(pipeline)!r} as its file read then (sha256 "
    assert "not applied" in err and said in err, err
    assert len([line for line in err.splitlines() if "not applied" in line]) == 1, err
