"""H137: the sidecar's pipeline digest covers graphopt's built-in rule files.

`quantize --cache F` recorded the optimize pipeline by the sha256 of the files loading it reads
(`"pipeline_digest": 2`): a user's pipeline file, its includes and its `rules:` files, a built-in
pipeline by its own file alone. The rules that `fold-batchnorm`, `fuse-activations` and
`fuse-patterns` run come from graphopt's own `patterns/*.yaml`, which neither covered; the
sidecar records graphopt's version but does not compare it (it is "0.1.0" through every change
made here). An edited built-in rule renames or removes the nodes the sidecar lists, and a later
`--cache-in F` applied it all the same. The digest now covers them where a pass runs rules
(`"pipeline_digest": 3`); a sidecar of digest 2 is compared as it was taken.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import graphopt._resources
import graphopt.patterns
import graphopt.pipeline
from graphopt._resources import builtin_dir
from graphopt.cli import main
from graphopt.quant import sidecar as sidecar_io
from graphopt.realmodels import IMAGE_NAMES, fetch_model, image_paths
from tests.test_h134_sidecar_pipeline_files import _side as sidecar


def _clear_caches() -> None:
    """Forget what graphopt read of its built-in folders (listings, texts, parsed rules: read
    once per process), so that it reads the copy, and after the test the checkout's again."""
    for module in (graphopt.patterns, graphopt.pipeline):
        for value in list(vars(module).values()):
            if callable(getattr(value, "cache_clear", None)):
                value.cache_clear()


@pytest.fixture
def builtins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A copy of graphopt's built-in passes/ and patterns/ that graphopt reads instead (as a
    wheel's `_builtin/`): the test edits the copy, never the checkout's."""
    package = tmp_path / "package"
    for kind in ("passes", "patterns"):
        shutil.copytree(builtin_dir(kind), package / "_builtin" / kind)
    monkeypatch.setattr(graphopt._resources, "_PACKAGE", package)
    _clear_caches()
    yield package / "_builtin"
    _clear_caches()


def _edit_builtin_rule(patterns: Path) -> None:
    """Change a built-in rule's text (its doc: the digest is of the bytes, as for a user's)."""
    rules = patterns / "activations.yaml"
    text = rules.read_text()
    assert "doc:" in text
    rules.write_text(text.replace("doc:", "doc: (edited)", 1))


def _side(identity: tuple[str, str], digest: int) -> sidecar_io.Sidecar:
    return sidecar(identity, pipeline_digest=digest)


def _mismatch(side: sidecar_io.Sidecar, identity: tuple[str, str]) -> str | None:
    return side.mismatch("0" * 64, "0" * 64, "tensorrt", pipeline=identity)


def test_an_edited_builtin_rule_is_another_pipeline(builtins: Path, tmp_path: Path) -> None:
    user = tmp_path / "mine.yaml"
    user.write_text("passes:\n  - fold-batchnorm\n  - eliminate-dead-code\n")
    before = {
        name: sidecar_io.pipeline_identity(name, "tensorrt")
        for name in ("tensorrt", "default", str(user), str(builtins / "passes" / "tensorrt.yaml"))
    }
    _edit_builtin_rule(builtins / "patterns")
    for name, (written_name, digest) in before.items():
        now = sidecar_io.pipeline_identity(name, "tensorrt")
        assert now[0] == written_name and now[1] and now[1] != digest, name
        why = _mismatch(_side((written_name, digest), sidecar_io.PIPELINE_DIGEST), now)
        assert why is not None and "as its file read then" in why, why


def test_a_builtin_pipelines_include_is_covered(builtins: Path) -> None:
    """tensorrt.yaml includes simplify.yaml: an edited simplify is another tensorrt pipeline."""
    before = sidecar_io.pipeline_identity("tensorrt", "tensorrt")
    simplify = builtins / "passes" / "simplify.yaml"
    simplify.write_text(simplify.read_text() + "\n# edited\n")
    assert sidecar_io.pipeline_identity("tensorrt", "tensorrt")[1] != before[1]


def test_a_pipeline_without_rule_passes_is_its_files_alone(builtins: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain.yaml"
    plain.write_text("passes:\n  - constant-folding\n  - eliminate-dead-code\n")
    digest = hashlib.sha256(plain.read_bytes()).hexdigest()
    assert sidecar_io.pipeline_identity(str(plain), "tensorrt") == (str(plain), digest)
    _edit_builtin_rule(builtins / "patterns")
    assert sidecar_io.pipeline_identity(str(plain), "tensorrt") == (str(plain), digest)


def test_a_digest_2_sidecar_is_compared_as_it_was_taken(builtins: Path, tmp_path: Path) -> None:
    """A sidecar written before (digest 2: a built-in by its file, a user's file with its
    includes and rules files) still applies to the same pipeline, and not to an edited one."""
    tensorrt = builtins / "passes" / "tensorrt.yaml"
    old = ("tensorrt", hashlib.sha256(tensorrt.read_bytes()).hexdigest())
    side = _side(old, 2)
    assert side.pipeline_digest == 2
    assert _mismatch(side, sidecar_io.pipeline_identity(None, "tensorrt")) is None
    _edit_builtin_rule(builtins / "patterns")  # not what digest 2 saw: still applied
    assert _mismatch(side, sidecar_io.pipeline_identity(None, "tensorrt")) is None
    tensorrt.write_text(tensorrt.read_text() + "\n# edited\n")
    why = _mismatch(side, sidecar_io.pipeline_identity(None, "tensorrt"))
    assert why is not None and "as its file read then" in why, why
    user = tmp_path / "mine.yaml"
    user.write_text("passes:\n  - fold-batchnorm\n")
    own = (str(user), hashlib.sha256(user.read_bytes()).hexdigest())
    assert _mismatch(_side(own, 2), sidecar_io.pipeline_identity(str(user), "tensorrt")) is None
    newer = _side(own, sidecar_io.PIPELINE_DIGEST + 1)
    why = _mismatch(newer, own)
    assert why is not None and f"pipeline_digest {sidecar_io.PIPELINE_DIGEST + 1}" in why, why


@pytest.mark.realmodel
def test_cache_in_after_a_builtin_rule_was_edited_does_not_apply_the_sidecar(
    builtins: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "calib").mkdir()
    for image in image_paths(IMAGE_NAMES[1:3]):  # chelsea.png, coffee.png: real photographs
        shutil.copy(image, tmp_path / "calib")
    model = str(fetch_model("ppocr_det"))
    cache = tmp_path / "c.cache"
    argv = ["quantize", model, "-o", str(tmp_path / "q.onnx"), "--calib", str(tmp_path / "calib")]
    argv += ["--size", "320x320", "--keep-float", "2", "--accuracy-target", "0", "--no-progress"]
    assert main([*argv, "--cache", str(cache)]) == 0
    side = json.loads(sidecar_io.path_of(cache).read_text())
    assert side["pipeline_digest"] == 3 and side["pipeline"]["name"] == "tensorrt", side
    assert side["accuracy_search"]["nodes"], "the search kept nothing float: no test"

    def from_cache() -> str:
        caplog.clear()
        run = ["quantize", model, "-o", str(tmp_path / "r.onnx"), "--cache-in", str(cache)]
        with caplog.at_level("WARNING", logger="graphopt"):
            assert main([*run, "--no-progress"]) == 0
        return caplog.text

    err = from_cache()
    assert "not applied" not in err, err  # the same graphopt, the same rules: applied
    _edit_builtin_rule(builtins / "patterns")
    err = from_cache()
    said = "written for optimize pipeline 'tensorrt' as its file read then (sha256 "
    assert "not applied" in err and said in err, err
