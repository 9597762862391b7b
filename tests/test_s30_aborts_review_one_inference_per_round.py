"""inference_aborts' rounds over Shape-computed sizes infer no model twice.

negative_slice judged its copy (`_judged`: the guarded inference's rounds where a node may make
a negative dim) and then ran `guarded_inference` of the same copy again for the dims that fold
Shape-computed sizes: every risk scan, stem and round twice (slanet: ~18% of its judging). The
inferences are counted in a child process (they may abort); the verdicts stay the same.
"""

from __future__ import annotations

from tests.child_process import stdout_of

_CHILD = r"""
import sys
import numpy as np
import onnx
from onnx import TensorProto as T, helper as h, numpy_helper as nh
from graphopt.analysis.inference_aborts import inference_abort

ints = lambda v, n: nh.from_array(np.array(v, np.int64), n)
seen = []
infer = onnx.shape_inference.infer_shapes
def counted(model, *args, **kwargs):
    seen.append(model.SerializeToString(deterministic=True))
    return infer(model, *args, **kwargs)
onnx.shape_inference.infer_shapes = counted

shift = int(sys.argv[1])  # pads = [0, 0, H - shift, 0, ...]: negative for shift > 5
nodes = [
    h.make_node("MaxPool", ["x"], ["m"], kernel_shape=[1, 1]),
    h.make_node("Slice", ["m", "st", "en"], ["early"]),  # (a Slice before the Pad: hidden)
    h.make_node("Shape", ["early"], ["s"]),
    h.make_node("Gather", ["s", "two"], ["hh"]),
    h.make_node("Sub", ["hh", "shift"], ["d"]),
    h.make_node("Concat", ["z", "z", "d", "z", "z", "z", "z", "z"], ["pads"], axis=0),
    h.make_node("Pad", ["early", "pads"], ["p"]),
    h.make_node("MaxPool", ["p"], ["q"], kernel_shape=[3, 3]),
    h.make_node("Slice", ["q", "st", "en"], ["y"]),
]
inits = [ints([0], "st"), ints([1], "en"), ints([2], "two"), ints([shift], "shift"), ints([0], "z")]
g = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", T.FLOAT, [1, 3, 5, 7])],
                 [h.make_tensor_value_info("y", T.FLOAT, [None] * 4)], inits)
m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)], ir_version=8)
print("judged:", repr(inference_abort(m)))
print("repeated inferences:", len(seen) - len(set(seen)))
"""


def _judge(shift: int) -> tuple[str, int]:
    lines = stdout_of(_CHILD, str(shift), timeout=120).splitlines()
    return lines[0], int(lines[1].split()[-1])


def test_fitting_shape_computed_pads_are_accepted_without_inferring_a_model_twice() -> None:
    verdict, repeated = _judge(3)
    assert verdict == "judged: ''"
    assert repeated == 0  # (the same model inferred twice: work done again)


def test_negative_shape_computed_pads_are_still_found() -> None:
    verdict, _ = _judge(9)
    assert "negative dimension" in verdict
