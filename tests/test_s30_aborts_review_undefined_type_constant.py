"""inference_aborts reads a constant of an element type ONNX does not define (99) as unknown.

numpy_helper.to_array raises KeyError for such a tensor, which escaped inference_abort (a
traceback from `graphopt check`) where the pads were computed from it (Identity), given
directly, or sparse. Each model is judged in a child process (the judged inference may abort).
"""

from __future__ import annotations

import pytest

from tests.child_process import stdout_of

_CHILD = r"""
import sys
import numpy as np
import onnx
from onnx import TensorProto as T, helper as h, numpy_helper as nh
from graphopt.analysis.inference_aborts import inference_abort

case = sys.argv[1]
ints = lambda v, n: nh.from_array(np.array(v, np.int64), n)
nodes = [h.make_node("Pad", ["x", "pads"], ["p"]), h.make_node("Slice", ["p", "st", "en"], ["y"])]
inits = [ints([0], "st"), ints([1], "en")]
if case == "computed":
    nodes.insert(0, h.make_node("Identity", ["a"], ["pads"]))
    inits.append(ints([0] * 8, "a"))
elif case == "direct":
    inits.append(ints([0] * 8, "pads"))
g = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", T.FLOAT, [1, 3, 4, 4])],
                 [h.make_tensor_value_info("y", T.FLOAT, None)], inits)
if case == "sparse":
    sparse = h.make_sparse_tensor(ints([-1], "pads"), ints([2], "pads_i"), [8])
    g.sparse_initializer.append(sparse)
    g.sparse_initializer[0].values.data_type = 99
else:
    g.initializer[-1].data_type = 99
m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)], ir_version=8)
print("judged:", repr(inference_abort(m)))
"""


@pytest.mark.parametrize("case", ["computed", "direct", "sparse"])
def test_a_constant_of_element_type_99_is_judged_unknown(case: str) -> None:
    assert "judged: ''" in stdout_of(_CHILD, case, timeout=120)
