"""`graphopt check --shapes` refuses the profiles `graphopt build` refuses.

`--shapes` only named inputs whose dynamic-shape warning to drop: a name the model does not have,
or a rank or fixed dim its input contradicts, was ignored and check said "0 errors, 0
warnings"; the build then failed on the same flags.
"""

from __future__ import annotations

import onnx
import onnx.helper as oh
import pytest

from graphopt.cli import main


def _model(tmp_path, dims) -> str:  # type: ignore[no-untyped-def]
    graph = oh.make_graph(
        [oh.make_node("Relu", ["x"], ["y"], name="r")],
        "g",
        [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, dims)],
        [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, dims)],
    )
    path = tmp_path / "m.onnx"
    onnx.save(oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)], ir_version=8), path)
    return str(path)


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("q:1x4", "--shapes names q, which the model does not have (inputs: x)"),
        ("x:1x4x5", "rank 3 does not match the model's rank 2"),
        ("x:2x4", "axis 0 is fixed to 1 in the model, not 2"),
    ],
)
def test_a_profile_build_would_refuse_is_a_one_line_error(tmp_path, capsys, spec, needle):
    assert main(["check", _model(tmp_path, [1, 4]), "--shapes", spec]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err


def test_profiles_that_fit_still_check(tmp_path, capsys):
    assert main(["check", _model(tmp_path, ["N", 4]), "--shapes", "x:1x4,2x4,8x4"]) == 0
    assert "0 errors, 0 warnings" in capsys.readouterr().out
    assert main(["check", _model(tmp_path, ["N", 4])]) == 1  # the dynamic-shape warning
