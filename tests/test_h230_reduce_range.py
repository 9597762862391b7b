"""quantize's `reduce_range` (`graphopt quantize --reduce-range`): int8 weights in 7 bits.

On an x86 CPU without VNNI (AVX2, AVX-512 BW) onnxruntime's u8·s8 kernels, the QLinearConv and
QLinearMatMul it fuses a Q/DQ Conv or MatMul into at ORT_ENABLE_EXTENDED and ALL, add two
products in 16 bits, which saturates on full-range int8 weights (255·127·2 > 32767): the
quantized model computed wrong at onnxruntime's default level, and graphopt had no way to make
the weights onnxruntime's own `quantize_static(..., reduce_range=True)` makes ([-64, 64], s =
max|W_c| / 64). Now it has: through the API, the CLI and the cache's sidecar; off by default.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.backends import onnxruntime as ort_backend
from graphopt.backends.onnxruntime import session
from graphopt.cli import main
from graphopt.errors import OptionError, QuantizeError
from graphopt.quant import sidecar as sidecar_io
from graphopt.quant.api import quantize, quantize_with_report
from graphopt.quant.qdq import quantize_weight

# onnxruntime's reduced int8 range (quant_utils.ONNX_INT_TYPE_REDUCED_RANGE): [-64, 64]
REDUCED_WEIGHT_MAX = 64


def stem_model() -> onnx.ModelProto:
    """x[1, 3, 20, 20] in [0, 1] → Conv(24 out, 3×3, bias) → Relu → MaxPool 2×2 → y: an image
    stem, as onnxruntime's probe Conv; y holds the Conv's quantized output values (MaxPool
    picks them), so its error is counted in the Conv output's steps."""
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((24, 3, 3, 3)) * 0.3).astype(np.float32)
    b = (rng.standard_normal(24) * 0.05).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("MaxPool", ["r"], ["y"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
    ]
    graph = helper.make_graph(
        nodes,
        "stem",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 20, 20])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 24, 10, 10])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def feeds(count: int = 4) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(1)
    return [{"x": rng.uniform(0, 1, (1, 3, 20, 20)).astype(np.float32)} for _ in range(count)]


def int8_weights(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """The int8 tensors read as a DequantizeLinear's input 0 with an `axis` (the weights)."""
    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    return {
        n.input[0]: values[n.input[0]]
        for n in model.graph.node
        if n.op_type == "DequantizeLinear"
        and any(a.name == "axis" for a in n.attribute)
        and n.input[0] in values
        and values[n.input[0]].dtype == np.int8
    }


def run(model: onnx.ModelProto, level: str) -> np.ndarray:
    return session(model, level=level).run(None, feeds(1)[0])[0]


def test_the_weights_are_what_onnxruntimes_reduce_range_makes() -> None:
    from onnx import TensorProto as T
    from onnxruntime.quantization.quant_utils import quantize_data

    rng = np.random.default_rng(5)
    w = (rng.standard_normal((6, 4, 3, 3)) * rng.uniform(0.01, 2, (6, 1, 1, 1))).astype(np.float32)
    q, scales = quantize_weight(w, 0, np.float32, None, REDUCED_WEIGHT_MAX)
    for c in range(w.shape[0]):  # onnxruntime's per-channel weights: symmetric, one per channel
        zero, scale, want = quantize_data(w[c].ravel(), T.INT8, True, reduce_range=True)
        assert int(zero) == 0
        assert np.float32(scale) == scales[c], c
        np.testing.assert_array_equal(q[c].ravel(), want)
    assert np.abs(q.astype(np.int32)).max() == 64  # each channel's largest weight at ±64
    full, _ = quantize_weight(w, 0, np.float32)
    assert np.abs(full.astype(np.int32)).max() == 127  # the default: unchanged


@pytest.mark.parametrize("target", ["onnxruntime", "tensorrt"])
def test_a_reduce_range_model_has_seven_bit_weights_and_stays_close(target: str) -> None:
    model = stem_model()
    ref = session(model).run(None, feeds(1)[0])[0]
    spread = float(ref.max() - ref.min())
    options = {"target": target, "pipeline": False, "accuracy_target": None, "keep_stem": False}
    reduced, report = quantize_with_report(model, feeds(), reduce_range=True, **options)
    full = quantize(model, feeds(), **options)
    weights = int8_weights(reduced)
    assert weights and all(np.abs(q.astype(np.int32)).max() == 64 for q in weights.values())
    assert max(np.abs(q.astype(np.int32)).max() for q in int8_weights(full).values()) == 127
    assert report.reduce_range and "int8 weights in [-64, 64]" in report.lines()[0]

    # the same activations: reduce_range changes the weights (and the int32 bias) alone
    def activations(q: onnx.ModelProto) -> list[onnx.TensorProto]:
        return [t for t in q.graph.initializer if not t.name.startswith(("w_", "b_"))]

    assert activations(reduced) == activations(full) and len(activations(full)) >= 2
    for level in ("disable", "basic"):  # as written, and fused where no int8 kernel saturates
        np.testing.assert_allclose(run(reduced, level), ref, rtol=0.0, atol=0.03 * spread)


def test_on_a_cpu_whose_fused_kernels_saturate_reduce_range_runs_right_at_all() -> None:
    if ort_backend.fused_int8_conv_problem() is None:
        pytest.skip("the installed onnxruntime's fused int8 Conv is right on this CPU's probe")
    if ort_backend.fused_int8_conv_problem(REDUCED_WEIGHT_MAX) is not None:
        pytest.skip("the fused int8 Conv is wrong here with 7-bit weights too: not saturation")
    model = stem_model()
    options = {"target": "onnxruntime", "pipeline": False, "accuracy_target": None}
    full = quantize(model, feeds(), **options)
    reduced = quantize(model, feeds(), reduce_range=True, **options)
    for q in (full, reduced):  # (the Conv's output step is y's: MaxPool picks its values)
        assert [n.op_type for n in q.graph.node][-2:] == ["Relu", "MaxPool"]
    step = float(
        next(numpy_helper.to_array(t) for t in full.graph.initializer if t.name == "c_scale")
    )

    def steps(q: onnx.ModelProto) -> float:
        return float(np.abs(run(q, "all") - run(q, "disable")).max()) / step

    assert steps(reduced) <= 1.0, steps(reduced)
    assert steps(full) > 1.0, steps(full)  # (this CPU: ~56 steps)


def test_the_remedy_for_saturation_names_the_option(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ort_backend, "_fused_conv_cause", lambda: "saturation")
    remedy = ort_backend.fused_int8_conv_remedy()
    assert "--reduce-range" in remedy and "reduce_range=True" in remedy
    assert "ORT_ENABLE_BASIC" in remedy
    # a 7-bit model that is still wrong: not saturation, so not that remedy again
    assert "reduce" not in ort_backend.fused_int8_conv_remedy(REDUCED_WEIGHT_MAX)
    monkeypatch.setattr(ort_backend, "_fused_conv_cause", lambda: "vnni")
    assert "--reduce-range" not in ort_backend.fused_int8_conv_remedy()


@pytest.mark.parametrize(("reduce_range", "warned"), [(False, True), (True, False)])
def test_quantize_warns_only_where_its_weights_saturate(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    reduce_range: bool,
    warned: bool,
) -> None:
    # a CPU without VNNI, whatever this one is: full-range weights saturate, 7-bit ones do not
    monkeypatch.setattr(
        ort_backend, "fused_int8_conv_error_steps", lambda weight_max=127: 23.0 * (weight_max > 64)
    )
    monkeypatch.setattr(ort_backend, "_fused_conv_cause", lambda: "saturation")
    with caplog.at_level(logging.WARNING, logger="graphopt"):
        quantize(
            stem_model(),
            feeds(),
            target="onnxruntime",
            pipeline=False,
            accuracy_target=None,
            reduce_range=reduce_range,
        )
    said = [r.getMessage() for r in caplog.records if "computes int8 Conv" in r.getMessage()]
    assert bool(said) == warned, said
    if said:
        assert "--reduce-range" in said[0] and "no VNNI" in said[0]


@pytest.mark.parametrize("value", ["yes", 1, 0.0])
def test_reduce_range_takes_true_or_false(value: object) -> None:
    with pytest.raises(OptionError, match=r"^reduce_range must be True or False, got "):
        quantize(stem_model(), feeds(), reduce_range=value)


def _cli_inputs(tmp_path: Path) -> tuple[str, str]:
    model = tmp_path / "m.onnx"
    onnx.save(stem_model(), model)
    folder = tmp_path / "calib"
    folder.mkdir()
    for i, feed in enumerate(feeds()):
        np.save(folder / f"f{i}.npy", feed["x"])
    return str(model), str(folder)


def test_the_cli_option_and_the_cache_round_trip(tmp_path: Path) -> None:
    model, folder = _cli_inputs(tmp_path)
    common = ["--target", "onnxruntime", "--pipeline", "default", "--no-progress"]
    cache, reduced, full = tmp_path / "c.cache", tmp_path / "r.onnx", tmp_path / "f.onnx"
    argv = ["quantize", model, "--calib", folder, *common]
    assert main([*argv, "-o", str(reduced), "--cache", str(cache), "--reduce-range"]) == 0
    assert main([*argv, "-o", str(full), "--cache", str(tmp_path / "f.cache")]) == 0
    largest = {
        name: max(np.abs(q.astype(np.int32)).max() for q in int8_weights(onnx.load(p)).values())
        for name, p in (("reduced", reduced), ("full", full))
    }
    assert largest == {"reduced": 64, "full": 127}
    # the cache's scales are the activations', the same either way; the sidecar says 7 bits
    assert cache.read_bytes() == (tmp_path / "f.cache").read_bytes()
    assert json.loads(sidecar_io.path_of(cache).read_text())["reduce_range"] is True
    side = json.loads(sidecar_io.path_of(tmp_path / "f.cache").read_text())
    assert "reduce_range" not in side  # a run without it writes the sidecar it wrote before
    # --cache-in takes it from the sidecar: the same model, byte for byte
    again = tmp_path / "again.onnx"
    cache_in = ["quantize", model, "--cache-in", str(cache), *common]
    assert main([*cache_in, "-o", str(again)]) == 0
    assert again.read_bytes() == reduced.read_bytes()
    # ... unless told otherwise
    assert main([*cache_in, "-o", str(again), "--no-reduce-range"]) == 0
    weights = int8_weights(onnx.load(again))
    assert max(np.abs(q.astype(np.int32)).max() for q in weights.values()) == 127


def test_a_sidecar_with_a_reduce_range_not_true_or_false_is_refused(tmp_path: Path) -> None:
    model, folder = _cli_inputs(tmp_path)
    cache = tmp_path / "c.cache"
    argv = ["quantize", model, "--calib", folder, "--no-progress", "-o", str(tmp_path / "q.onnx")]
    assert main([*argv, "--cache", str(cache), "--reduce-range"]) == 0
    path = sidecar_io.path_of(cache)
    data = json.loads(path.read_text())
    data["reduce_range"] = "yes"
    path.write_text(json.dumps(data))
    with pytest.raises(QuantizeError, match=r"'reduce_range' is not true or false"):
        sidecar_io.read(cache)
    data["reduce_range"] = False  # written by hand: off, as when absent
    path.write_text(json.dumps(data))
    assert sidecar_io.read(cache).reduce_range is False  # type: ignore[union-attr]
