"""optimize(rule_files=...) names rules no step runs however the path is spelled (H218).

The warning of 9e4c1ea counted only the rules whose file name, as the rule loader keeps it
(`str(Path(path))`), equals the path as given: `rule_files="./r.yaml"` (or `"d//r.yaml"`,
`"d/./r.yaml"`) loads rules named from 'r.yaml', and the rules that no step runs were taken
without a word, as before 9e4c1ea.
"""

from __future__ import annotations

import pytest

import graphopt
from tests.fusion_models import build
from tests.test_h212_rule_files_no_step_runs import SILU
from tests.test_patterns_engine import QUICKGELU_RULE


@pytest.mark.parametrize("spelled", ["{d}/./r.yaml", "{d}//r.yaml", "{d}/r.yaml/"])
def test_rule_files_spelled_another_way_are_named_in_the_error(tmp_path, spelled: str) -> None:
    # (a warning until H227 made it an error)
    (tmp_path / "r.yaml").write_text(QUICKGELU_RULE)
    given = spelled.format(d=tmp_path)
    with pytest.raises(graphopt.PipelineError, match=r"\('my-silu'\) that no step runs"):
        graphopt.optimize(build(SILU), "default", rule_files=[given])
