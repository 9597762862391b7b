"""A calibrated tensor that holds NaN or an infinity on the calibration data stays float (no
Q/DQ, no calibration cache entry: no scale represents it), with one warning naming it; the rest
of the model is quantized. Before, the whole run was refused ("calibration values contain NaN or
infinity"). A run where that leaves nothing to quantize is still refused
(tests/test_quant_review2_errors.py)."""

from __future__ import annotations

import logging

import numpy as np
import onnx
import onnx.parser
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

from graphopt.errors import QuantizeError
from graphopt.quant.api import quantize_with_report
from graphopt.quant.collect import collect
from graphopt.quant.histogram import HistogramCalibrator


def _run(model: onnx.ModelProto, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), options, ["CPUExecutionProvider"])
    return sess.run(None, feed)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and "NaN or infinity" in r.getMessage()
    ]


def _quantized_inputs(model: onnx.ModelProto) -> set[str]:
    return {n.input[0] for n in model.graph.node if n.op_type == "QuantizeLinear"}


def _two_branches() -> onnx.ModelProto:
    """y = Conv(x, w1) + Conv(Log(x), w2): Log(0) = -inf on the second branch only."""
    model = onnx.parser.parse_model(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[1, 3, 8, 8] x) => (float[1, 4, 8, 8] y, float[1, 4, 8, 8] m) {
            a = Conv(x, w1)
            lx = Log(x)
            b = Conv(lx, w2)
            m = Min(b, a)
            y = Conv(a, w3)
        }"""
    )
    rng = np.random.default_rng(0)
    for name, shape in (("w1", (4, 3, 1, 1)), ("w2", (4, 3, 1, 1)), ("w3", (4, 4, 1, 1))):
        w = rng.standard_normal(shape).astype(np.float32)
        model.graph.initializer.append(numpy_helper.from_array(w, name))
    return model


def _feeds() -> list[dict[str, np.ndarray]]:
    first = np.linspace(0.5, 2.0, 192, dtype=np.float32).reshape(1, 3, 8, 8)
    second = first[:, :, ::-1].copy()
    second[0, 1, 2, 3] = 0.0  # Log → -inf in feed 1
    return [{"x": first}, {"x": second}]


@pytest.mark.parametrize("target", ["tensorrt", "onnxruntime"])
@pytest.mark.parametrize("method", ["minmax", "entropy"])
def test_an_infinite_tensor_stays_float_and_the_rest_is_quantized(
    target: str, method: str, tmp_path, caplog
) -> None:  # type: ignore[no-untyped-def]
    cache = tmp_path / "calib.cache"
    with caplog.at_level("WARNING", logger="graphopt.quant"):
        q, report = quantize_with_report(
            _two_branches(),
            _feeds(),
            method,
            cache=cache,
            target=target,
            accuracy_target=None,
            keep_stem=False,
            pipeline=False,
        )
    expected = {"lx": "-inf in calibration feed 1"}
    if target == "onnxruntime":  # its layout quantizes the Conv's output too
        expected["b"] = "-inf and +inf in calibration feed 1"
    assert report.non_finite == expected
    conv2 = next(n.name for n in q.graph.node if n.op_type == "Conv" and "w2" in n.input[1])
    assert report.unscaled_nodes == [conv2]
    quantized = _quantized_inputs(q)
    assert not set(expected) & quantized and "x" in quantized and "a" in quantized
    said = _warnings(caplog)
    assert len(said) == 1 and "\n" not in said[0] and "'lx' (-inf in calibration feed 1)" in said[0]
    assert repr(conv2) in said[0]
    entries = [line.split(":")[0] for line in cache.read_text().splitlines()[1:]]
    assert not set(expected) & set(entries) and "x" in entries
    feed = _feeds()[1]
    ref, got = _run(_two_branches(), feed), _run(q, feed)
    assert np.isneginf(ref[1]).any()  # the float model's -inf reaches Min's output
    for r, g in zip(ref, got, strict=True):  # the float branch keeps its infinities
        assert np.array_equal(np.isfinite(r), np.isfinite(g))
        finite = np.isfinite(r)
        assert np.allclose(r[finite], g[finite], atol=0.05 * float(np.abs(r[finite]).max()))


def test_from_cache_with_its_sidecar_makes_the_same_model(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The nodes kept float for NaN / infinity go into the sidecar's keep_nodes: the cache has
    no scale for their tensor, and a from_cache run keeps them float too."""
    cache = tmp_path / "calib.cache"
    options = {"accuracy_target": None, "keep_stem": False, "pipeline": False}
    q, _ = quantize_with_report(_two_branches(), _feeds(), cache=cache, **options)
    again, _ = quantize_with_report(_two_branches(), None, from_cache=cache, **options)
    assert again.SerializeToString() == q.SerializeToString()


def test_from_cache_without_the_sidecar_says_why_a_scale_is_missing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The cache alone lacks 'lx' (no scale for it): the error says where the float choice was
    recorded and what to do, in one line."""
    cache = tmp_path / "calib.cache"
    options = {"accuracy_target": None, "keep_stem": False, "pipeline": False}
    quantize_with_report(_two_branches(), _feeds(), cache=cache, **options)
    sidecar = tmp_path / "calib.cache.graphopt.json"
    sidecar.unlink()
    with pytest.raises(QuantizeError) as e:
        quantize_with_report(_two_branches(), None, from_cache=cache, **options)
    message = str(e.value)
    assert message.startswith(f"{cache}: no scale for 1 tensor(s) the model quantizes, e.g. 'lx'")
    assert f"as the sidecar {sidecar} says, which is not there" in message
    assert "keep_nodes" in message and "\n" not in message


def test_the_command_line_says_which_nodes_stayed_float(tmp_path, capsys, caplog) -> None:  # type: ignore[no-untyped-def]
    """`graphopt quantize` prints its report when a float choice was made: nodes kept float for
    NaN or infinity are one (target onnxruntime: no stem kept float to print it otherwise);
    exit 0, the warning said once."""
    from graphopt.cli import main

    model = tmp_path / "m.onnx"
    onnx.save(_two_branches(), model)
    calib = tmp_path / "calib"
    calib.mkdir()
    for i, feed in enumerate(_feeds()):
        np.save(calib / f"f{i}.npy", feed["x"])
    out = tmp_path / "q.onnx"
    argv = ["quantize", str(model), "-o", str(out), "--calib", str(calib)]
    with caplog.at_level("WARNING", logger="graphopt.quant"):
        code = main([*argv, "--target", "onnxruntime", "--accuracy-target", "0"])
    said = capsys.readouterr()
    assert code == 0, said.err
    assert "kept in float (no int8 scale for a tensor they read or write" in said.out
    warned = _warnings(caplog)
    # the feed named by its file (it was 'calibration feed 1')
    assert len(warned) == 1 and f"'lx' (-inf in {calib / 'f1.npy'})" in warned[0]
    assert out.is_file()


def test_collect_records_non_finite_tensors_when_asked() -> None:
    model = _two_branches()
    for histograms in (True, False):
        with pytest.raises(QuantizeError, match=r"^calibration feed 1: tensor 'lx': .*\(-inf\)"):
            collect(model, ["x", "lx", "a"], _feeds(), histograms=histograms)
        found: dict[str, str] = {}
        calibrators, count = collect(
            model, ["x", "lx", "a"], _feeds(), histograms=histograms, non_finite=found
        )
        assert count == 2 and found == {"lx": "-inf in calibration feed 1"}
        assert sorted(calibrators) == ["a", "x"]


@pytest.mark.parametrize(
    ("values", "what"),
    [
        ([1.0, np.nan, 2.0], "NaN"),
        ([1.0, -np.inf, np.inf], "-inf and +inf"),
        ([np.inf, 1.0], "+inf"),
        ([-np.inf, np.nan], "NaN"),
    ],
)
def test_what_a_batch_holds_is_said(values: list[float], what: str) -> None:
    from graphopt.quant.histogram import NonFiniteValues

    with pytest.raises(NonFiniteValues, match="NaN or infinity") as e:
        HistogramCalibrator().collect(np.array(values, np.float32))
    assert e.value.what == what


@pytest.mark.realmodel
@pytest.mark.parametrize("target", ["tensorrt", "onnxruntime"])
def test_a_real_detector_with_an_infinite_branch(
    target: str, real_model, real_feeds, caplog
) -> None:  # type: ignore[no-untyped-def]
    """common_det with a branch l = Log(Relu(x)) (-inf wherever x ≤ 0 on the photographs) read
    by a residual Add and a Sigmoid that bring it back to finite values before a Conv: l (and
    the Add's -inf output, which the onnxruntime layout quantizes) stay float, every other
    calibrated tensor is quantized, and the result stays close to the FP32 model."""
    model = onnx.load(str(real_model("common_det")))
    producer = {o: n for n in model.graph.node for o in n.output}
    conv = [
        n
        for n in model.graph.node
        if n.op_type == "Conv" and getattr(producer.get(n.input[0]), "op_type", "") == "Mul"
    ][20]
    x = conv.input[0]
    branch = [
        helper.make_node("Relu", [x], ["h163_r"], name="h163_relu"),
        helper.make_node("Log", ["h163_r"], ["h163_log"], name="h163_logn"),
        helper.make_node("Add", ["h163_log", x], ["h163_a"], name="h163_add"),
        helper.make_node("Sigmoid", ["h163_a"], ["h163_s"], name="h163_sig"),
        helper.make_node("Sigmoid", ["h163_log"], ["h163_t"], name="h163_sig2"),
        helper.make_node("Mul", [x, "h163_s"], ["h163_m"], name="h163_mul"),
        helper.make_node("Mul", ["h163_m", "h163_t"], ["h163_e"], name="h163_mul2"),
    ]
    at = list(model.graph.node).index(conv)
    for k, node in enumerate(branch):
        model.graph.node.insert(at + k, node)
    conv.input[0] = "h163_e"
    feeds = real_feeds("common_det", 3)
    with caplog.at_level("WARNING", logger="graphopt.quant"):
        q, report = quantize_with_report(model, feeds[:2], target=target, accuracy_target=None)
    bad = {"h163_log"} | ({"h163_a"} if target == "onnxruntime" else set())
    assert set(report.non_finite) == bad
    said = _warnings(caplog)
    assert len(said) == 1 and "\n" not in said[0]
    quantized = _quantized_inputs(q)
    assert not bad & quantized
    assert "h163_e" in quantized  # the Conv behind the branch is quantized
    assert not bad & set(report.scales)
    assert len(report.quantized_nodes) > 60
    ref, got = _run(model, feeds[2])[0], _run(q, feeds[2])[0]
    assert np.isfinite(got).all()
    assert float(np.sqrt(np.mean((ref - got) ** 2))) < 0.05 * float(ref.max() - ref.min())
