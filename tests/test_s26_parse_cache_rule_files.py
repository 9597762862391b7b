"""A pipeline's parse is remembered (`graphopt.pipeline._parse_cached`) only while the files it
read still hold what they held: its rule files too. The parse refuses `rules:` whose rules no
step runs; a rule file edited between two `optimize` calls of one process (a notebook) to a
group no step runs was taken from the remembered parse, and its rules silently never ran."""

from __future__ import annotations

import os
from pathlib import Path

import onnx
import pytest
from onnx import helper

import graphopt
from graphopt.errors import PipelineError

RULE = """rules:
  - name: negneg
    group: {group}
    target: |
      t = Neg(x)
      y = Neg(t)
    replacement: y = Identity(x)
"""


def _model() -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])
    nodes = [helper.make_node("Neg", ["x"], ["t"]), helper.make_node("Neg", ["t"], ["y"])]
    graph = helper.make_graph(nodes, "g", [x], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _write(path: Path, text: str, stamp: int) -> None:
    path.write_text(text)
    os.utime(path, ns=(stamp, stamp))  # another mtime: the rule loader's cache sees the edit


def test_a_rule_file_edited_to_a_group_no_step_runs_is_refused_again(tmp_path: Path) -> None:
    rules, pipeline = tmp_path / "r.yaml", tmp_path / "p.yaml"
    _write(rules, RULE.format(group="user"), 10**18)
    pipeline.write_text("rules: [r.yaml]\npasses:\n  - fuse-patterns\n")
    ops = [n.op_type for n in graphopt.optimize(_model(), pipeline).graph.node]
    assert ops == ["Identity"]
    _write(rules, RULE.format(group="other"), 2 * 10**18)
    with pytest.raises(PipelineError, match=r"p\.yaml:1: `rules:` loads 1 rule\(s\) \('negneg'\)"):
        graphopt.optimize(_model(), pipeline)


def test_an_unchanged_rule_file_keeps_the_parse(tmp_path: Path) -> None:
    from graphopt import pipeline as P

    rules, pipeline = tmp_path / "r.yaml", tmp_path / "p.yaml"
    _write(rules, RULE.format(group="user"), 10**18)
    pipeline.write_text("rules: [r.yaml]\npasses:\n  - fuse-patterns\n")
    first = P.load_pipeline(pipeline)
    key = next(k for k in P._parsed if k[1] == str(pipeline))
    cached = P._parsed[key][0]
    second = P.load_pipeline(pipeline)
    assert P._parsed[key][0] is cached  # not parsed again
    assert second.rule_files == first.rule_files == [rules]
