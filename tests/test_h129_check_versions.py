"""H129, `graphopt check --target tensorrt=VERSION` as a fresh user met it (H128's walkthrough):
`tensorrt=10.99`, a version that does not exist, was accepted and reported as "TensorRT 10.99"
(checked by the 10.15 rules); `tensorrt=8` was refused without the versions there are. Now one
line naming the versions graphopt.backends.trt_support models (10.0 to 10.15, 11.0 to 11.5)."""

from __future__ import annotations

import pytest

from graphopt.backends.trt_support import LATEST_MINOR
from graphopt.cli import main

pytestmark = pytest.mark.realmodel

KNOWN = "graphopt models TensorRT 10.0 to 10.15 and 11.0 to 11.5"


def test_the_known_range_is_the_tables_range() -> None:
    assert LATEST_MINOR == {10: 15, 11: 5}  # what KNOWN says; a new table changes both


@pytest.mark.parametrize("version", ["10.99", "10.16", "11.6", "8", "8.6", "abc"])
def test_a_version_graphopt_does_not_model_is_refused(real_model, capsys, version) -> None:  # type: ignore[no-untyped-def]
    target = f"tensorrt={version}"
    assert main(["check", str(real_model("common_det")), "--target", target]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"graphopt check: error: --target {target}: {KNOWN}, not {version} "
        "(tensorrt=10 or tensorrt=11: the newest of each)\n"
    )


@pytest.mark.parametrize(
    ("version", "said"),
    [("", "10.15"), ("10", "10.15"), ("11", "11.5"), ("10.0", "10.0"), ("10.8.0.43", "10.8")],
)
def test_the_versions_it_models_are_checked(real_model, capsys, version, said) -> None:  # type: ignore[no-untyped-def]
    model = str(real_model("common_det"))
    target = f"tensorrt={version}" if version else "tensorrt"
    assert main(["check", model, "--target", target]) == 0
    assert capsys.readouterr().out == f"{model}: TensorRT {said}: 0 errors, 0 warnings\n"
