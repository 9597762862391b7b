"""`materialize-fusion-groups` with `min_size` above `max_group_size` ran and materialized
nothing, without a word (every group is capped at max_group_size nodes, none reaches
min_size): now a PipelineError naming the file and line, as its other option checks."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

import graphopt
from graphopt.errors import PipelineError
from graphopt.passes.fusion_functions import MaterializeFusionGroups
from tests.test_cli_build_bench import conv_model


def _pipeline(tmp_path: Path, options: str) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(f"name: p\npasses:\n  - materialize-fusion-groups: {options}\n")
    return path


def test_min_size_above_the_cap_is_refused_where_the_pipeline_is_read(tmp_path: Path) -> None:
    path = _pipeline(tmp_path, "{min_size: 5, max_group_size: 3}")
    with pytest.raises(PipelineError) as info:
        graphopt.optimize(conv_model(), str(path))
    message = str(info.value)
    assert "p.yaml:3" in message and "\n" not in message
    assert "min_size (5) is more than max_group_size (3)" in message


def test_equal_sizes_are_accepted_and_materialize(tmp_path: Path) -> None:
    """min_size = max_group_size is a valid pair: a Conv + Relu group of 2 is materialized."""
    assert MaterializeFusionGroups(min_size=2, max_group_size=2).min_size == 2
    model = onnx.parser.parse_model(
        """<ir_version: 8, opset_import: ["" : 13]>
        g (float[1, 2, 4, 4] x) => (float[1, 2, 4, 4] y)
        <float[2, 2, 1, 1] w = {1, 0, 0, 1}>
        { c = Conv(x, w)
          y = Relu(c) }"""
    )
    options = "{min_size: 2, max_group_size: 2}"
    result = graphopt.optimize(model, str(_pipeline(tmp_path, options)))
    assert len(result.functions) == 1 and len(result.functions[0].node) == 2
