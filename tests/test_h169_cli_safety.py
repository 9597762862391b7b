"""H169: `graphopt optimize` / `quantize` given bad paths or feeds say so in one line (exit 2),
write nothing, and leave the input as it was."""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.cli import main


def _tiny(folder, name="tiny.onnx"):
    w = numpy_helper.from_array(np.arange(16, dtype=np.float32).reshape(4, 4) / 16, "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Relu", ["m"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    path = folder / name
    onnx.save(model, path)
    return path


def _one_line_error(capsys, code):
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err] and "Traceback" not in err
    return err


@pytest.mark.parametrize(
    "flags",
    [
        ["-o", "loop.onnx"],
        ["-o", "out.onnx", "--verify", "--inputs", "loop.onnx"],
        ["-o", "out.onnx", "-p", "loop.onnx"],
        ["-o", "out.onnx", "--dump-dir", "loop.onnx"],
    ],
)
def test_a_symbolic_link_loop_is_a_one_line_error(tmp_path, monkeypatch, capsys, flags):
    # `ln -s loop.onnx loop.onnx`: Path.resolve raised RuntimeError("Symlink loop from ...")
    model = _tiny(tmp_path)
    os.symlink("loop.onnx", tmp_path / "loop.onnx")
    monkeypatch.chdir(tmp_path)
    before = sorted(os.listdir(tmp_path))
    err = _one_line_error(capsys, main(["optimize", str(model), *flags]))
    assert "loop.onnx" in err
    assert sorted(os.listdir(tmp_path)) == before


def test_an_output_that_is_a_link_loop_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    model = _tiny(tmp_path)
    os.symlink("loop.onnx", tmp_path / "loop.onnx")
    monkeypatch.chdir(tmp_path)
    err = _one_line_error(capsys, main(["optimize", str(model), "-o", "loop.onnx"]))
    assert err.endswith("-o loop.onnx: is a symbolic link loop; give a file name")


@pytest.mark.parametrize("loop", ["-o", "--cache"])
def test_quantize_output_or_cache_a_link_loop_is_one_line(tmp_path, monkeypatch, capsys, loop):
    model = _tiny(tmp_path)
    (tmp_path / "calib").mkdir()
    np.save(tmp_path / "calib" / "a.npy", np.ones((1, 4), np.float32))
    os.symlink("loop.onnx", tmp_path / "loop.onnx")
    monkeypatch.chdir(tmp_path)
    paths = {"-o": "out.onnx", "--cache": "out.cache", loop: "loop.onnx"}
    flags = ["-o", paths["-o"], "--cache", paths["--cache"], "--calib", "calib"]
    err = _one_line_error(capsys, main(["quantize", str(model), *flags]))
    assert f"{loop} loop.onnx: is a symbolic link loop" in err
    assert not (tmp_path / "out.onnx").exists() and not (tmp_path / "out.cache").exists()


@pytest.mark.realmodel
def test_an_output_reusing_the_inputs_data_file_is_refused_before_optimizing(
    tmp_path, real_model, capsys
):
    # khmer_seg keeps its weights in model.onnx.data; `optimize a.onnx -o model.onnx` beside it
    # would write model.onnx.data over them: refused, but only after the whole run (and its
    # --dump-dir dumps, --verify runs); now before any pass runs
    source = real_model("khmer_seg")
    (tmp_path / "a.onnx").write_bytes(source.read_bytes())
    data = source.with_name("model.onnx.data").read_bytes()
    (tmp_path / "model.onnx.data").write_bytes(data)
    dumps = tmp_path / "dumps"
    flags = ["-o", str(tmp_path / "model.onnx"), "--dump-dir", str(dumps)]
    err = _one_line_error(capsys, main(["optimize", str(tmp_path / "a.onnx"), *flags]))
    assert "its data file model.onnx.data is the input model's" in err
    assert not dumps.exists() and not (tmp_path / "model.onnx").exists()
    assert (tmp_path / "model.onnx.data").read_bytes() == data
    assert (tmp_path / "a.onnx").read_bytes() == source.read_bytes()


@pytest.mark.parametrize("signal_error", ["KeyboardInterrupt", "_Terminated"])
def test_an_interrupt_after_the_save_says_the_output_was_written(
    tmp_path, monkeypatch, capsys, signal_error
):
    # Ctrl-C (or SIGTERM) while --stats / --explain print, the model already saved: the CLI
    # said "interrupted; nothing was written" beside the file it had written
    import graphopt.cli
    import graphopt.commands.optimize as command

    error = KeyboardInterrupt if signal_error == "KeyboardInterrupt" else graphopt.cli._Terminated

    def interrupted(report: object) -> None:
        raise error

    monkeypatch.setattr(command, "print_stats", interrupted)
    out = tmp_path / "out.onnx"
    code = main(["optimize", str(_tiny(tmp_path)), "-o", str(out), "--stats"])
    assert code == (130 if error is KeyboardInterrupt else 143)
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err] and "nothing was written" not in err
    assert f"wrote {out}" in err
    assert onnx.load(str(out)).graph.output[0].name == "y"


def _identity_chain(folder, elem_type):
    nodes = [helper.make_node("Identity", ["x"], ["a"]), helper.make_node("Identity", ["a"], ["y"])]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", elem_type, [2, 3])],
        [helper.make_tensor_value_info("y", elem_type, [2, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    path = folder / "chain.onnx"
    onnx.save(model, path)
    return path


@pytest.mark.parametrize(
    "elem_type", [TensorProto.INT16, TensorProto.UINT16, TensorProto.UINT32, TensorProto.UINT64]
)
def test_verify_feeds_every_integer_input_onnxruntime_runs(tmp_path, capsys, elem_type):
    # "input 'x' has element type INT16, which example_feeds cannot make": --verify refused
    # models onnxruntime runs; an --inputs array of another dtype was said by onnxruntime only
    # after the whole optimization
    model = _identity_chain(tmp_path, elem_type)
    out = tmp_path / "out.onnx"
    assert main(["optimize", str(model), "-o", str(out), "--verify"]) == 0
    assert "verify: y: max abs diff 0" in capsys.readouterr().out
    np.savez(tmp_path / "feeds.npz", x=np.ones((2, 3), np.int32))
    dumps = tmp_path / "dumps"
    flags = ["--verify", "--inputs", str(tmp_path / "feeds.npz"), "--dump-dir", str(dumps)]
    code = main(["optimize", str(model), "-o", str(tmp_path / "other.onnx"), *flags])
    err = _one_line_error(capsys, code)
    want = onnx.helper.tensor_dtype_to_np_dtype(elem_type)
    assert err.endswith(f"x is int32, but the model's input x is {want}")
    assert not dumps.exists() and not (tmp_path / "other.onnx").exists()


def _conv(folder):
    w = np.linspace(-1, 1, 4 * 3 * 3 * 3, dtype=np.float32).reshape(4, 3, 3, 3)
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c"], ["y"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 32, 32])],
        [numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    path = folder / "conv.onnx"
    onnx.save(model, path)
    return path


@pytest.mark.realmodel
def test_calibration_entries_that_are_no_files_are_named_not_skipped_silently(
    tmp_path, caplog, capsys
):
    # a dangling link b.png (a data set half copied), a link loop, a FIFO c.npy and a folder
    # d.npz in --calib were left out without a word: "1 feed from calib", exit 0
    import logging

    from graphopt.realmodels import image_paths

    calib = tmp_path / "calib"
    calib.mkdir()
    (calib / "a.png").write_bytes(image_paths()[0].read_bytes())
    os.symlink(tmp_path / "gone.png", calib / "b.png")
    os.symlink("loop.jpg", calib / "loop.jpg")
    os.mkfifo(calib / "c.npy")
    (calib / "d.npz").mkdir()
    out = tmp_path / "q.onnx"
    with caplog.at_level(logging.WARNING, logger="graphopt.quant"):
        code = main(["quantize", str(_conv(tmp_path)), "-o", str(out), "--calib", str(calib)])
    assert code == 0 and out.is_file()
    assert "1 feed from" in capsys.readouterr().out
    warned = [r.getMessage() for r in caplog.records if "skipping" in r.getMessage()]
    assert len(warned) == 1
    for part in (
        "b.png (a link to nothing)",
        "c.npy (a FIFO)",
        "d.npz (a folder)",
        "loop.jpg (a symbolic link loop)",
    ):
        assert part in warned[0]


def test_verify_on_empty_outputs_says_nothing_was_compared(tmp_path, capsys):
    # an --inputs batch of 0 rows: every output is empty, and --verify said "max abs diff 0"
    np.savez(tmp_path / "feeds.npz", x=np.zeros((0, 4), np.float32))
    model = _tiny(tmp_path)  # (its input is declared [1, 4]: an empty batch needs a free dim)
    proto = onnx.load(str(model))
    for vi in (proto.graph.input[0], proto.graph.output[0]):
        vi.type.tensor_type.shape.dim[0].dim_param = "N"
    onnx.save(proto, model)
    flags = ["--verify", "--inputs", str(tmp_path / "feeds.npz")]
    assert main(["optimize", str(model), "-o", str(tmp_path / "out.onnx"), *flags]) == 0
    out = capsys.readouterr().out
    assert "verify: y: max abs diff 0, max rel diff 0 (an empty output: no values compared)" in out


@pytest.mark.parametrize(
    ("arrays", "said"),
    [
        ("positional", "no array for model input(s) x; the file holds arr_0"),
        ("none", "no array for model input(s) x; the file holds no arrays"),
    ],
)
def test_an_inputs_file_without_the_input_says_what_it_holds(tmp_path, capsys, arrays, said):
    feeds = tmp_path / "feeds.npz"
    if arrays == "positional":  # np.savez(f, x) keys it arr_0
        np.savez(feeds, np.ones((1, 4), np.float32))
    else:
        np.savez(feeds)
    flags = ["--verify", "--inputs", str(feeds)]
    code = main(["optimize", str(_tiny(tmp_path)), "-o", str(tmp_path / "o.onnx"), *flags])
    assert said in _one_line_error(capsys, code)


def test_an_inputs_array_for_a_model_without_inputs_says_so(tmp_path, capsys):
    # "x is no input of the model (inputs: )"
    w = numpy_helper.from_array(np.ones((2, 2), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Relu", ["w"], ["y"])],
        "g",
        [],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])],
        [w],
    )
    model = tmp_path / "constant.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), model)
    np.savez(tmp_path / "feeds.npz", x=np.ones((1, 4), np.float32))
    flags = ["--verify", "--inputs", str(tmp_path / "feeds.npz")]
    code = main(["optimize", str(model), "-o", str(tmp_path / "o.onnx"), *flags])
    assert _one_line_error(capsys, code).endswith("x is no input of the model (it has no inputs)")


@pytest.mark.parametrize("command", ["optimize", "quantize"])
def test_an_empty_output_path_is_said_as_empty(tmp_path, monkeypatch, capsys, command):
    # -o '' said "-o . is a folder; give a file name" (Path('') is '.')
    model = _tiny(tmp_path)
    monkeypatch.chdir(tmp_path)
    calib = ["--calib", str(tmp_path)] if command == "quantize" else []
    err = _one_line_error(capsys, main([command, str(model), "-o", "", *calib]))
    assert err.endswith("-o is empty; give a file name")


@pytest.mark.realmodel
def test_a_big_endian_feed_file_is_read_in_native_byte_order(tmp_path, capsys):
    # an .npz saved big-endian ('>f4', by another machine): --verify refused it as "x is >f4,
    # but the model's input x is float32"; read as it was, onnxruntime takes its bytes in its
    # own order (NaN and garbage), as bench's engine feeds and distill's integer samples were
    from graphopt.arrays import load_arrays
    from graphopt.backends.onnxruntime import run
    from graphopt.realmodels import image_paths, load_image

    pixels = load_image(image_paths()[0])[:32, :32].astype(np.float32) / 255
    x = pixels.transpose(2, 0, 1)[None]
    np.savez(tmp_path / "feeds.npz", x=x.astype(">f4"))
    loaded = load_arrays(tmp_path / "feeds.npz")
    assert isinstance(loaded, dict) and loaded["x"].dtype == np.float32
    np.testing.assert_array_equal(loaded["x"], x)
    model = _conv(tmp_path)
    want = run(onnx.load(str(model)), {"x": x})["y"]
    np.testing.assert_array_equal(run(onnx.load(str(model)), loaded)["y"], want)
    flags = ["--verify", "--inputs", str(tmp_path / "feeds.npz")]
    assert main(["optimize", str(model), "-o", str(tmp_path / "o.onnx"), *flags]) == 0
    assert "verify: y: max abs diff 0" in capsys.readouterr().out


def test_a_big_endian_calibration_npy_is_read_in_native_byte_order(tmp_path):
    from graphopt.quant.data import folder_feeds

    model = onnx.load(str(_tiny(tmp_path)))
    (tmp_path / "calib").mkdir()
    x = np.array([[0.5, -1.0, 2.0, 3.0]], np.float32)
    np.save(tmp_path / "calib" / "a.npy", x.astype(">f4"))
    np.savez(tmp_path / "calib" / "b.npz", x=x.astype(">f4"))
    for feed in folder_feeds(tmp_path / "calib", model):
        assert feed["x"].dtype == np.float32
        np.testing.assert_array_equal(feed["x"], x)


@pytest.mark.realmodel
def test_an_output_named_as_a_dump_in_the_dump_folder_is_refused(tmp_path, real_model, capsys):
    # layout_cdla's default run dumps 01-..04-fold-batchnorm.onnx; -o dumps/01-constants-to-
    # initializers.onnx replaced that dump with the final model, exit 0
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    out = dumps / "01-constants-to-initializers.onnx"
    flags = ["-o", str(out), "--dump-dir", str(dumps)]
    err = _one_line_error(capsys, main(["optimize", str(real_model("layout_cdla")), *flags]))
    assert "is named as the dumps in --dump-dir are (NN-PASS.onnx)" in err
    assert not any(dumps.iterdir())
    other = dumps / "out.onnx"  # another name in the folder is fine
    flags = ["-o", str(other), "--dump-dir", str(dumps)]
    assert main(["optimize", str(real_model("layout_cdla")), *flags]) == 0
    assert (dumps / "01-constants-to-initializers.onnx").is_file() and other.is_file()


def _two_outputs(names=("y", "z")):
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Neg", ["x"], ["z"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 4]) for n in names],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


@pytest.mark.parametrize("change", ["added first", "reordered"])
def test_verify_sees_an_output_added_or_reordered(change):
    # compare() looked only at the original's outputs, by name: an optimized model with its
    # outputs in another order, or a new graph output before the original's (a reader by
    # position gets another tensor), verified as "max abs diff 0"
    from graphopt.backends.onnxruntime import compare
    from graphopt.errors import VerifyError

    original = _two_outputs()
    candidate = _two_outputs(("z", "y"))
    if change == "added first":
        original.graph.output.pop(0)  # the original: z only; the candidate: z, y → y is new
        candidate = _two_outputs(("y", "z"))
        said = "the optimized model's outputs are in another order: y, z (the original: z)"
    else:
        said = "the optimized model's outputs are in another order: z, y (the original: y, z)"
    feeds = {"x": np.array([[-1.0, 0.0, 2.0, -3.5]], np.float32)}
    assert [d.max_abs for d in compare(original, original, feeds)] == [0.0] * len(
        original.graph.output
    )
    with pytest.raises(VerifyError) as e:
        compare(original, candidate, feeds)
    assert str(e.value) == said


def test_verify_compares_the_original_outputs_when_new_ones_follow_them(tmp_path):
    # expose-tensors appends outputs after the original's (README, distillation): --verify
    # compares the original's and leaves the new ones; 2dfe629 refused every such model
    from graphopt.backends.onnxruntime import compare

    original = _two_outputs()
    original.graph.output.pop()  # y only
    candidate = _two_outputs()  # y, then the new z
    feeds = {"x": np.array([[-1.0, 0.0, 2.0, -3.5]], np.float32)}
    assert [(d.output, d.max_abs) for d in compare(original, candidate, feeds)] == [("y", 0.0)]
    rules = tmp_path / "expose.yaml"
    rules.write_text("passes:\n  - expose-tensors: {names: [z], op_types: []}\n")
    model = tmp_path / "m.onnx"
    src = _two_outputs()
    src.graph.output.pop()
    onnx.save(src, model)
    out = tmp_path / "o.onnx"
    assert main(["optimize", str(model), "-o", str(out), "--pipeline", str(rules), "--verify"]) == 0
    assert [o.name for o in onnx.load(tmp_path / "o.onnx").graph.output] == ["y", "z"]


def test_a_calibration_folder_of_no_regular_files_is_one_line(tmp_path, capsys):
    # only a folder named sub.png and a dangling link b.npy: the warning naming them came on
    # its own line before the error's ("no calibration files"), two lines on stderr
    calib = tmp_path / "calib"
    calib.mkdir()
    (calib / "sub.png").mkdir()
    os.symlink(tmp_path / "gone.npy", calib / "b.npy")
    flags = ["-o", str(tmp_path / "q.onnx"), "--calib", str(calib)]
    err = _one_line_error(capsys, main(["quantize", str(_tiny(tmp_path)), *flags]))
    assert err.endswith(
        "no calibration files (.npy, .npz, .png, .jpg, .jpeg, .bmp, .tif, .tiff, .webp); "
        "skipped b.npy (a link to nothing), sub.png (a folder): not a regular file"
    )


@pytest.mark.realmodel
@pytest.mark.parametrize("command", ["optimize", "quantize"])
def test_an_output_link_beside_the_input_does_not_write_over_its_data(
    tmp_path, real_model, capsys, command
):
    # khmer_seg copied as in.onnx keeps its weights in model.onnx.data; -o model.onnx, a link
    # in that folder to a file elsewhere: the save writes the data beside the link
    # (model.onnx.data), but the check looked beside the link's target, passed, and the input
    # was left reading the new model's bytes (onnxruntime: "Deserialize tensor ... failed")
    source = real_model("khmer_seg")
    data = source.with_name("model.onnx.data").read_bytes()
    folder, elsewhere = tmp_path / "in", tmp_path / "elsewhere"
    folder.mkdir()
    elsewhere.mkdir()
    (folder / "in.onnx").write_bytes(source.read_bytes())
    (folder / "model.onnx.data").write_bytes(data)
    os.symlink(elsewhere / "target.onnx", folder / "model.onnx")
    (tmp_path / "calib").mkdir()
    from graphopt.realmodels import khmer_inputs

    for i, feed in enumerate(khmer_inputs(2)):  # the model's own feeds (real text)
        np.savez(tmp_path / "calib" / f"{i}.npz", **feed)
    calib = ["--calib", str(tmp_path / "calib")] if command == "quantize" else []
    flags = ["-o", str(folder / "model.onnx"), *calib]
    err = _one_line_error(capsys, main([command, str(folder / "in.onnx"), *flags]))
    assert "its data file model.onnx.data is the input model's" in err
    assert (folder / "model.onnx.data").read_bytes() == data
    assert not any(elsewhere.iterdir())


@pytest.mark.parametrize("given", ["out.onnx/.", "out.onnx/.."])
def test_an_output_ending_in_a_dot_folder_is_refused(tmp_path, monkeypatch, capsys, given):
    # pathlib reads 'out.onnx/.' as 'out.onnx': a file was written there, exit 0
    model = _tiny(tmp_path)
    monkeypatch.chdir(tmp_path)
    err = _one_line_error(capsys, main(["optimize", str(model), "-o", given]))
    assert err.endswith(f"-o {given} names a folder; give a file name")
    assert sorted(os.listdir(tmp_path)) == ["tiny.onnx"]


@pytest.mark.slow
def test_verify_of_a_model_over_2_gib_is_one_error_not_a_traceback():
    # session() serialized the ModelProto outside its try: protobuf's EncodeError ("Failed to
    # serialize proto") went up through compare() to the CLI as a traceback (--verify)
    from graphopt.backends.onnxruntime import compare
    from graphopt.errors import VerifyError

    size = 540_000_000  # float32: 2.16 GB
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, size])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    weight = model.graph.initializer.add()  # (make_graph's extend copies it: too large)
    weight.name, weight.data_type = "w", TensorProto.FLOAT
    weight.dims.extend([1, size])
    weight.raw_data = bytes(4 * size)
    with pytest.raises(VerifyError) as e:
        compare(model, model, {"x": np.ones((1, 1), np.float32)})
    assert str(e.value) == (
        "the original model does not load in onnxruntime: onnxruntime cannot load the model: "
        "it is over 2 GiB, which onnxruntime takes only from a file with external data, not "
        "in memory"
    )
