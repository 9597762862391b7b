"""H129, the merge report as a fresh user met it (H128's walkthrough): common_det merged with the
PP-OCRv4 detector printed "separate: 609 nodes ... merged: 607 nodes ... (0 nodes ... shared)"
under rows of 277 and 330 nodes, and "converted to the common opset: common_det.onnx".

The 2 nodes are not the opset conversion's (11 -> 12 keeps common_det's 279 nodes): Slice_14
and Slice_34 repeat Slice_4 and Slice_24 (same op, inputs and attributes), and the merged graph
computes each once, so the task's row counts 277, while "separate" counted the model's own 279.
"separate" is now the rows' sum, as params and MACs were; a line names the repeats, and the
conversion line says what the conversion did to the nodes and why it was needed."""

from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.cli import main
from graphopt.multitask import merge_with_report


@pytest.mark.realmodel
def test_det_and_ocr_figures_add_up(real_model, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    det, ocr = str(real_model("common_det")), str(real_model("ppocr_det"))
    assert main(["merge", det, ocr, "-o", str(tmp_path / "m.onnx")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:2] == ["common_det_", "277"]
    assert lines[2].split()[:2] == ["ch_PP-OCRv4_det_infer_", "330"]
    # (H231: 6,196,061, the params the two models hold: 6 and 105 of them in constants of one
    # value under several names, which merge kept once)
    assert lines[3].startswith("separate: 607 nodes, 6,196,061 params, 3.18 GMACs; merged: 607 ")
    assert "(0 nodes, 4 params, 0.00 GMACs shared)" in lines[3]
    assert lines[4] == (
        "common_det_: 2 nodes of its model's 279 (2 Slice) repeat another node of that model: "
        "computed once, counted once above"
    )
    assert (
        f"common_det_: converted from opset 11 to the common opset 12, where MaxPool has a "
        f"newer schema ({det}): 279 nodes before and after, no op added or removed"
    ) in lines
    assert not any(line.startswith("converted to the common opset: ") for line in lines)

    _, report = merge_with_report([det, ocr])
    assert report.nodes_separate == sum(t.nodes for t in report.tasks) == 607
    assert report.nodes_separate - report.nodes_merged == report.shared_nodes == 0
    first = report.tasks[0]
    assert (first.model_nodes, first.repeated) == (279, {"Slice": 2})
    assert (first.converted_from, first.nodes_before_conversion) == (11, 279)
    assert first.conversion_ops == {} and first.newer_schemas == ["MaxPool"]
    assert report.converted == [det] and report.opset == 12  # as before, and the opset
    assert report.tasks[1].converted_from == 0 and report.tasks[1].repeated == {}


def _image(name: str) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, 1, 4, 4])


def _opset9_model() -> onnx.ModelProto:
    """Relu twice on x (one repeats the other), their sum, and an opset-9 Upsample, which the
    conversion to opset 13 turns into a Resize."""
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="r1"),
        helper.make_node("Relu", ["x"], ["r2"], name="r2"),
        helper.make_node("Add", ["r", "r2"], ["a"], name="a"),
        helper.make_node("Upsample", ["a", "s"], ["y"], name="up", mode="nearest"),
    ]
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 8, 8])
    scales = helper.make_tensor("s", TensorProto.FLOAT, [4], [1, 1, 2, 2])
    graph = helper.make_graph(nodes, "old", [_image("x")], [out], [scales])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)])
    model.ir_version = 4
    return model


def _opset13_model() -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="relu")], "new", [_image("x")], [_image("y")]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    return model


def test_repeats_and_a_conversion_that_changes_ops_are_said() -> None:
    _, report = merge_with_report([_opset9_model(), _opset13_model()])
    old, new = report.tasks
    # the second model's Relu(x) is the first's: shared between tasks, not a repeat
    assert (old.nodes, old.model_nodes, old.repeated) == (3, 4, {"Relu": 1})
    assert (new.nodes, new.model_nodes, new.repeated) == (1, 1, {})
    assert report.nodes_separate == 4 and report.nodes_merged == 3 and report.shared_nodes == 1
    assert old.conversion_ops == {"Resize": 1, "Upsample": -1}
    lines = report.summary().splitlines()
    assert "separate: 4 nodes, " in lines[3] and "; merged: 3 nodes, " in lines[3]
    assert lines[4] == (
        "m0_: 1 node of its model's 4 (1 Relu) repeats another node of that model: computed "
        "once, counted once above"
    )
    assert lines[5] == (
        "m0_: converted from opset 9 to the common opset 13, where Add, Relu, Upsample have a "
        "newer schema (model 0): 4 nodes -> 4 (+1 Resize, -1 Upsample)"
    )


def test_no_share_repeats_nothing() -> None:
    _, report = merge_with_report([_opset9_model(), _opset13_model()], share=False)
    assert [t.repeated for t in report.tasks] == [{}, {}]
    assert [t.nodes for t in report.tasks] == [t.model_nodes for t in report.tasks] == [4, 1]
    assert report.nodes_separate == report.nodes_merged == 5
    assert " repeat" not in report.summary()
