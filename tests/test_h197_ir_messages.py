"""What graphopt says about an old IR version (H197, after H186).

- IR 1 or 2 with opset imports (onnx.checker refuses it, onnxruntime runs it) is written at
  the IR version its opsets need: an INFO line (-v) says so and why (was: not a word; an IR 3
  model whose weights were inputs had its warning already). Not a warning: one before a
  command's error made that error two lines (test_input_fuzz13's loop-ir-0 case).
- IR 3 without weights listed as inputs: an INFO line too.
- IR 2 without opset imports: the one-line error names the IR version.
"""

from __future__ import annotations

import logging
from pathlib import Path

import onnx
import pytest

import graphopt
from graphopt.cli import main
from tests.test_cli_review3 import one_line_error
from tests.test_h186_ir_versions import _model


@pytest.mark.parametrize("ir", [1, 2])
def test_an_ir_before_3_raised_to_what_its_opsets_need_says_so(
    ir: int, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="graphopt.ir"):
        out = graphopt.optimize(_model(ir), "default")
    assert out.ir_version == 8  # opset 17's
    raised = [r for r in caplog.records if "model raised to IR" in r.getMessage()]
    assert [r.levelno for r in raised] == [logging.INFO]
    assert (
        raised[0]
        .getMessage()
        .startswith(f"IR {ir} model raised to IR 8: its opset imports need IR 8")
    )
    assert "onnx.checker refuses" in raised[0].getMessage()


def test_an_ir_3_model_without_weight_inputs_is_raised_with_an_info_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="graphopt.ir"):
        out = graphopt.optimize(_model(3), "default")
    assert out.ir_version == 8
    raised = [r for r in caplog.records if "model raised to IR" in r.getMessage()]
    assert [(r.levelno, r.getMessage()) for r in raised] == [
        (logging.INFO, "IR 3 model raised to IR 8: its opset imports need IR 8")
    ]


def test_an_ir_2_model_without_opset_imports_names_its_ir_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _model(2)
    del model.opset_import[:]
    source, out = tmp_path / "m.onnx", tmp_path / "out.onnx"
    source.write_bytes(model.SerializeToString())
    assert main(["optimize", str(source), "-o", str(out), "-p", "default"]) == 2
    one_line_error(capsys, "(IR version 2) uses default-domain ops but imports no default opset")
    assert not out.exists()


def test_the_quantize_path_says_so_too(caplog: pytest.LogCaptureFixture) -> None:
    """quantize raises the IR version through the same function."""
    from graphopt.ir.model_io import weights_as_constants

    model = _model(2)
    with caplog.at_level(logging.INFO, logger="graphopt.ir"):
        weights_as_constants(model)
    assert model.ir_version == 8
    assert "IR 2 model raised to IR 8" in caplog.text
    onnx.checker.check_model(model, full_check=True)
