"""graphopt.merge / graphopt.split: cross-model CSE, interface reconciliation, extraction."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphopt
from graphopt.backends.onnxruntime import run as ort_run
from graphopt.backends.onnxruntime import session
from graphopt.multitask import MergeError, merge_with_report, split, task_table
from graphopt.multitask.hashing import ConstantTable, node_key

RNG = np.random.default_rng(7)
W1 = RNG.standard_normal((8, 3, 3, 3)).astype(np.float32)
W2A = RNG.standard_normal((4, 8, 1, 1)).astype(np.float32)
W2B = RNG.standard_normal((2, 8, 1, 1)).astype(np.float32)


def task_model(
    head: np.ndarray,
    *,
    backbone: np.ndarray = W1,
    constant_node: bool = False,
    input_name: str = "x",
    size: int = 16,
    opset: int = 17,
    output: str = "y",
) -> onnx.ModelProto:
    """x → Conv(backbone) → Relu → Conv(head) → Sigmoid → output."""
    nodes = []
    inits = [numpy_helper.from_array(head, "head_w")]
    if constant_node:
        nodes.append(
            helper.make_node("Constant", [], ["bb_w"], value=numpy_helper.from_array(backbone, "v"))
        )
    else:
        inits.append(numpy_helper.from_array(backbone, "bb_w"))
    nodes += [
        helper.make_node("Conv", [input_name, "bb_w"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "head_w"], ["c2"], name="head_conv"),
        helper.make_node("Sigmoid", ["c2"], [output], name="head_act"),
    ]
    graph = helper.make_graph(
        nodes,
        "task",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, [1, head.shape[0], size, size])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def feed(name: str = "x", size: int = 16, seed: int = 0) -> dict[str, np.ndarray]:
    return {
        name: np.random.default_rng(seed).standard_normal((1, 3, size, size)).astype(np.float32)
    }


def assert_task_bitwise(merged, model, prefix, feeds, merged_feeds=None) -> None:
    expected = ort_run(model, feeds)
    got = ort_run(merged, merged_feeds or feeds)
    for name, value in expected.items():
        np.testing.assert_array_equal(got[prefix + name], value, err_msg=name)


def test_shared_backbone_is_kept_once_and_outputs_are_bitwise_equal():
    a, b = task_model(W2A), task_model(W2B)
    merged, report = merge_with_report([a, b], prefixes=["det_", "seg_"])
    onnx.checker.check_model(merged, full_check=True)
    ops = [n.op_type for n in merged.graph.node]
    assert ops.count("Conv") == 3  # one backbone conv + two heads
    assert ops.count("Relu") == 1
    assert [o.name for o in merged.graph.output] == ["det_y", "seg_y"]
    assert [i.name for i in merged.graph.input] == ["x"]
    assert_task_bitwise(merged, a, "det_", feed())
    assert_task_bitwise(merged, b, "seg_", feed())
    assert report.shared_nodes == 2
    assert report.shared_params == W1.size
    assert report.params_merged == W1.size + W2A.size + W2B.size
    assert report.nodes_separate == 8 and report.nodes_merged == 6
    # MACs: backbone conv 16*16*8 outputs × 3*3*3
    assert report.shared_macs == 16 * 16 * 8 * 27
    assert report.tasks[0].macs == 16 * 16 * 8 * 27 + 16 * 16 * 4 * 8
    assert report.macs_separate - report.macs_merged == report.shared_macs


def test_constant_node_and_initializer_with_equal_bits_are_one_tensor():
    a = task_model(W2A)
    b = task_model(W2B, constant_node=True)
    merged, report = merge_with_report([a, b])
    assert sum(n.op_type == "Conv" for n in merged.graph.node) == 3
    assert report.shared_params == W1.size
    assert_task_bitwise(merged, a, "m0_", feed())
    assert_task_bitwise(merged, b, "m1_", feed())


def test_different_backbone_weights_are_not_shared():
    other = W1.copy()
    other[0, 0, 0, 0] += 1e-3
    a, b = task_model(W2A), task_model(W2B, backbone=other)
    merged, report = merge_with_report([a, b])
    assert sum(n.op_type == "Conv" for n in merged.graph.node) == 4
    assert report.shared_nodes == 0
    assert_task_bitwise(merged, a, "m0_", feed())
    assert_task_bitwise(merged, b, "m1_", feed())


def test_tolerance_shares_weights_that_differ_by_less():
    other = (W1 * (1 + 1e-6)).astype(np.float32)
    a, b = task_model(W2A), task_model(W2B, backbone=other)
    assert merge_with_report([a, b])[1].shared_nodes == 0
    merged, report = merge_with_report([a, b], tolerance=1e-5)
    assert report.shared_nodes == 2
    assert_task_bitwise(merged, a, "m0_", feed())  # the first model's weights are kept
    expected = ort_run(b, feed())["y"]
    np.testing.assert_allclose(ort_run(merged, feed())["m1_y"], expected, rtol=1e-4, atol=1e-5)
    too_far = (W1 * 1.01).astype(np.float32)
    c = task_model(W2B, backbone=too_far)
    assert merge_with_report([a, c], tolerance=1e-5)[1].shared_nodes == 0


def test_constant_table_keys_values_not_names():
    table = ConstantTable()
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert table.key(x) == table.key(x.copy())
    assert table.key(x) != table.key(x.reshape(3, 2))
    assert table.key(x) != table.key(x.astype(np.float64))
    loose = ConstantTable(tolerance=1e-3)
    assert loose.key(x) == loose.key(x + 1e-4)
    assert loose.key(np.array([1, 2])) != loose.key(np.array([1, 3]))


def test_random_and_subgraph_nodes_are_never_shared():
    rnd = helper.make_node("RandomNormalLike", ["x"], ["r"])
    assert node_key(rnd, ["x"], {"": 17}) is None
    then = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["t"])],
        "then",
        [],
        [helper.make_tensor_value_info("t", TensorProto.FLOAT, None)],
    )
    iff = helper.make_node("If", ["c"], ["o"], then_branch=then, else_branch=then)
    assert node_key(iff, ["c"], {"": 17}) is None
    custom = helper.make_node("Foo", ["x"], ["o"], domain="my.domain")
    assert node_key(custom, ["x"], {"": 17, "my.domain": 1}) is None
    one = helper.make_node("MaxPool", ["x"], ["o"], kernel_shape=[2, 2])
    two = helper.make_node("MaxPool", ["x"], ["o", "idx"], kernel_shape=[2, 2])
    assert node_key(one, ["x"], {"": 17}) != node_key(two, ["x"], {"": 17})
    relu = helper.make_node("Relu", ["x"], ["o"])
    assert node_key(relu, ["x"], {"": 17}) == node_key(relu, ["x"], {"": 17})


def _if_model(threshold: float) -> onnx.ModelProto:
    """y = x * 2 if sum(x) > threshold else x - 1, with branch bodies reading outer tensors."""
    two = numpy_helper.from_array(np.array(2.0, np.float32), "two")
    one = numpy_helper.from_array(np.array(1.0, np.float32), "one")
    then = helper.make_graph(
        [helper.make_node("Mul", ["x", "two"], ["t_out"])],
        "then",
        [],
        [helper.make_tensor_value_info("t_out", TensorProto.FLOAT, None)],
    )
    other = helper.make_graph(
        [helper.make_node("Sub", ["x", "one"], ["e_out"])],
        "else",
        [],
        [helper.make_tensor_value_info("e_out", TensorProto.FLOAT, None)],
    )
    nodes = [
        helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
        helper.make_node("Greater", ["s", "thr"], ["c"]),
        helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other),
    ]
    graph = helper.make_graph(
        nodes,
        "iff",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
        initializer=[two, one, numpy_helper.from_array(np.array(threshold, np.float32), "thr")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_models_with_subgraphs_merge_correctly():
    a, b = _if_model(0.0), _if_model(100.0)
    merged, report = merge_with_report([a, b])
    onnx.checker.check_model(merged, full_check=True)
    assert sum(n.op_type == "If" for n in merged.graph.node) == 2
    assert report.shared_nodes == 1  # the ReduceSum
    x = {"x": np.array([1.0, 2.0, 3.0, 4.0], np.float32)}
    got = ort_run(merged, x)
    np.testing.assert_array_equal(got["m0_y"], x["x"] * 2)
    np.testing.assert_array_equal(got["m1_y"], x["x"] - 1)


def test_inputs_with_same_name_but_other_shape_are_kept_apart():
    a, b = task_model(W2A, size=16), task_model(W2B, size=8)
    merged, report = merge_with_report([a, b])
    assert [i.name for i in merged.graph.input] == ["x", "m1_x"]
    assert report.renamed_inputs == ["x -> m1_x"]
    assert report.shared_nodes == 0
    feeds = {**feed(), "m1_x": feed(size=8)["x"]}
    assert_task_bitwise(merged, b, "m1_", feed(size=8), feeds)


def test_input_map_unifies_differently_named_inputs():
    a, b = task_model(W2A), task_model(W2B, input_name="image")
    merged, report = merge_with_report([a, b])
    assert len(merged.graph.input) == 2 and report.shared_nodes == 0
    merged, report = merge_with_report([a, b], input_map={1: {"image": "x"}})
    assert [i.name for i in merged.graph.input] == ["x"]
    assert report.shared_nodes == 2
    assert report.tasks[1].inputs == {"image": "x"}
    assert_task_bitwise(merged, b, "m1_", feed("image"), feed("x"))
    with pytest.raises(MergeError, match="types differ"):
        merge_with_report(
            [a, task_model(W2B, input_name="image", size=8)], input_map=[None, {"image": "x"}]
        )
    with pytest.raises(MergeError, match="not inputs"):
        merge_with_report([a, b], input_map={"m1_": {"nope": "x"}})


def test_symbolic_dims_meet_static_ones():
    a = task_model(W2A)
    b = task_model(W2B)
    dims = b.graph.input[0].type.tensor_type.shape.dim
    dims[0].dim_param = "batch"
    merged = graphopt.merge([b, a])
    d = merged.graph.input[0].type.tensor_type.shape.dim
    assert d[0].dim_value == 1


def test_a_batch_declared_as_minus_1_meets_a_static_one():
    """dim_value -1 (older paddle2onnx) is no size: it meets 1 as 1, and a symbolic dim keeps
    its name instead of becoming -1."""
    a = task_model(W2A)
    b = task_model(W2B)
    b.graph.input[0].type.tensor_type.shape.dim[0].dim_value = -1
    merged = graphopt.merge([b, a])
    assert merged.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1
    a.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    merged = graphopt.merge([a, b])
    assert merged.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


def test_macs_of_dynamic_inputs_with_assumed_shapes():
    a = task_model(W2A)
    a.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "h"
    a.graph.input[0].type.tensor_type.shape.dim[3].dim_param = "w"
    _, report = merge_with_report([a])
    assert report.macs_merged == 0 and report.macs_unknown == 2
    _, report = merge_with_report([a], macs_input_shapes={"x": [1, 3, 16, 16]})
    assert report.macs_unknown == 0
    assert report.macs_merged == 16 * 16 * 8 * 27 + 16 * 16 * 4 * 8
    with pytest.raises(MergeError, match="not merged inputs"):
        merge_with_report([a], macs_input_shapes={"nope": [1]})


def test_opsets_are_reconciled():
    a = task_model(W2A, opset=14)
    b = task_model(W2B, opset=17)
    merged, report = merge_with_report([a, b])
    assert {o.domain: o.version for o in merged.opset_import} == {"": 17}
    assert report.converted == []  # Conv/Relu/Sigmoid did not change between 14 and 17
    assert report.shared_nodes == 2
    # ReduceSum moved `axes` from attribute to input in opset 13: the old model is converted.
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    old = helper.make_model(
        helper.make_graph(
            [helper.make_node("ReduceSum", ["x"], ["s"], axes=[1], keepdims=0)],
            "old",
            [x],
            [helper.make_tensor_value_info("s", TensorProto.FLOAT, [2])],
        ),
        opset_imports=[helper.make_opsetid("", 11)],
    )
    new = helper.make_model(
        helper.make_graph(
            [helper.make_node("Relu", ["x"], ["r"])],
            "new",
            [x],
            [helper.make_tensor_value_info("r", TensorProto.FLOAT, [2, 3])],
        ),
        opset_imports=[helper.make_opsetid("", 13)],
    )
    merged, report = merge_with_report([old, new])
    assert report.converted == ["model 0"]
    onnx.checker.check_model(merged, full_check=True)
    xs = {"x": np.arange(6, dtype=np.float32).reshape(2, 3)}
    np.testing.assert_array_equal(ort_run(merged, xs)["m0_s"], [3.0, 12.0])


def test_failed_opset_conversion_is_a_clear_error(monkeypatch):
    from onnx import version_converter

    def fail(model, version):
        raise RuntimeError("no adapter for op Foo")

    monkeypatch.setattr(version_converter, "convert_version", fail)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    old = helper.make_model(
        helper.make_graph(
            [helper.make_node("ReduceSum", ["x"], ["s"], axes=[1])],
            "old",
            [x],
            [helper.make_tensor_value_info("s", TensorProto.FLOAT, [2, 1])],
        ),
        opset_imports=[helper.make_opsetid("", 11)],
    )
    with pytest.raises(MergeError, match=r"model 0: needs default opset 17 .* no adapter"):
        graphopt.merge([old, task_model(W2A)])


def test_identical_models_get_an_identity_per_extra_output_and_split_restores_them():
    a = task_model(W2A)
    merged, report = merge_with_report([a, a], prefixes=["p_", "q_"])
    assert report.nodes_merged == 4 and report.shared_nodes == 4
    assert report.identities == 1  # q_y = Identity(p_y)
    assert report.shared_nodes == 4
    assert_task_bitwise(merged, a, "p_", feed())
    assert_task_bitwise(merged, a, "q_", feed())
    back = split(merged, task="q")
    assert [o.name for o in back.graph.output] == ["y"]
    assert [n.op_type for n in back.graph.node] == ["Conv", "Relu", "Conv", "Sigmoid"]
    np.testing.assert_array_equal(ort_run(back, feed())["y"], ort_run(a, feed())["y"])


def test_split_extracts_only_what_outputs_need():
    a, b = task_model(W2A), task_model(W2B, input_name="image")
    merged = graphopt.merge([a, b], prefixes=["a_", "b_"])
    only_b = graphopt.split(merged, ["b_y"])
    assert [i.name for i in only_b.graph.input] == ["image"]
    assert {t.name for t in only_b.graph.initializer} == {
        t.name
        for t in merged.graph.initializer
        if t.name in {n for x in only_b.graph.node for n in x.input}
    }
    assert len(only_b.graph.node) == 4
    assert task_table(only_b) == {}
    np.testing.assert_array_equal(
        ort_run(only_b, feed("image"))["b_y"], ort_run(b, feed("image"))["y"]
    )
    stripped = split(merged, ["b_y"], strip_prefix="b_")
    assert [o.name for o in stripped.graph.output] == ["y"]
    # an intermediate tensor as output (its type comes from shape inference)
    mid = split(merged, ["r1"])
    assert [n.op_type for n in mid.graph.node] == ["Conv", "Relu"]
    assert mid.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    with pytest.raises(MergeError, match="no tensor named 'nope'"):
        split(merged, ["nope"])
    with pytest.raises(MergeError, match="no task 'zz'"):
        split(merged, task="zz")


def test_metadata_is_merged_and_records_tasks():
    a, b = task_model(W2A), task_model(W2B)
    onnx.helper.set_model_props(a, {"author": "a", "license": "MIT"})
    onnx.helper.set_model_props(b, {"author": "b", "license": "MIT"})
    merged = graphopt.merge([a, b])
    props = {p.key: p.value for p in merged.metadata_props}
    assert props["author"] == "a" and props["m1_author"] == "b" and props["license"] == "MIT"
    assert task_table(merged)["m1_"]["outputs"] == {"y": "m1_y"}


def test_share_false_places_models_side_by_side():
    a, b = task_model(W2A), task_model(W2B)
    merged, report = merge_with_report([a, b], share=False)
    assert report.shared_nodes == 0 and report.shared_params == 0
    assert sum(n.op_type == "Conv" for n in merged.graph.node) == 4
    assert_task_bitwise(merged, b, "m1_", feed())


def test_prefix_errors_and_defaults(tmp_path):
    a, b = task_model(W2A), task_model(W2B)
    with pytest.raises(MergeError, match="prefixes must differ"):
        graphopt.merge([a, b], prefixes=["p_", "p_"])
    with pytest.raises(MergeError, match="2 prefixes given for 1"):
        graphopt.merge([a], prefixes=["p_", "q_"])
    onnx.save(a, tmp_path / "det.onnx")
    onnx.save(b, tmp_path / "seg.onnx")
    merged = graphopt.merge([tmp_path / "det.onnx", tmp_path / "seg.onnx"])
    assert [o.name for o in merged.graph.output] == ["det_y", "seg_y"]


def test_caller_models_are_not_mutated():
    a, b = task_model(W2A), task_model(W2B)
    before = a.SerializeToString(), b.SerializeToString()
    graphopt.merge([a, b])
    assert (a.SerializeToString(), b.SerializeToString()) == before


def test_cli_macs_shape_option(tmp_path, capsys):
    from graphopt.cli import main

    m = task_model(W2A)
    m.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "h"
    onnx.save(m, tmp_path / "det.onnx")
    out, rep = str(tmp_path / "m.onnx"), tmp_path / "r.json"
    args = ["merge", str(tmp_path / "det.onnx"), "-o", out, "--report", str(rep)]
    assert main([*args, "--macs-shape", "x=1,3,16,16"]) == 0
    assert json.loads(rep.read_text())["macs_merged"] == 16 * 16 * 8 * 27 + 16 * 16 * 4 * 8
    assert main([*args, "--macs-shape", "x=a"]) == 2
    assert "expected INPUT=D0,D1" in capsys.readouterr().err
    rep.unlink()
    assert main([*args, "--macs-shape", "x:1x3x16x16"]) == 0  # the --shapes syntax too
    assert json.loads(rep.read_text())["macs_merged"] == 16 * 16 * 8 * 27 + 16 * 16 * 4 * 8


def test_cli_verify_feeds_fit_a_symbolic_input_met_by_a_static_one(tmp_path, capsys):
    """The merged input takes the static dims; --verify must feed every model those."""
    from graphopt.cli import main

    a = task_model(W2A)
    for d in a.graph.input[0].type.tensor_type.shape.dim[2:]:
        d.dim_param = "hw"
    for d in a.graph.output[0].type.tensor_type.shape.dim[2:]:
        d.dim_param = "hw"
    onnx.save(a, tmp_path / "dyn.onnx")
    onnx.save(task_model(W2B), tmp_path / "fix.onnx")
    args = [str(tmp_path / "dyn.onnx"), str(tmp_path / "fix.onnx"), "--verify"]
    assert main(["merge", *args, "-o", str(tmp_path / "m.onnx")]) == 0
    text = capsys.readouterr().out
    assert "verify: dyn_y: max abs diff 0" in text and "verify: fix_y: max abs diff 0" in text


def test_cli_merge_report_replaces_the_old_one_only_by_a_rename(tmp_path, monkeypatch, capsys):
    import os

    from graphopt.cli import main

    onnx.save(task_model(W2A), tmp_path / "det.onnx")
    report = tmp_path / "r.json"
    report.write_text("old report\n")

    real_replace = os.replace

    def replace(src, dst):
        if os.fspath(dst) == str(report):
            raise OSError("rename refused")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    args = ["merge", str(tmp_path / "det.onnx"), "-o", str(tmp_path / "m.onnx")]
    assert main([*args, "--report", str(report)]) == 2
    assert "cannot write the report: rename refused" in capsys.readouterr().err
    assert report.read_text() == "old report\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["det.onnx", "m.onnx", "r.json"]


def test_cli_merge_and_split(tmp_path, capsys):
    from graphopt.cli import main

    onnx.save(task_model(W2A), tmp_path / "det.onnx")
    onnx.save(task_model(W2B, input_name="image"), tmp_path / "seg.onnx")
    out = tmp_path / "multi.onnx"
    code = main(
        [
            "merge",
            str(tmp_path / "det.onnx"),
            str(tmp_path / "seg.onnx"),
            "-o",
            str(out),
            "--input-map",
            "1:image=x",
            "--verify",
            "--report",
            str(tmp_path / "r.json"),
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "verify: seg_y: max abs diff 0" in text
    assert '"shared_nodes": 2' in (tmp_path / "r.json").read_text()
    code = main(["split", str(out), "--task", "seg", "-o", str(tmp_path / "seg2.onnx")])
    assert code == 0
    seg2 = onnx.load(tmp_path / "seg2.onnx")
    assert [i.name for i in seg2.graph.input] == ["image"]
    assert [o.name for o in seg2.graph.output] == ["y"]
    assert main(["split", str(out), "--outputs", "nope", "-o", str(tmp_path / "x.onnx")]) == 2
    assert "no tensor named 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()
    assert (
        main(
            [
                "merge",
                str(tmp_path / "det.onnx"),
                "-o",
                str(tmp_path / "y.onnx"),
                "--input-map",
                "bad",
            ]
        )
        == 2
    )


# --------------------------------------------------------------------------- real models


def _heads(model: onnx.ModelProto) -> tuple[list[str], list[str]]:
    outs = [o.name for o in model.graph.output]
    return outs[:4], outs[4:]


@pytest.mark.realmodel
def test_real_layout_heads_cut_and_reattached(real_model, real_feeds):
    full = onnx.load(str(real_model("layout_cdla")))
    cls, box = _heads(full)
    a, b = split(full, cls), split(full, box)
    merged, report = merge_with_report([a, b], prefixes=["cls_", "box_"])
    # everything but the per-task tail is shared; the merged model runs the backbone once
    # only small task-only constants (24 elements: each head's 12, H231 keeps them apart from
    # the backbone's constants of the same values; 6 when merge kept those once)
    assert report.params_merged - report.shared_params < 32
    assert report.params_merged > 1_800_000
    assert report.shared_macs == report.macs_merged > 3e9
    assert report.macs_separate == 2 * report.macs_merged
    for f in real_feeds("layout_cdla", 2):
        expected = ort_run(full, f)
        got = ort_run(merged, f)
        for name in cls:
            np.testing.assert_array_equal(got["cls_" + name], expected[name])
        for name in box:
            np.testing.assert_array_equal(got["box_" + name], expected[name])


@pytest.mark.realmodel
def test_real_layout_with_fine_tuned_head(real_model, real_feeds):
    base = onnx.load(str(real_model("layout_cdla")))
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    from bench_multitask import perturb_first_head  # the benchmark's "fine-tuned" copy

    tuned = perturb_first_head(base, 1.01)
    merged, report = merge_with_report([base, tuned], prefixes=["base_", "tuned_"])
    assert 0.9 < report.shared_params / report.params_merged < 1.0
    assert report.tasks[1].shared_nodes < report.tasks[1].nodes
    f = real_feeds("layout_cdla", 1)[0]
    got = ort_run(merged, f)
    for model, prefix in ((base, "base_"), (tuned, "tuned_")):
        for name, value in ort_run(model, f).items():
            np.testing.assert_array_equal(got[prefix + name], value, err_msg=prefix + name)
    assert not np.array_equal(
        got["base_" + base.graph.output[0].name], got["tuned_" + base.graph.output[0].name]
    )
    # a tolerance above the perturbation shares the head too (task 2 reads task 1's weights)
    _, loose = merge_with_report([base, tuned], tolerance=0.02)
    assert loose.shared_params == loose.params_merged


@pytest.mark.realmodel
def test_real_models_that_share_nothing(real_model, real_feeds):
    det, ocr = real_model("common_det"), real_model("ppocr_det")
    merged, report = merge_with_report([det, ocr], prefixes=["det_", "ocr_"])
    assert report.shared_nodes == 0
    assert report.converted == [str(det)]  # opset 11 -> 12
    fd, fo = real_feeds("common_det", 1)[0], real_feeds("ppocr_det", 1)[0]
    got = ort_run(merged, {**fd, **fo})
    np.testing.assert_array_equal(got["det_output"], ort_run(onnx.load(str(det)), fd)["output"])
    expected = ort_run(onnx.load(str(ocr)), fo)
    for name, value in expected.items():
        np.testing.assert_array_equal(got["ocr_" + name], value)
    back = split(merged, task="ocr")
    np.testing.assert_array_equal(
        ort_run(session(back), fo)[next(iter(expected))], next(iter(expected.values()))
    )
