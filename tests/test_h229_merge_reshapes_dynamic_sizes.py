"""merge-reshapes keeps a chain whose dropped link fails at some size of a dynamic dim.

Inference takes a dynamic dim to be whatever lets a node run, so a link it gives a shape to may
still fail: Reshape(x[N, 6], [0, -1]) at N = 0 (onnxruntime refuses a -1 beside a size 0),
Reshape(x[N, 6], [4, -1]) at N = 1, a Squeeze of the dim N at N = 2. Left out of the chain, the
model ran there with outputs of its own. A chain whose Reshape that stays fails alike (it copies
the same dim beside a -1) is still merged, and so is one whose links run at every size."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser
import pytest

from graphopt.backends.onnxruntime import run as ort_run
from tests.conftest import assert_same_outputs
from tests.models_util import run

HEADER = '<ir_version: 10, opset_import: ["" : 18]>\n'


def chain(link: str, outer: str, out: str = "float[M, 3] y") -> onnx.ModelProto:
    """y = Reshape(r, `outer`) with r = `link` of x float[N, 6] (ONNX text)."""
    n = len(outer.split(","))
    return onnx.parser.parse_model(
        HEADER + f"g (float[N, 6] x) => ({out}) {{"
        f" {link} s = Constant<value=int64[{n}]{{{outer}}}>() y = Reshape(r, s) }}"
    )


def feed(n: int) -> dict[str, np.ndarray]:
    return {"x": np.arange(6 * n, dtype=np.float32).reshape(n, 6)}


def merged(model: onnx.ModelProto) -> onnx.ModelProto:
    return run(model, "merge-reshapes", "eliminate-dead-code")


def computing(model: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in model.graph.node if n.op_type != "Constant"]


@pytest.mark.parametrize(
    ("link", "fails_at"),
    [
        ("t = Constant<value=int64[2]{0,-1}>() r = Reshape(x, t)", 0),
        ("t = Constant<value=int64[3]{0,0,-1}>() r = Reshape(x, t)", 0),
        ("t = Constant<value=int64[2]{4,-1}>() r = Reshape(x, t)", 1),
        ("t = Constant<value=int64[2]{4,3}>() r = Reshape(x, t)", 1),
        ("a = Constant<value=int64[1]{0}>() r = Squeeze(x, a)", 2),
    ],
    ids=["zero-copy-beside-minus-one", "two-zero-copies", "not-dividing", "static", "squeeze"],
)
def test_a_chain_through_a_link_failing_at_some_size_is_kept(link: str, fails_at: int) -> None:
    model = chain(link, "-1, 3")
    with pytest.raises(Exception):  # noqa: B017 (onnxruntime's own error types)
        ort_run(model, feed(fails_at))
    out = merged(model)
    assert computing(out) == [computing(model)[0], "Reshape"]  # the link stays
    with pytest.raises(Exception):  # noqa: B017
        ort_run(out, feed(fails_at))


def test_a_link_failing_where_the_reshape_that_stays_fails_alike_is_merged() -> None:
    # both fail at N = 0: the Reshape that stays copies dim 0 beside a -1 as well
    model = chain(
        "t = Constant<value=int64[2]{0,-1}>() r = Reshape(x, t)", "0, 3, -1", "float[N, 3, 2] y"
    )
    out = merged(model)
    assert computing(out) == ["Reshape"]
    assert_same_outputs(model, out, feed(2))
    for m in (model, out):
        with pytest.raises(Exception):  # noqa: B017
            ort_run(m, feed(0))


@pytest.mark.parametrize(
    "link",
    [
        "t = Constant<value=int64[2]{2,-1}>() r = Reshape(x, t)",
        "t = Constant<value=int64[2]{-1,0}>() r = Reshape(x, t)",
        "t = Constant<value=int64[3]{0,2,3}>() r = Reshape(x, t)",
        "r = Flatten<axis=1>(x)",
    ],
    ids=["dividing", "static-copy", "dynamic-copy-without-minus-one", "flatten"],
)
def test_a_chain_through_links_running_at_every_size_is_merged(link: str) -> None:
    model = chain(link, "-1, 3")
    out = merged(model)
    assert computing(out) == ["Reshape"]
    for n in (0, 1, 2, 5):
        assert_same_outputs(model, out, feed(n))
