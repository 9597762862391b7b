"""quantize warns where the installed onnxruntime computes the fused int8 Conv (and MatMul) wrong
(microsoft/onnxruntime#26324: 1.23.2 and 1.24 on CPUs with AVX-512 VNNI / AMX): the accuracy
search measures in it, and a model for target onnxruntime runs in it (H125)."""

from __future__ import annotations

import logging
import re

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphopt
from graphopt import realmodels
from graphopt.backends import onnxruntime as ort_backend
from graphopt.errors import BackendError
from graphopt.quant.api import quantize_with_report
from tests.conftest import onnxruntime_fused_int8_conv_is_right


@pytest.fixture
def fresh_probe():  # type: ignore[no-untyped-def]
    """The probe measured afresh in the test, and again by whoever asks after it."""
    ort_backend.fused_int8_conv_error_steps.cache_clear()
    yield
    ort_backend.fused_int8_conv_error_steps.cache_clear()


def _version(text: str) -> tuple[int, int]:
    major, minor = re.match(r"(\d+)\.(\d+)", text).groups()  # type: ignore[union-attr]
    return int(major), int(minor)


def test_the_probe_says_what_the_installed_onnxruntime_does(fresh_probe) -> None:
    # measured: 1.23.2 and 1.24 are up to ~190 steps off on a CPU with AVX-512 VNNI / AMX-INT8
    # (#26324), 1.25 and later right there; on a CPU without VNNI (AVX-512 BW or AVX2 only)
    # every version saturates the probe's full-range int8 weights (1.32.0: 23 steps)
    steps = ort_backend.fused_int8_conv_error_steps()
    problem = ort_backend.fused_int8_conv_problem()
    assert onnxruntime_fused_int8_conv_is_right() == (problem is None)  # conftest reuses it
    assert (problem is None) == (steps <= 1.01), (steps, problem)
    flags = ort_backend.cpu_flags()
    version = _version(ort.__version__)
    if {"avx512_vnni", "amx_int8"} & flags and (1, 23) <= version < (1, 25):
        assert steps > 10, steps
        assert problem is not None and f"onnxruntime {ort.__version__} " in problem
        assert "microsoft/onnxruntime#26324" in problem
        assert "1.25 or later" in ort_backend.fused_int8_conv_remedy()
    elif {"avx512_vnni", "amx_int8"} & flags and version >= (1, 25):
        assert steps <= 1.0 and problem is None, problem
    elif flags and not {"avx512_vnni", "avx_vnni", "amx_int8"} & flags and "avx512bw" in flags:
        assert steps > 1, steps  # saturated, in every version
        assert problem is not None and "no VNNI" in problem and "#26324" not in problem
        assert "reduce_range" in ort_backend.fused_int8_conv_remedy()
    else:
        pytest.skip(f"onnxruntime {ort.__version__} on this CPU: no known answer")


def test_without_vnni_the_probe_is_right_with_seven_bit_weights(fresh_probe) -> None:
    # the cause the message names on a CPU without VNNI: u8·s8 pairs saturating 16 bits. With
    # the probe's weights in 7 bits (as onnxruntime's reduce_range quantizes them) it is gone.
    flags = ort_backend.cpu_flags()
    if not flags or {"avx512_vnni", "avx_vnni", "amx_int8"} & flags:
        pytest.skip("a CPU with VNNI (or unknown flags): nothing saturates")
    if ort_backend.fused_int8_conv_error_steps() <= 1.01:
        pytest.skip("the installed onnxruntime does not saturate the probe here")
    assert ort_backend._fused_int8_conv_probe(weight_limit=63) <= 1.01


def test_the_cause_follows_the_cpu_flags(monkeypatch) -> None:
    for flags, version, cause in [
        ({"avx2", "avx512bw", "avx512_vnni"}, "1.24.1", "vnni"),
        ({"avx2", "amx_int8"}, "1.23.2", "vnni"),
        ({"avx2", "avx512_vnni"}, "1.32.0", ""),  # right there: a cause not known
        ({"avx2", "avx512bw"}, "1.32.0", "saturation"),
        ({"avx2"}, "1.20.0", "saturation"),
        ({"sse4_2"}, "1.32.0", ""),
        (set(), "1.32.0", ""),  # /proc/cpuinfo unreadable: say only what was measured
    ]:
        monkeypatch.setattr(ort_backend, "cpu_flags", lambda f=flags: frozenset(f))
        monkeypatch.setattr(ort, "__version__", version)
        assert ort_backend._fused_conv_cause() == cause, (flags, version)


@pytest.mark.parametrize(
    "error", [BackendError("onnxruntime cannot load the model: no"), RuntimeError("anything")]
)
def test_a_probe_that_cannot_run_takes_onnxruntime_as_right(
    fresh_probe, monkeypatch, error: Exception
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(ort_backend, "session", broken)
    assert ort_backend.fused_int8_conv_error_steps() == 0.0
    assert ort_backend.fused_int8_conv_problem() is None


def _two_convs() -> onnx.ModelProto:
    """x (1×3×32×32 image) → Conv 3→8 stride 2 → Relu → Conv 8→8: a stem and one more."""
    rng = np.random.default_rng(0)
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], strides=[2, 2], pads=[1] * 4),
            helper.make_node("Relu", ["c1"], ["r1"]),
            helper.make_node("Conv", ["r1", "w2", "b2"], ["y"], pads=[1] * 4),
        ],
        "two_convs",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 16, 16])],
        [
            numpy_helper.from_array(rng.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32), "w1"),
            numpy_helper.from_array(rng.normal(0, 0.1, 8).astype(np.float32), "b1"),
            numpy_helper.from_array(rng.normal(0, 0.2, (8, 8, 3, 3)).astype(np.float32), "w2"),
            numpy_helper.from_array(rng.normal(0, 0.1, 8).astype(np.float32), "b2"),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def _photographs() -> list[dict[str, np.ndarray]]:
    return [
        {"x": realmodels.preprocess(image, (32, 32), scale=1 / 255)}
        for image in realmodels.images(3)
    ]


def _probe_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "onnxruntime#26324" in r.getMessage()]


@pytest.mark.parametrize(
    ("target", "search", "says"),
    [
        ("onnxruntime", True, ("computes wrong in it",)),
        ("onnxruntime", False, ("computes wrong in it",)),
        # run in TensorRT; the search measured at ORT_ENABLE_BASIC (collect.run_outputs)
        ("tensorrt", True, ()),
        ("tensorrt", False, ()),
    ],
)
def test_quantize_warns_once_where_onnxruntime_runs_wrong_int8_kernels(
    monkeypatch, caplog, target: str, search: bool, says: tuple[str, ...]
) -> None:
    monkeypatch.setattr(ort_backend, "fused_int8_conv_error_steps", lambda: 141.0)
    monkeypatch.setattr(ort_backend, "_fused_conv_cause", lambda: "vnni")  # whatever the CPU
    options = {} if search else {"accuracy_target": None}  # the search at its default target
    with caplog.at_level(logging.WARNING, logger="graphopt"):
        _, report = quantize_with_report(
            _two_convs(), _photographs(), target=target, keep_stem=False, **options
        )
    assert report.quantized_nodes or report.kept_float  # the model was quantized (searched)
    found = _probe_warnings(caplog)
    if not says:
        assert found == []
        return
    assert len(found) == 1, found
    (text,) = found
    assert f"onnxruntime {ort.__version__} computes int8 Conv and MatMul wrong" in text
    assert "141 steps off" in text and "ORT_ENABLE_BASIC" in text and "1.25 or later" in text
    for harm in ("accuracy search", "computes wrong in it"):
        assert (harm in text) == (harm in says), text


def test_quantize_says_nothing_of_a_right_onnxruntime(monkeypatch, caplog) -> None:
    monkeypatch.setattr(ort_backend, "fused_int8_conv_error_steps", lambda: 1.0)  # rounding
    with caplog.at_level(logging.WARNING, logger="graphopt"):
        graphopt.quantize(_two_convs(), _photographs(), target="onnxruntime")
    assert _probe_warnings(caplog) == []


def test_reduce_range_is_advised_only_where_the_seven_bit_probe_is_right(monkeypatch) -> None:
    # the saturation cause comes from the CPU's flags; --reduce-range is advised only where the
    # probe with 7-bit weights measured right (H238)
    monkeypatch.setattr(ort_backend, "_fused_conv_cause", lambda: "saturation")
    for steps_at_64, advised in [(0.0, True), (5.0, False)]:
        monkeypatch.setattr(
            ort_backend,
            "fused_int8_conv_error_steps",
            lambda weight_max=127, s=steps_at_64: 23.0 if weight_max > 64 else s,
        )
        remedy = ort_backend.fused_int8_conv_remedy()
        assert ("--reduce-range" in remedy) == advised, remedy
        assert "ORT_ENABLE_BASIC" in remedy
