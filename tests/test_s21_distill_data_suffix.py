"""distill-targets --data naming one file that is neither feeds (.npy/.npz) nor an image is
refused as such, in one line, whatever other options are given (H202 left it: it was 'cannot
decode image', or with --size '... holds only .npy/.npz feeds', which it does not)."""

from __future__ import annotations

from pathlib import Path

import pytest

from graphopt.cli import main
from graphopt.distill import DistillError, data_sources


def test_a_text_file_is_no_data_file(tmp_path: Path) -> None:
    data = tmp_path / "notes.txt"
    data.write_text("hello\n", encoding="utf-8")
    with pytest.raises(DistillError, match=r"notes\.txt: not a data file: give a \.npy or \.npz"):
        data_sources(str(data))


@pytest.mark.parametrize("extra", [[], ["--size", "64x64"]])
def test_the_cli_says_it_in_one_line(tmp_path: Path, capsys, extra: list[str], real_model) -> None:
    data = tmp_path / "notes.txt"
    data.write_text("hello\n", encoding="utf-8")
    out = tmp_path / "targets"
    code = main(
        [
            "distill-targets",
            str(real_model("ppocr_det")),
            "--data",
            str(data),
            "-o",
            str(out),
            *extra,
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].endswith(
        "notes.txt: not a data file: give a .npy or .npz of feeds, an image "
        "(.png, .jpg, .jpeg, .bmp, .tif, .tiff, .webp) or a folder of them"
    )
    assert len(err) == 1
    assert not out.exists()
