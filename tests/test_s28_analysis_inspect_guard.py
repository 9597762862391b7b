"""`graphopt inspect` of an ort-cpu model (the NCHWc guard) read the block size its If tests
from the model's metadata entry with `int()`: an entry that is no integer ("sixteen", edited
by hand) was a ValueError traceback (exit 1), and a guard whose Equal compares with another
block size than the entry says (`with_block_size`) was reported with the entry's. Now the
block size is the integer constant the guard's Equal reads (the entry only where there is
none; "?" where neither is an integer)."""

from __future__ import annotations

import onnx
import pytest

from graphopt.cli import main
from graphopt.commands.inspect import format_report, inspect_model
from graphopt.passes.nchwc_fallback import with_block_size
from graphopt.passes.ort_nchwc import BLOCK_SIZE_KEY
from tests.test_pass_nchwc_fallback import chain, guarded
from tests.test_pass_ort_nchwc import BLOCK, needs_nchwc

pytestmark = needs_nchwc


def _saved(tmp_path, model: onnx.ModelProto) -> str:  # type: ignore[no-untyped-def]
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    return str(path)


def _label(model: onnx.ModelProto, value: str) -> onnx.ModelProto:
    (entry,) = [p for p in model.metadata_props if p.key == BLOCK_SIZE_KEY]
    entry.value = value
    return model


@pytest.mark.parametrize("label", ["sixteen", "", "1.5", "²"])
def test_a_metadata_entry_that_is_no_integer_is_no_traceback(tmp_path, capsys, label):
    path = _saved(tmp_path, _label(guarded(chain())[0], label))
    assert main(["inspect", path]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err, captured.err
    assert f"NCHWc guard: If(this CPU's block size = {BLOCK}) runs the NCHWc graph" in (
        captured.out
    )
    assert main(["inspect", path, "--json"]) == 0
    assert f'"block_size": {BLOCK},' in capsys.readouterr().out


def test_the_block_size_is_the_one_the_guard_compares_with(tmp_path):
    other = 8 if BLOCK != 8 else 16
    model = with_block_size(guarded(chain())[0], other)  # (the entry still says BLOCK)
    report = inspect_model(_saved(tmp_path, model))
    assert report["nchwc_guard"]["block_size"] == other
    assert f"If(this CPU's block size = {other})" in format_report(report)


def test_the_entry_where_the_guard_reads_no_constant(tmp_path):
    """The entry where the Equal's block size is no constant; "?" where the entry is none."""
    model = guarded(chain())[0]
    model.graph.node[3].input[1] = "x"  # (a graph input: no constant)
    report = inspect_model(_saved(tmp_path, model))
    assert report["nchwc_guard"]["block_size"] == BLOCK
    report = inspect_model(_saved(tmp_path, _label(model, "many")))
    assert report["nchwc_guard"]["block_size"] is None
    assert "If(this CPU's block size = ?)" in format_report(report)


def test_a_guard_as_made_is_reported_as_before(tmp_path):
    report = inspect_model(_saved(tmp_path, guarded(chain())[0]))
    assert report["nchwc_guard"]["block_size"] == BLOCK
