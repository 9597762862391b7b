"""Review 12: graphopt's op kinds against TVM's (v0.19.0, the last release with Relay).

Each ONNX op's TVM kind is the `TOpPattern` of the Relay op that TVM's ONNX frontend
(python/tvm/relay/frontend/onnx.py) turns it into; paths below are in apache/tvm at tag
v0.19.0 (c4dc0c29ff81ddae688da24625a603da3b4a2c0e), lines where the pattern is set. Unary ops
take kElemWise from RELAY_REGISTER_UNARY_OP (src/relay/op/op_common.h:61), binary and compare
ops kBroadcast from RELAY_REGISTER_BINARY_OP / RELAY_REGISTER_CMP_OP (op_common.h:85, :100).
The partition tests show what the changed kinds do to FuseOps, as TVM's FuseOps would group it.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.analysis import fusion_groups
from graphopt.analysis.op_kinds import OP_KINDS, OpKind, einsum_sums, node_kind, op_kind
from tests.conftest import assert_same_outputs
from tests.models_util import run

EW, BC, INJ, RED, OEF, OPQ = (
    OpKind.ELEMWISE,
    OpKind.BROADCAST,
    OpKind.INJECTIVE,
    OpKind.COMM_REDUCE,
    OpKind.OUT_EWISE_FUSABLE,
    OpKind.OPAQUE,
)

# (ONNX op, kind): the op agrees with TVM's kind of the Relay op named in the comment.
AGREES_WITH_TVM = [
    ("Abs", EW),  # abs: src/relay/op/tensor/unary.cc:362 (unary macro)
    ("Acos", EW),  # acos: unary.cc:121
    ("Atan", EW),  # atan: unary.cc:161
    ("Ceil", EW),  # ceil: unary.cc:322
    ("Cos", EW),  # cos: unary.cc:81
    ("Erf", EW),  # erf: unary.cc:201
    ("Exp", EW),  # exp: unary.cc:181
    ("Floor", EW),  # floor: unary.cc:316
    ("IsInf", EW),  # isinf: unary.cc:518
    ("IsNaN", EW),  # isnan: unary.cc:500
    ("Log", EW),  # log: unary.cc:41
    ("Neg", EW),  # negative: unary.cc:392
    ("Not", EW),  # logical_not: unary.cc:402
    ("BitwiseNot", EW),  # bitwise_not: unary.cc:412
    ("Sigmoid", EW),  # sigmoid: unary.cc:251
    ("Sign", EW),  # sign: unary.cc:352
    ("Sin", EW),  # sin: unary.cc:101
    ("Sqrt", EW),  # sqrt: unary.cc:221
    ("Tanh", EW),  # tanh: unary.cc:372
    ("Identity", EW),  # copy: unary.cc:261
    ("Clip", EW),  # clip: unary.cc:287
    ("Cast", EW),  # cast: src/relay/op/tensor/transform.cc:171
    ("CastLike", EW),  # cast_like: transform.cc:215
    ("Relu", EW),  # nn.relu: src/relay/op/nn/nn.cc:603
    ("LeakyRelu", EW),  # nn.leaky_relu: nn.cc:335
    ("Trilu", EW),  # trilu: transform.cc:4306 (was INJECTIVE)
    ("Add", BC),  # add: src/relay/op/tensor/binary.cc:42 (binary macro)
    ("Sub", BC),  # subtract: binary.cc:48
    ("Mul", BC),  # multiply: binary.cc:89
    ("Div", BC),  # divide: binary.cc:74
    ("Pow", BC),  # power: binary.cc:94
    ("Mod", BC),  # mod / floor_mod: binary.cc:99, :104
    ("Max", BC),  # maximum: binary.cc:64
    ("Min", BC),  # minimum: binary.cc:69
    ("Sum", BC),  # add chain: binary.cc:42
    ("And", BC),  # logical_and: binary.cc:114
    ("Or", BC),  # logical_or: binary.cc:119
    ("Xor", BC),  # logical_xor: binary.cc:124
    ("BitShift", BC),  # left_shift / right_shift: binary.cc:59, :54
    ("BitwiseAnd", BC),  # bitwise_and: binary.cc:129
    ("Equal", BC),  # equal: binary.cc:144 (compare macro)
    ("Less", BC),  # less: binary.cc:154
    ("Greater", BC),  # greater: binary.cc:164
    ("Where", BC),  # where: transform.cc:2285
    ("PRelu", BC),  # nn.prelu: nn.cc:402
    (
        "Expand",
        BC,
    ),  # broadcast_to: transform.cc:2571; dyn.broadcast_to: dyn/tensor/transform.cc:267
    ("Tile", BC),  # tile: transform.cc:2064 (dyn.tile, run-time repeats: kInjective, :211)
    ("Unsqueeze", BC),  # expand_dims: transform.cc:314 (dyn.expand_dims: kInjective, :698)
    ("Reshape", INJ),  # reshape: transform.cc:986
    ("Flatten", INJ),  # nn.batch_flatten / reshape: nn.cc:577
    ("Transpose", INJ),  # transpose: transform.cc:604
    ("Concat", INJ),  # concatenate: transform.cc:350
    ("Slice", INJ),  # strided_slice: transform.cc:2920
    ("Split", INJ),  # split: transform.cc:3140
    ("Squeeze", INJ),  # squeeze: transform.cc:2433
    ("Gather", INJ),  # take: transform.cc:1349
    ("GatherElements", INJ),  # gather: transform.cc:3574
    ("GatherND", INJ),  # gather_nd: transform.cc:3661
    ("Pad", INJ),  # nn.pad: src/relay/op/nn/pad.cc:207 (nn.mirror_pad: pad.cc:273)
    ("Resize", INJ),  # image.resize2d: src/relay/op/image/resize.cc:214
    ("Upsample", INJ),  # nn.upsampling: src/relay/op/nn/upsampling.cc:108
    ("DepthToSpace", INJ),  # nn.depth_to_space: nn.cc:1396
    ("SpaceToDepth", INJ),  # nn.space_to_depth: nn.cc:1459
    ("ReverseSequence", INJ),  # reverse_sequence: transform.cc:2209
    ("GridSample", INJ),  # image.grid_sample: src/relay/op/image/grid_sample.cc:209 (was OPAQUE)
    ("AffineGrid", INJ),  # image.affine_grid: grid_sample.cc:93 (Relax frontend) (was OPAQUE)
    ("ArgMax", RED),  # argmax: src/relay/op/tensor/reduce.cc:427
    ("ArgMin", RED),  # argmin: reduce.cc:444
    ("ReduceSum", RED),  # sum: reduce.cc:474
    ("ReduceMax", RED),  # max: reduce.cc:557
    ("ReduceMin", RED),  # min: reduce.cc:573
    ("ReduceProd", RED),  # prod: reduce.cc:605
    ("ReduceMean", RED),  # mean: reduce.cc:655
    ("ReduceL1", RED),  # abs then sum: reduce.cc:474
    ("Conv", OEF),  # nn.conv2d: src/relay/op/nn/convolution.cc:409
    ("ConvTranspose", OEF),  # nn.conv2d_transpose: convolution.cc:941
    ("DeformConv", OEF),  # nn.deformable_conv2d: convolution.cc:1818 (op not in the frontend)
    ("Gemm", OEF),  # nn.dense: nn.cc:238
    ("MatMul", OEF),  # nn.batch_matmul / nn.dense: nn.cc:1135, :238
    ("ConvInteger", OEF),  # qnn.conv2d: src/relay/qnn/op/convolution.cc:875
    ("QLinearConv", OEF),  # qnn.conv2d: convolution.cc:875
    ("MatMulInteger", OEF),  # qnn.dense: src/relay/qnn/op/dense.cc:248
    ("MaxPool", OEF),  # nn.max_pool2d: src/relay/op/nn/pooling.cc:183
    ("AveragePool", OEF),  # nn.avg_pool2d: pooling.cc:223
    ("GlobalAveragePool", OEF),  # nn.global_avg_pool2d: pooling.cc:304
    ("GlobalMaxPool", OEF),  # nn.global_max_pool2d: pooling.cc:333
    ("Softmax", OEF),  # nn.softmax: nn.cc:455
    ("LogSoftmax", OEF),  # nn.softmax then log: nn.cc:455
    ("Hardmax", OEF),  # argmax then one_hot: transform.cc:3831
    (
        "OneHot",
        OEF,
    ),  # one_hot: transform.cc:3831; dyn.one_hot: dyn/tensor/transform.cc:396 (was INJ.)
    ("RoiAlign", OEF),  # vision.roi_align: python/tvm/relay/op/vision/_rcnn.py:27 (was OPAQUE)
    ("MaxRoiPool", OEF),  # vision.roi_pool: _rcnn.py:130 (was OPAQUE)
    ("Shape", OPQ),  # shape_of: unary.cc:450
    ("EyeLike", OPQ),  # zeros + scatter_nd: transform.cc:1235 (was INJECTIVE)
    ("LRN", OPQ),  # nn.lrn: nn.cc:644
    ("CumSum", OPQ),  # cumsum: transform.cc:4170
    ("CumProd", OPQ),  # cumprod: transform.cc:4190 (op not in the frontend)
    ("ScatterElements", OPQ),  # scatter_elements: transform.cc:1152
    ("ScatterND", OPQ),  # scatter_nd: transform.cc:1235
    ("NonZero", OPQ),  # argwhere: transform.cc:1096
    ("Compress", OPQ),  # argwhere then take: transform.cc:1096
    ("Range", OPQ),  # arange: transform.cc:1604
    ("Unique", OPQ),  # unique: transform.cc:4239
    ("DFT", OPQ),  # dft: transform.cc:1875
    ("TopK", OPQ),  # topk: python/tvm/relay/op/_algorithm.py:42
    ("NonMaxSuppression", OPQ),  # vision.all_class_non_max_suppression: vision/_vision.py:49
    ("RandomUniform", OPQ),  # random.uniform: python/tvm/relay/op/random/_kernel.py:33
    ("RandomNormal", OPQ),  # random.normal: _kernel.py:35
    ("Multinomial", OPQ),  # random.multinomial: _kernel.py:37
]

# (ONNX op, ours, TVM's): kept on purpose; op_kinds.py says why next to OP_KINDS.
DIFFERS_FROM_TVM = [
    ("Mean", BC, RED),  # stack then mean: reduce.cc:655 (valid only for equal shapes)
    ("Einsum", OEF, INJ),  # einsum: src/relay/op/tensor/math.cc:116; no-sum equations INJECTIVE
    ("Size", OPQ, INJ),  # ndarray_size: unary.cc:495 (Shape's shape_of is kOpaque, unary.cc:450)
    ("ConstantOfShape", OPQ, EW),  # full: transform.cc:1406; dyn.full: dyn/tensor/transform.cc:454
    ("Dropout", EW, OPQ),  # nn.dropout: nn.cc:749, removed by SimplifyInference
    ("BatchNormalization", BC, OEF),  # nn.batch_norm: nn.cc:882, SimplifyInference: Mul/Add
]


@pytest.mark.parametrize(("op", "kind"), AGREES_WITH_TVM)
def test_kind_agrees_with_tvm(op, kind):
    assert op in OP_KINDS
    assert op_kind(op) is kind


@pytest.mark.parametrize(("op", "ours", "tvm"), DIFFERS_FROM_TVM)
def test_documented_differences_keep_our_kind(op, ours, tvm):
    assert ours is not tvm
    assert op_kind(op) is ours


def test_tables_do_not_overlap():
    agreed = {op for op, _ in AGREES_WITH_TVM}
    assert len(agreed) == len(AGREES_WITH_TVM)
    assert agreed.isdisjoint(op for op, _, _ in DIFFERS_FROM_TVM)


def test_swiglu_is_elementwise():
    # Y = Swish(A) * B with A and B of one shape (no broadcasting): not in TVM's frontend.
    assert op_kind("SwiGLU") is EW


# ---------------------------------------------------------------------------- Einsum


@pytest.mark.parametrize(
    ("equation", "sums"),
    [
        ("ij,jk->ik", True),
        ("bij,bjk->bik", True),
        ("...ij,...jk->...ik", True),
        ("ij->", True),
        ("ii", True),  # implicit: trace
        ("ij,jk", True),  # implicit: j given twice
        ("ij->ji", False),
        ("ii->i", False),  # diagonal
        ("i,j->ij", False),  # outer product
        ("ij,ij->ij", False),  # Hadamard
        ("ij", False),  # implicit: a copy
        (" i j , j k -> i k ", True),
        ("ij->j-i", None),
        ("1i->i", None),
    ],
)
def test_einsum_sums(equation, sums):
    assert einsum_sums(equation) is sums


@pytest.mark.parametrize(
    ("equation", "kind"),
    [("ij,jk->ik", OEF), ("ij->ji", INJ), ("i,j->ij", INJ), ("ii", OEF), ("ij->j-i", OEF)],
)
def test_einsum_node_kind(equation, kind):
    node = helper.make_node("Einsum", ["a", "b"], ["y"], equation=equation)
    assert node_kind(node) is kind


def test_einsum_without_equation_keeps_the_table_kind():
    assert node_kind(helper.make_node("Einsum", ["a"], ["y"])) is OEF


# ---------------------------------------------------------------------------- FuseOps


def _model(nodes, inputs, output, inits=(), opset=13):
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [helper.make_tensor_value_info(*output)],
        list(inits),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model)  # a misbuilt model would prove nothing
    return model


def _f32(name, array):
    return numpy_helper.from_array(np.asarray(array, np.float32), name)


def _i64(name, values):
    return numpy_helper.from_array(np.asarray(values, np.int64), name)


def _group_of(model, node):
    return next(g for g in fusion_groups(model) if node in g.nodes)


def _conv_plus(extra_nodes, extra_inputs, extra_inits, y_input):
    """Conv(x) + y_input: the Add is the Conv's elementwise epilogue."""
    w = _f32("W", np.full((4, 3, 1, 1), 0.25))
    nodes = [
        helper.make_node("Conv", ["x", "W"], ["c"], name="conv"),
        *extra_nodes,
        helper.make_node("Add", ["c", y_input], ["y"], name="add"),
    ]
    inputs = [("x", TensorProto.FLOAT, [1, 3, 4, 4]), *extra_inputs]
    return _model(nodes, inputs, ("y", TensorProto.FLOAT, [1, 4, 4, 4]), [w, *extra_inits])


@pytest.mark.parametrize(
    ("node", "extra_inputs", "extra_inits"),
    [
        (  # broadcast_to of a per-channel bias
            helper.make_node("Expand", ["b", "shape"], ["e"], name="bcast"),
            [("b", TensorProto.FLOAT, [1, 4, 1, 1])],
            [_i64("shape", [1, 4, 4, 4])],
        ),
        (  # expand_dims
            helper.make_node("Unsqueeze", ["b", "axes"], ["e"], name="bcast"),
            [("b", TensorProto.FLOAT, [4, 4, 4])],
            [_i64("axes", [0])],
        ),
        (  # tile
            helper.make_node("Tile", ["b", "reps"], ["e"], name="bcast"),
            [("b", TensorProto.FLOAT, [1, 4, 1, 4])],
            [_i64("reps", [1, 1, 4, 1])],
        ),
    ],
    ids=["Expand", "Unsqueeze", "Tile"],
)
def test_broadcast_ops_join_the_conv_epilogue_as_in_tvm(node, extra_inputs, extra_inits):
    # TVM: a kBroadcast node fuses into its post-dominator's group even when a Conv anchors
    # it (the sink may be OutEWiseFusable); a kInjective one (their old kind here) may not.
    model = _conv_plus([node], extra_inputs, extra_inits, "e")
    group = _group_of(model, "conv")
    assert set(group.nodes) == {"conv", "bcast", "add"}
    assert group.anchor == "conv"


def test_trilu_is_a_conv_epilogue():
    w = _f32("W", np.full((4, 3, 1, 1), 0.25))
    nodes = [
        helper.make_node("Conv", ["x", "W"], ["c"], name="conv"),
        helper.make_node("Trilu", ["c"], ["y"], name="trilu"),
    ]
    inputs = [("x", TensorProto.FLOAT, [1, 3, 4, 4])]
    model = _model(nodes, inputs, ("y", TensorProto.FLOAT, [1, 4, 4, 4]), [w], opset=14)
    assert set(_group_of(model, "conv").nodes) == {"conv", "trilu"}


def test_grid_sample_fuses_with_elementwise_neighbours():
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("GridSample", ["r", "grid"], ["s"], name="sample"),
        helper.make_node("Sigmoid", ["s"], ["y"], name="sigmoid"),
    ]
    inputs = [
        ("x", TensorProto.FLOAT, [1, 2, 4, 4]),
        ("grid", TensorProto.FLOAT, [1, 3, 3, 2]),
    ]
    model = _model(nodes, inputs, ("y", TensorProto.FLOAT, [1, 2, 3, 3]), opset=16)
    assert set(_group_of(model, "sample").nodes) == {"relu", "sample", "sigmoid"}


def test_one_hot_anchors_its_group_and_takes_no_prologue():
    nodes = [
        helper.make_node("Cast", ["i"], ["ic"], name="cast", to=TensorProto.INT64),
        helper.make_node("OneHot", ["ic", "depth", "values"], ["h"], name="onehot"),
        helper.make_node("Relu", ["h"], ["y"], name="relu"),
    ]
    inits = [_i64("depth", [5]), _f32("values", [0.0, 1.0])]
    model = _model(
        nodes, [("i", TensorProto.INT32, [3])], ("y", TensorProto.FLOAT, [3, 5]), inits, opset=11
    )
    group = _group_of(model, "onehot")
    assert set(group.nodes) == {"onehot", "relu"}
    assert group.anchor == "onehot"
    assert _group_of(model, "cast").nodes == ["cast"]


def test_roi_align_anchors_its_epilogue():
    nodes = [
        helper.make_node("RoiAlign", ["x", "rois", "idx"], ["r"], name="roi", output_height=2),
        helper.make_node("Relu", ["r"], ["y"], name="relu"),
    ]
    inputs = [
        ("x", TensorProto.FLOAT, [1, 2, 8, 8]),
        ("rois", TensorProto.FLOAT, [3, 4]),
        ("idx", TensorProto.INT64, [3]),
    ]
    model = _model(nodes, inputs, ("y", TensorProto.FLOAT, [3, 2, 2, 1]), opset=16)
    group = _group_of(model, "roi")
    assert set(group.nodes) == {"roi", "relu"} and group.anchor == "roi"


def test_eye_like_is_a_singleton():
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("EyeLike", ["r"], ["y"], name="eye"),
    ]
    model = _model(nodes, [("x", TensorProto.FLOAT, [3, 3])], ("y", TensorProto.FLOAT, [3, 3]))
    assert _group_of(model, "eye").nodes == ["eye"]


def test_einsum_transpose_fuses_but_contractions_do_not_chain():
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("Einsum", ["r"], ["t"], name="transpose", equation="ij->ji"),
        helper.make_node("Einsum", ["t", "w"], ["m1"], name="mm1", equation="ij,jk->ik"),
        helper.make_node("Einsum", ["m1", "w"], ["m2"], name="mm2", equation="ij,jk->ik"),
        helper.make_node("Sigmoid", ["m2"], ["y"], name="sigmoid"),
    ]
    inputs = [("x", TensorProto.FLOAT, [3, 3]), ("w", TensorProto.FLOAT, [3, 3])]
    model = _model(nodes, inputs, ("y", TensorProto.FLOAT, [3, 3]), opset=12)
    assert set(_group_of(model, "transpose").nodes) == {"relu", "transpose"}
    assert _group_of(model, "mm1").nodes == ["mm1"]
    assert set(_group_of(model, "mm2").nodes) == {"mm2", "sigmoid"}


# ---------------------------------------------------------------------------- noop ranks


@pytest.mark.parametrize(
    ("node", "init", "y_shape"),
    [
        (helper.make_node("Unsqueeze", ["x", "k"], ["u"]), _i64("k", [0]), [1, 6]),
        (helper.make_node("Expand", ["x", "k"], ["u"]), _i64("k", [2, 2, 3]), [2, 6]),
        (helper.make_node("Tile", ["x", "k"], ["u"]), _i64("k", [1, 2]), [2, 6]),
    ],
    ids=["Unsqueeze", "Expand", "Tile"],
)
def test_eliminate_noops_keeps_a_flatten_of_a_broadcast_op(node, init, y_shape):
    # Expand, Tile and Unsqueeze are BROADCAST now; eliminate-noops' rank walk must not take
    # their rank as the largest input rank (x's 2 here, and a Flatten of rank 2 is a no-op).
    nodes = [node, helper.make_node("Flatten", ["u"], ["y"], axis=1)]
    model = _model(
        nodes, [("x", TensorProto.FLOAT, [2, 3])], ("y", TensorProto.FLOAT, y_shape), [init]
    )
    out = run(model, "eliminate-noops")
    assert [n.op_type for n in out.graph.node].count("Flatten") == (node.op_type != "Tile")
    assert_same_outputs(model, out, {"x": np.arange(6, dtype=np.float32).reshape(2, 3)})
