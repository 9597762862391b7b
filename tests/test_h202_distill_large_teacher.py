"""distill-targets runs a teacher over 2 GiB (its weights in external data).

onnxruntime takes a model over 2 GiB only from a file with external data; write_targets made
its session from the model in memory and refused: 'onnxruntime cannot load the model: it is
over 2 GiB, which onnxruntime takes only from a file with external data, not in memory', for a
teacher that onnxruntime runs from its file (measured: the 2.16 GB merged pair of
test_h202_merge_over_2gib, whose targets are written in 24 s now). Such a teacher is written
into a temporary folder with external data and run from there. Here the 2 GiB limit is
lowered to 4 kB (below the teacher's 8 kB of weights) and the session refuses a model in
memory past it, as onnxruntime does past 2 GiB.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import parser

from graphopt.backends import onnxruntime as ort_backend
from graphopt.distill import load_targets, write_targets
from graphopt.errors import BackendError
from graphopt.ir import model_io

W = np.linspace(-2, 2, 2000, dtype=np.float32).reshape(2, 1000)


def _teacher(path: Path) -> Path:
    model = parser.parse_model(
        '<ir_version: 8, opset_import: ["" : 13]>\n'
        "g (float[N,1000] x) => (float[N,1000] y) { t = Mul(x, w) y = Neg(t) }"
    )
    model.graph.initializer.append(onnx.numpy_helper.from_array(W[:1], "w"))
    model.graph.initializer.append(onnx.numpy_helper.from_array(W, "spare"))
    onnx.save(model, path, save_as_external_data=True, location="teacher.bin", size_threshold=0)
    return path


def test_a_teacher_over_2_gib_is_run_from_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = ort_backend.session
    sources: list[str] = []

    def session(model: object, **options: object) -> object:
        if isinstance(model, onnx.ModelProto) and model.ByteSize() >= model_io.TWO_GIB:
            raise BackendError(
                "onnxruntime cannot load the model: it is over 2 GiB, which onnxruntime takes "
                "only from a file with external data, not in memory"
            )
        sources.append("file" if isinstance(model, str | Path) else "memory")
        return real(model, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(model_io, "TWO_GIB", 4096)
    monkeypatch.setattr(ort_backend, "session", session)
    teacher = _teacher(tmp_path / "teacher.onnx")
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(202)
    samples = [rng.standard_normal((1, 1000)).astype(np.float32) for _ in range(3)]
    for i, sample in enumerate(samples):
        np.save(data / f"s{i}.npy", sample)
    manifest = write_targets(teacher, data, tmp_path / "targets")
    assert manifest["complete"] and sources == ["file"]
    stored = load_targets(tmp_path / "targets")["y"]
    np.testing.assert_array_equal(stored, -np.concatenate(samples) * W[:1])
