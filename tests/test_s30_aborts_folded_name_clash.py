"""inference_aborts' fold of sizes computed from constants feeds each size from a Constant
node of a fresh name ("<size>:folded"): the name was checked against the nodes' tensors only,
so a model with an initializer of that name (here 3 values) got a second definition of it in
the judged copy, whose inference then read the initializer, knew no pads, and
`inference_abort` said nothing of a model onnxruntime's loader aborts on. Judged in a child
process.
"""

from __future__ import annotations

from tests.child_process import stdout_of

_JUDGE = """
import numpy as np, onnx
from onnx import TensorProto, helper, numpy_helper
from graphopt.analysis.inference_aborts import inference_abort

def i64(name, values):
    return numpy_helper.from_array(np.array(values, np.int64), name)

nodes = [
    helper.make_node("Identity", ["pads0"], ["pads"]),
    helper.make_node("Pad", ["x", "pads"], ["p"], name="pad"),
    helper.make_node("Slice", ["p", "st", "en", "ax"], ["y"], name="cut"),
]
inits = [i64("pads0", [0, 0, -5, 0] * 2), i64("pads:folded", [1, 2, 3])]
inits += [i64("st", [0]), i64("en", [1]), i64("ax", [2])]
graph = helper.make_graph(
    nodes,
    "g",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    inits,
)
print(inference_abort(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])))
"""


def test_a_fresh_name_is_fresh_of_the_initializers_too() -> None:
    judged = stdout_of(_JUDGE)
    assert judged.startswith(
        "Slice 'cut' reads 'p' of shape [1, 3, -6, 4], a negative dimension (Pad 'pad' makes it)"
    ), judged
