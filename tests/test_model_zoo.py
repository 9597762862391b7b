"""Every built-in pipeline on sixteen more real models (`graphopt.realmodels.ZOO`): other
exporters and layers than the three detectors — text recognizers with dynamic widths, an LSTM,
squeeze-excitation blocks with channel counts that are no multiple of 4, a table model with an
attention loop, a batch declared as dim_value -1, a voice detector whose network sits in If
branches, paddle2onnx's Identity chains (PP-OCRv6), a YOLOv8 with every dim dynamic, a torch 2.14
CRNN whose LSTMs are unrolled into Gemm steps, a torch dynamo transformer over Khmer character
ids, PP-OCRv5's PP-LCNetV3 backbone with learnable affine blocks, Silero VAD v6 without Ifs (an
STFT as a Conv, a batch of windows), FunASR's FSMN voice detector (memory blocks as depthwise
Convs over cache inputs). Each output must pass the full ONNX check and give the original's
outputs on real photographs preprocessed as the model's package does (the voice detectors: a
synthesized vowel, `voiced_sound`, as `vad_inputs`, `vad_v6_inputs` and `fsmn_inputs` feed it,
no wheel shipping a recording; the Khmer segmenter: `khmer_inputs`).

Found by running them first: an ort-cpu output onnxruntime could not run (ppocr_cls), a
Reshape target folded to [-1, 120, -1] (ppocrv3_rec), a gray-input model quantization refused
(ddddocr_ocr), MatMul weight scales our TensorRT check refused (ppocrv4_rec).
"""

from __future__ import annotations

import onnx
import pytest

import graphopt
from graphopt.backends.onnxruntime import compare
from graphopt.realmodels import ZOO, fetch_model, model_inputs

PIPELINES = ("default", "tensorrt", "ort-fusions", "ort-cpu", "simplify")
# Models that standard-ONNX pipelines cannot shrink as they are declared (onnxsim neither):
# YOLOv8n's dims are all dynamic and x·σ(x) needs opset 24 for Swish (its own test below);
# Silero VAD v6's 25 nodes are all needed (its Conv + ReLU / Sigmoid pairs fuse only into ORT's
# FusedConv: 25 -> 20 with ort-fusions and ort-cpu).
UNSHRINKABLE = {"yolov8_nudenet": ("default", "tensorrt"), "silero_vad_v6": ("default", "tensorrt")}


@pytest.mark.slow
@pytest.mark.realmodel
@pytest.mark.parametrize("name", sorted(ZOO))
def test_every_pipeline_keeps_the_outputs(name):
    original = onnx.load(str(fetch_model(name)))
    feeds = model_inputs(name, 2)
    nodes = len(original.graph.node)
    for pipeline in PIPELINES:
        out = graphopt.optimize(original, pipeline)
        onnx.checker.check_model(out, full_check=True)
        if pipeline != "simplify" and pipeline not in UNSHRINKABLE.get(name, ()):
            assert len(out.graph.node) < nodes, pipeline
        # one run reaches the fixed point: a second changes nothing (PP-OCRv3 rec's Conv +
        # Add(Reshape(bias)) needs the folding before fold-batchnorm; FusedConv/QuickGelu sites
        # behind no-ops need fuse-ort-contrib after the clean-up)
        again = graphopt.optimize(out, pipeline)
        assert len(again.graph.node) == len(out.graph.node), pipeline
        for feed in feeds:
            for d in compare(original, out, feed):
                assert not d.exceeds(1e-4, 1e-5), (pipeline, d)


@pytest.mark.slow
@pytest.mark.realmodel
@pytest.mark.parametrize("name", ["ddddocr_ocr", "ppocrv4_rec"])
@pytest.mark.parametrize("target", ["onnxruntime", "tensorrt"])
def test_quantize_zoo_models(name, target):
    """INT8 of a gray-input LSTM OCR and of a recognizer with MatMul weights, calibrated on 4
    photographs: within the accuracy target, and on the 12 held-out images (page.png and
    text.png among them) the decoded symbol at each time step agrees with FP32's (measured:
    0.975-0.997 on average, no image below 0.88); the TensorRT layout passes our check."""
    import numpy as np

    from graphopt.backends.onnxruntime import session
    from graphopt.backends.trt_check import check_tensorrt
    from graphopt.quant.api import DEFAULT_ACCURACY_TARGET, quantize_with_report

    path = str(fetch_model(name))
    data = model_inputs(name, 16)
    q, report = quantize_with_report(path, data[:4], target=target)
    assert report.error is not None and report.error <= DEFAULT_ACCURACY_TARGET
    assert any(n.op_type == "QuantizeLinear" for n in q.graph.node)
    ref, got = session(path), session(q)
    agreement = []
    for feed in data[4:]:
        a, b = ref.run(None, feed)[0], got.run(None, feed)[0]
        if a.ndim == 3:  # [N, T, classes] probabilities; ddddocr's output is the indices
            a, b = a.argmax(-1), b.argmax(-1)
        agreement.append(float((a == b).mean()))
    assert np.mean(agreement) >= 0.95 and min(agreement) >= 0.8, agreement
    if target == "tensorrt":
        assert [f for f in check_tensorrt(q, 10) if f.severity == "error"] == []


@pytest.mark.realmodel
def test_yolov8_with_fixed_input_shapes():
    """YOLOv8n exported with dynamic batch, height and width: its shape subgraphs (anchor grid,
    strides, the head's Reshape targets) fold only once the input shape is fixed, as onnxsim's
    --overwrite-input-shape does: 323 → 233 nodes (onnxsim leaves the dynamic model at 323)."""
    name = "yolov8_nudenet"
    original = onnx.load(str(fetch_model(name)))
    feeds = model_inputs(name, 2)
    (input_name, x), *_ = feeds[0].items()
    out = graphopt.optimize(original, input_shapes={input_name: x.shape})
    onnx.checker.check_model(out, full_check=True)
    nodes = [n for n in out.graph.node if n.op_type != "Constant"]
    assert len(nodes) <= 0.75 * len(original.graph.node), len(nodes)  # measured 233 of 323
    assert not [n for n in nodes if n.op_type in ("Shape", "Range")]
    declared = out.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in declared] == list(x.shape)
    for feed in feeds:
        for d in compare(original, out, feed):
            assert not d.exceeds(1e-4, 1e-5), d


@pytest.mark.realmodel
def test_khmer_attention_reshapes_collapse():
    """khmersm 1.4.2 (torch dynamo) builds each attention reshape target from Shape(x) slices and
    unsqueezes the result: with those targets as [-1, 1, 3, 192] and Reshape + Unsqueeze merged
    into one Reshape, default goes 184 -> 165 nodes (onnxsim 167; 176 before)."""
    original = onnx.load(str(fetch_model("khmer_seg")))
    out = graphopt.optimize(original)
    assert len(out.graph.node) <= 165
