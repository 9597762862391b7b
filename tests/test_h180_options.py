"""H180: option values no pass can honour are refused before anything runs.

- `optimize(opt_level=3)` ran what 2 runs, and -2 what -1 runs, without a word (the CLI's
  `--opt-level` refused them already); a pipeline's `opt_level: 3` too. Passes have levels 0
  to 2 and -1 runs no pass: another level is a `PipelineError` (file:line from YAML).
- `ort-nchwc-layout: {block_size: 2**70}` (any power of two from 8) was taken at parse time
  and failed at run time ("Maximum allowed dimension exceeded", a PassError) or padded the
  filters to b channels; MLAS has block sizes 8 and 16 only.
"""

from __future__ import annotations

import re

import pytest
from onnx import parser

import graphopt
from graphopt.errors import PipelineError
from graphopt.pipeline import load_pipeline


def _model():  # type: ignore[no-untyped-def]
    return parser.parse_model(
        '<ir_version: 8, opset_import: ["" : 17]> g (float[1, 4] x) => (float[1, 4] y) '
        "{ a = Identity(x)\n y = Relu(a) }"
    )


@pytest.mark.parametrize("level", [3, 99, -2])
def test_optimize_refuses_an_opt_level_no_pass_has(level: int) -> None:
    with pytest.raises(PipelineError) as err:
        graphopt.optimize(_model(), opt_level=level)
    assert str(err.value) == (
        f"opt_level must be -1 to 2, got {level} (a pass runs at a level from its own, 0 to 2; "
        "-1 runs no pass)"
    )


@pytest.mark.parametrize("level, nodes", [(-1, 2), (0, 2), (2, 1)])
def test_the_levels_passes_have_are_taken(level: int, nodes: int) -> None:
    assert len(graphopt.optimize(_model(), opt_level=level).graph.node) == nodes


def test_a_pipeline_opt_level_above_2_names_the_file_and_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    recipe = tmp_path / "p.yaml"
    recipe.write_text("name: p\nopt_level: 3\npasses: [eliminate-dead-code]\n")
    with pytest.raises(PipelineError, match=r"p\.yaml:2: `opt_level:` must be -1 to 2, got 3 "):
        load_pipeline(str(recipe))


@pytest.mark.parametrize("block", [2**70, 1024, 32])
def test_an_absurd_nchwc_block_size_is_refused_at_parse_time(tmp_path, block: int) -> None:  # type: ignore[no-untyped-def]
    recipe = tmp_path / "p.yaml"
    recipe.write_text(
        f"name: p\npasses:\n  - ort-nchwc-layout:\n      fallback: true\n      block_size: {block}\n"
    )
    with pytest.raises(PipelineError) as err:
        load_pipeline(str(recipe))
    assert str(err.value) == (
        f"{recipe}:5: pass 'ort-nchwc-layout': block_size must be 0 (measure it), 8 (SSE/AVX2) "
        f"or 16 (AVX-512), the block sizes onnxruntime's NCHWc kernels have, got {block}"
    )


@pytest.mark.parametrize("block", [0, 8, 16])
def test_the_nchwc_block_sizes_onnxruntime_has_are_taken(tmp_path, block: int) -> None:  # type: ignore[no-untyped-def]
    recipe = tmp_path / "p.yaml"
    recipe.write_text(f"name: p\npasses:\n  - ort-nchwc-layout:\n      block_size: {block}\n")
    (step,) = load_pipeline(str(recipe)).steps
    assert step.pass_.block_size == block  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "options, said",
    [
        ({"block_size": 16.0}, "block_size must be 0 (measure it), 8 (SSE/AVX2) or 16 (AVX-512)"),
        ({"block_size": False}, "block_size must be 0 (measure it), 8 (SSE/AVX2) or 16 (AVX-512)"),
        ({"block_size": "16"}, "onnxruntime's NCHWc kernels have, got '16'"),
        ({"fallback": "no"}, "fallback must be True or False, got 'no'"),
    ],
)
def test_nchwc_options_from_python_that_only_look_right_are_refused(
    options: dict[str, object], said: str
) -> None:
    """16.0 passed the check and failed at run time ("'float' object cannot be interpreted as
    an integer", a PassError); False measured the block size; 'no' turned the guard on."""
    from graphopt.passes.ort_nchwc import OrtNchwcLayout

    with pytest.raises(ValueError, match=re.escape(said)):
        OrtNchwcLayout(**options)  # type: ignore[arg-type]


def test_a_numpy_integer_block_size_is_an_int() -> None:
    import numpy as np

    from graphopt.passes.ort_nchwc import OrtNchwcLayout

    made = OrtNchwcLayout(block_size=np.int64(16))  # type: ignore[arg-type]
    assert type(made.block_size) is int and made.block_size == 16
