"""Review 12, the CLI around pipelines: optimize --verify-level, bench's batch, and the
temporary folders a killed download leaves in the model cache. Each test failed before its
fix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx.helper as oh
import onnx.parser
import pytest

from graphopt import realmodels
from graphopt.backends import onnxruntime as ort_backend
from graphopt.cli import main

SMALL = """
<ir_version: 8, opset_import: ["" : 13]>
g (float[2,3] x) => (float[2,3] y) {
    i = Identity(x)
    y = Relu(i)
}
"""


@pytest.fixture
def model_path(tmp_path: Path) -> Path:
    path = tmp_path / "m.onnx"
    onnx.save(onnx.parser.parse_model(SMALL), str(path))
    return path


@pytest.fixture
def levels(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The graph optimization level of every onnxruntime session the backend makes."""
    seen: list[str] = []
    real = ort_backend.session

    def spy(model: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("level", "all"))
        return real(model, **kwargs)

    monkeypatch.setattr(ort_backend, "session", spy)
    return seen


# -- optimize --verify-level --------------------------------------------------------------------


def test_verify_runs_at_each_level_asked(model_path, tmp_path, capsys, levels):
    """--verify ran onnxruntime only at ORT_ENABLE_ALL; the ort-* pipelines' models are meant
    to run at ORT_DISABLE_ALL."""
    out = tmp_path / "o.onnx"
    args = ["optimize", str(model_path), "-o", str(out), "--verify"]
    assert main([*args, "--verify-level", "disable,all", "-p", "ort-fusions"]) == 0
    assert levels == ["disable", "disable", "all", "all"]  # original, optimized; per level
    report = capsys.readouterr().out
    assert "verify at disable: y: max abs diff 0" in report
    assert "verify at all: y: max abs diff 0" in report
    levels.clear()
    out.unlink()
    assert main(args) == 0  # the default is unchanged
    assert levels == ["all", "all"]
    assert "verify: y: max abs diff 0" in capsys.readouterr().out


def _exit_code(argv: list[str]) -> int:
    """main's return, or the code argparse exits with."""
    try:
        return main(argv)
    except SystemExit as e:
        return int(e.code or 0)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--verify", "--verify-level", "none"], "'none' is no onnxruntime level"),
        (["--verify", "--verify-level", ","], "is no onnxruntime level"),
        (
            ["--verify-level", "disable"],
            "--verify-level sets --verify's level: use it with --verify",
        ),
    ],
)
def test_bad_verify_level_is_one_line_exit_2(model_path, tmp_path, capsys, extra, message):
    out = tmp_path / "o.onnx"
    assert _exit_code(["optimize", str(model_path), "-o", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_verify_names_the_level_an_output_differs_at(model_path, tmp_path, capsys, monkeypatch):
    """A difference seen at one level only says which."""
    real = ort_backend.compare

    def compare(reference: Any, candidate: Any, feeds: Any, *, level: str = "all") -> Any:
        diffs = real(reference, candidate, feeds, level=level)
        if level == "disable":
            diffs[0].max_abs = 1.0
        return diffs

    monkeypatch.setattr(ort_backend, "compare", compare)
    out = tmp_path / "o.onnx"
    args = [
        "optimize",
        str(model_path),
        "-o",
        str(out),
        "--verify",
        "--verify-level",
        "all,disable",
    ]
    assert main(args) == 2
    assert "differs by 1 in onnxruntime at disable" in capsys.readouterr().err
    assert not out.exists()


# -- bench's batch ------------------------------------------------------------------------------


def _bench(path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, Any]:
    assert main(["bench", str(path), "--runs", "2", "--warmup", "0", "--json", *extra]) == 0
    return dict(json.loads(capsys.readouterr().out))


def _lstm_model(path: Path) -> None:
    """An LSTM over a sequence-first X [seq 5, batch 2, 4 features]."""
    rng = np.random.default_rng(0)
    hidden = 3
    weights = [
        onnx.numpy_helper.from_array(
            rng.standard_normal((1, 4 * hidden, 4)).astype(np.float32), "W"
        ),
        onnx.numpy_helper.from_array(
            rng.standard_normal((1, 4 * hidden, hidden)).astype(np.float32), "R"
        ),
    ]
    graph = oh.make_graph(
        [oh.make_node("LSTM", ["x", "W", "R"], ["y"], hidden_size=hidden)],
        "g",
        [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [5, 2, 4])],
        [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        weights,
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_bench_batch_of_a_sequence_first_input_is_its_dim_1(tmp_path, capsys):
    """The first input's dim 0 was the batch: 5 (the sequence length) for an LSTM's X."""
    path = tmp_path / "lstm.onnx"
    _lstm_model(path)
    result = _bench(path, capsys)
    assert result["batch"] == 2
    assert result["throughput"] == pytest.approx(2 * 1000.0 / result["mean_ms"])


def test_bench_batch_skips_a_first_input_without_a_batch(tmp_path, capsys):
    """A 1-D first input (a scale of 2 values) gave batch 2 for a batch of 3 images."""
    model = onnx.parser.parse_model(
        """<ir_version: 8, opset_import: ["" : 13]>
g (float[2] scale, float[3,1,4,4] images) => (float[3,1,4,4] y)
    <int64[1] start = {0}, int64[1] end = {1}> {
    s = Slice(scale, start, end)
    y = Mul(images, s)
}"""
    )
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    assert _bench(path, capsys)["batch"] == 3


def test_bench_batch_from_a_dim_named_batch(tmp_path, capsys):
    model = onnx.parser.parse_model(
        """<ir_version: 8, opset_import: ["" : 13]>
g (float[seq, batch, 4] x) => (float[seq, batch, 4] y) {
    y = Relu(x)
}"""
    )
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    assert _bench(path, capsys, "--shapes", "x:7x3x4")["batch"] == 3


def test_bench_batch_option_sets_the_samples_per_run(model_path, capsys):
    result = _bench(model_path, capsys, "--batch", "8")
    assert result["batch"] == 8
    assert result["throughput"] == pytest.approx(8 * 1000.0 / result["mean_ms"])
    assert main(["bench", str(model_path), "--batch", "0"]) == 2
    assert "--batch must be at least 1, got 0" in capsys.readouterr().err


# -- stale download folders ---------------------------------------------------------------------


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_killed_downloads_folder_is_removed_on_the_next_fetch(tmp_path, monkeypatch):
    """A download killed (SIGKILL) left its temporary folder in wheels/ for ever."""
    monkeypatch.setenv("GRAPHOPT_CACHE", str(tmp_path / "cache"))
    wheels = tmp_path / "cache" / "wheels"
    wheels.mkdir(parents=True)
    old = time.time() - 3600
    dead, alive = _dead_pid(), os.getppid()
    made = {}
    for key, name in [
        ("stale", f".download-{dead}-abc_12"),
        ("alive", f".download-{alive}-abc_12"),  # another process's download under way
        ("mine", f".download-{os.getpid()}-abc_12"),
        ("other", "tmpabc_123"),  # not a name of ours
    ]:
        made[key] = wheels / name
        made[key].mkdir()
        (made[key] / "partial.whl").write_bytes(b"half")
        os.utime(made[key], (old, old))
    made["new"] = wheels / f".download-{dead}-xyz"  # newer than this process: left
    made["new"].mkdir()

    def download(requirement: str, folder: Path) -> Path:
        wheel = folder / "okpy-1.0-py3-none-any.whl"
        wheel.write_bytes(b"")
        return wheel

    monkeypatch.setattr(realmodels, "_download", download)
    realmodels._wheel("okpy==1.0")
    left = {key for key, path in made.items() if path.exists()}
    assert left == {"alive", "mine", "other", "new"}


def test_the_download_folder_carries_the_name_cleaning_looks_for(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHOPT_CACHE", str(tmp_path / "cache"))
    folders: list[str] = []

    def pip(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        folder = Path(cmd[cmd.index("-d") + 1])
        folders.append(folder.name)
        (folder / "okpy-1.0-py3-none-any.whl").write_bytes(b"")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(realmodels.subprocess, "run", pip)
    wheel = realmodels._wheel("okpy==1.0")
    assert wheel.name == "okpy-1.0-py3-none-any.whl"
    (name,) = folders
    assert realmodels._DOWNLOAD_FOLDER.fullmatch(name)
    assert name.startswith(f".download-{os.getpid()}-")
    assert sorted(p.name for p in wheel.parent.iterdir()) == [wheel.name]


def test_bench_batch_is_not_read_from_an_overridable_weight(tmp_path, capsys):
    """A weight that is also a graph input, fed from --inputs, is no batch of samples."""
    weight = onnx.numpy_helper.from_array(np.ones((64, 3), np.float32), "w")
    graph = oh.make_graph(
        [oh.make_node("MatMul", ["x", "w"], ["y"])],
        "g",
        [
            oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 64]),
            oh.make_tensor_value_info("w", onnx.TensorProto.FLOAT, [64, 3]),
        ],
        [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, 3])],
        [weight],
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)])
    model.ir_version = 8
    path, feeds = tmp_path / "m.onnx", tmp_path / "f.npz"
    onnx.save(model, str(path))
    np.savez(feeds, w=np.ones((64, 3), np.float32), x=np.ones((2, 64), np.float32))
    assert _bench(path, capsys, "--inputs", str(feeds))["batch"] == 2
