"""With the accuracy search running (a target common_det misses fully quantized, so groups stay
float), the model is the same byte for byte in any feed order and at any thread count, for
both targets, and `from_cache` with the sidecar gives it back without calibrating."""

from __future__ import annotations

import pytest

from graphopt.quant.api import quantize_with_report

pytestmark = pytest.mark.realmodel

# below common_det's fully quantized error on these photographs (0.012-0.034 by target and
# method, measured), so the local search keeps groups float
TARGET = 0.006


@pytest.mark.slow
@pytest.mark.parametrize(("target", "method"), [("tensorrt", "minmax"), ("onnxruntime", "entropy")])
def test_search_model_is_independent_of_feed_order_and_threads(
    real_model, real_feeds, tmp_path, target, method
) -> None:  # type: ignore[no-untyped-def]
    path = str(real_model("common_det"))
    feeds = real_feeds("common_det", 4)
    cache = tmp_path / "c.cache"
    first, report = quantize_with_report(
        path, feeds, target=target, method=method, accuracy_target=TARGET, threads=1, cache=cache
    )
    assert report.kept_float and report.error is not None and report.error > 0
    # 8 threads: onnxruntime splits its work otherwise than at 1 or 2, on any machine (threads=0
    # is one per core: 2 here, 16 on the GPU machine, where this test first saw the difference)
    for order, threads in ((feeds[::-1], 2), (feeds[1:] + feeds[:1], 8)):
        other, again = quantize_with_report(
            path, order, target=target, method=method, accuracy_target=TARGET, threads=threads
        )
        assert again.kept_float == report.kept_float
        # the error is onnxruntime's float arithmetic, whose last digits follow its thread
        # count (1 vs 8 threads: 0.0065104201 vs 0.0065104147); the model does not
        assert again.error == pytest.approx(report.error, rel=1e-5)
        assert other.SerializeToString() == first.SerializeToString()
    back, side = quantize_with_report(path, None, target=target, from_cache=cache)
    assert side.kept_float == report.kept_float
    assert back.SerializeToString() == first.SerializeToString()
