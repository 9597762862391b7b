"""`graphopt merge --report` never names a model: it replaced an input model, or the merged
model it had just written ("wrote multi.onnx", holding JSON), with the sharing report."""

from __future__ import annotations

import onnx
import onnx.helper as oh
import pytest

from graphopt.cli import main


def _relu(path) -> str:  # type: ignore[no-untyped-def]
    graph = oh.make_graph(
        [oh.make_node("Relu", ["x"], ["y"], name="r")],
        "g",
        [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])],
        [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])],
    )
    onnx.save(oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)], ir_version=8), path)
    return str(path)


@pytest.mark.parametrize("clash", ["input", "-o"])
def test_report_on_a_model_path_is_refused(tmp_path, capsys, clash):
    a, b = _relu(tmp_path / "a.onnx"), _relu(tmp_path / "b.onnx")
    out = tmp_path / "multi.onnx"
    before = (tmp_path / "a.onnx").read_bytes()
    report = a if clash == "input" else str(out)
    assert main(["merge", a, b, "-o", str(out), "--report", report]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"is the {clash} model's path" in err
    assert (tmp_path / "a.onnx").read_bytes() == before
    assert not out.exists()


def test_report_elsewhere_is_written(tmp_path):
    a, b = _relu(tmp_path / "a.onnx"), _relu(tmp_path / "b.onnx")
    out = tmp_path / "multi.onnx"
    assert main(["merge", a, b, "-o", str(out), "--report", str(tmp_path / "r.json")]) == 0
    onnx.checker.check_model(onnx.load(str(out)))
    assert (tmp_path / "r.json").read_text().lstrip().startswith("{")
