"""H180: a `repeat:` group that stops at its `max_iterations` while its passes still change
the graph (no fixed point reached) was said only at -v (an info line naming the including
pipeline's file for a group written in an included one). Now it is one warning naming the
file and line the group is written in, and the run's report lists it (`capped_repeats`)."""

from __future__ import annotations

import logging

import pytest
from onnx import parser

from graphopt.api import optimize_with_report


def _model():  # type: ignore[no-untyped-def]
    """y = Relu(Identity(Identity(x))): eliminate-noops changes it once, then nothing."""
    return parser.parse_model(
        '<ir_version: 8, opset_import: ["" : 17]> g (float[1, 4] x) => (float[1, 4] y) '
        "{ a = Identity(x)\n b = Identity(a)\n y = Relu(b) }"
    )


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_repeat_group_stopped_by_its_cap_is_a_warning_and_in_the_report(
    tmp_path, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    recipe = tmp_path / "p.yaml"
    recipe.write_text(
        "name: p\npasses:\n  - eliminate-dead-code\n  - repeat:\n      max_iterations: 1\n"
        "      passes: [eliminate-noops]\n"
    )
    with caplog.at_level(logging.INFO, logger="graphopt"):
        out, report = optimize_with_report(_model(), str(recipe))
    assert [n.op_type for n in out.graph.node] == ["Relu"]
    where = f"{recipe}:4"
    assert report.capped_repeats == [where]
    assert _warnings(caplog) == [
        f"{where}: `repeat:` stopped at max_iterations: 1 while its passes still changed the "
        "graph (no fixed point reached); a higher max_iterations may optimize further"
    ]


def test_a_group_in_an_included_pipeline_names_its_own_file(
    tmp_path, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    inner = tmp_path / "inner.yaml"
    inner.write_text(
        "passes:\n  - repeat:\n      max_iterations: 1\n      passes: [eliminate-noops]\n"
    )
    outer = tmp_path / "outer.yaml"
    outer.write_text("name: o\npasses:\n  - eliminate-dead-code\n  - include: inner.yaml\n")
    with caplog.at_level(logging.WARNING, logger="graphopt"):
        _, report = optimize_with_report(_model(), str(outer))
    assert report.capped_repeats == [f"{inner}:2"]
    assert len(_warnings(caplog)) == 1 and _warnings(caplog)[0].startswith(f"{inner}:2: ")


def test_a_group_that_reaches_its_fixed_point_says_nothing(
    tmp_path, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    recipe = tmp_path / "p.yaml"
    recipe.write_text(
        "passes:\n  - repeat:\n      max_iterations: 2\n      passes: [eliminate-noops]\n"
    )
    with caplog.at_level(logging.WARNING, logger="graphopt"):
        out, report = optimize_with_report(_model(), str(recipe))
    assert [n.op_type for n in out.graph.node] == ["Relu"]
    assert report.capped_repeats == [] and _warnings(caplog) == []


@pytest.mark.realmodel
@pytest.mark.parametrize("name", ["common_det", "layout_cdla", "ppocr_det"])
def test_the_default_pipeline_reaches_its_fixed_points_on_the_detectors(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    from graphopt.realmodels import fetch_model

    with caplog.at_level(logging.WARNING, logger="graphopt"):
        _, report = optimize_with_report(str(fetch_model(name)), "default")
    assert report.capped_repeats == []
    assert not [m for m in _warnings(caplog) if "max_iterations" in m]
