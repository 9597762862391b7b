"""`graphopt merge --verify` on models with a sequence output.

_verify compared every output as an array: a sequence output (onnxruntime returns a list)
was `AttributeError: 'list' object has no attribute 'shape'`, a traceback with exit 1, after
the merge itself had succeeded. Sequences (and maps) are compared leaf by leaf now, as
`optimize --verify` compares them.
"""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import parser

from graphopt.cli import main


def _save(tmp_path: Path, name: str, body: str) -> str:
    model = parser.parse_model(
        '<ir_version: 8, opset_import: ["" : 14]>\n'
        f"g (float[2,3] x) => (seq(float[2,3]) y, float[2,3] z) {{ {body} }}"
    )
    onnx.checker.check_model(model, full_check=True)
    path = tmp_path / name
    onnx.save(model, path)
    return str(path)


def test_merge_verify_compares_sequence_outputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = _save(tmp_path, "a.onnx", "z = Relu(x) y = SequenceConstruct(z, x)")
    b = _save(tmp_path, "b.onnx", "z = Neg(x) y = SequenceConstruct(x, z)")
    out = tmp_path / "m.onnx"
    assert main(["merge", a, b, "-o", str(out), "--verify"]) == 0
    printed = capsys.readouterr().out
    for name in ("a_y", "a_z", "b_y", "b_z"):
        assert f"verify: {name}: max abs diff 0\n" in printed
    assert out.is_file()


def test_difference_of_sequences_is_that_of_their_elements() -> None:
    import numpy as np

    from graphopt.commands.merge import _difference

    one, two = np.ones((2, 3), np.float32), np.full((2, 3), 3.0, np.float32)
    assert _difference([one, two], [one, two]) == (0.0, 3.0)
    assert _difference([one, two], [one, one]) == (2.0, 3.0)
    assert _difference([one, two], [one]) == (float("inf"), 0.0)  # another length
    assert _difference([{"a": 1.0}], [{"a": 1.5}]) == (0.5, 1.0)  # ZipMap's list of maps
