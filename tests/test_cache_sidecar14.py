"""quantize --cache F writes the sidecar F.graphopt.json; --cache-in F applies it.

A TensorRT calibration cache holds scales only: the nodes the writing run kept float (its
accuracy search, the stem, keep_nodes) and, on target onnxruntime, the uint8 zero points were
lost on --cache-in (ppocr_det at 320x320 on two photographs: 74 nodes quantized instead of 51).
The sidecar carries them with the float model's digest, so the same float model read back from
the cache alone gives the same model, byte for byte, without calibrating. A sidecar for another
model (or beside a cache rewritten since, or for another target) is not applied, with one
warning; a damaged one, or one naming nodes the model lacks, is one line and exit 2.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest

from graphopt.cli import main
from graphopt.quant import cache as cache_io
from graphopt.quant import sidecar as sidecar_io
from graphopt.realmodels import IMAGE_NAMES, fetch_model, image_paths

pytestmark = pytest.mark.realmodel

SIZE = "320x320"


@dataclass
class Written:
    model: str  # the float ppocr_det
    folder: Path  # two real photographs
    cache: Path  # the cache the calibrating run wrote (its sidecar beside it)
    quantized: bytes  # the model it wrote
    seconds: float  # its wall time


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Written:
    root = tmp_path_factory.mktemp("sidecar14")
    folder = root / "calib"
    folder.mkdir()
    for path in image_paths(IMAGE_NAMES[1:3]):  # chelsea.png, coffee.png
        shutil.copy(path, folder)
    model = str(fetch_model("ppocr_det"))
    cache, out = root / "c.cache", root / "q1.onnx"
    argv = ["quantize", model, "-o", str(out), "--calib", str(folder), "--size", SIZE]
    clock = time.perf_counter()
    assert main([*argv, "--cache", str(cache), "--no-progress"]) == 0
    seconds = time.perf_counter() - clock
    return Written(model, folder, cache, out.read_bytes(), seconds)


def _cache_copy(written: Written, folder: Path, sidecar: bytes | None = None) -> Path:
    """A copy of the written cache in `folder`, with the sidecar's bytes beside it (the
    written one's when None)."""
    cache = folder / "in.cache"
    shutil.copy(written.cache, cache)
    side = sidecar_io.path_of(written.cache).read_bytes() if sidecar is None else sidecar
    sidecar_io.path_of(cache).write_bytes(side)
    return cache


def _sidecar(written: Written) -> dict:
    return json.loads(sidecar_io.path_of(written.cache).read_text())


def _quantize_from(cache: Path, out: Path, model: str, *more: str) -> int:
    return main(["quantize", model, "-o", str(out), "--cache-in", str(cache), *more])


def test_cache_in_with_the_sidecar_gives_the_same_model_byte_for_byte(
    written: Written, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog
) -> None:  # type: ignore[no-untyped-def]
    side = _sidecar(written)
    assert side["accuracy_search"]["nodes"], "the search kept nothing float: no test"
    out = tmp_path / "q2.onnx"
    capsys.readouterr()
    clock = time.perf_counter()
    assert _quantize_from(written.cache, out, written.model, "--no-progress") == 0
    seconds = time.perf_counter() - clock
    assert out.read_bytes() == written.quantized  # no calibration, no search: the same bytes
    assert "holds scales only" not in caplog.text and "not applied" not in caplog.text
    report = capsys.readouterr().out
    assert f"from {sidecar_io.path_of(written.cache)}" in report, report
    graph = onnx.load(str(out)).graph
    kept = {n.name: n for n in graph.node if n.name in side["accuracy_search"]["nodes"]}
    assert set(kept) == set(side["accuracy_search"]["nodes"])  # still there
    # float: a kept Conv reads its weights as they were (a group may be led by another op:
    # an Add with other fusion rules)
    dequantized = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    convs = [n for n in kept.values() if n.op_type == "Conv"]
    assert convs and not any(n.input[1] in dequantized for n in convs)
    print(f"calibrating run {written.seconds:.2f} s, --cache-in run {seconds:.2f} s")


def test_cache_in_with_calib_reruns_the_search_instead_of_the_sidecars(
    written: Written, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the search run on top of the sidecar's float groups went on past where the writing run
    # stopped (39 nodes quantized instead of 51): with feeds it chooses afresh, as it did there
    out = tmp_path / "q3.onnx"
    more = ("--calib", str(written.folder), "--size", SIZE, "--no-progress")
    assert _quantize_from(written.cache, out, written.model, *more) == 0
    assert out.read_bytes() == written.quantized
    assert "float choices (stem, keep_nodes) from" in capsys.readouterr().out


def test_the_cache_stays_a_tensorrt_cache_and_the_sidecar_names_model_and_cache(
    written: Written,
) -> None:
    text = written.cache.read_text()
    header, scales = cache_io.loads(text)
    assert header.startswith("TRT-") and len(scales) == len(text.splitlines()) - 1
    assert cache_io.dumps(scales, header) == text  # written as before: header, sorted hex lines
    side = _sidecar(written)
    assert side["format"] == "graphopt-calibration-sidecar" and side["version"] == 1
    assert side["model_sha256"] == sidecar_io.model_digest(onnx.load(written.model))
    assert side["cache_sha256"] == hashlib.sha256(written.cache.read_bytes()).hexdigest()
    assert side["target"] == "tensorrt" and side["stem"]  # the stem is float by default
    assert "activations" not in side  # int8 symmetric: the cache's scales say it all


def test_onnxruntime_target_keeps_its_zero_points(written: Written, tmp_path: Path) -> None:
    # the cache's amax/127 read back as scale and zero point 128: another uint8 model
    first, second, cache = tmp_path / "r1.onnx", tmp_path / "r2.onnx", tmp_path / "r.cache"
    argv = ["quantize", written.model, "-o", str(first), "--calib", str(written.folder)]
    argv += ["--size", SIZE, "--target", "onnxruntime", "--cache", str(cache), "--no-progress"]
    assert main(argv) == 0
    zero_points = [
        z for _, z in json.loads(sidecar_io.path_of(cache).read_text())["activations"].values()
    ]
    assert any(z != 128 for z in zero_points)
    more = ("--target", "onnxruntime", "--no-progress")
    assert _quantize_from(cache, second, written.model, *more) == 0
    assert second.read_bytes() == first.read_bytes()


def test_python_api_writes_and_reads_the_sidecar(written: Written, tmp_path: Path) -> None:
    import graphopt
    from graphopt.quant.api import quantize_with_report
    from graphopt.quant.data import PreprocessSpec, folder_feeds

    model = onnx.load(written.model)
    feeds = folder_feeds(written.folder, model, PreprocessSpec(size=(320, 320)))
    cache = tmp_path / "api.cache"
    first = graphopt.quantize(model, feeds, cache=cache)
    assert sidecar_io.path_of(cache).is_file()
    second, report = quantize_with_report(written.model, None, from_cache=str(cache))
    assert second.SerializeToString() == first.SerializeToString()
    assert report.sidecar == str(sidecar_io.path_of(cache)) and report.kept_float


def _quantized_count(model: onnx.ModelProto) -> int:
    return sum(n.op_type == "QuantizeLinear" for n in model.graph.node)


def test_a_sidecar_for_another_float_model_is_not_applied(
    written: Written, tmp_path: Path, caplog
) -> None:  # type: ignore[no-untyped-def]
    # the same network with one weight changed in its last bit (a retrained model, say): the
    # cache's scales still apply, the sidecar's float choices (made on the other) do not
    model = onnx.load(written.model)
    value = next(  # ppocr_det holds its weights in Constant nodes
        a.t
        for n in model.graph.node
        if n.op_type == "Constant"
        for a in n.attribute
        if a.name == "value" and a.t.data_type == onnx.TensorProto.FLOAT and len(a.t.dims) == 4
    )
    values = onnx.numpy_helper.to_array(value).copy()
    values.flat[0] = np.nextafter(values.flat[0], np.float32(np.inf))
    value.CopyFrom(onnx.numpy_helper.from_array(values, value.name))
    other = tmp_path / "other.onnx"
    onnx.save(model, str(other))
    with_side, alone = tmp_path / "with", tmp_path / "alone"
    with_side.mkdir()
    alone.mkdir()
    cache = _cache_copy(written, with_side)
    assert _quantize_from(cache, tmp_path / "a.onnx", str(other), "--no-progress") == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "not applied" in warnings[0], warnings
    assert "another model" in warnings[0] and "--calib" in warnings[0]
    # as if there were no sidecar
    shutil.copy(written.cache, alone / "in.cache")
    assert _quantize_from(alone / "in.cache", tmp_path / "b.onnx", str(other), "--no-progress") == 0
    produced = (tmp_path / "a.onnx").read_bytes()
    assert produced == (tmp_path / "b.onnx").read_bytes()
    fewer = onnx.load_model_from_string(written.quantized)
    assert _quantized_count(onnx.load_model_from_string(produced)) > _quantized_count(fewer)


def test_a_sidecar_beside_a_rewritten_cache_is_not_applied(
    written: Written, tmp_path: Path, caplog
) -> None:  # type: ignore[no-untyped-def]
    # one scale other than the one written (a cache retagged or written again by TensorRT with
    # the same scales is the same cache: tests/test_sidecar_review14.py)
    cache = _cache_copy(written, tmp_path)
    header, scales = cache_io.loads(cache.read_text())
    name = sorted(scales)[0]
    scales[name] = np.nextafter(scales[name], np.float32(np.inf))
    cache.write_text(cache_io.dumps(scales, header))
    assert _quantize_from(cache, tmp_path / "q.onnx", written.model, "--no-progress") == 0
    assert "scales were rewritten since" in caplog.text
    assert (tmp_path / "q.onnx").read_bytes() != written.quantized


def _damaged(written: Written) -> dict[str, bytes | str]:
    good = _sidecar(written)
    bad_types = {
        "a list": [],
        "stem not a list": {**good, "stem": "p2o.Conv.0"},
        "a node not a string": {**good, "keep_nodes": [3]},
        "version as text": {**good, "version": "1"},
        "newer version": {**good, "version": 2},
        "short digest": {**good, "model_sha256": "abc"},
        "unknown target": {**good, "target": "tpu"},
        "zero point 300": {**good, "activations": {"x": ["3c010a14", 300]}},
        "search not an object": {**good, "accuracy_search": ["p2o.Conv.3"]},
    }
    cases: dict[str, bytes | str] = {k: json.dumps(v).encode() for k, v in bad_types.items()}
    cases["empty"] = b""
    cases["not JSON"] = b"{"
    cases["not UTF-8"] = b'{"format": "\xff\xfe"}'
    cases["NaN"] = json.dumps({**good, "version": float("nan")}).encode()
    cases["nested 100000 deep"] = b"[" * 100000
    cases["huge"] = "huge"
    cases["fifo"] = "fifo"
    cases["device"] = "device"
    cases["folder"] = "folder"
    return cases


DAMAGES = [
    "a list",
    "stem not a list",
    "a node not a string",
    "version as text",
    "newer version",
    "short digest",
    "unknown target",
    "zero point 300",
    "search not an object",
    "empty",
    "not JSON",
    "not UTF-8",
    "NaN",
    "nested 100000 deep",
    "huge",
    "fifo",
    "device",
    "folder",
]


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_sidecar_is_one_line_and_exit_2(
    written: Written, tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    data = _damaged(written)[damage]
    cache = tmp_path / "in.cache"
    shutil.copy(written.cache, cache)
    side = sidecar_io.path_of(cache)
    if data == "huge":
        side.write_bytes(b"")
        os.truncate(side, sidecar_io.MAX_BYTES + 1)  # sparse: no disk used
    elif data == "fifo":
        os.mkfifo(side)  # no writer: an open would block for ever
    elif data == "device":
        side.symlink_to("/dev/zero")
    elif data == "folder":
        side.mkdir()
    else:
        assert isinstance(data, bytes)
        side.write_bytes(data)
    capsys.readouterr()
    out = tmp_path / "q.onnx"
    assert _quantize_from(cache, out, written.model, "--no-progress") == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert str(side) in err, err
    assert not out.exists()


def test_a_sidecar_naming_a_node_the_model_lacks_is_one_line_and_exit_2(
    written: Written, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    side = _sidecar(written)
    side["accuracy_search"]["nodes"].append("no_such_conv")
    cache = _cache_copy(written, tmp_path, json.dumps(side).encode())
    capsys.readouterr()
    out = tmp_path / "q.onnx"
    assert _quantize_from(cache, out, written.model, "--no-progress") == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "'no_such_conv'" in err, err
    assert not out.exists()


@pytest.mark.parametrize(
    ("out", "cache_out", "needle"),
    [
        ("in.cache.graphopt.json", None, "-o {d}/in.cache.graphopt.json is the --cache-in sidecar"),
        (
            "q.onnx",
            "in.cache.graphopt.json",
            "--cache {d}/in.cache.graphopt.json is the --cache-in",
        ),
        (
            "q.c.graphopt.json",
            "q.c",
            "--cache's sidecar {d}/q.c.graphopt.json is the -o model's path",
        ),
    ],
)
def test_a_sidecar_path_that_is_another_file_of_the_run_is_refused(
    written: Written,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    out: str,
    cache_out: str | None,
    needle: str,
) -> None:
    # the model written over the sidecar read, a cache written over it, the model written over
    # the sidecar of the cache written: refused before anything is loaded
    cache = _cache_copy(written, tmp_path)
    before = sidecar_io.path_of(cache).read_bytes()
    argv = ["quantize", written.model, "-o", str(tmp_path / out), "--cache-in", str(cache)]
    argv += ["--cache", str(tmp_path / cache_out)] if cache_out else []
    capsys.readouterr()
    assert main([*argv, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and needle.format(d=tmp_path) in err, err
    assert sidecar_io.path_of(cache).read_bytes() == before
