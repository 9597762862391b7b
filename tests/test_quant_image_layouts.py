"""An image folder feeds the input layouts and element types detectors declare: float NCHW (as
before), NHWC, CHW and HWC without a batch axis, and uint8 raw pixels; what it cannot feed is a
one-line QuantizeError saying why. Real photographs (the scikit-image samples)."""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphopt
from graphopt.backends.onnxruntime import run
from graphopt.cli import main
from graphopt.errors import QuantizeError
from graphopt.quant.data import PreprocessSpec, folder_feeds
from graphopt.realmodels import image_paths, load_image, preprocess
from tests.conftest import onnxruntime_int8_level, onnxruntime_runs_seven_bit_int8_fused

H, W = 24, 32


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A folder of three real photographs."""
    folder = tmp_path_factory.mktemp("photos")
    for path in image_paths(("astronaut.png", "chelsea.png", "rocket.jpg")):
        shutil.copy(path, folder / path.name)
    return folder


def _model(elem_type: int, dims: list, layout: str) -> onnx.ModelProto:
    """x (`layout`, `elem_type`) → NCHW float (uint8: / 255) → Conv 3→4 → Relu → y."""
    w = np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32) * 0.3
    nodes, x = [], "x"
    if elem_type != TensorProto.FLOAT:
        nodes.append(helper.make_node("Cast", [x], ["xf"], name="cast", to=TensorProto.FLOAT))
        x = "xf"
    if elem_type == TensorProto.UINT8:
        nodes.append(helper.make_node("Mul", [x, "inv255"], ["xs"], name="scale"))
        x = "xs"
    if layout in ("NHWC", "HWC"):
        perm = [0, 3, 1, 2] if layout == "NHWC" else [2, 0, 1]
        nodes.append(helper.make_node("Transpose", [x], ["xt"], name="to_chw", perm=perm))
        x = "xt"
    if layout in ("CHW", "HWC"):
        nodes.append(helper.make_node("Unsqueeze", [x, "axis0"], ["xb"], name="batch"))
        x = "xb"
    nodes += [
        helper.make_node("Conv", [x, "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["y"], name="relu"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", elem_type, dims)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, H, W])],
        [
            numpy_helper.from_array(w, "w"),
            numpy_helper.from_array(np.array(1 / 255, np.float32), "inv255"),
            numpy_helper.from_array(np.array([0], np.int64), "axis0"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    return model


def _expected_nchw(photos, spec: PreprocessSpec) -> list[np.ndarray]:
    """What the photos become as float32 1×3×H×W with `spec` (the long-standing NCHW path)."""
    return [
        preprocess(load_image(p), (H, W), mean=spec.mean, std=spec.std, scale=spec.scale)
        for p in sorted(photos.iterdir())
    ]


LAYOUTS = [
    # (element type, declared dims, layout, NCHW float32 -> what the input takes)
    (TensorProto.FLOAT, [1, 3, H, W], "NCHW", lambda a: a),
    (TensorProto.FLOAT, ["N", H, W, 3], "NHWC", lambda a: a.transpose(0, 2, 3, 1)),
    (TensorProto.FLOAT, [3, H, W], "CHW", lambda a: a[0]),
    (TensorProto.FLOAT, [H, W, 3], "HWC", lambda a: a[0].transpose(1, 2, 0)),
    (TensorProto.UINT8, [1, 3, H, W], "NCHW", lambda a: a.astype(np.uint8)),
    (TensorProto.UINT8, [1, H, W, 3], "NHWC", lambda a: a.transpose(0, 2, 3, 1).astype(np.uint8)),
    (TensorProto.UINT8, [3, H, W], "CHW", lambda a: a[0].astype(np.uint8)),
    (TensorProto.FLOAT16, [1, 3, H, W], "NCHW", lambda a: a.astype(np.float16)),
]


@pytest.mark.parametrize(("elem_type", "dims", "layout", "arrange"), LAYOUTS)
def test_images_feed_the_declared_layout_and_type(photos, elem_type, dims, layout, arrange):
    """Fails on the parent for all but float NCHW: CHW/HWC had 'no fixed height and width',
    NHWC 'has 24 channels (channels last?', uint8 and float16 inputs got float32 feeds."""
    model = _model(elem_type, dims, layout)
    uint8 = elem_type == TensorProto.UINT8
    spec = PreprocessSpec() if uint8 else PreprocessSpec(scale=1 / 255, mean=(0.5,) * 3)
    feeds = list(folder_feeds(photos, model, spec))
    expected = _expected_nchw(photos, spec)
    assert len(feeds) == len(expected) == 3
    reference = _model(TensorProto.FLOAT, [1, 3, H, W], "NCHW")
    for feed, nchw in zip(feeds, expected, strict=True):
        want = arrange(nchw)
        assert feed["x"].dtype == want.dtype and feed["x"].shape == want.shape
        np.testing.assert_array_equal(feed["x"], want)
        # the model sees the same picture as the NCHW float model (uint8: as pixels / 255)
        ref_feed = nchw / np.float32(255) if uint8 else nchw.astype(feed["x"].dtype)
        np.testing.assert_allclose(
            run(model, feed)["y"],
            run(reference, {"x": ref_feed.astype(np.float32)})["y"],
            rtol=1e-4,
            atol=1e-5 if elem_type != TensorProto.FLOAT16 else 1e-2,
        )


@pytest.mark.parametrize(
    ("elem_type", "dims", "layout"),
    [(TensorProto.UINT8, [1, H, W, 3], "NHWC"), (TensorProto.FLOAT, [3, H, W], "CHW")],
)
def test_quantize_cli_calibrates_from_photos(photos, tmp_path, elem_type, dims, layout):
    """`graphopt quantize --calib DIR` end to end on a uint8 NHWC and a CHW input: the
    quantized model runs on a photograph and stays close to the float model."""
    model = _model(elem_type, dims, layout)
    src, out = tmp_path / "m.onnx", tmp_path / "q.onnx"
    onnx.save(model, src)
    args = ["quantize", str(src), "-o", str(out), "--calib", str(photos), "--target", "onnxruntime"]
    if elem_type == TensorProto.FLOAT:
        args += ["--scale", str(1 / 255)]
    assert main(args) == 0
    quantized = onnx.load(str(out))
    assert any(n.op_type == "QuantizeLinear" for n in quantized.graph.node)
    spec = PreprocessSpec() if elem_type == TensorProto.UINT8 else PreprocessSpec(scale=1 / 255)
    feed = folder_feeds(photos, model, spec)[0]
    fp = run(model, feed)["y"]
    # onnxruntime's default level where its fused int8 kernels are right, else as written;
    # there (no VNNI: they saturate on full-range weights) a --reduce-range model at "all"
    level = onnxruntime_int8_level()
    q = run(quantized, feed, level=level)["y"]
    assert np.sqrt(np.mean((q - fp) ** 2)) < 0.02 * float(fp.max() - fp.min())
    if level != "all" and onnxruntime_runs_seven_bit_int8_fused():
        seven = tmp_path / "q7.onnx"
        assert main([*args[:3], str(seven), *args[4:], "--reduce-range"]) == 0
        q = run(onnx.load(str(seven)), feed)["y"]
        assert np.sqrt(np.mean((q - fp) ** 2)) < 0.02 * float(fp.max() - fp.min())


@pytest.mark.parametrize(
    ("elem_type", "dims", "spec", "batch_size", "match"),
    [
        (TensorProto.INT32, [1, 3, H, W], None, 1, r"takes int32: images feed float .* or uint8"),
        (TensorProto.FLOAT, [3, H * W], None, 1, r"shape \[3, 768\]: images feed rank 4"),
        (TensorProto.FLOAT, [1, 3, H, 3], None, 1, r"could be axis 1 \(NCHW\) or axis 3 \(NHWC\)"),
        (TensorProto.FLOAT, [1, 4, H, W], None, 1, r"has 4 channels; images give 3"),
        (TensorProto.FLOAT, ["C", "H", "W"], None, 1, r"CHW cannot be told from HWC"),
        (TensorProto.UINT8, [1, 3, H, W], PreprocessSpec(scale=1 / 255), 1, "uint8 pixels as"),
        (TensorProto.FLOAT, [3, H, W], None, 2, r"\(CHW\) has no batch axis"),
    ],
)
def test_what_images_cannot_feed_is_one_line(photos, elem_type, dims, spec, batch_size, match):
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"], name="id")],
        "g",
        [helper.make_tensor_value_info("x", elem_type, dims)],
        [helper.make_tensor_value_info("y", elem_type, dims)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    with pytest.raises(QuantizeError, match=match) as e:
        folder_feeds(photos, model, spec, batch_size)[0]
    assert len(str(e.value).splitlines()) == 1


def test_quantize_accepts_uint8_image_feeds(photos):
    """The API on the folder's feeds: a uint8 NCHW input calibrates (its Cast output is what
    gets quantized) and the result runs on them."""
    model = _model(TensorProto.UINT8, [1, 3, H, W], "NCHW")
    feeds = folder_feeds(photos, model)
    quantized = graphopt.quantize(model, feeds, target="onnxruntime", accuracy_target=None)
    assert run(quantized, feeds[0])["y"].shape == (1, 4, H, W)
