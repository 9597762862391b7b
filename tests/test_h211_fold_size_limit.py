"""constant-folding's size limit counts a constant read twice once (H211): Concat(c, c, …, c)
reads one tensor, so its result is larger than its inputs. Before, the inputs' size summed
every reading, and eight readings of a 1M-element constant folded into an 8M-element
initializer (the default pipeline turned a 4.2 MB model into one of 33.5 MB), where the limit
promises that folding never inflates the model past it."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser
from onnx import numpy_helper

import graphopt
from graphopt.passes.constant_folding import ConstantFolding
from graphopt.pipeline import make_pipeline


def _concat_model(n: int, inputs: list[str], constants: dict[str, np.ndarray]) -> onnx.ModelProto:
    total = n * len(inputs)
    model = onnx.parser.parse_model(
        f"""<ir_version: 8, opset_import: ["" : 13]>
        g (float[{total}] x) => (float[{total}] y) {{
          t = Concat<axis = 0>({", ".join(inputs)})
          y = Add(x, t)
        }}"""
    )
    for name, value in constants.items():
        model.graph.initializer.append(numpy_helper.from_array(value, name))
    onnx.checker.check_model(model, full_check=True)
    return model


def _ops(model: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in model.graph.node]


def _fold(model: onnx.ModelProto, size_limit: int) -> onnx.ModelProto:
    return graphopt.optimize(model, make_pipeline("t", [ConstantFolding(size_limit=size_limit)]))


def test_a_constant_read_many_times_counts_once_against_the_limit():
    c = np.arange(40, dtype=np.float32)
    model = _concat_model(40, ["c"] * 4, {"c": c})
    out = _fold(model, size_limit=64)  # 160 elements from 40: refused
    assert _ops(out) == ["Concat", "Add"]
    assert len(out.graph.initializer) == 1


def test_distinct_constants_of_the_same_size_still_fold():
    parts = {f"c{i}": np.full(40, i, dtype=np.float32) for i in range(4)}
    model = _concat_model(40, list(parts), parts)
    out = _fold(model, size_limit=64)  # 160 elements from 160: no larger than its inputs
    assert _ops(out) == ["Add"]
    folded = {t.name: numpy_helper.to_array(t) for t in out.graph.initializer}["t"]
    np.testing.assert_array_equal(folded, np.concatenate(list(parts.values())))


def test_the_default_pipeline_does_not_inflate_the_model():
    n = 1 << 20
    model = _concat_model(n, ["c"] * 8, {"c": np.arange(n, dtype=np.float32)})
    out = graphopt.optimize(model)
    assert _ops(out) == ["Concat", "Add"]
    assert out.ByteSize() < 1.01 * model.ByteSize()
