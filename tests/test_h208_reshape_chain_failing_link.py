"""merge-reshapes keeps a chain whose dropped link is not shown to run. Reshape(R(x), s) ⇒
Reshape(x, s) leaves R out: where R fails (Reshape(x[2, 3], [4, -1]), a Squeeze of a dim 2),
the original fails to load in onnxruntime and the rewritten model (after dead-code
elimination) ran. A link ONNX inference gives no shape to is now a reason to refuse."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser
import pytest

import graphopt
from graphopt.backends.onnxruntime import run as ort_run
from graphopt.pipeline import make_pipeline
from tests.conftest import assert_same_outputs
from tests.models_util import run

HEADER = '<ir_version: 10, opset_import: ["" : 18]>\n'
X = {"x": np.linspace(-1.0, 1.0, 6, dtype=np.float32).reshape(2, 3)}


def chain(link: str) -> onnx.ModelProto:
    """y = Reshape(r, [6]) with r = `link` of x float[2, 3] (ONNX text)."""
    return onnx.parser.parse_model(
        HEADER + "g (float[2,3] x) => (float[6] y) {"
        f" {link} s = Constant<value=int64[1]{{6}}>() y = Reshape(r, s) }}"
    )


@pytest.mark.parametrize(
    "link",
    [
        "t = Constant<value=int64[2]{4,-1}>() r = Reshape(x, t)",
        "a = Constant<value=int64[1]{0}>() r = Squeeze(x, a)",
        "r = Flatten<axis=3>(x)",
    ],
    ids=["reshape", "squeeze", "flatten"],
)
def test_a_chain_through_a_failing_link_is_kept(link: str) -> None:
    model = chain(link)
    with pytest.raises(Exception):  # noqa: B017 (onnxruntime's own error types)
        ort_run(model, X)
    pipeline = make_pipeline("test", ["merge-reshapes", "eliminate-dead-code"])
    out = graphopt.optimize(model, pipeline)
    assert len([n for n in out.graph.node if n.op_type != "Constant"]) == 2  # the link stays
    with pytest.raises(Exception):  # noqa: B017
        ort_run(out, X)


def test_a_chain_through_links_that_run_is_still_merged() -> None:
    model = chain("t = Constant<value=int64[2]{3,-1}>() m = Reshape(x, t) r = Flatten<axis=0>(m)")
    out = run(model, "merge-reshapes", "eliminate-dead-code")
    assert [n.op_type for n in out.graph.node if n.op_type != "Constant"] == ["Reshape"]
    assert_same_outputs(model, out, X)
