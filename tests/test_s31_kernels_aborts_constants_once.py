"""inference_aborts reads a graph's constants (`_constants`: initializers, sparse ones made
dense, Constant nodes' values) once per graph it judges, not once per step: the risk scan,
the fold of computed sizes, the stem, the hidden Slices' rounds and each round of sizes from
Shapes each rebuilt them (slanet's ~9 builds of ~7 ms a judging). The judged copy's are kept
up to date by the fold that adds Constant nodes to it. Counted, with the verdicts, on models
whose pads are computed from Shapes (rounds of folding) and from constants alone."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.analysis import inference_aborts


def _ints(values: list[int], name: str) -> onnx.TensorProto:
    return numpy_helper.from_array(np.array(values, np.int64), name)


def _model(how: str, sign: int) -> onnx.ModelProto:
    """x [1, 3, 4, 4] → Pad(x, pads) → Slice: pads' third value is `sign`·(2·4) from the
    Shape of Relu(x) ("shape"), `sign`·8 through Identity of a constant ("constant") or that
    constant itself ("given")."""
    inits = [_ints([0], "st"), _ints([1], "en"), _ints([0, 0], "zeros"), _ints([0] * 5, "rest")]
    if how == "shape":
        nodes = [
            helper.make_node("Relu", ["x"], ["r"]),
            helper.make_node("Shape", ["r"], ["dims"]),
            helper.make_node("Gather", ["dims", "two"], ["h"]),
            helper.make_node("Add", ["h", "h"], ["h2"]),
            helper.make_node("Mul", ["h2", "sign"], ["third"]),
            helper.make_node("Concat", ["zeros", "third", "rest"], ["pads"], axis=0),
            helper.make_node("Pad", ["r", "pads"], ["p"]),
        ]
        inits += [_ints([2], "two"), _ints([sign], "sign")]
    else:
        nodes = [
            helper.make_node("Identity", ["c"], ["pads"]),
            helper.make_node("Pad", ["x", "c" if how == "given" else "pads"], ["p"]),
        ]
        inits += [_ints([0, 0, 8 * sign, 0, 0, 0, 0, 0], "c")]
    nodes.append(helper.make_node("Slice", ["p", "st", "en"], ["y"], name="cut"))
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.mark.parametrize("how", ["shape", "constant"])
@pytest.mark.parametrize("sign", [-1, 1])
def test_each_graph_s_constants_are_read_once_a_judging(monkeypatch, how: str, sign: int) -> None:
    built: list[str] = []
    real = inference_aborts._constants

    def counted(g: onnx.GraphProto | onnx.FunctionProto) -> dict[str, onnx.TensorProto]:
        built.append(g.name)
        return real(g)

    monkeypatch.setattr(inference_aborts, "_constants", counted)
    reason = inference_aborts.inference_abort(_model(how, sign))
    if sign < 0:
        assert reason.startswith("Slice 'cut' reads 'p' of shape [1, 3, -4, 4]"), reason
    else:
        assert reason == ""
    # at most the model's own (its risk scan) and its judged copy's (every step after); the
    # fitting constant pads are no risk: the scan alone
    assert built == (["g"] if (how, sign) == ("constant", 1) else ["g", "g"])


def test_guarded_inference_reads_the_constants_once_past_the_risk_scan(monkeypatch) -> None:
    built: list[str] = []
    real = inference_aborts._constants

    def counted(g: onnx.GraphProto | onnx.FunctionProto) -> dict[str, onnx.TensorProto]:
        built.append(g.name)
        return real(g)

    monkeypatch.setattr(inference_aborts, "_constants", counted)
    model = _model("given", -1)
    inferred = inference_aborts.guarded_inference(model, inference_aborts.onnx_inference)
    dims = {
        vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim]
        for vi in inferred.graph.value_info
    }
    assert dims["p"] == [1, 3, -4, 4]  # (inferred; the Slice after it stayed hidden)
    assert built == ["g", "g"]
