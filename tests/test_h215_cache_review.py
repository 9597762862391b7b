"""H215: TensorRT calibration caches as an old deployment has them, read and rewritten.

A cache TensorRT wrote lists a scale for every tensor of its network (Conv outputs, its own
`(Unnamed Layer* N)` tensors, `name: 0` where it found no range); graphopt quantizes the inputs
of Conv/Gemm/MatMul only. A cache rewritten from one read (`quantize --cache-in T --cache T`,
or `from_cache=` with `cache=`) kept only the tensors graphopt quantizes: the deployment's
`IInt8EntropyCalibrator2` reading it then found no scale for the rest.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphopt
from graphopt.cli import main
from graphopt.errors import QuantizeError
from graphopt.quant import cache as cache_io

# as TensorRT 8.6 writes it for `conv_model` (CRLF: copied through a Windows share), with a
# tensor of its own left at 0
TRT_CACHE = (
    "TRT-8601-EntropyCalibration2\r\n"
    "x: 3c010a14\r\n"
    "c1: 3d010a14\r\n"
    "r1: 3d010a14\r\n"
    "(Unnamed Layer* 3) [Shuffle]_output: 0\r\n"
    "c2: 3d810a14\r\n"
    "r2: 3d810a14\r\n"
    "y: 3e010a14\r\n"
)


def conv_model() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    weights = [
        numpy_helper.from_array((rng.standard_normal((8, 3, 3, 3)) * 0.2).astype(np.float32), "W1"),
        numpy_helper.from_array((rng.standard_normal((8, 8, 3, 3)) * 0.2).astype(np.float32), "W2"),
        numpy_helper.from_array((rng.standard_normal((4, 8, 1, 1)) * 0.2).astype(np.float32), "W3"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "W1"], ["c1"], name="conv1", pads=[1] * 4, strides=[2, 2]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "W2"], ["c2"], name="conv2", pads=[1] * 4, strides=[2, 2]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("Conv", ["r2", "W3"], ["y"], name="conv3"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 16, 16])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def _listed(text: str) -> dict[str, str]:
    return dict(cache_io.entries(text)[1])


def test_a_cache_rewritten_from_tensorrts_keeps_every_tensor_it_lists(tmp_path) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / "trt.cache"
    source.write_bytes(TRT_CACHE.encode())
    rewritten = tmp_path / "again.cache"
    first = graphopt.quantize(
        conv_model(), None, from_cache=source, cache=rewritten, accuracy_target=None
    )
    header, _ = cache_io.read(rewritten)
    assert header == "TRT-8601-EntropyCalibration2"
    lines = _listed(rewritten.read_text())
    # every tensor TensorRT listed, with its scale; its `name: 0` as TensorRT writes it
    assert {n: cache_io.parse_scale(v) for n, v in lines.items()} == {
        n: cache_io.parse_scale(v) for n, v in _listed(TRT_CACHE).items()
    }
    assert lines["(Unnamed Layer* 3) [Shuffle]_output"] == "0"
    # and the rewritten cache (its sidecar applied) gives the same model, byte for byte
    again = graphopt.quantize(conv_model(), None, from_cache=rewritten, accuracy_target=None)
    assert again.SerializeToString() == first.SerializeToString()


def test_cache_in_and_cache_naming_one_file_keep_its_lines(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    model = tmp_path / "m.onnx"
    onnx.save(conv_model(), model)
    cache = tmp_path / "trt.cache"
    cache.write_bytes(TRT_CACHE.encode())
    out = tmp_path / "q.onnx"
    args = ["quantize", str(model), "-o", str(out), "--no-progress", "--cache-in", str(cache)]
    assert main([*args, "--cache", str(cache)]) == 0
    assert set(_listed(cache.read_text())) == set(_listed(TRT_CACHE))
    made = out.read_bytes()
    assert main(args) == 0  # from the rewritten cache and its sidecar: the same model
    assert out.read_bytes() == made


def _image_folder(folder):  # type: ignore[no-untyped-def]
    import shutil

    from graphopt import realmodels

    folder.mkdir()
    for path in realmodels.image_paths()[:2]:
        shutil.copy(path, folder / path.name)
    return sorted(folder.iterdir())


@pytest.mark.parametrize("option", ["-o", "--cache"])
def test_no_output_over_a_calibration_image(tmp_path, option: str) -> None:  # type: ignore[no-untyped-def]
    """`-o` or `--cache` naming one of the --calib images replaced it (exit 0) once the run had
    read it: the user's calibration set lost a photograph."""
    model = tmp_path / "m.onnx"
    onnx.save(conv_model(), model)
    images = _image_folder(tmp_path / "images")
    kept = {path: path.read_bytes() for path in images}
    out = {"-o": str(images[0]), "--cache": str(tmp_path / "q.onnx")}
    args = ["quantize", str(model), "--no-progress", "--calib", str(tmp_path / "images")]
    args += ["--size", "64", "-o", out["-o"]]
    if option == "--cache":
        args += ["--cache", str(images[-1])]
    assert main(args) == 2
    assert {path: path.read_bytes() for path in images} == kept
    assert sorted((tmp_path / "images").iterdir()) == images  # no sidecar among them
    assert not (tmp_path / "q.onnx").exists()


@pytest.mark.parametrize(
    "over", ["model", "external data", "model as sidecar", "from_cache sidecar"]
)
def test_api_no_cache_over_a_file_the_run_reads(tmp_path, over: str) -> None:  # type: ignore[no-untyped-def]
    """graphopt.quantize("m.onnx", ..., cache="m.onnx") wrote the cache over the model (and
    its sidecar beside it), where `graphopt quantize` refuses the path; so did a cache named
    as the model's external data file, or as the sidecar of the cache read."""
    source = tmp_path / "trt.cache"
    source.write_bytes(TRT_CACHE.encode())
    sidecar = tmp_path / "trt.cache.graphopt.json"
    model = tmp_path / ("m.onnx.graphopt.json" if over == "model as sidecar" else "m.onnx")
    onnx.save(
        conv_model(),
        model,
        save_as_external_data=over == "external data",
        location="m.data",
        size_threshold=0,
        format="protobuf",  # (not JSON, as onnx takes a .json name)
    )
    if over == "from_cache sidecar":  # the sidecar of the cache read: written first
        graphopt.quantize(conv_model(), None, from_cache=source, cache=source, keep_stem=False)
    cache = {
        "model": model,
        "external data": tmp_path / "m.data",
        "model as sidecar": tmp_path / "m.onnx",
        "from_cache sidecar": sidecar,
    }[over]
    before = {path: path.read_bytes() for path in tmp_path.iterdir()}
    with pytest.raises(QuantizeError, match="this run reads"):
        graphopt.quantize(str(model), None, from_cache=source, cache=cache, accuracy_target=None)
    assert {path: path.read_bytes() for path in tmp_path.iterdir()} == before


def test_api_cache_and_from_cache_naming_one_file_is_fine(tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = tmp_path / "m.onnx"
    onnx.save(conv_model(), model)
    cache = tmp_path / "trt.cache"
    cache.write_bytes(TRT_CACHE.encode())
    first = graphopt.quantize(str(model), None, from_cache=cache, cache=cache, accuracy_target=None)
    again = graphopt.quantize(str(model), None, from_cache=cache, cache=cache, accuracy_target=None)
    assert first.SerializeToString() == again.SerializeToString()
    assert set(_listed(cache.read_text())) == set(_listed(TRT_CACHE))


@pytest.mark.parametrize("over", ["main.yaml", "inc.yaml"])
def test_api_no_cache_over_the_pipeline_files(tmp_path, over: str) -> None:  # type: ignore[no-untyped-def]
    """cache= naming the pipeline YAML (or a file it includes) replaced it with the cache once
    the model was optimized with it."""
    (tmp_path / "main.yaml").write_text("passes:\n  - include: inc.yaml\n")
    (tmp_path / "inc.yaml").write_text("passes:\n  - eliminate-dead-code\n")
    source = tmp_path / "trt.cache"
    source.write_bytes(TRT_CACHE.encode())
    before = {path: path.read_bytes() for path in tmp_path.iterdir()}
    with pytest.raises(QuantizeError, match="pipeline"):
        graphopt.quantize(
            conv_model(),
            None,
            from_cache=source,
            cache=tmp_path / over,
            pipeline=str(tmp_path / "main.yaml"),
            accuracy_target=None,
        )
    assert {path: path.read_bytes() for path in tmp_path.iterdir()} == before


def _spaced(model: onnx.ModelProto, name: str, spaced: str) -> onnx.ModelProto:
    for node in model.graph.node:
        node.input[:] = [spaced if n == name else n for n in node.input]
        node.output[:] = [spaced if n == name else n for n in node.output]
    onnx.checker.check_model(model, full_check=True)
    return model


def test_a_tensor_named_with_spaces_around_is_written_as_tensorrt_writes_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The reader takes 'x : 3c010a14' as tensor 'x ' (TensorRT's line for it, H181), but the
    writer refused the name: `quantize --cache` of a model with such a tensor (a valid ONNX
    name) failed once calibrated ("tensor name ' r1' cannot be written to a calibration
    cache", exit 2), and a cache rewritten from TensorRT's dropped the line."""
    model = tmp_path / "m.onnx"
    onnx.save(_spaced(conv_model(), "r1", " r1 "), model)
    _image_folder(tmp_path / "images")
    cache = tmp_path / "c.cache"
    out = tmp_path / "q.onnx"
    args = ["quantize", str(model), "-o", str(out), "--no-progress"]
    calib = ["--calib", str(tmp_path / "images"), "--size", "64", "--cache", str(cache)]
    assert main([*args, *calib]) == 0
    assert " r1 : " in cache.read_text()
    assert cache_io.read(cache)[1].keys() == {"x", " r1 ", "r2"}
    made = out.read_bytes()
    assert main([*args, "--cache-in", str(cache)]) == 0  # read back: the same model
    assert out.read_bytes() == made
    # rewritten from a cache holding such a line: kept
    text = TRT_CACHE.replace("c1: ", "c1 : ")
    assert "c1 " in cache_io.with_listed(text, {})


def _external_model(tmp_path):  # type: ignore[no-untyped-def]
    """conv_model, wider, saved with its weights in m.onnx.data."""
    rng = np.random.default_rng(1)
    model = conv_model()
    for tensor in model.graph.initializer:  # (int8 weights over 1 KiB: saved externally)
        shape = list(tensor.dims)
        shape[0] *= 8 if tensor.name != "W3" else 1
        if tensor.name in ("W2", "W3"):
            shape[1] *= 8
        tensor.CopyFrom(
            numpy_helper.from_array(
                (rng.standard_normal(shape) * 0.1).astype(np.float32), tensor.name
            )
        )
    path = tmp_path / "m.onnx"
    onnx.save(model, path, save_as_external_data=True, location="m.onnx.data", size_threshold=0)
    return path


def test_no_cache_where_the_output_model_saves_its_external_data(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A model with external data is saved so, its weights in `<-o>.data`: `--cache q.onnx.data`
    was written, then the model's weights over it (exit 0, "wrote q.onnx and q.onnx.data"),
    its sidecar left beside weights."""
    path = _external_model(tmp_path)
    _image_folder(tmp_path / "images")
    out = tmp_path / "q.onnx"
    args = ["quantize", str(path), "-o", str(out), "--no-progress", "--size", "64"]
    args += ["--calib", str(tmp_path / "images")]
    assert main([*args, "--cache", str(tmp_path / "q.onnx.data")]) == 2
    assert not out.exists() and not (tmp_path / "q.onnx.data").exists()
    assert main([*args, "--cache", str(tmp_path / "q.cache")]) == 0  # (saved with its data)
    assert (tmp_path / "q.onnx.data").stat().st_size > 1024
    assert cache_io.read(tmp_path / "q.cache")[1]


def test_no_output_data_file_over_the_cache_read(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`--cache-in q.onnx.data -o q.onnx` (a model with external data): the model's weights
    were saved over the cache read, a deployment's TensorRT cache (exit 0)."""
    path = _external_model(tmp_path)
    cache = tmp_path / "q.onnx.data"
    cache.write_bytes(TRT_CACHE.encode())
    out = tmp_path / "q.onnx"
    args = ["quantize", str(path), "-o", str(out), "--no-progress", "--cache-in", str(cache)]
    assert main(args) == 2
    assert cache.read_bytes() == TRT_CACHE.encode() and not out.exists()


@pytest.mark.realmodel
def test_layout_cdla_cache_through_tensorrt_and_back(real_model, real_feeds, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """layout_cdla calibrated on real photographs, its cache then written again as TensorRT
    writes one (TRT 10 header, CRLF, network order, upper-case hex, its own tensors, a
    `name: 0`): the sidecar still applies and the model from the cache is the calibrated one,
    byte for byte; rewritten through --cache-in/--cache (one file), every line stays and the
    model does not change."""
    path = str(real_model("layout_cdla"))
    cache = tmp_path / "layout.cache"
    made = graphopt.quantize(path, real_feeds("layout_cdla", 2), cache=cache).SerializeToString()
    assert graphopt.quantize(path, None, from_cache=cache).SerializeToString() == made
    header, items = cache_io.entries(cache.read_text())
    lines = [f"{name}: {value.upper()}" for name, value in reversed(items)]
    lines[3:3] = [
        "(Unnamed Layer* 7) [Shuffle]_output: 0",
        "(Unnamed Layer* 8) [Scale]_output: 3C010A14",
    ]
    header = header.replace("TRT-8601-", "TRT-100300-")
    cache.write_bytes(("\r\n".join([header, *lines]) + "\r\n").encode())
    listed = set(_listed(cache.read_text()))
    assert graphopt.quantize(path, None, from_cache=cache).SerializeToString() == made
    again = graphopt.quantize(path, None, from_cache=cache, cache=cache).SerializeToString()
    assert again == made
    assert set(_listed(cache.read_text())) == listed
    assert cache_io.read(cache)[0] == header
    assert graphopt.quantize(path, None, from_cache=cache).SerializeToString() == made


def test_a_tensor_name_no_cache_line_holds_is_refused_before_calibrating(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A tensor whose name breaks the line (a valid ONNX name) cannot be written to a cache:
    quantize(..., cache=) calibrated every feed, then failed at the write."""
    from graphopt import realmodels

    model = _spaced(conv_model(), "r1", "r\n1")  # (U+2028 is no line break to TensorRT)
    image = realmodels.images(1)[0][:64, :64].astype(np.float32) / 255
    feeds = [{"x": image.transpose(2, 0, 1)[None].copy()}]
    batches: list[int] = []
    with pytest.raises(QuantizeError, match="cannot be named in a calibration cache"):
        graphopt.quantize(
            model, feeds, cache=tmp_path / "c.cache", on_batch=batches.append, accuracy_target=None
        )
    assert batches == []
