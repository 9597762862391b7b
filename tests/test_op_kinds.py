"""graphopt.analysis.op_kinds: TVM pattern kinds for every default-domain ONNX op."""

from __future__ import annotations

import onnx.defs
import pytest

from graphopt.analysis.op_kinds import OP_KINDS, OpKind, op_kind


def _default_domain_ops() -> set[str]:
    return {s.name for s in onnx.defs.get_all_schemas_with_history() if s.domain in ("", "ai.onnx")}


def test_enum_values_are_tvms():
    # include/tvm/relay/op_attr_types.h: kElemWise=0 ... kOutEWiseFusable=4, kTuple=7, kOpaque=8
    assert [int(k) for k in OpKind] == [0, 1, 2, 3, 4, 7, 8]
    assert OpKind.ELEMWISE < OpKind.BROADCAST < OpKind.INJECTIVE < OpKind.COMM_REDUCE
    assert OpKind.COMM_REDUCE < OpKind.OUT_EWISE_FUSABLE < OpKind.TUPLE < OpKind.OPAQUE


def test_every_default_domain_op_has_a_deliberate_entry():
    missing = sorted(_default_domain_ops() - set(OP_KINDS))
    assert missing == [], f"classify these ONNX ops in OP_KINDS: {missing}"


def test_no_entry_names_an_op_onnx_does_not_define():
    assert sorted(set(OP_KINDS) - _default_domain_ops()) == []


@pytest.mark.parametrize(
    ("op", "kind"),
    [
        ("Conv", OpKind.OUT_EWISE_FUSABLE),
        ("ConvTranspose", OpKind.OUT_EWISE_FUSABLE),
        ("Gemm", OpKind.OUT_EWISE_FUSABLE),
        ("MatMul", OpKind.OUT_EWISE_FUSABLE),
        ("MaxPool", OpKind.OUT_EWISE_FUSABLE),  # TVM nn.max_pool2d
        ("GlobalAveragePool", OpKind.OUT_EWISE_FUSABLE),  # TVM nn.global_avg_pool2d
        ("Softmax", OpKind.OUT_EWISE_FUSABLE),
        ("Relu", OpKind.ELEMWISE),
        ("Sigmoid", OpKind.ELEMWISE),
        ("Clip", OpKind.ELEMWISE),
        ("Cast", OpKind.ELEMWISE),
        ("Add", OpKind.BROADCAST),
        ("Mul", OpKind.BROADCAST),
        ("Where", OpKind.BROADCAST),
        ("BatchNormalization", OpKind.BROADCAST),
        ("Reshape", OpKind.INJECTIVE),
        ("Transpose", OpKind.INJECTIVE),
        ("Concat", OpKind.INJECTIVE),
        ("Slice", OpKind.INJECTIVE),
        ("Gather", OpKind.INJECTIVE),
        ("Resize", OpKind.INJECTIVE),
        ("ReduceMean", OpKind.COMM_REDUCE),
        ("ArgMax", OpKind.COMM_REDUCE),
        ("If", OpKind.OPAQUE),
        ("Loop", OpKind.OPAQUE),
        ("NonMaxSuppression", OpKind.OPAQUE),
        ("TopK", OpKind.OPAQUE),
        ("Constant", OpKind.OPAQUE),
        ("LRN", OpKind.OPAQUE),
    ],
)
def test_kinds_of_common_ops(op, kind):
    assert op_kind(op) is kind
    assert op_kind(op, "ai.onnx") is kind


def test_other_domains_and_unknown_ops_are_opaque():
    assert op_kind("Relu", "com.microsoft") is OpKind.OPAQUE
    assert op_kind("FusedConv", "com.microsoft") is OpKind.OPAQUE
    assert op_kind("NotAnOnnxOp") is OpKind.OPAQUE
