"""H221: `build` and `bench --backend tensorrt` with a `tensorrt` package whose import fails
with something other than ImportError or OSError (a RuntimeError or ValueError of its own
checks, a SyntaxError of a wheel built for another Python) ended in a traceback and exit 1;
an ImportError whose message ran to several lines made a several-line error. Each is now one
line naming the failure, exit 2, nothing written."""

from __future__ import annotations

import sys

import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.cli import main

HINT = "pip install 'graphopt[tensorrt]' (TensorRT needs an NVIDIA GPU and driver)"


def _model(path) -> None:  # type: ignore[no-untyped-def]
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="relu")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)


@pytest.mark.parametrize(
    ("source", "said"),
    [
        (
            'raise RuntimeError("CUDA initialization failure with error: 35")',
            "TensorRT cannot be imported (RuntimeError: CUDA initialization failure with error: 35)",
        ),
        (
            'raise ValueError("Could not find nvinfer")',
            "TensorRT cannot be imported (ValueError: Could not find nvinfer)",
        ),
        ("x = (", "TensorRT cannot be imported (SyntaxError: '(' was never closed"),
        (
            'raise ImportError("numpy.core.multiarray failed to import\\nsecond line")',
            "TensorRT is not installed (numpy.core.multiarray failed to import)",
        ),
    ],
)
def test_a_tensorrt_that_fails_to_import_is_one_line(
    tmp_path, monkeypatch, capsys, source, said
) -> None:  # type: ignore[no-untyped-def]
    package = tmp_path / "site" / "tensorrt"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(source + "\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "tensorrt", raising=False)
    _model(tmp_path / "m.onnx")
    (tmp_path / "e.plan").write_bytes(b"engine")
    runs = {
        "build": ["build", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "out.plan")],
        "bench": ["bench", str(tmp_path / "e.plan"), "--backend", "tensorrt"],
    }
    for command, argv in runs.items():
        monkeypatch.delitem(sys.modules, "tensorrt", raising=False)
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        assert err.startswith(f"graphopt {command}: error: {said}"), err
        assert err.endswith(f"{HINT}\n")
    assert not (tmp_path / "out.plan").exists()
