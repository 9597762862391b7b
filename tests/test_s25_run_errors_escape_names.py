"""onnxruntime's run errors keep a model's names whole on one line (H241 item 5).

`run()` joins the lines of onnxruntime's error (a wrong shape's dims come after the first), so
a name's newline was read as a space ('x y' for input 'x\\ny', which could be another input);
now the model's names are escaped first where the model is known: given to `run`, or to
`compare` (whose reference becomes a session before it runs). `describe_feeds`, which
`compare` and `merge --verify` put in their errors, wrote the name's newline as it is: the
error was two lines.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from graphopt.backends import onnxruntime as ort_backend
from graphopt.errors import BackendError, VerifyError

SAID = "Got invalid dimensions for input: x\\ny for the following indices index: 1 Got: 5"


def _model() -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x\ny"], ["out"])],
        "g",
        [helper.make_tensor_value_info("x\ny", onnx.TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("out", onnx.TensorProto.FLOAT, [1, 4])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


FEEDS = {"x\ny": np.zeros((1, 5), np.float32)}  # one too many values: onnxruntime refuses


def test_run_of_a_model_escapes_its_names() -> None:
    with pytest.raises(BackendError) as e:
        ort_backend.run(_model(), FEEDS)
    assert SAID in str(e.value)
    assert "\n" not in str(e.value)


def test_run_of_a_session_escapes_the_names_of_the_model_given() -> None:
    model = _model()
    with pytest.raises(BackendError) as e:
        ort_backend.run(ort_backend.session(model), FEEDS, model=model)
    assert SAID in str(e.value)


def test_compare_is_one_line_with_the_name_escaped() -> None:
    with pytest.raises(VerifyError) as e:
        ort_backend.compare(_model(), _model(), FEEDS)
    message = str(e.value)
    assert "\n" not in message
    assert message.startswith(
        "the original model does not run on the comparison inputs (x\\ny: float32 1×5): "
    )
    assert SAID in message


def test_describe_feeds_is_one_line() -> None:
    assert ort_backend.describe_feeds(FEEDS) == "x\\ny: float32 1×5"


def test_a_feed_the_model_lacks_is_named_escaped() -> None:
    model = _model()
    feeds = {"x\ny": np.zeros((1, 4), np.float32), "a\nb": np.zeros((1, 4), np.float32)}
    with pytest.raises(BackendError) as e:
        ort_backend.run(model, feeds)
    assert str(e.value).endswith("Invalid input name: a\\nb")
