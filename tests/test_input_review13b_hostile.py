"""Review 13b: damaged inputs that broke the one-line contract (one GraphoptError line, exit 2,
no traceback, no hang), each found by tests/test_input_fuzz13's runs.

- a model path that is /dev/zero (a device) was read until a MemoryError; an external data
  file that is a FIFO or device is refused in our words (a model path that is a FIFO is read:
  a pipe is a way to hand a model over);
- `graphopt.arrays.load_arrays` let numpy's tokenize.TokenError (a .npy header that is no
  Python literal) and MemoryError (a header declaring 10^12 values) out of build --calib,
  distill-targets --data and bench --inputs;
- optimize --verify-each raised onnx.checker's bare ValueError ("Invalid tensor data type
  99.") for a model with a tensor of an unknown element type.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import onnx
import onnx.helper as oh
import onnx.numpy_helper
import pytest

from graphopt.arrays import load_arrays
from graphopt.errors import LoadError
from graphopt.ir.model_io import load
from tests.test_input_fuzz13 import (
    _deadline,
    _main,
    _refused,
    _save,
    npy_with_header,
    seed_model,
    write_calib,
)

needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
needs_dev_zero = pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")

HEAD = "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }"
DAMAGED_HEADERS = {
    "huge": HEAD % "(1000000000000,)",  # MemoryError
    "unclosed": HEAD % "(1, 3, 8, 8",  # tokenize.TokenError
}


def _commands(model: Path, work: Path) -> list[list[str]]:
    """Every command that loads `model`, as argv."""
    out = str(work / "o.onnx")
    calib = write_calib(seed_model("conv"), work / "calib")
    return [
        ["optimize", str(model), "-o", out],
        ["inspect", str(model)],
        ["quantize", str(model), "-o", out, "--calib", str(calib), "--no-progress"],
        ["bench", str(model), "--runs", "1", "--warmup", "0", "--no-progress"],
        ["merge", str(model), str(model), "-o", out],
        ["split", str(model), "-o", out, "--outputs", "y"],
    ]


def _cli(argv: list[str], memory: int | None = None) -> tuple[int, str]:
    """`python -m graphopt argv` in a fresh process (killed after 60 s: a hang fails), its
    address space capped at `memory` bytes if given."""

    def cap() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    done = subprocess.run(
        [sys.executable, "-m", "graphopt", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        preexec_fn=cap if memory is not None else None,
    )
    return done.returncode, done.stderr


@needs_fifo
def test_a_model_path_that_is_a_fifo_is_still_read(tmp_path):
    """A pipe is a way to hand a model over (`graphopt optimize /dev/stdin`, `<(...)`): read,
    as tests/test_fixed_costs_load_mapping's named pipe is; only devices and sockets are
    refused. (Refusing FIFOs too, tried first, broke that feature.)"""
    import threading

    model = seed_model("conv")
    fifo = tmp_path / "m.onnx"
    os.mkfifo(fifo)
    data = model.SerializeToString()

    def feed() -> None:
        with open(fifo, "wb") as f:
            f.write(data)

    writer = threading.Thread(target=feed)
    writer.start()
    try:
        with _deadline(20):
            loaded = load(fifo)
    finally:
        writer.join(timeout=20)
    assert loaded.model.SerializeToString() == data


@pytest.mark.slow
@needs_dev_zero
def test_dev_zero_as_the_model_is_refused_not_read_until_memory_runs_out(tmp_path):
    # in fresh processes with their address space capped: unfixed, each read /dev/zero until
    # memory ran out (a MemoryError, or the OOM killer), which no test may risk in-process
    needle = "/dev/zero: is not a regular file (a character device)"
    for argv in _commands(Path("/dev/zero"), tmp_path):
        rc, err = _cli(argv, memory=3 << 30)
        assert rc == 2 and err.count("\n") == 1 and needle in err, (argv, rc, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calib"]


@needs_fifo
def test_an_external_data_file_that_is_a_fifo_is_refused_not_waited_on(tmp_path):
    w = onnx.numpy_helper.from_array(np.ones((1, 4), np.float32), "w")
    graph = oh.make_graph(
        [oh.make_node("Add", ["x", "w"], ["y"])],
        "g",
        [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])],
        [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])],
        [w],
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)])
    folder = tmp_path / "m"
    folder.mkdir()
    path = folder / "m.onnx"
    onnx.save_model(
        model, str(path), save_as_external_data=True, location="w.bin", size_threshold=0
    )
    load(path)  # the model as written loads
    (folder / "w.bin").unlink()
    os.mkfifo(folder / "w.bin")
    needle = "m.onnx: external data file 'w.bin' is not a regular file (a FIFO)"
    with (
        _deadline(20),
        pytest.raises(LoadError, match=needle.replace("(", r"\(").replace(")", r"\)")),
    ):
        load(path)
    _refused(["inspect", str(path)], tmp_path, needle)
    rc, err = _cli(["optimize", str(path), "-o", str(tmp_path / "o.onnx")])
    assert rc == 2 and err.count("\n") == 1 and needle in err, err


@pytest.mark.parametrize("damage", sorted(DAMAGED_HEADERS))
def test_load_arrays_refuses_a_damaged_npy_header_in_one_line(tmp_path, damage):
    x = np.zeros((1, 3, 8, 8), np.float32)
    path = tmp_path / "feed.npy"
    path.write_bytes(npy_with_header(DAMAGED_HEADERS[damage], x.tobytes()))
    with pytest.raises(ValueError) as e:
        load_arrays(path)
    assert len(str(e.value).splitlines()) == 1, e.value
    archive = tmp_path / "feed.npz"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("x.npy", npy_with_header(DAMAGED_HEADERS[damage], x.tobytes()))
    archive.write_bytes(buffer.getvalue())
    with pytest.raises(ValueError) as e:
        load_arrays(archive)
    assert len(str(e.value).splitlines()) == 1, e.value


@pytest.mark.parametrize("damage", sorted(DAMAGED_HEADERS))
def test_feeds_with_a_damaged_npy_header_are_refused_by_every_command(tmp_path, damage):
    model = seed_model("conv")
    path = _save(model, tmp_path)
    x = np.zeros((1, 3, 8, 8), np.float32)
    feeds = tmp_path / "feeds"
    feeds.mkdir()
    (feeds / "a.npy").write_bytes(npy_with_header(DAMAGED_HEADERS[damage], x.tobytes()))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("x.npy", npy_with_header(DAMAGED_HEADERS[damage], x.tobytes()))
    archive = tmp_path / "feeds.npz"
    archive.write_bytes(buffer.getvalue())
    out = str(tmp_path / "o")
    argv = ["distill-targets", str(path), "--data", str(feeds), "-o", out, "--no-progress"]
    _refused(argv, tmp_path, "a.npy")
    bench = ["bench", str(path), "--runs", "1", "--warmup", "0", "--no-progress"]
    _refused([*bench, "--inputs", str(archive)], tmp_path, "feeds.npz")
    rc, _, err = _main(["build", str(path), "-o", out, "--int8", "--calib", str(feeds)])
    assert rc == 2 and len(err.strip().splitlines()) == 1, err


def test_verify_each_on_a_tensor_of_an_unknown_element_type_is_no_traceback(tmp_path):
    # the input's checker error (a bare ValueError from onnx's C++) is known, as any other
    # checker error of the input: a warning, and --verify-each names only a pass's new error
    model = seed_model("conv")
    model.graph.input[0].type.tensor_type.elem_type = 99
    path = _save(model, tmp_path)
    # (since 29e7038 optimize refuses such a model after load, before any pass or checker)
    out = tmp_path / "o.onnx"
    rc, _, err = _main(["optimize", str(path), "-o", str(out), "--verify-each"])
    assert len(err.strip().splitlines()) == 1, err
    assert "graph input 'x' has element type 99, which ONNX does not define" in err, err
    assert rc == 2 and not out.exists(), (rc, err)
