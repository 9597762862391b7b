"""README.md's Python examples of the API sections ("Python API", "INT8 quantization") run as
written, on real models, and what their comments claim holds.

The examples name `model.onnx` and leave `model` / `batches` to the reader: the test runs them
in a folder holding a real detector under that name, with `model` the ModelProto loaded from it
and `batches` preprocessed real photographs. The multi-task and distillation examples need the
files their shell blocks make (`graphopt split`, `distill-targets`); other tests cover them.
"""

from __future__ import annotations

import re
import shutil
import struct
from pathlib import Path

import numpy as np
import onnx
import pytest

from graphopt.pipeline import RunReport

README = Path(__file__).resolve().parents[1] / "README.md"

pytestmark = pytest.mark.realmodel


def python_blocks(section: str) -> list[str]:
    """The ```python blocks of the README section headed `## <section>`."""
    text = README.read_text(encoding="utf-8")
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", body, flags=re.S)


def test_the_sections_have_their_examples():
    assert len(python_blocks("Python API")) == 1
    assert len(python_blocks("INT8 quantization")) == 1


def test_python_api_example_runs_as_written(real_model, tmp_path, monkeypatch):
    # a detector with dynamic dims and an input named "images", as the example's input_shapes
    shutil.copy(real_model("yolov8_nudenet"), tmp_path / "model.onnx")
    monkeypatch.chdir(tmp_path)
    model = onnx.load("model.onnx")
    before = model.SerializeToString()
    names: dict = {"model": model}
    exec(compile(python_blocks("Python API")[0], "README.md", "exec"), names)
    assert model.SerializeToString() == before  # "never mutates the caller's model"
    optimized, model2, report = names["optimized"], names["model2"], names["report"]
    weights = {t.name for t in model.graph.initializer}
    for out in (optimized, model2):
        assert isinstance(out, onnx.ModelProto)
        onnx.checker.check_model(out, full_check=True)
        assert [o.name for o in out.graph.output] == [o.name for o in model.graph.output]
        assert [i.name for i in out.graph.input if i.name not in weights] == ["images"]
    # the last `optimized` is the one with fixed input dims
    dims = optimized.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [1, 3, 640, 640]
    # "per-pass timing and stats"
    assert isinstance(report, RunReport) and report.pipeline == "ort-cpu"
    assert report.records and report.seconds > 0
    # "node name -> ipdom name | None"
    ipdom = names["ipdom"]
    node_names = {n.name for n in optimized.graph.node}
    assert set(ipdom) == node_names
    assert all(v is None or v in node_names for v in ipdom.values())
    assert any(v is not None for v in ipdom.values())
    # "TVM FuseOps groups of node names": each node once, groups in a topological order
    groups = names["groups"]
    order = [n for g in groups for n in g]
    assert sorted(order) == sorted(node_names) and len(groups) < len(order)
    position = {n: i for i, n in enumerate(order)}
    producer = {t: n.name for n in optimized.graph.node for t in n.output}
    for node in optimized.graph.node:
        for t in node.input:
            if t in producer:
                assert position[producer[t]] < position[node.name], (t, node.name)
    # ipdom[n] is None where n writes a graph output
    outputs = {o.name for o in optimized.graph.output}
    assert all(ipdom[n.name] is None for n in optimized.graph.node if set(n.output) & outputs)


def test_quantize_example_runs_as_written(real_model, real_feeds, tmp_path, monkeypatch):
    shutil.copy(real_model("common_det"), tmp_path / "model.onnx")  # input "images"
    monkeypatch.chdir(tmp_path)
    import graphopt

    batches = [feed["images"] for feed in real_feeds("common_det", 2)]
    names: dict = {"graphopt": graphopt, "batches": batches}
    exec(compile(python_blocks("INT8 quantization")[0], "README.md", "exec"), names)
    q = names["q"]
    assert isinstance(q, onnx.ModelProto)
    onnx.checker.check_model(q, full_check=True)
    # the cache: `TRT-<version>-EntropyCalibration2`, then `tensor: <big-endian float32 hex>`
    lines = (tmp_path / "model.cache").read_text().splitlines()
    assert re.fullmatch(r"TRT-\d+-EntropyCalibration2", lines[0])
    scales = {}
    for line in lines[1:]:
        name, value = re.fullmatch(r"(.+): ([0-9a-f]{1,8})", line).groups()
        scales[name] = struct.unpack(">f", bytes.fromhex(value.zfill(8)))[0]
    assert scales and all(s > 0 for s in scales.values())
    # target tensorrt: int8 activations with zero point 0 and the cache's scales; weights
    # int8 per output channel on axis 0
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in q.graph.initializer}
    consts = {
        n.output[0]: onnx.numpy_helper.to_array(n.attribute[0].t)
        for n in q.graph.node
        if n.op_type == "Constant"
    }
    values = {**inits, **consts}
    quantized = [n for n in q.graph.node if n.op_type == "QuantizeLinear"]
    assert quantized
    matched = 0
    for n in quantized:
        zero = values[n.input[2]]
        assert zero.dtype == np.int8 and not zero.any()
        scale = values[n.input[1]]
        if n.input[0] in scales:
            matched += 1
            assert np.float32(scale) == np.float32(scales[n.input[0]])
    assert matched > 0
    weight_dq = [
        n
        for n in q.graph.node
        if n.op_type == "DequantizeLinear"
        and values.get(n.input[0]) is not None
        and values[n.input[0]].dtype == np.int8
        and values[n.input[0]].ndim == 4
    ]
    assert weight_dq
    for n in weight_dq:
        axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
        assert axis == 0 and values[n.input[1]].shape == (values[n.input[0]].shape[0],)
