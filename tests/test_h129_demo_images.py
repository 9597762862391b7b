"""H129, `graphopt demo --images N` as a fresh user met it (H128's walkthrough): `--images 100`
verified on the 22 photographs there are without a word, its help showed the count as
`IMAGES`, and one image was "over 1 real images".

Refused, not capped: the demo refuses `--images 0` already, and graphopt refuses what a run
would not do as asked (quantize's options of another method, image options without images)
rather than doing less; the range is known before anything is fetched."""

from __future__ import annotations

import pytest

from graphopt.cli import build_parser, main
from graphopt.realmodels import IMAGE_NAMES


def test_more_images_than_there_are_is_refused_before_the_fetch(monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    import graphopt.realmodels

    def no_fetch(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("demo fetched a model before checking --images")

    monkeypatch.setattr(graphopt.realmodels, "fetch_model", no_fetch)
    monkeypatch.setattr(graphopt.realmodels, "pending_downloads", no_fetch)
    for count in ("23", "100"):
        assert main(["demo", "--images", count]) == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err == (
            f"graphopt demo: error: --images must be at most {len(IMAGE_NAMES)}, the "
            f"photographs the demo has, got {count}\n"
        )


def test_the_help_names_the_count_n_and_its_range() -> None:
    text = build_parser().commands["demo"].format_help()  # type: ignore[attr-defined]
    flat = " ".join(text.split())
    assert "[--images N]" in flat and "IMAGES" not in flat
    assert f"--images N real photographs to verify on, 1 to {len(IMAGE_NAMES)} (default 2)" in flat


@pytest.mark.realmodel
def test_one_image_is_one_real_image(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["demo", "--images", "1"]) == 0
    out = capsys.readouterr().out
    last = out.strip().splitlines()[-1]
    assert last.startswith("max output difference over 1 real image: "), last
    figure = float(last.split(": ")[1].split()[0])
    assert 0 <= figure < 1e-4, last  # common_det, default pipeline, astronaut.png
