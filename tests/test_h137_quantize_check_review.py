"""H137, `graphopt quantize` / `graphopt check` as a user deploying detectors met them:

- a calibration cache cut short inside its last scale ('3d83edfa' as '3d83edf') was taken: 7
  hex digits are a normal float32 (~1.3e-36, as TensorRT writes unpadded hex), and the tensor
  was quantized with that scale, every value saturated;
- `--cache-in F --method percentile` ran without a word (the cache's calibrator chose the
  scales; --method changed nothing); `--cache-in F --entropy-floor 99` asked for `--method
  entropy`, which changed nothing either;
- `--cache-in F --keep-float 3` (no --calib) said "keep_float / accuracy_target need sample
  feeds to measure on: give sample_feeds >= 1 ... or sensitivity_data", the Python API's
  names; `--cache-in F --accuracy-target 0.01` skipped the search without a word;
- `check --target tensorrt=` (an empty version: `tensorrt=$TRT` with TRT unset) checked
  against TensorRT 10 without a word.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from graphopt.cli import main
from graphopt.errors import QuantizeError
from graphopt.quant import cache as cache_io
from graphopt.realmodels import IMAGE_NAMES, fetch_model, image_paths

CACHE = "TRT-8601-EntropyCalibration2\nx: 3c010a14\nrelu_1.tmp_0: 3d83edfa\n"


def _one_line(capsys: pytest.CaptureFixture[str], command: str) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    return err.removeprefix(f"graphopt {command}: error: ").rstrip("\n")


@pytest.mark.parametrize("cut", [1, 2, 5])  # 7, 6 and 3 of the last scale's 8 digits left
def test_a_cache_cut_inside_its_last_scale_is_refused(cut: int) -> None:
    text = CACHE[: -1 - cut]  # (the line break, then `cut` digits)
    with pytest.raises(QuantizeError, match=r"line 3: tensor 'relu_1.tmp_0': the file ends"):
        cache_io.loads(text, "c.cache")


def test_whole_caches_still_read() -> None:
    """A last line of 8 digits with no line break, or TensorRT's `name: 0`, is whole; so is a
    short (unpadded) scale followed by a line break."""
    assert cache_io.loads(CACHE.rstrip("\n"))[1]["relu_1.tmp_0"] == cache_io.parse_scale("3d83edfa")
    assert "y" not in cache_io.loads(CACHE + "y: 0")[1]
    assert cache_io.loads(CACHE + "y: 3d83edf\n")[1]["y"] == cache_io.parse_scale("03d83edf")


@pytest.mark.realmodel
def test_quantize_refuses_a_cut_cache_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "c.cache"
    cache.write_text(CACHE[:-2])
    out = tmp_path / "q.onnx"
    argv = ["quantize", str(fetch_model("ppocr_det")), "-o", str(out), "--no-progress"]
    assert main([*argv, "--cache-in", str(cache)]) == 2
    said = _one_line(capsys, "quantize")
    assert said.startswith(f"{cache}: line 3: tensor 'relu_1.tmp_0': the file ends inside its ")
    assert not out.exists()


@pytest.mark.realmodel
@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (["--method", "percentile"], "--method percentile calibrates --calib data; this run "),
        (["--method", "minmax", "--calib", "CALIB"], "--method minmax calibrates --calib data"),
        (["--keep-float", "3"], "--keep-float 3 ranks the groups by their error on --calib data"),
        (["--accuracy-target", "0.01"], "--accuracy-target 0.01 measures the output error on "),
        # it asked for --method entropy, which the run then refused
        (["--entropy-floor", "99"], "--entropy-floor is an option of calibration; this run "),
        (["--percentile", "99"], "--percentile is an option of calibration; this run takes "),
    ],
)
def test_quantize_cache_in_refuses_options_it_would_ignore(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], said: str
) -> None:
    calib = tmp_path / "calib"
    calib.mkdir()
    for image in image_paths(IMAGE_NAMES[1:2]):  # chelsea.png
        shutil.copy(image, calib)
    extra = [str(calib) if arg == "CALIB" else arg for arg in extra]
    cache = tmp_path / "c.cache"
    cache.write_text(CACHE)
    out = tmp_path / "q.onnx"
    argv = ["quantize", str(fetch_model("ppocr_det")), "-o", str(out), "--no-progress"]
    assert main([*argv, "--cache-in", str(cache), *extra]) == 2
    line = _one_line(capsys, "quantize")
    assert line.startswith(said) and f"--cache-in {cache}" in line, line
    assert not out.exists()


@pytest.mark.realmodel
def test_quantize_cache_in_accuracy_target_0_is_still_taken(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--accuracy-target 0` with --cache-in alone is meaningful (it quantizes what the
    sidecar's search kept float), and reaches the cache (here: one naming too few tensors)."""
    cache = tmp_path / "c.cache"
    cache.write_text(CACHE)
    argv = ["quantize", str(fetch_model("ppocr_det")), "-o", str(tmp_path / "q.onnx")]
    assert main([*argv, "--no-progress", "--cache-in", str(cache), "--accuracy-target", "0"]) == 2
    assert "no scale for" in _one_line(capsys, "quantize")


@pytest.mark.realmodel
@pytest.mark.parametrize("target", ["tensorrt=", "tensorrt= "])
def test_check_refuses_an_empty_tensorrt_version(
    capsys: pytest.CaptureFixture[str], target: str
) -> None:
    assert main(["check", "--target", target, str(fetch_model("ppocr_det"))]) == 2
    line = _one_line(capsys, "check")
    assert line == f"--target {target}: no TensorRT version after '='; use tensorrt, " + (
        "tensorrt=10 or tensorrt=11"
    ), line


@pytest.mark.realmodel
def test_a_cache_of_another_target_says_why_its_scales_are_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A tensorrt cache read for target onnxruntime (which quantizes more tensors) said "no
    scale for N tensor(s)" alone; its sidecar knew why, and now the error says it."""
    calib = tmp_path / "calib"
    calib.mkdir()
    for image in image_paths(IMAGE_NAMES[1:2]):  # chelsea.png
        shutil.copy(image, calib)
    cache = tmp_path / "c.cache"
    model = str(fetch_model("ppocr_det"))
    argv = ["quantize", model, "-o", str(tmp_path / "q.onnx"), "--no-progress"]
    more = ["--calib", str(calib), "--size", "320x320", "--accuracy-target", "0"]
    assert main([*argv, *more, "--cache", str(cache)]) == 0
    capsys.readouterr()
    out = tmp_path / "r.onnx"
    run = ["quantize", model, "-o", str(out), "--no-progress", "--cache-in", str(cache)]
    assert main([*run, "--target", "onnxruntime"]) == 2
    line = _one_line(capsys, "quantize")
    assert line.startswith(f"{cache}: no scale for "), line
    said = f"({cache}.graphopt.json: it was written for target tensorrt, this run quantizes for "
    assert line.endswith(said + "onnxruntime)"), line
    assert not out.exists()


@pytest.mark.realmodel
@pytest.mark.parametrize(
    ("extra", "said"),
    [
        # it wrote a file named '-' and '-.graphopt.json' beside it
        (["--calib", "CALIB", "--cache", "-"], "--cache -: a calibration cache is written to "),
        # the histogram methods run one feed at a time: ignored without a word
        (
            ["--calib", "CALIB", "--method", "entropy", "--parallel-feeds", "2"],
            "--parallel-feeds is for --method minmax; this run calibrates with entropy",
        ),
        (
            ["--cache-in", "CACHE", "--parallel-feeds", "2"],
            "--parallel-feeds is an option of calibration; this run takes its scales from ",
        ),
    ],
)
def test_quantize_refuses_an_ignored_parallel_feeds_and_cache_on_stdout(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    extra: list[str],
    said: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    calib = tmp_path / "calib"
    calib.mkdir()
    for image in image_paths(IMAGE_NAMES[1:2]):  # chelsea.png
        shutil.copy(image, calib)
    (tmp_path / "c.cache").write_text(CACHE)
    extra = [{"CALIB": str(calib), "CACHE": "c.cache"}.get(arg, arg) for arg in extra]
    argv = ["quantize", str(fetch_model("ppocr_det")), "-o", "q.onnx", "--no-progress"]
    argv += ["--size", "320x320"] if "--calib" in extra else []
    assert main([*argv, *extra]) == 2
    assert _one_line(capsys, "quantize").startswith(said)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.cache", "calib"]


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("size: [\n", 2, "expected the node content, but found '<stream end>'"),
        ("size: 640x640\nmean: a: b\n", 2, "mapping values are not allowed here"),
        ("size: 640x640\n\x01", 2, "unacceptable character #x0001"),
    ],
)
def test_a_preprocess_yaml_error_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, line: int, problem: str
) -> None:
    """PyYAML's message is several lines (the problem, then where, with a caret): the error
    was four lines long."""
    from graphopt.quant.data import PreprocessSpec

    spec = tmp_path / "pre.yaml"
    spec.write_text(text)
    with pytest.raises(QuantizeError) as caught:
        PreprocessSpec.from_yaml(spec)
    message = str(caught.value)
    assert "\n" not in message, message
    assert message.startswith(f"{spec}:{line}: cannot read preprocessing spec: {problem}")


@pytest.mark.realmodel
@pytest.mark.parametrize("version", ["10.x", "10..3", "1e3", "10.100", "10.3beta"])
def test_quantize_refuses_a_trt_version_it_would_misread(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], version: str
) -> None:
    """The cache header took the leading numbers: '10.x' and '10..3' were TRT-100000, '1e3'
    TRT-1000, '10.100' TRT-110000, without a word."""
    (tmp_path / "c.cache").write_text(CACHE)
    out, cache = tmp_path / "q.onnx", tmp_path / "new.cache"
    argv = ["quantize", str(fetch_model("ppocr_det")), "-o", str(out), "--no-progress"]
    argv += ["--cache-in", str(tmp_path / "c.cache"), "--cache", str(cache)]
    assert main([*argv, "--trt-version", version]) == 2
    line = _one_line(capsys, "quantize")
    assert line == (
        f"--trt-version: TensorRT version {version!r} is not a version like 10.3.0 (whole "
        "numbers separated by dots)"
    ), line
    assert not out.exists() and not cache.exists()


@pytest.mark.parametrize(
    "version", ["10", "10.3", "10.3.0", "10.3.0.26", "8.6.1.post1", "10.0.0b6"]
)
def test_quantize_takes_tensorrt_versions(version: str) -> None:
    from graphopt.quant.cache import refuse_loose_trt_version

    refuse_loose_trt_version(version)  # (no error)


def test_a_tensor_listed_twice_with_two_scales_is_refused() -> None:
    """graphopt took the last of the two lines without a word (another reader may take the
    first); the same scale twice, however written, is fine."""
    with pytest.raises(QuantizeError, match=r"line 4: tensor 'x' is listed again with another"):
        cache_io.loads(CACHE + "x: 3f800000\n", "c.cache")
    assert cache_io.loads(CACHE + "x: 3c010a14\n")[1]["x"] == cache_io.parse_scale("3c010a14")
    assert "y" not in cache_io.loads(CACHE + "y: 0\ny: 00000000\n")[1]


@pytest.mark.realmodel
def test_check_takes_the_model_after_shapes(capsys: pytest.CaptureFixture[str]) -> None:
    """`check --shapes x:1x3x640x640 model.onnx`: --shapes took the model as one more value,
    and argparse said "the following arguments are required: input"."""
    model = str(fetch_model("ppocr_det"))
    assert main(["check", "--shapes", "x:1x3x640x640", model]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{model}: TensorRT 10.") and out.endswith(": 0 errors, 0 warnings\n")
    assert main(["check", model]) == 1  # (its dynamic input without a profile: a warning)
    capsys.readouterr()
    assert main(["check", "--shapes", "x:1x3x640x640"]) == 2
    said = "the following arguments are required: input (see 'graphopt check --help')"
    assert _one_line(capsys, "check") == said
    # two values that are no NAME:DIMS and no model before them: which is the model cannot be
    # told (H154: the last was taken and the other called a bad shape); argparse's exit 2
    with pytest.raises(SystemExit) as exc:
        main(["check", "--shapes", "x:1x3x640x640", model, model])
    assert exc.value.code == 2
    said = _one_line(capsys, "check")
    assert said.startswith(f"--shapes {model!r}, {model!r}: 2 values are no NAME:DIMS"), said
    assert main(["check", model, "--shapes", "x:1x3x640x640", model]) == 2  # a model before
    assert _one_line(capsys, "check").startswith(f"bad --shapes {model!r}: expected NAME:")


@pytest.mark.realmodel
def test_cache_in_given_the_sidecar_says_which_file_is_the_cache(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "c.cache").write_text(CACHE)
    side = {"format": "graphopt-calibration-sidecar", "version": 1}
    (tmp_path / "c.cache.graphopt.json").write_text(json.dumps(side))
    (tmp_path / "copy.json").write_text(json.dumps(side))
    argv = ["quantize", str(fetch_model("ppocr_det")), "-o", str(tmp_path / "q.onnx")]
    not_cache = "not a TensorRT calibration cache (no 'TRT-' header line); it is graphopt's "
    assert main([*argv, "--cache-in", str(tmp_path / "c.cache.graphopt.json")]) == 2
    said = f"{tmp_path}/c.cache.graphopt.json: {not_cache}sidecar of a cache: give the cache, "
    assert _one_line(capsys, "quantize") == said + repr(f"{tmp_path}/c.cache")
    assert main([*argv, "--cache-in", str(tmp_path / "copy.json")]) == 2
    assert _one_line(capsys, "quantize") == f"{tmp_path}/copy.json: {not_cache}sidecar of a cache"


@pytest.mark.realmodel
def test_bgr_for_a_gray_input_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """ddddocr's OCR model takes one gray channel, the images' luma: --bgr changed nothing."""
    calib = tmp_path / "calib"
    calib.mkdir()
    for image in image_paths(IMAGE_NAMES[1:2]):  # chelsea.png
        shutil.copy(image, calib)
    out = tmp_path / "q.onnx"
    argv = ["quantize", str(fetch_model("ddddocr_ocr")), "-o", str(out), "--calib", str(calib)]
    assert main([*argv, "--size", "64x256", "--bgr", "--no-progress"]) == 2
    said = "input 'input1' takes one gray channel (the images' luma): --bgr does not apply"
    assert _one_line(capsys, "quantize").startswith(said)
    assert not out.exists()


@pytest.mark.realmodel
@pytest.mark.parametrize("how", ["flag", "yaml"])
def test_scale_0_over_images_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], how: str
) -> None:
    """--scale 0 made every pixel 0: quantize calibrated on constant images and exited 0."""
    calib = tmp_path / "calib"
    calib.mkdir()
    for image in image_paths(IMAGE_NAMES[1:2]):  # chelsea.png
        shutil.copy(image, calib)
    (tmp_path / "pre.yaml").write_text("size: 320x320\nscale: 0\n")
    option = ["--size", "320x320", "--scale", "0"]
    if how == "yaml":
        option = ["--preprocess", str(tmp_path / "pre.yaml")]
    out = tmp_path / "q.onnx"
    argv = ["quantize", str(fetch_model("ppocr_det")), "-o", str(out), "--calib", str(calib)]
    assert main([*argv, "--no-progress", *option]) == 2
    assert _one_line(capsys, "quantize").startswith("--scale 0 makes every pixel 0")
    assert not out.exists()


def test_a_cache_with_a_byte_order_mark_says_so() -> None:
    """A cache an editor saved with a BOM was 'not a TensorRT calibration cache (no 'TRT-'
    header line)', of a file whose first line is its header."""
    with pytest.raises(QuantizeError, match=r"^c.cache: starts with a byte order mark \(U\+FEFF"):
        cache_io.loads("\ufeff" + CACHE, "c.cache")
    assert cache_io.loads(CACHE.replace("\n", "\r\n"))[1] == cache_io.loads(CACHE)[1]  # (CRLF)
