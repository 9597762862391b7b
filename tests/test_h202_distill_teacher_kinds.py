"""write_targets takes the teacher as bytes or a graphopt LoadedModel, as graphopt.ir.load does.

The manifest recorded str(teacher) as the teacher's path for anything but a ModelProto: given
the file's bytes it held their repr (a 16 MB manifest.json for PP-OCRv4 det's 4.7 MB, rewritten
at every checkpoint), and a LoadedModel (graphopt.ir.load's) was a TypeError traceback from
sha256_of's open(). The path is recorded for a path only; the digest is the bytes' (so a run
given the file's bytes resumes one given its path) or the model's serialization.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from graphopt.distill import MANIFEST, load_targets, sha256_of, write_targets
from graphopt.ir import load
from graphopt.realmodels import image_paths

OPTIONS = {"outputs": ["sigmoid_0.tmp_0"], "preprocess": {"size": (64, 64)}}


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for path in image_paths()[:2]:
        shutil.copy(path, folder)
    return folder


@pytest.mark.realmodel
def test_bytes_are_no_path_and_resume_a_run_given_the_path(
    real_model, photos: Path, tmp_path: Path
) -> None:
    teacher = Path(real_model("ppocr_det"))
    out = tmp_path / "targets"
    manifest = write_targets(teacher.read_bytes(), photos, out, **OPTIONS)
    assert manifest["teacher"] == {"path": "", "sha256": sha256_of(teacher)}
    assert (out / MANIFEST).stat().st_size < 10_000
    again = write_targets(teacher, photos, out, **OPTIONS)  # complete: nothing to run
    assert again["done"] == 2 and json.loads((out / MANIFEST).read_text())["complete"]


@pytest.mark.realmodel
def test_a_loaded_model_is_a_teacher(real_model, photos: Path, tmp_path: Path) -> None:
    loaded = load(real_model("ppocr_det"))
    manifest = write_targets(loaded, photos, tmp_path / "targets", **OPTIONS)
    assert manifest["teacher"]["path"] == "" and manifest["complete"]
    assert load_targets(tmp_path / "targets")["sigmoid_0.tmp_0"].shape == (2, 1, 64, 64)
