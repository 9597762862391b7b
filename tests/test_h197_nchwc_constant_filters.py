"""ort-nchwc-layout alone on filters given as Constant nodes (H197).

The built-in pipelines turn Constant nodes into initializers first; a user pipeline naming
only `ort-nchwc-layout` did not, and the pass dropped the original filters only where they
were initializers: their Constant nodes stayed in the model, read by nothing (layout_cdla's
file 7.4 -> 14.6 MB, outputs right).
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

import graphopt
from graphopt.backends.onnxruntime import session
from graphopt.passes.nchwc_fallback import branches
from graphopt.passes.ort_nchwc import NCHWC_DOMAIN, measured_block_size

BLOCK, WHY = measured_block_size()
needs_nchwc = pytest.mark.skipif(BLOCK == 0, reason=f"no NCHWc kernels here: {WHY}")


def with_constant_nodes(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with every initializer moved into a Constant node of the same name."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    inits = list(g.initializer)
    nodes = [helper.make_node("Constant", [], [t.name], f"const_{t.name}", value=t) for t in inits]
    nodes += list(g.node)
    del g.initializer[:]
    del g.node[:]
    g.node.extend(nodes)
    return out


def unread_constants(graph: onnx.GraphProto) -> list[str]:
    read = {t for n in graph.node for t in n.input} | {o.name for o in graph.output}
    return [n.name for n in graph.node if n.op_type == "Constant" and n.output[0] not in read]


@needs_nchwc
@pytest.mark.realmodel
@pytest.mark.parametrize("fallback", [False, True])
def test_layout_alone_drops_the_constant_nodes_it_leaves_unread(
    fallback, tmp_path, real_model, real_feeds
) -> None:  # type: ignore[no-untyped-def]
    original = with_constant_nodes(onnx.load(str(real_model("layout_cdla"))))
    pipeline = tmp_path / "mine.yaml"
    option = " {fallback: true}" if fallback else ""
    pipeline.write_text(f"name: mine\npasses:\n  - ort-nchwc-layout:{option}\n")
    out = graphopt.optimize(original, str(pipeline))
    graphs = [out.graph, *branches(out)] if fallback else [out.graph]
    blocked = graphs[1] if fallback else out.graph  # (the If's then-branch)
    assert sum(n.op_type == "Conv" and n.domain == NCHWC_DOMAIN for n in blocked.node) >= 80
    for g in graphs:
        assert unread_constants(g) == []
    # the NCHWc filters once more (padded to b channels); the NCHW ones once more with a fallback
    limit = (2.15 if fallback else 1.15) * original.ByteSize()
    assert out.ByteSize() < limit, (out.ByteSize(), original.ByteSize())
    before = session(original, threads=2, level="disable")
    after = session(out, threads=2, level="disable")
    for feeds in real_feeds("layout_cdla", 2):
        for e, g in zip(before.run(None, feeds), after.run(None, feeds), strict=True):
            assert e.shape == g.shape
            assert np.max(np.abs(g - e)) <= 1e-4 * np.max(np.abs(e))
