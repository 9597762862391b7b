"""merge keeps the models' device configurations (ModelProto.configuration, IR 10) and split
gives a task its own back: merge dropped them, so the merged model's nodes named configurations
it did not declare, and split(task=...) gave none back."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import onnx.helper as h
import onnxruntime as ort
from onnx import TensorProto as T

import graphopt
from graphopt.multitask import merge_with_report


def _model(op: str, devices: int = 2, stage: int = 0, name: str = "cfg") -> onnx.ModelProto:
    """x -> Relu -> op -> y, both nodes placed on configuration `name` at pipeline `stage`."""
    nodes = [
        h.make_node("Relu", ["x"], ["r"], name="relu"),
        h.make_node(op, ["r"], ["y"], name="head"),
    ]
    for node in nodes:
        placed = node.device_configurations.add()
        placed.configuration_id = name
        placed.pipeline_stage = stage
    graph = h.make_graph(
        nodes,
        "g",
        [h.make_tensor_value_info("x", T.FLOAT, [2, 4])],
        [h.make_tensor_value_info("y", T.FLOAT, [2, 4])],
    )
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 21)], ir_version=10)
    config = model.configuration.add()
    config.name = name
    config.num_devices = devices
    config.device.extend(f"gpu{i}" for i in range(devices))
    return model


def _declared(model: onnx.ModelProto) -> list[tuple[str, int, list[str]]]:
    return [(c.name, c.num_devices, list(c.device)) for c in model.configuration]


def _referenced(model: onnx.ModelProto) -> set[str]:
    return {d.configuration_id for n in model.graph.node for d in n.device_configurations}


def test_agreeing_configurations_are_kept_once_and_split_gives_them_back():
    a, b = _model("Sigmoid"), _model("Tanh")
    merged = graphopt.merge([a, b], prefixes=["a_", "b_"])
    assert _declared(merged) == [("cfg", 2, ["gpu0", "gpu1"])]
    assert _referenced(merged) <= {c.name for c in merged.configuration}
    onnx.checker.check_model(merged, full_check=True)
    for task, own in (("a_", a), ("b_", b)):
        back = graphopt.split(merged, task=task)
        assert _declared(back) == _declared(own)
        assert [list(n.device_configurations) for n in back.graph.node] == [
            list(n.device_configurations) for n in own.graph.node
        ]
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    got = ort.InferenceSession(merged.SerializeToString()).run(None, {"x": x})
    np.testing.assert_allclose(got[1], np.tanh(np.maximum(x, 0)), rtol=1e-5, atol=1e-6)


def test_configurations_of_one_name_that_differ_are_renamed_and_said():
    a, c = _model("Sigmoid"), _model("Tanh", devices=4)
    merged, report = merge_with_report([a, c], prefixes=["a_", "c_"])
    assert _declared(merged) == [
        ("cfg", 2, ["gpu0", "gpu1"]),
        ("c_cfg", 4, ["gpu0", "gpu1", "gpu2", "gpu3"]),
    ]
    # c's nodes (the Relu too: placed otherwise, not shared) read its own configuration
    placed = {
        n.name: [d.configuration_id for d in n.device_configurations] for n in merged.graph.node
    }
    assert placed["relu"] == ["cfg"] and placed["head"] == ["cfg"]
    assert placed["c_relu"] == ["c_cfg"] and placed["c_head"] == ["c_cfg"]
    assert report.renamed_configurations == ["c_: cfg -> c_cfg"]
    assert "device configurations renamed (another model's differs): c_: cfg -> c_cfg" in (
        report.summary()
    )
    back = graphopt.split(merged, task="c_")
    assert _declared(back) == _declared(c)
    assert _referenced(back) == {"cfg"}
    kept = graphopt.split(merged, task="c_", strip_prefix="")  # merged names, its own only
    assert [d[0] for d in _declared(kept)] == ["c_cfg"]
    assert _referenced(kept) == {"c_cfg"}


def test_a_node_placed_otherwise_is_not_shared():
    a, b = _model("Sigmoid", stage=0), _model("Tanh", stage=1)
    merged, report = merge_with_report([a, b], prefixes=["a_", "b_"])
    assert report.shared_nodes == 0
    back = graphopt.split(merged, task="b_")
    stages = [d.pipeline_stage for n in back.graph.node for d in n.device_configurations]
    assert stages == [1, 1]
    _, report = merge_with_report([a, _model("Tanh", stage=0)], prefixes=["a_", "b_"])
    assert report.shared_nodes == 1  # placed alike: the Relu is shared as before


def test_a_task_without_configurations_gets_none_back():
    a = _model("Sigmoid")
    plain = onnx.ModelProto()
    plain.CopyFrom(_model("Tanh"))
    del plain.configuration[:]
    for node in plain.graph.node:
        del node.device_configurations[:]
    merged = graphopt.merge([a, plain], prefixes=["a_", "p_"])
    assert _declared(merged) == _declared(a)
    assert _declared(graphopt.split(merged, task="p_")) == []


def test_cli_merge_then_split_keeps_the_configuration(tmp_path):
    a, c = _model("Sigmoid"), _model("Tanh", devices=4)
    onnx.save(a, tmp_path / "a.onnx")
    onnx.save(c, tmp_path / "c.onnx")
    run = [sys.executable, "-m", "graphopt"]
    merged = subprocess.run(
        [
            *run,
            "merge",
            str(tmp_path / "a.onnx"),
            str(tmp_path / "c.onnx"),
            "-o",
            str(tmp_path / "m.onnx"),
        ],
        capture_output=True,
        text=True,
    )
    assert merged.returncode == 0, merged.stderr
    assert "device configurations renamed" in merged.stdout
    split = subprocess.run(
        [*run, "split", str(tmp_path / "m.onnx"), "--task", "c", "-o", str(tmp_path / "c2.onnx")],
        capture_output=True,
        text=True,
    )
    assert split.returncode == 0, split.stderr
    assert _declared(onnx.load(tmp_path / "c2.onnx")) == _declared(c)
