"""`check`: a user's custom-domain op is not advised away with a pipeline that keeps it.

Every op of a domain TensorRT has no importer for ended "...needs a plugin for it: optimize
with a TensorRT pipeline (e.g. --pipeline tensorrt) instead". That is the way out for the
onnxruntime ops graphopt's ort-* pipelines write (com.microsoft FusedConv, the NCHWc ops), not
for a user's op (my.dom::Foo, an ai.onnx.ml op): `graphopt optimize --pipeline tensorrt` keeps
it, and check on the result gave the same advice again. Such an op is now told the plugin
TensorRT's parser would look up for it (by the op's name)."""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

from graphopt.backends.trt_check import check_tensorrt


def _model(domain: str, op: str) -> onnx.ModelProto:
    vi = helper.make_tensor_value_info
    graph = helper.make_graph(
        [helper.make_node(op, ["x"], ["y"], name="n", domain=domain)],
        "g",
        [vi("x", TensorProto.FLOAT, [1, 3])],
        [vi("y", TensorProto.FLOAT, [1, 3])],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid(domain, 1)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=8)


def _message(domain: str, op: str) -> str:
    (finding,) = check_tensorrt(_model(domain, op))
    assert finding.severity == "error" and finding.rule == "custom-domain"
    return str(finding)


def test_a_users_op_is_told_the_plugin_to_register() -> None:
    assert _message("my.dom", "Foo") == (
        "error: [custom-domain] node 'n' (my.dom::Foo): op my.dom::Foo is not standard ONNX; "
        "TensorRT's parser needs a plugin for it: register a TensorRT plugin named 'Foo' (the "
        "parser looks one up by the op's name) or write the op in standard ONNX ops"
    )


def test_an_onnx_ml_op_likewise() -> None:
    assert "register a TensorRT plugin named 'Normalizer'" in _message("ai.onnx.ml", "Normalizer")


def test_onnxruntime_ops_keep_the_pipeline_advice() -> None:
    """(control: passes on the parent too) what an ort-* pipeline writes."""
    advice = "optimize with a TensorRT pipeline (e.g. --pipeline tensorrt) instead"
    assert _message("com.microsoft", "FusedConv").endswith(advice)
    assert _message("com.microsoft.nchwc", "ReorderInput").endswith(advice)
