"""The `local` accuracy search (`graphopt.quant.sensitivity._grow_float`) keeps growing the float
groups past one step that does not help: the output error is not monotone in the count kept
float, and a search that gave up after one such step kept no group float at an error above the
target that more float groups (within its limit) met."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
import pytest

from graphopt.quant.sensitivity import _grow_float


# shaped on ppocr_det sampled on logo.png (flat text map) and page.png, 68 groups: the error
# with the k worst groups (local ranking) float measured 0.056/0.053/0.0545/0.0478/0.045/0.038
# at k = 0/6/9/12/18/22; with `search`'s scores the first step measures k = 8
def curve_error(k: int) -> float:
    """Fully quantized 0.056; 0.0545 (under 5% better: a stall) below 12 groups float, 0.047
    below 22, 0.038 from 22 on."""
    if k == 0:
        return 0.056
    return 0.0545 if k < 12 else 0.047 if k < 22 else 0.038


def search(
    curve: Callable[[int], float],
    target: float = 0.04,
    groups: int = 68,
    scores: np.ndarray | None = None,
) -> tuple[int, float, list[int]]:
    """(groups kept float, error reported, the counts measured) of `_grow_float` on `curve`."""
    names = [f"g{i}" for i in range(groups)]
    if scores is None:
        scores = 0.8 ** np.arange(groups)  # decreasing: the worst first
    order = list(zip(names, scores.tolist(), strict=True))
    measured: list[int] = []

    def error_with(floating: list[str]) -> float:
        measured.append(len(floating))
        return curve(len(floating))

    chosen, error = _grow_float(order, [], curve(0), target, error_with)
    assert chosen == names[: len(chosen)]  # always the worst first
    return len(chosen), error, measured


def test_one_step_that_does_not_help_does_not_end_the_search() -> None:
    kept, error, measured = search(curve_error)
    assert error == pytest.approx(0.038) and error <= 0.04
    assert kept >= 22 and kept <= (68 + 2) // 3  # within the search's own limit
    assert measured[0] < 12 and len(measured) >= 2  # the first step stalled; went on


def test_an_unhelpful_curve_still_stops_and_keeps_the_best_measured() -> None:
    # float groups never help past the first step: the search stops early (two stalls) and
    # reports the least error it measured, not the last one
    def flat(k: int) -> float:
        return 0.08 if k == 0 else 0.079 - 1e-5 * k

    kept, error, measured = search(flat)
    assert len(measured) == 2  # stopped: not one measurement per group
    assert error == pytest.approx(min(flat(k) for k in measured))
    assert error < 0.08 and kept == min(measured, key=flat)


def test_a_better_stalled_step_is_kept() -> None:
    # the first step lowers the error by under 5% (a stall) and nothing after helps: the
    # stalled step's lower error is still the best measured one, and it is what is reported
    def curve(k: int) -> float:
        return {0: 0.056}.get(k, 0.0545 if k < 12 else 0.06)

    kept, error, measured = search(curve)
    assert error == pytest.approx(0.0545) and 0 < kept < 12 and len(measured) == 2


@pytest.mark.realmodel
def test_ppocr_det_sampled_on_a_flat_and_a_text_image_meets_the_target(
    real_model, real_feeds
) -> None:  # type: ignore[no-untyped-def]
    from graphopt.quant.api import DEFAULT_ACCURACY_TARGET, quantize_with_report
    from graphopt.realmodels import PREPROCESS, images, preprocess

    model = onnx.load(str(real_model("ppocr_det")))
    name = model.graph.input[0].name
    # logo.png: ppocr_det's FP32 map is flat (range 9e-6); page.png: text (range 1)
    samples = [
        {name: preprocess(img, **PREPROCESS["ppocr_det"])}
        for img in images(names=("logo.png", "page.png"))
    ]
    _, report = quantize_with_report(model, real_feeds("ppocr_det", 4), sensitivity_data=samples)
    # before: one 9-group step measured 0.0545 (a stall against 0.056), no group kept float
    # at 0.056; the search now goes on to 23 groups float, 0.038
    assert report.error is not None and report.error <= DEFAULT_ACCURACY_TARGET
    assert report.kept_float
