"""`bench` times a model over 2 GiB given as a file with external data.

onnxruntime takes a model over 2 GiB only from a file with external data; bench made its
session from the model loaded into memory and refused such a file ("onnxruntime cannot load
the model: it is over 2 GiB, which onnxruntime takes only from a file with external data, not
in memory": measured on a 2.2 GB Gather table, exit 2), though what it was given is that file.
It now hands onnxruntime the path. Here the 2 GiB limit is lowered to 4 kB (below the model's
8 kB of weights) and the session refuses a model in memory past it, as onnxruntime does past
2 GiB (as tests/test_h202_distill_large_teacher.py does)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import parser

from graphopt.backends import onnxruntime as ort_backend
from graphopt.cli import main
from graphopt.errors import BackendError
from graphopt.ir import model_io

W = np.linspace(-2, 2, 2000, dtype=np.float32).reshape(2, 1000)


def _model(path: Path, external: bool) -> Path:
    model = parser.parse_model(
        '<ir_version: 8, opset_import: ["" : 13]>\n'
        "g (float[N,1000] x) => (float[N,1000] y) { t = Mul(x, w) y = Neg(t) }"
    )
    model.graph.initializer.append(onnx.numpy_helper.from_array(W[:1], "w"))
    model.graph.initializer.append(onnx.numpy_helper.from_array(W, "spare"))
    if external:
        onnx.save(model, path, save_as_external_data=True, location="m.bin", size_threshold=0)
    else:
        onnx.save(model, path)
    return path


@pytest.fixture
def sources(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What each session was made from ("file" or "memory"), with a 4 kB limit on memory."""
    real = ort_backend.session
    made: list[str] = []

    def session(model: object, **options: object) -> object:
        if isinstance(model, onnx.ModelProto) and model.ByteSize() >= model_io.TWO_GIB:
            raise BackendError(
                "onnxruntime cannot load the model: it is over 2 GiB, which onnxruntime takes "
                "only from a file with external data, not in memory"
            )
        made.append("file" if isinstance(model, str | Path) else "memory")
        return real(model, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(model_io, "TWO_GIB", 4096)
    monkeypatch.setattr(ort_backend, "session", session)
    return made


def _bench(path: Path) -> list[str]:
    return ["bench", str(path), "--runs", "2", "--warmup", "0", "--no-progress"]


def test_a_model_over_2_gib_with_external_data_is_timed_from_its_file(
    tmp_path: Path, sources: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    path = _model(tmp_path / "m.onnx", external=True)
    code = main(_bench(path))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert sources == ["file"]
    assert "2 runs" in captured.out and "synthetic inputs x 1x1000" in captured.out


def test_a_small_model_is_timed_from_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sources: list[str]
) -> None:
    """(control: passes on the parent too) the limit back at 2 GiB: the model in memory."""
    monkeypatch.setattr(model_io, "TWO_GIB", 2**31)
    assert main(_bench(_model(tmp_path / "m.onnx", external=True))) == 0
    assert main(_bench(_model(tmp_path / "inline.onnx", external=False))) == 0
    assert sources == ["memory", "memory"]
