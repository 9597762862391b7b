"""H186 (confirmed, no change): `graphopt optimize -p default` on a model of an IR version
before 3. IR 99 (newer than onnx knows) is one line and exit 2 already (test_h162_load_checks).

- IR 1 or 2 with an opset import (onnx.checker: "model with IR version < 3 cannot have
  opset_import specified"; onnxruntime runs it): loaded, and written at the IR version its
  opsets need, which the checker passes; the values are the model's.
- IR 2 without one (IR < 3 had no opset imports): one line, exit 2, no output file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from graphopt.cli import main
from tests.test_cli_review3 import one_line_error

FEEDS = {"x": np.array([[1.5, -2.0, 0.0, 3.0]], np.float32)}


def _model(ir: int) -> onnx.ModelProto:
    model = onnx.parser.parse_model(
        '<ir_version: 8, opset_import: ["" : 17]> g (float[1, 4] x) => (float[1, 4] y) '
        "{ h = Relu(x)\n y = Neg(h) }"
    )
    model.ir_version = ir
    return model


@pytest.mark.parametrize("ir", [1, 2])
def test_an_ir_before_3_with_opset_imports_is_written_at_the_ir_its_opsets_need(
    ir: int, tmp_path: Path
) -> None:
    model = _model(ir)
    with pytest.raises(onnx.checker.ValidationError, match="IR version < 3"):
        onnx.checker.check_model(model, full_check=True)
    source, out = tmp_path / "m.onnx", tmp_path / "out.onnx"
    source.write_bytes(model.SerializeToString())
    assert main(["optimize", str(source), "-o", str(out), "-p", "default"]) == 0
    written = onnx.load(str(out))
    assert written.ir_version == onnx.helper.find_min_ir_version_for(
        list(written.opset_import), True
    )
    onnx.checker.check_model(written, full_check=True)
    want = ort.InferenceSession(model.SerializeToString()).run(None, FEEDS)[0]
    got = ort.InferenceSession(str(out)).run(None, FEEDS)[0]
    np.testing.assert_array_equal(got, want)


def test_an_ir_2_model_without_opset_imports_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _model(2)
    del model.opset_import[:]
    source, out = tmp_path / "m.onnx", tmp_path / "out.onnx"
    source.write_bytes(model.SerializeToString())
    assert main(["optimize", str(source), "-o", str(out), "-p", "default"]) == 2
    one_line_error(capsys, "imports no default opset")
    assert not out.exists()
