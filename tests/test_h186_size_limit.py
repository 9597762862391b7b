"""H186: constant-folding's `size_limit` below 1 is refused where the pipeline is read.

`constant-folding: {size_limit: -1}` (or 0) was taken and ran: a result no larger than its
inputs folds at any limit, so every value below 1 refused every growing fold alike, and 0,
which other tools read as "no limit", did the opposite of that. A float or a bool was refused
by the option's type check already (guarded here)."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from graphopt.cli import main
from graphopt.errors import PipelineError
from graphopt.passes.constant_folding import ConstantFolding
from graphopt.pipeline import load_pipeline
from tests.test_cli_review3 import one_line_error

RANGE = "size_limit must be 1 or more"


@pytest.mark.parametrize("value", ["-1", "0", "-9999999999999999999999"])
def test_a_size_limit_below_one_names_file_line_and_range(value: str, tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        f"passes:\n  - eliminate-dead-code\n  - constant-folding: {{size_limit: {value}}}\n"
    )
    with pytest.raises(PipelineError) as err:
        load_pipeline(path)
    assert str(err.value).startswith(f"{path}:3: pass 'constant-folding': {RANGE} ")
    assert str(err.value).endswith(f"got {int(value)}")


def test_a_block_style_size_limit_names_its_own_line(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "passes:\n  - constant-folding:\n      fold_shapes: false\n      size_limit: 0\n"
    )
    with pytest.raises(PipelineError, match=rf"p\.yaml:4: pass 'constant-folding': {RANGE}"):
        load_pipeline(path)


@pytest.mark.parametrize("value", ["1.5", "true", "1.0e+3"])
def test_a_float_or_bool_size_limit_is_refused_by_type(value: str, tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(f"passes:\n  - constant-folding: {{size_limit: {value}}}\n")
    with pytest.raises(PipelineError, match=r"p\.yaml:2: option 'size_limit' .* must be int"):
        load_pipeline(path)


def test_size_limit_one_is_taken(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("passes:\n  - constant-folding: {size_limit: 1}\n")
    (step,) = load_pipeline(path).pass_steps()
    assert step.pass_.size_limit == 1  # type: ignore[attr-defined]


@pytest.mark.parametrize("value", [-1, 0, 2.5, True])
def test_the_pass_made_in_code_refuses_it_too(value: object) -> None:
    with pytest.raises((ValueError, TypeError), match="size_limit must be"):
        ConstantFolding(size_limit=value)  # type: ignore[arg-type]


def test_cli_exit_2_one_line_no_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = onnx.parser.parse_model(
        '<ir_version: 8, opset_import: ["" : 17]> g (float[1, 4] x) => (float[1, 4] y) '
        "{ y = Relu(x) }"
    )
    source, out, pipeline = tmp_path / "m.onnx", tmp_path / "out.onnx", tmp_path / "p.yaml"
    source.write_bytes(model.SerializeToString())
    pipeline.write_text("passes:\n  - constant-folding: {size_limit: -1}\n")
    assert main(["optimize", str(source), "-o", str(out), "-p", str(pipeline)]) == 2
    one_line_error(capsys, f"p.yaml:2: pass 'constant-folding': {RANGE}")
    assert not out.exists()
