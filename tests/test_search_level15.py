"""The accuracy search measures its candidates in onnxruntime (`collect.run_outputs`). Where the
installed onnxruntime's fused int8 kernels are wrong (microsoft/onnxruntime#26324: 1.23/1.24 on
AVX-512 VNNI / AMX CPUs, up to ~190 steps off), the search measured that bug instead of the Q/DQ
model's error, and said so in a warning; it now runs its sessions at ORT_ENABLE_BASIC there
(no QLinearConv fusion), and at ORT_ENABLE_ALL elsewhere, as before."""

from __future__ import annotations

import logging
import sys

import pytest

from graphopt.backends import onnxruntime as ort_backend
from graphopt.quant import collect
from graphopt.quant.api import quantize_with_report
from tests.test_h125_ort_int8_warning import _photographs, _probe_warnings, _two_convs


def _levels(monkeypatch: pytest.MonkeyPatch, steps: float) -> list[str]:
    """The levels of the sessions `run_outputs` opens while quantizing with the search, with
    the probe saying `steps`."""
    monkeypatch.setattr(ort_backend, "fused_int8_conv_error_steps", lambda: steps)
    levels: list[str] = []
    real = collect.session

    def spying(model, **kwargs):  # type: ignore[no-untyped-def]
        if sys._getframe(1).f_code.co_name == "run_outputs":  # (not the calibration's own)
            levels.append(kwargs.get("level", "all"))
        return real(model, **kwargs)

    monkeypatch.setattr(collect, "session", spying)
    quantize_with_report(_two_convs(), _photographs(), target="tensorrt", keep_stem=False)
    return levels


def test_the_search_measures_at_basic_where_the_fused_int8_kernels_are_wrong(monkeypatch):
    levels = _levels(monkeypatch, 141.0)
    assert levels and set(levels) == {"basic"}, levels


def test_the_search_measures_at_all_where_they_are_right(monkeypatch):
    levels = _levels(monkeypatch, 0.0)
    assert levels and set(levels) == {"all"}, levels


def test_target_tensorrt_with_the_search_says_nothing_of_the_bug(monkeypatch, caplog):
    with caplog.at_level(logging.WARNING, logger="graphopt"):
        _levels(monkeypatch, 141.0)
    assert _probe_warnings(caplog) == []
