"""Review 12: the calibration progress bar ends its line when calibration ends, and writes
plain lines, seldom, where stderr is no terminal.

`graphopt quantize` closed the bar after the whole quantization: the accuracy search's time
was added to calibration's 'elapsed' (ppocr_det: 'calibrating 6/6 ... elapsed 14s' for a
4.8 s calibration and a 9.7 s search), and the search's warnings were written onto the bar's
unfinished line. Into a log file every redraw (5 a second) stayed as text behind a `\\r`.
"""

from __future__ import annotations

import io

import pytest

from graphopt.quant import progress as progress_module
from graphopt.quant.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(progress_module.time, "perf_counter", fake)
    return fake


def test_terminal_line_ends_with_the_last_item_and_keeps_its_elapsed(clock: Clock) -> None:
    stream = Terminal()
    bar = Progress(2, stream=stream)
    bar.update(0)
    clock.now = 1.0
    bar.update(1)
    clock.now = 2.0
    bar.update(2)
    assert stream.getvalue().endswith("elapsed 2s ETA 0s\n")  # ended now, not at close
    clock.now = 100.0  # the accuracy search runs; a warning would start on a line of its own
    bar.close()
    text = stream.getvalue()
    assert text.endswith("elapsed 2s ETA 0s\n")
    assert "elapsed 100s" not in text
    assert text.count("\n") == 1


def test_a_log_stream_gets_whole_lines_every_few_seconds(clock: Clock) -> None:
    stream = io.StringIO()  # not a terminal
    bar = Progress(40, stream=stream)
    bar.update(0)
    for done in range(1, 41):
        clock.now = done * 0.5  # 20 s in all, an item every half second
        bar.update(done)
    bar.close()
    lines = stream.getvalue().split("\n")
    assert "\r" not in stream.getvalue()
    # one line per LOG_INTERVAL (10 s) and the final one
    assert [ln.split(" [")[0] for ln in lines if ln] == [
        "calibrating 20/40",
        "calibrating 40/40",
    ]


def test_an_unfinished_bar_ends_its_line_on_close(clock: Clock) -> None:
    stream = Terminal()
    bar = Progress(5, stream=stream)
    bar.update(0)
    clock.now = 1.0
    bar.update(2)  # then the calibration fails
    bar.close()
    assert stream.getvalue().endswith("2/5 [=========               ]  40% elapsed 1s ETA 2s\n")


def test_from_cache_sample_run_reports_progress(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """With scales from a cache, every calibration feed still runs through the FP32 model to
    choose the accuracy search's samples; that run called no `on_batch`, so the CLI's bar
    stayed blank however long it took."""
    import numpy as np

    from graphopt.quant.api import quantize_with_report
    from tests.test_review12_quant_placement import residual_model

    rng = np.random.default_rng(0)
    feeds = [{"x": rng.standard_normal((1, 3, 16, 16)).astype(np.float32)} for _ in range(3)]
    cache = tmp_path / "c.cache"
    quantize_with_report(residual_model(), feeds, cache=cache, accuracy_target=None)
    calls: list[int] = []
    quantize_with_report(residual_model(), feeds, from_cache=cache, on_batch=calls.append)
    assert calls == [0, 1, 2, 3]
