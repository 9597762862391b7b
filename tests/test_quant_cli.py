"""`graphopt quantize` on folders of .npy feeds and of images; preprocessing specs; errors."""

from __future__ import annotations

import io

import numpy as np
import onnx
import pytest
from PIL import Image

from graphopt.cli import main
from graphopt.errors import QuantizeError
from graphopt.quant import cache as cache_io
from graphopt.quant.data import PreprocessSpec, folder_feeds, parse_size
from graphopt.quant.progress import Progress
from tests.test_quant_api import conv_model


@pytest.fixture
def model_path(tmp_path):
    path = tmp_path / "model.onnx"
    onnx.save(conv_model(), path)
    return path


def write_npy(folder, count: int = 4) -> None:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        np.save(folder / f"feed{i}.npy", rng.uniform(-1, 1, (1, 3, 16, 16)).astype(np.float32))


def write_images(folder, count: int = 3) -> None:
    folder.mkdir()
    for i in range(count):
        y, x = np.mgrid[0:24, 0:32]
        rgb = np.stack([x * 8, y * 10, (x + y + 40 * i) % 256], axis=-1).astype(np.uint8)
        Image.fromarray(rgb).save(folder / f"img{i}.png")


def test_cli_npy_folder_writes_model_and_cache(tmp_path, model_path, capsys) -> None:
    write_npy(tmp_path / "feeds")
    out, cache = tmp_path / "q.onnx", tmp_path / "q.cache"
    code = main(
        [
            "quantize",
            str(model_path),
            "-o",
            str(out),
            "--calib",
            str(tmp_path / "feeds"),
            "--cache",
            str(cache),
            "--method",
            "entropy",
            "--no-progress",
        ]
    )
    assert code == 0, capsys.readouterr().err
    q = onnx.load(out)
    onnx.checker.check_model(q, full_check=True)
    assert any(n.op_type == "QuantizeLinear" for n in q.graph.node)
    header, scales = cache_io.read(cache)
    assert header.endswith("EntropyCalibration2") and "x" in scales
    assert "4 feeds" in capsys.readouterr().out


def test_cli_defaults_are_the_api_defaults() -> None:
    import argparse
    import inspect

    from graphopt.commands import quantize as command
    from graphopt.quant.api import quantize_with_report

    parser = argparse.ArgumentParser()
    command.add_parser(parser.add_subparsers())
    args = parser.parse_args(["quantize", "in.onnx", "-o", "out.onnx"])
    api = inspect.signature(quantize_with_report).parameters
    assert args.method == api["method"].default
    assert args.accuracy_target == api["accuracy_target"].default
    assert args.target == api["target"].default
    assert args.percentile == api["percentile"].default
    assert args.entropy_floor == api["entropy_floor"].default
    assert args.histogram_sample == api["histogram_sample"].default


def test_cli_default_writes_a_minmax_cache(tmp_path, model_path) -> None:
    write_npy(tmp_path / "feeds")
    out, cache = tmp_path / "q.onnx", tmp_path / "q.cache"
    argv = ["quantize", str(model_path), "-o", str(out), "--calib", str(tmp_path / "feeds")]
    assert main([*argv, "--cache", str(cache), "--no-progress"]) == 0
    assert cache_io.read(cache)[0].endswith("-MinMaxCalibration")


def test_cli_cache_in_reproduces_the_model(tmp_path, model_path, capsys) -> None:
    write_npy(tmp_path / "feeds")
    a, b, cache = tmp_path / "a.onnx", tmp_path / "b.onnx", tmp_path / "c.cache"
    assert (
        main(
            [
                "quantize",
                str(model_path),
                "-o",
                str(a),
                "--calib",
                str(tmp_path / "feeds"),
                "--cache",
                str(cache),
                "--no-progress",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["quantize", str(model_path), "-o", str(b), "--cache-in", str(cache)]) == 0
    assert onnx.load(a).SerializeToString() == onnx.load(b).SerializeToString()
    # the scales are the cache's: no calibration method of this run is named
    said = capsys.readouterr().out
    assert f"(scales from cache {cache})" in said and "minmax" not in said


def test_cli_image_folder_with_flags_and_progress(tmp_path, model_path, capsys) -> None:
    write_images(tmp_path / "imgs")
    out = tmp_path / "q.onnx"
    code = main(
        [
            "quantize",
            str(model_path),
            "-o",
            str(out),
            "--calib",
            str(tmp_path / "imgs"),
            "--letterbox",
            "--scale",
            "0.00392",
            "--mean",
            "0.5",
            "--std",
            "0.5,0.5,0.5",
            "--bgr",
            "--target",
            "onnxruntime",
            "--method",
            "minmax",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "3/3" in captured.err and "ETA" in captured.err
    assert out.exists()


def test_cli_preprocess_yaml(tmp_path, model_path) -> None:
    write_images(tmp_path / "imgs", 2)
    spec = tmp_path / "pre.yaml"
    spec.write_text("size: [16, 16]\nscale: 0.00392\nmean: [0.485, 0.456, 0.406]\nstd: 0.25\n")
    loaded = PreprocessSpec.from_yaml(spec)
    assert loaded.size == (16, 16) and loaded.std == (0.25, 0.25, 0.25)
    data = folder_feeds(tmp_path / "imgs", conv_model(), loaded)
    first = data[0]["x"]
    assert first.shape == (1, 3, 16, 16) and first.dtype == np.float32
    assert first.min() < 0 < first.max()
    out = tmp_path / "q.onnx"
    assert (
        main(
            [
                "quantize",
                str(model_path),
                "-o",
                str(out),
                "--calib",
                str(tmp_path / "imgs"),
                "--preprocess",
                str(spec),
                "--no-progress",
            ]
        )
        == 0
    )


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("empty", "no calibration files"),
        ("broken_image", "cannot decode image"),
        ("wrong_shape", "has shape"),
        ("missing", ": no such folder"),  # "--calib DIR: no such folder", as build says
    ],
)
def test_cli_errors_exit_2_with_one_line(tmp_path, model_path, capsys, setup, message) -> None:
    folder = tmp_path / "calib"
    if setup == "empty":
        folder.mkdir()
    elif setup == "broken_image":
        folder.mkdir()
        (folder / "bad.png").write_bytes(b"not a png")
    elif setup == "wrong_shape":
        folder.mkdir()
        np.save(folder / "f.npy", np.zeros((1, 3, 8, 8), np.float32))
    out = tmp_path / "q.onnx"
    code = main(
        ["quantize", str(model_path), "-o", str(out), "--calib", str(folder), "--no-progress"]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_cli_needs_data_or_cache(tmp_path, model_path, capsys) -> None:
    assert main(["quantize", str(model_path), "-o", str(tmp_path / "q.onnx")]) == 2
    assert "--calib" in capsys.readouterr().err


def test_spec_errors() -> None:
    with pytest.raises(QuantizeError, match="unknown key"):
        PreprocessSpec.from_mapping({"resize": 3})
    with pytest.raises(QuantizeError, match="HxW"):
        parse_size("big")
    assert parse_size("480x640") == (480, 640)


def test_npz_and_batches(tmp_path) -> None:
    folder = tmp_path / "npz"
    folder.mkdir()
    model = conv_model()
    for i in range(3):
        np.savez(folder / f"f{i}.npz", x=np.full((1, 3, 16, 16), i, np.float32))
    data = folder_feeds(folder, model)
    assert len(data) == 3 and float(data[2]["x"][0, 0, 0, 0]) == 2.0
    with pytest.raises(QuantizeError, match="fixed batch"):
        folder_feeds(folder, model, batch_size=2)


def test_feeds_that_do_not_stack_into_a_batch(tmp_path) -> None:
    # np.concatenate's ValueError escaped as a traceback before
    model = conv_model()
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    for i, side in enumerate((16, 8)):
        np.save(tmp_path / f"f{i}.npy", np.zeros((1, 3, side, side), np.float32))
    with pytest.raises(QuantizeError, match=r"f0.npy..f1.npy do not stack into one batch"):
        folder_feeds(tmp_path, model, batch_size=2)[0]


def test_progress_line() -> None:
    stream = io.StringIO()
    bar = Progress(4, stream=stream)
    bar.update(0)
    bar.update(4)
    bar.close()
    assert "4/4" in stream.getvalue() and "100%" in stream.getvalue()


def test_cli_entropy_floor_reaches_the_calibrator(tmp_path, model_path, capsys) -> None:
    """`--entropy-floor 0` is TensorRT's plain threshold: never above the floored default."""
    feeds = tmp_path / "feeds"
    feeds.mkdir()
    rng = np.random.default_rng(1)
    for i in range(6):  # heavy tails: plain entropy clips the rare large values
        x = rng.laplace(0, 0.05, (1, 3, 16, 16)).astype(np.float32)
        x[0, :, i, i] = 8.0
        np.save(feeds / f"feed{i}.npy", x)
    scales = {}
    for floor in ("99.99", "0"):
        cache = tmp_path / f"c{floor}.cache"
        args = ["quantize", str(model_path), "-o", str(tmp_path / f"q{floor}.onnx")]
        args += [
            "--calib",
            str(tmp_path / "feeds"),
            "--cache",
            str(cache),
            "--no-progress",
            "--method",
            "entropy",
        ]
        assert main([*args, "--entropy-floor", floor]) == 0, capsys.readouterr().err
        scales[floor] = cache_io.read(cache)[1]
    assert scales["0"].keys() == scales["99.99"].keys()
    assert all(scales["0"][k] <= scales["99.99"][k] for k in scales["0"])
    assert any(scales["0"][k] < scales["99.99"][k] for k in scales["0"])
