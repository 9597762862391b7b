"""H186: `split` keeps a model's training_info only where it still applies.

The split model is the source copied, then given a new graph: its training_info came along
whole, so an algorithm read weights the split dropped and bindings named initializers that no
longer existed (onnx.checker's full check does not look at them, and passed). An entry reading
a dropped tensor now goes, a binding of a dropped initializer goes (an entry left binding
nothing goes), each with a warning; renamed outputs are renamed in training_info too."""

from __future__ import annotations

import logging

import numpy as np
import onnx
import onnx.helper as oh
import pytest
from onnx import TensorProto, numpy_helper

from graphopt.ir.graph import outer_references
from graphopt.multitask import split


def _step(reads: str, binds: str, label: bool = False) -> onnx.GraphProto:
    """An algorithm: new = Neg(reads) (minus a label the training feeds, with `label`)."""
    nodes = [oh.make_node("Neg", [reads], ["n_" + binds])]
    inputs = []
    if label:
        nodes.append(oh.make_node("Sub", ["n_" + binds, "label"], ["new_" + binds]))
        inputs.append(oh.make_tensor_value_info("label", TensorProto.FLOAT, [4]))
    else:
        nodes.append(oh.make_node("Identity", ["n_" + binds], ["new_" + binds]))
    return oh.make_graph(
        nodes, "step_" + binds, inputs, [oh.make_tensor_value_info("new_" + binds, 1, [4])]
    )


def _model(out1: str = "y1") -> onnx.ModelProto:
    """Two heads, y1 = x + W1 and y2 = x * W2; training_info: [0] updates W1 from W1, [1]
    updates W2 from W2, [2] initializes both (reading nothing) and updates W1 from y1 with a
    label."""
    model = onnx.parser.parse_model(f"""
<ir_version: 9, opset_import: ["" : 17]>
g (float[4] x) => (float[4] {out1}, float[4] y2) {{
  {out1} = Add(x, W1)
  y2 = Mul(x, W2)
}}""")
    for name in ("W1", "W2"):
        model.graph.initializer.append(numpy_helper.from_array(np.ones(4, np.float32), name))
    for w in ("W1", "W2"):
        info = model.training_info.add()
        info.algorithm.CopyFrom(_step(w, w))
        info.update_binding.add(key=w, value="new_" + w)
    info = model.training_info.add()
    info.initialization.CopyFrom(
        oh.make_graph(
            [
                oh.make_node("Constant", [], [f"i_{w}"], value_floats=[0.5] * 4)
                for w in ("W1", "W2")
            ],
            "init",
            [],
            [oh.make_tensor_value_info(f"i_{w}", TensorProto.FLOAT, [4]) for w in ("W1", "W2")],
        )
    )
    for w in ("W1", "W2"):
        info.initialization_binding.add(key=w, value=f"i_{w}")
    info.algorithm.CopyFrom(_step(out1, "W1", label=True))
    info.update_binding.add(key="W1", value="new_W1")
    onnx.checker.check_model(model, full_check=True)
    return model


def _names(graph: onnx.GraphProto) -> set[str]:
    names = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    return names | {o for n in graph.node for o in n.output}


def _dangling(model: onnx.ModelProto) -> list[str]:
    """Names model's training_info binds or reads that its graph lacks (the label aside)."""
    weights = {t.name for t in model.graph.initializer}
    names = _names(model.graph) | {"label"}
    out = []
    for info in model.training_info:
        for b in (*info.initialization_binding, *info.update_binding):
            if b.key not in weights:
                out.append(b.key)
        for g in (info.algorithm, info.initialization):
            out += sorted((outer_references(g) | {i.name for i in g.input}) - names)
    return out


def test_entries_reading_dropped_weights_go_and_dropped_bindings_are_pruned(
    caplog: pytest.LogCaptureFixture,
) -> None:
    source = _model()
    with caplog.at_level(logging.WARNING, logger="graphopt.multitask"):
        part = split(source, ["y1"])
    assert [t.name for t in part.graph.initializer] == ["W1"]
    assert _dangling(part) == []
    assert len(part.training_info) == 2
    assert part.training_info[0] == source.training_info[0]  # W1's update, as it was
    kept = part.training_info[1]
    assert [(b.key, b.value) for b in kept.initialization_binding] == [("W1", "i_W1")]
    assert [(b.key, b.value) for b in kept.update_binding] == [("W1", "new_W1")]
    assert kept.algorithm == source.training_info[2].algorithm
    said = [r.getMessage() for r in caplog.records]
    assert any("training_info[1] dropped: it reads W2" in m for m in said), said
    assert any("training_info[2] pruned: 1 of its 3 bindings" in m and "W2" in m for m in said)
    onnx.checker.check_model(part, full_check=True)


def test_an_entry_binding_only_dropped_weights_goes() -> None:
    source = _model()
    source.training_info[0].algorithm.CopyFrom(_step("x", "W2"))  # reads the input, binds W2
    source.training_info[0].update_binding[0].key = "W2"
    source.training_info[0].update_binding[0].value = "new_W2"
    part = split(source, ["y1"])
    assert _dangling(part) == []
    assert len(part.training_info) == 1  # only [2], pruned to W1
    assert [b.key for b in part.training_info[0].update_binding] == ["W1"]


def test_the_other_head_keeps_its_own() -> None:
    part = split(_model(), ["y2"])
    assert _dangling(part) == []
    # [0] read W1 and [2] y1, which y2's part neither holds nor computes: both went
    assert len(part.training_info) == 1
    assert [b.key for b in part.training_info[0].update_binding] == ["W2"]


def test_an_output_renamed_by_strip_prefix_is_renamed_in_training_info() -> None:
    source = _model(out1="t_y1")
    part = split(source, ["t_y1"], strip_prefix="t_")
    assert [o.name for o in part.graph.output] == ["y1"]
    assert _dangling(part) == []
    reads = part.training_info[-1].algorithm.node[0].input
    assert list(reads) == ["y1"]


def test_a_model_whose_training_info_all_applies_keeps_it_whole() -> None:
    source = _model()
    part = split(source, ["y1", "y2"])
    assert list(part.training_info) == list(source.training_info)


def test_merge_says_it_does_not_keep_training_info(caplog: pytest.LogCaptureFixture) -> None:
    """merge dropped a model's training_info without a word (its weights may be shared)."""
    from graphopt.multitask import merge

    plain = _model()
    del plain.training_info[:]
    with caplog.at_level(logging.WARNING, logger="graphopt.multitask"):
        merged = merge([plain, _model()])
    assert list(merged.training_info) == []
    said = [r.getMessage() for r in caplog.records if "training_info" in r.getMessage()]
    assert said == [
        "merge: model 1 has training_info (3), which the merged model does not keep: its "
        "weights may be shared with other tasks, which training would change too"
    ]
