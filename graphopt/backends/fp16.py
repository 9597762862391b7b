"""Rewrite an ONNX model to float16 for TensorRT's strongly typed networks: `fp16_model`.

`fp16_model(model)` runs onnxruntime's float16 converter (`convert_float_to_float16`, graph
inputs and outputs kept float32) and mends what it gets wrong: it first decides which nodes
must stay float32 behind Casts (those reading a float32 constant float16 cannot hold,
`fp16_error` beyond `FP16_TOLERANCE`; what computes an output's shape; ops ONNX types as
float32 only; sparse and ConstantOfShape constants) and renames what would clash in its
name-keyed bookkeeping (body names, repeated initializers, pass-through outputs); afterwards it
moves Casts the converter left out of scope into If/Loop/Scan bodies and lets blocked nodes
read and write float32 without a round trip through float16. Model-local functions are inlined
first, and Q/DQ models move to opset 19 so that their scales become float16.
`graphopt.backends.tensorrt` re-exports `fp16_model` (`build_engine(..., fp16=True)` on
TensorRT 11 calls it).

What it does not do: run the model (activations beyond ±65504 still overflow in float16, see
`fp16_model`), optimize it (run the `tensorrt` pipeline first), import TensorRT, or convert to
bfloat16 or INT8.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import onnx

from graphopt.errors import BackendError, first_line

# The TensorRT backend's logger, as before this module moved out of it: filters on
# "graphopt.backends.tensorrt" keep catching the float16 messages.
log = logging.getLogger("graphopt.backends.tensorrt")

FP16_MAX = 65504.0
# A float32 constant that float16 moves by more than this, relative to its largest element,
# stays float32 (`fp16_error`); rounding to a normal float16 moves it by 2^-11 (4.9e-4) at most.
FP16_TOLERANCE = 1e-3


def fp16_error(value: np.ndarray) -> float:
    """How far onnxruntime's float16 converter moves the float32 constant `value`: the largest
    |f16(v) - v| over its finite elements, relative to their largest |v| (inf where one is
    beyond ±65504, which the converter clamps to 65504; 0 for no finite element or all zeros).

    Rounding to a normal float16 is within 2^-11 ≈ 4.9e-4 of each element; below 6.1e-5 the
    step is the subnormal 5.96e-8, and the converter clamps 0 < |v| < 5.96e-8 up to 5.96e-8 (a
    weight of 1e-8 becomes 6x too big, 1e-9 60x). Measured against the tensor's largest
    element, not element by element: a tiny element of a weight whose others are of normal
    size moves the products no more than rounding the activations to float16 does (element by
    element, 65, 161 and 36 tensors of common_det, layout_cdla and PP-OCRv4 det would count,
    most of their convolution weights; against the largest element, only PP-OCRv4 det's
    variance of 9.8e7)."""
    top = _largest_finite(value)
    if top > FP16_MAX:
        return float("inf")
    if top == 0.0:
        return 0.0
    v = np.asarray(value, np.float32).ravel()
    v = v[np.isfinite(v)]
    a = np.abs(v)
    error = float(np.abs(v.astype(np.float16).astype(np.float32) - v).max())
    tiny = (a > 0) & (a < FP16_LEAST)
    if tiny.any():  # the converter writes them as ±5.96e-8 (numpy: 0 below 2.98e-8)
        error = max(error, FP16_LEAST - float(a[tiny].min()))
    return error / top


# The least positive float16 (a subnormal, 2^-24 ≈ 5.96e-8): the converter's clamp for
# 0 < |v| below it. A tensor whose largest |v| is at least FP16_LEAST / FP16_TOLERANCE
# (5.96e-5) and at most 65504 is within FP16_TOLERANCE: no element moves by more than
# max(|v| 2^-11, 5.96e-8).
FP16_LEAST = 2.0**-24


def _largest_finite(value: np.ndarray) -> float:
    """The largest |v| over the finite elements of `value` (0.0 where there is none)."""
    a = np.abs(np.asarray(value, np.float32))
    return float(np.max(a, initial=0.0, where=np.isfinite(a)))


# Ops that add a constant: one float16 cannot hold precisely, but within ±65504, moves their
# result by 5.96e-8 at most, float16's own step at 0 (an epsilon: Add(variance, 1e-12)).
_ADDING_OPS = frozenset({"Add", "Sub", "Sum"})


def _fp16_unsafe(value: np.ndarray | None, readers: Iterable[onnx.NodeProto] | None = None) -> bool:
    """Whether a constant is float32 and float16 would move it beyond `FP16_TOLERANCE`; not
    one within ±65504 that `readers` (when given, at least one) only add (`_ADDING_OPS`):
    kept float32, Add(variance, 1e-12) would write 1e-12 to float16 as 0 where the variance
    is 0, and the Div by its Sqrt that follows would make NaN of 0 / 0, where the clamped
    epsilon (5.96e-8) gives 0; and it would cost two Casts per decomposed LayerNorm."""
    if value is None or value.dtype != np.float32 or value.size == 0:
        return False
    top = _largest_finite(value)
    if FP16_LEAST / FP16_TOLERANCE <= top <= FP16_MAX:
        return False  # (the bound above: most weights, without rounding them)
    error = fp16_error(value)
    if error <= FP16_TOLERANCE:
        return False
    if error == float("inf") or readers is None:
        return True
    from graphopt.ir.nodes import is_default_domain

    adding = [n.op_type in _ADDING_OPS and is_default_domain(n) for n in readers]
    return not (adding and all(adding))


def fp16_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with float32 weights and activations in float16, graph inputs and outputs kept
    float32 (Casts at the boundary), for TensorRT's strongly typed networks.

    Q/DQ models move to opset 19 so that their scales, too, become float16. Kept float32
    behind Casts: the ops onnxruntime's converter blocks, those ONNX types as float32 only at
    the model's opset (`_float32_typed_ops`) and `FLOAT32_ONLY_OPS`; every node that reads a float
    constant float16 cannot hold (`fp16_error` beyond `FP16_TOLERANCE`: e.g. an unfolded
    BatchNorm variance of 1e8, which would become 65504, or a scale of 1e-8, which would
    become 5.96e-8; not a tiny one that is only added, such as an epsilon: `_fp16_unsafe`),
    or a ConstantOfShape filling with one, or a Cast/CastLike to float of such a constant of
    another type (int64 70000, double 1e-9: `_casts_unsafe_constant`), and the nodes reading
    it; float arithmetic on integers that goes back to an integer type or a comparison
    (Cast(Cast(Shape(x), float) * 0.5, int64): float16 holds integers to 2048 only,
    `_block_integer_arithmetic`); an op of another domain with a graph attribute
    (FlexAttention's score_mod); in an If/Loop/Scan body the body's nodes that read
    it, and a main-graph If/Loop/Scan whose body (or a body nested in it) outputs one, bodies
    and all; what sets an output's shape (Resize/Upsample scales, Range inputs, and the
    Constants, Casts and arithmetic making them: `_block_shape_arithmetic`); a Cast to float,
    or a Constant, that only such nodes read or that writes a graph output; a sparse float
    Constant; what carries a mask of such a constant (float32's lowest, -3.4e38, which
    float16 makes -inf) into a Softmax or Attention's attn_mask, and that Softmax or Attention
    (`_block_masked_softmax`: a fully masked row was NaN, or zeros). Between two such nodes,
    and from a graph input or to a graph output, values stay float32 (the converter rounded
    them through float16: 1e5 became inf). A float32 constant, or a graph
    input, that is a graph output is written there exactly. Optimize with the `tensorrt`
    pipeline first so that such constants are folded away and more of the model runs in
    float16. Model-local functions are inlined first (`_inline_functions`), as TensorRT's
    parser would. A `BackendError` for a model whose tensors keep their data in external
    files (load it with its data) or that imports no ONNX opset for the Casts.

    What it cannot know without running the model: activations beyond ±65504 (a float16 node
    whose inputs are in range, or a blocked node's result that float16 nodes read) overflow
    to inf, and those below 6e-8 flush to 0, as in any float16 network; check the result on
    real inputs (onnxruntime's CPU kernels compute most float16 ops in float32 and drop the
    Casts between them, so they hide such overflow)."""
    from onnx import numpy_helper
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    from graphopt.backends.trt_check import imports_qdq
    from graphopt.ir import Graph

    _refuse_external_data(model)
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    if copy.functions:
        copy = _inline_functions(copy)
    _float_constants_as_tensors(copy)
    _dequantize_output_dtypes(copy)
    blocked_nodes: set[str] = set()
    _body_names_apart_from_main_io(copy)
    passed = _take_passthrough_outputs(copy)
    _constant_outputs_as_identities(copy, blocked_nodes)
    graph = Graph(copy)
    out_of_range: list[tuple[str, np.ndarray]] = []
    read_in_bodies: set[str] = set()
    for name in list(graph.initializers) + [
        o for n in copy.graph.node if n.op_type == "Constant" for o in n.output
    ]:
        value = graph.constant(name)
        if not _fp16_unsafe(value, graph.consumer_nodes(name)):
            continue
        assert value is not None
        for n in graph.consumer_nodes(name):
            if name in n.input:
                blocked_nodes.add(n.name)
            else:  # read in its bodies only: the readers there stay float32, not the whole node
                read_in_bodies.add(name)
        out_of_range.append((name, value))
    for n in copy.graph.node:
        readers = graph.consumer_nodes(n.output[0]) if n.output else []
        # a ConstantOfShape's attribute stays float32 where the node is blocked; a constant of
        # another type cast to float: the same
        if (n.op_type == "ConstantOfShape" and _fills_unsafe(n, readers)) or _casts_unsafe_constant(
            n, graph.constant, readers
        ):
            blocked_nodes.add(n.name)
            for reader in readers:
                if n.output[0] in reader.input:
                    blocked_nodes.add(reader.name)
                else:
                    read_in_bodies.add(n.output[0])
    # The converter turns every Constant node to float16 whatever blocks its consumers, but
    # leaves an initializer that only blocked nodes read in float32: move such Constants there.
    moved = {name for name, _ in out_of_range if name not in graph.initializers}
    if moved:
        _remove_constants(copy.graph, moved)
        copy.graph.initializer.extend(
            numpy_helper.from_array(value, name) for name, value in out_of_range if name in moved
        )
    _distinct_body_initializers(copy)
    _block_out_of_range_in_bodies(copy, blocked_nodes, read_in_bodies)
    _block_constant_body_outputs(copy, blocked_nodes)
    _block_sparse_constants(copy, blocked_nodes)
    _block_masked_softmax(copy, blocked_nodes)
    _block_graph_attribute_ops(copy, blocked_nodes)
    blocked = [*DEFAULT_OP_BLOCK_LIST, *FLOAT32_ONLY_OPS]
    if imports_qdq(copy, 10):  # TensorRT 10's parser, as `tensorrt.has_qdq(copy)`
        copy = _qdq_opset_for_fp16(copy, blocked)
    blocked += sorted(_float32_typed_ops(copy) - set(blocked))
    _block_layer_norm_statistics(copy, blocked_nodes)
    _block_shape_arithmetic(copy, set(blocked), blocked_nodes)
    _block_integer_arithmetic(copy, blocked_nodes)
    _refuse_float32_sequences(copy, set(blocked), blocked_nodes)
    if blocked_nodes:
        log.info(
            "fp16: %d nodes read constants float16 cannot hold, or compute shapes, and stay "
            "float32",
            len(blocked_nodes),
        )
    try:
        converted = convert_float_to_float16(
            copy,
            keep_io_types=True,
            op_block_list=blocked,
            node_block_list=sorted(blocked_nodes),
        )
    except Exception as e:  # the converter raises assorted errors on odd graphs
        raise BackendError(f"cannot convert the model to float16: {first_line(e)}") from e
    _casts_into_bodies(converted)
    _casts_into_blocked_bodies(converted, set(blocked), blocked_nodes)
    _float32_io_of_blocked_nodes(converted, set(blocked), blocked_nodes)
    _float32_outer_reads_in_bodies(converted, set(blocked), blocked_nodes)
    for at, output in passed:
        converted.graph.output.insert(at, output)
    _refuse_casts_without_opset(converted)
    # The converter appends its input Casts at the end; TensorRT's parser wants topological order.
    return Graph(converted).commit()


# Ops that onnxruntime's converter does not block but float16 makes invalid where their
# schema does not say so (`_float32_typed_ops` finds those it does): BitCast float32 <-> int32
# needs 32 bits; MeanVarianceNormalization's function body adds a float32 epsilon; the window
# ops and MelWeightMatrix write the type of their `output_datatype` attribute (float32 by
# default), which the converter leaves as it is while it declares the output float16; the
# converter leaves optional types float32 (an optional(tensor(float)) input, OptionalGetElement
# declared float16: "Inferred elem type differs from existing elem type: (1) vs (10)").
FLOAT32_ONLY_OPS = (
    "BitCast",
    "MeanVarianceNormalization",
    "BlackmanWindow",
    "HammingWindow",
    "HannWindow",
    "MelWeightMatrix",
    "Optional",
    "OptionalGetElement",
    "OptionalHasElement",
)


def _refuse_float32_sequences(
    model: onnx.ModelProto, blocked_ops: set[str], blocked_nodes: set[str]
) -> None:
    """A `BackendError` for what cannot stay float32 for being a sequence of float tensors:
    a main-graph input or output (the converter made it a sequence of float16 tensors, so
    float32 feeds were refused: 'TensorSeq: tensor to be added has a different data type'),
    or the input or output of a node kept float32 (the converter put a tensor Cast on the
    sequence, an invalid model: SequenceInsert(seq, 1e5) gave "Type 'seq(tensor(float16))' of
    input parameter (seq) of operator (Cast) ... is invalid"; in a body too)."""
    from graphopt.ir.nodes import is_default_domain, nested_bodies

    def is_float_sequence(v: onnx.ValueInfoProto) -> bool:
        return v.type.sequence_type.elem_type.tensor_type.elem_type == onnx.TensorProto.FLOAT

    main = model.graph
    for kind, values in (("input", main.input), ("output", main.output)):
        for v in values:
            if is_float_sequence(v):
                raise BackendError(
                    f"cannot convert the model to float16: graph {kind} {v.name!r} is a "
                    "sequence of float tensors, which cannot stay float32 behind a Cast"
                )
    kept = [
        n
        for g in (main, *nested_bodies(main))
        for n in g.node
        if n.name in blocked_nodes or (is_default_domain(n) and n.op_type in blocked_ops)
    ]
    if not kept or not _may_hold_sequences(model):
        return
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # a model onnx cannot infer: no sequence known
        return
    sequences = {
        v.name
        for g in (inferred.graph, *nested_bodies(inferred.graph))
        for v in (*g.input, *g.output, *g.value_info)
        if is_float_sequence(v)
    }
    for n in kept:
        touched = sequences.intersection([*n.input, *n.output])
        if touched:
            node = f"node {n.name!r} ({n.op_type})" if n.name else f"an unnamed {n.op_type} node"
            raise BackendError(
                f"cannot convert the model to float16: {node} stays float32, but "
                f"{sorted(touched)[0]!r} is a sequence of float tensors, which cannot stay "
                "float32 behind a Cast"
            )


def _may_hold_sequences(model: onnx.ModelProto) -> bool:
    """Whether a tensor of `model` may be a sequence: an input of a graph or body declared a
    sequence or optional, or a node of an op that makes one from tensors (SequenceConstruct,
    SequenceEmpty, SplitToSequence; an empty Optional of a sequence type, which
    OptionalGetElement reads as one) or of another domain. Without one no sequence exists, and
    `_refuse_float32_sequences` skips onnx's shape inference (20-30 ms on the detectors)."""
    from graphopt.ir.nodes import is_default_domain, nested_bodies

    for g in (model.graph, *nested_bodies(model.graph)):
        if any(
            v.type.HasField("sequence_type") or v.type.HasField("optional_type") for v in g.input
        ):
            return True
        for n in g.node:
            if not is_default_domain(n) or n.op_type in _SEQUENCE_MAKING_OPS:
                return True
    return False


_SEQUENCE_MAKING_OPS = frozenset(
    ["SequenceConstruct", "SequenceEmpty", "SplitToSequence", "Optional"]  # (Optional(type=seq))
)


def _refuse_casts_without_opset(model: onnx.ModelProto) -> None:
    """A `BackendError` where the converted `model` has ONNX nodes (the converter's Casts)
    but imports no ONNX opset, as a model of ai.onnx.preview.training ops alone (onnx's
    test_adagrad node case): onnx's checker refuses it ("No opset import for domain ''")."""
    from graphopt.ir.nodes import default_opset, is_default_domain, nested_bodies

    if default_opset(model) or not any(
        is_default_domain(n) for g in (model.graph, *nested_bodies(model.graph)) for n in g.node
    ):
        return
    domains = ", ".join(sorted({o.domain for o in model.opset_import})) or "none"
    raise BackendError(
        "cannot convert the model to float16: it imports no ONNX opset (only "
        f"{domains}), and its float16 Casts need one"
    )


def _refuse_external_data(model: onnx.ModelProto) -> None:
    """A `BackendError` naming the first tensor (initializer, sparse initializer or Constant
    value, in any graph or function) whose data is in an external file: `fp16_model` read it
    from the current directory, not the model's (onnx's ValidationError '... should be stored
    in w.bin, but it is not regular file', a traceback), and found there, the converter read
    its float32 bytes as float16 ('cannot reshape array of size 128 into shape (64,)')."""
    from graphopt.ir.nodes import nested_bodies

    graphs = [model.graph, *(f for f in model.functions)]
    for graph in list(graphs):
        graphs.extend(nested_bodies(graph))
    for graph in graphs:
        tensors = [*getattr(graph, "initializer", ())]
        tensors += [s.values for s in getattr(graph, "sparse_initializer", ())]
        for n in graph.node:
            for a in n.attribute:
                tensors += [a.t, *a.tensors, a.sparse_tensor.values]
        for t in tensors:
            if t.data_location == onnx.TensorProto.EXTERNAL:
                where = next((e.value for e in t.external_data if e.key == "location"), "")
                raise BackendError(
                    f"cannot convert the model to float16: tensor {t.name!r} keeps its data in "
                    f"the external file {where!r}; load the model with its external data"
                )


def _float32_typed_ops(model: onnx.ModelProto) -> set[str]:
    """The ops of `model` (any graph) with an input or output that ONNX types, at the model's
    opset for their domain (ai.onnx.ml and ai.onnx.preview.training too: Adagrad, Adam,
    Momentum), as float32 and not float16: Celu (opset 12 on), IsInf below 20,
    DynamicQuantizeLinear's x, TfIdfVectorizer's output, QLinearConv/QLinearMatMul's scales
    below 21, Q/DQ below 19 (`_qdq_opset_for_fp16` moves them first)... Each made an invalid
    model in float16 ("has unsupported type: tensor(float16)"); blocked by op type, as the
    converter blocks (an op of that name in another domain stays float32 too). Not Resize
    (the converter keeps its scales float32 itself) nor LayerNormalization (only its
    Mean/InvStdDev are float32: `_block_layer_norm_statistics`)."""
    from onnx import defs

    from graphopt.ir.nodes import default_opset, is_default_domain, nested_bodies

    versions = {o.domain: o.version for o in model.opset_import if o.domain}
    versions[""] = default_opset(model)
    ops = {
        ("" if is_default_domain(n) else n.domain, n.op_type)
        for g in (model.graph, *nested_bodies(model.graph))
        for n in g.node
    } - {("", "Resize"), ("", "LayerNormalization")}
    found = set()
    for domain, op in ops:
        if domain not in versions:
            continue
        try:
            schema = defs.get_schema(op, versions[domain], domain)
        except defs.SchemaError:  # an op onnx does not know (at this opset, in this domain)
            continue
        allowed = {c.type_param_str: set(c.allowed_type_strs) for c in schema.type_constraints}
        for param in (*schema.inputs, *schema.outputs):
            types = allowed.get(param.type_str, {param.type_str})
            if "tensor(float)" in types and "tensor(float16)" not in types:
                found.add(op)
    return found


def _block_graph_attribute_ops(model: onnx.ModelProto, blocked_nodes: set[str]) -> None:
    """A node of another domain than ONNX's with a graph attribute (ai.onnx.preview
    FlexAttention's score_mod and prob_mod, in any graph: a body's node without a name gets
    one) stays float32, graph and all: the converter made its inputs float16 but left the
    graph's float32 ('[ShapeInferenceError] Attribute score_mod input(0) type mismatch.
    Expected 1, got 10')."""
    from graphopt.ir.nodes import is_default_domain, nested_bodies

    graphs = [model.graph, *nested_bodies(model.graph)]
    taken = {n.name for g in graphs for n in g.node}
    for graph in graphs:
        for node in graph.node:
            if is_default_domain(node):  # (If/Loop/Scan, SequenceMap: the converter's own way)
                continue
            if any(
                a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
                for a in node.attribute
            ):
                if not node.name and graph is not model.graph:
                    node.name = _first_free("fp16_kept", taken)
                blocked_nodes.add(node.name)


def _block_layer_norm_statistics(model: onnx.ModelProto, blocked_nodes: set[str]) -> None:
    """A LayerNormalization that writes its Mean or InvStdDev (in any graph) stays float32
    (blocked; a body's node without a name gets one): their type is stash_type's, float32,
    which the converter declared float16, an invalid model ('Inferred elem type differs from
    existing elem type')."""
    from graphopt.ir.nodes import is_default_domain, nested_bodies

    graphs = [model.graph, *nested_bodies(model.graph)]
    taken = {n.name for g in graphs for n in g.node}
    for graph in graphs:
        for node in graph.node:
            if node.op_type != "LayerNormalization" or not is_default_domain(node):
                continue
            if not any(node.output[1:]):
                continue
            if not node.name:
                node.name = _first_free("fp16_kept", taken)
            blocked_nodes.add(node.name)


def _shape_slots(node: onnx.NodeProto, opset: int) -> tuple[int, ...]:
    """The inputs of `node` whose values set its output's shape: Resize's and Upsample's
    scales, Range's start, limit and delta."""
    from graphopt.ir.nodes import is_default_domain

    if not is_default_domain(node):
        return ()
    if node.op_type == "Resize":
        return (1,) if opset <= 10 else (2,)
    if node.op_type == "Upsample":
        return (1,)
    if node.op_type == "Range":
        return (0, 1, 2)
    return ()


# Ops whose outputs are never float: not kept float32 for the shapes they compute (Shape of a
# float16 activation would read it through a Cast to float32 for nothing).
_NOT_FLOAT_OPS = frozenset(
    [
        "Shape",
        "Size",
        "NonZero",
        "ArgMax",
        "ArgMin",
        "Equal",
        "Less",
        "Greater",
        "LessOrEqual",
        "GreaterOrEqual",
        "Not",
        "And",
        "Or",
        "Xor",
        "IsNaN",
        "IsInf",
    ]
)


def _block_shape_arithmetic(
    model: onnx.ModelProto, blocked_ops: set[str], blocked_nodes: set[str]
) -> None:
    """Keep float32 what computes Resize's or Upsample's scales and Range's inputs, in the
    main graph and in If/Loop/Scan bodies (`_shape_slots`): each node whose every output is
    read only there, or by nodes kept for it, and each Constant node, or Cast to float, that
    only such nodes or blocked nodes read, or that writes a main-graph output
    (`blocked_nodes` gains them; a body's node without a name of its own gets one). The
    converter made such a Constant float16 whatever its readers, and computed such scales in
    float16, which changes the output's shape: scales of 1/3 became 0.33325 and Resize made
    99 rows of 300, not 100 (Upsample by 4/3: 399, not 400); Range(0, 1, 0.1) made 11 values,
    not 10. Not a node with bodies or of another domain."""
    from collections import Counter

    from graphopt.ir.graph import outer_references
    from graphopt.ir.nodes import default_opset, is_default_domain, nested_bodies, subgraphs

    opset = default_opset(model)
    graphs = [model.graph, *nested_bodies(model.graph)]
    names = Counter(n.name for g in graphs for n in g.node)
    taken = set(names) | {t for g in graphs for n in g.node for t in (*n.input, *n.output)}

    def block(node: onnx.NodeProto, main: bool) -> None:
        if not main and (not node.name or names[node.name] > 1):  # the converter blocks names
            names[node.name] -= 1
            node.name = _first_free("fp16_kept", taken)
        blocked_nodes.add(node.name)

    for graph in graphs:
        main = graph is model.graph
        outputs = {o.name for o in graph.output} if main else set()
        reads: dict[str, list[tuple[onnx.NodeProto, int | None]]] = {}  # None: in a body
        for n in graph.node:
            for i, name in enumerate(n.input):
                reads.setdefault(name, []).append((n, i))
            for sub in subgraphs(n):
                for name in outer_references(sub):
                    reads.setdefault(name, []).append((n, None))
        kept: set[int] = set()

        def wants_float32(
            reader: onnx.NodeProto, slot: int | None, generic: bool, kept: set[int] = kept
        ) -> bool:
            if id(reader) in kept:
                return True
            if slot is not None and slot in _shape_slots(reader, opset):
                return True
            return generic and (reader.name in blocked_nodes or reader.op_type in blocked_ops)

        for n in reversed(graph.node):  # (ONNX keeps nodes in topological order)
            if not is_default_domain(n) or any(subgraphs(n)) or n.name in blocked_nodes:
                continue
            to = next((a.i for a in n.attribute if a.name == "to"), None)
            if n.op_type in _NOT_FLOAT_OPS or (
                n.op_type == "Cast" and to != onnx.TensorProto.FLOAT
            ):
                continue  # not float (the converter leaves it): kept, it read float16 (Shape)
            # a value made here, not computed from float16 ones: also kept for a graph output
            # or a blocked reader (Cast(to=FLOAT) of int64 70001 made inf; 2049 made 2048)
            made = n.op_type in ("Constant", "Cast")
            named = [o for o in n.output if o]
            if named and all(_settled(o, outputs, reads, made, wants_float32) for o in named):
                kept.add(id(n))
                block(n, main)


# Ops that compute on integers held as floats (shape arithmetic: Shape -> Cast(float) -> Div
# -> Floor -> Cast(int64)), or move them, without making other values of them.
_INTEGER_ARITHMETIC_OPS = frozenset(
    [
        "Add",
        "Sub",
        "Mul",
        "Div",
        "Mod",
        "Floor",
        "Ceil",
        "Round",
        "Max",
        "Min",
        "Abs",
        "Neg",
        "Clip",
        "Concat",
        "Gather",
        "Squeeze",
        "Unsqueeze",
        "Reshape",
        "Slice",
        "Identity",
        "Expand",
        "Sum",
        "ReduceMax",
        "ReduceMin",
        "ReduceSum",
    ]
)
_COMPARING_OPS = frozenset(["Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"])
_INTEGER_TYPES = frozenset(
    [
        onnx.TensorProto.INT8,
        onnx.TensorProto.INT16,
        onnx.TensorProto.INT32,
        onnx.TensorProto.INT64,
        onnx.TensorProto.UINT8,
        onnx.TensorProto.UINT16,
        onnx.TensorProto.UINT32,
        onnx.TensorProto.UINT64,
        onnx.TensorProto.BOOL,
    ]
)


def _block_integer_arithmetic(model: onnx.ModelProto, blocked_nodes: set[str]) -> None:
    """Keep float32, in the main graph and in If/Loop/Scan bodies, the float arithmetic on
    integers that a Cast takes back to an integer type or a comparison to bool: from a Cast to
    float of an integer tensor through `_INTEGER_ARITHMETIC_OPS` whose other float inputs are
    constants, to that Cast or comparison (`_COMPARING_OPS` of such values only: Less(Cast(
    Range(0, n), float), Cast(length, float)) made a mask that dropped position 2048 of a
    length of 2049) (`blocked_nodes` gains them all; a body's node without a name gets one).
    The converter made it float16, which holds integers exactly up to 2048 only:
    Reshape(x, Cast(Cast(Shape(x), float) * 0.5, int64)) of 4098 elements asked for 2048
    columns, not 2049, and a Loop body's Cast(Cast(i, float) * 0.5, int64) gave 2100 for
    i = 4199, not 2099 (float16 computed as float16, as TensorRT does; onnxruntime's CPU
    kernels compute it in float32)."""
    from collections import Counter

    from graphopt.ir.nodes import is_default_domain, nested_bodies, subgraphs

    graphs = [model.graph, *nested_bodies(model.graph)]
    types: dict[str, int] = {}
    floats: set[str] = set()  # float constants
    producer: dict[str, onnx.NodeProto] = {}
    main_nodes = {id(n) for n in model.graph.node}
    for g in graphs:
        types.update({v.name: v.type.tensor_type.elem_type for v in (*g.input, *g.value_info)})
        types.update({t.name: t.data_type for t in g.initializer})
        floats.update(t.name for t in g.initializer if t.data_type == onnx.TensorProto.FLOAT)
        for n in g.node:
            if not is_default_domain(n) or any(subgraphs(n)):
                continue
            for o in n.output:
                producer[o] = n
            if n.op_type == "Constant":
                value = next((a for a in n.attribute if a.name == "value"), None)
                if value is not None and value.t.data_type in _INTEGER_TYPES:
                    types.update((o, value.t.data_type) for o in n.output)
                elif value is not None and value.t.data_type == onnx.TensorProto.FLOAT:
                    floats.update(n.output)
            elif n.op_type in _NOT_FLOAT_OPS:
                types.update((o, onnx.TensorProto.INT64) for o in n.output)  # (or bool)
            elif n.op_type == "Cast":
                to = next((a.i for a in n.attribute if a.name == "to"), None)
                if to is not None:
                    types.update((o, to) for o in n.output)
    if any(  # (onnx's shape inference only where a Cast to float may read an integer)
        is_default_domain(n)
        and n.input
        and types.get(n.input[0]) in (None, 0, *_INTEGER_TYPES)
        and (
            n.op_type == "CastLike"
            or (
                n.op_type == "Cast"
                and next((a.i for a in n.attribute if a.name == "to"), None)
                == onnx.TensorProto.FLOAT
            )
        )
        for g in graphs
        for n in g.node
    ):
        try:  # (what onnx infers first; what the model says, and the rules above, win)
            inferred = onnx.shape_inference.infer_shapes(model)
        except Exception:  # a model onnx cannot infer: the rules alone
            inferred = None
        if inferred is not None:
            known = dict(types)
            for g in (inferred.graph, *nested_bodies(inferred.graph)):
                types.update(
                    (v.name, v.type.tensor_type.elem_type)
                    for v in g.value_info
                    if v.type.tensor_type.elem_type
                )
            types.update(known)
    integral: set[str] = set()  # float tensors holding integers made float
    ends: list[onnx.NodeProto] = []
    for g in graphs:  # (each body after the graphs holding it)
        for n in g.node:
            if not is_default_domain(n) or any(subgraphs(n)) or not n.input:
                continue
            to = next((a.i for a in n.attribute if a.name == "to"), None)
            if n.op_type == "CastLike" and len(n.input) > 1:  # (a target of unknown type:
                to = types.get(n.input[1], onnx.TensorProto.FLOAT)  # as float, kept float32)
            if n.op_type in ("Cast", "CastLike") and to == onnx.TensorProto.FLOAT:
                if types.get(n.input[0]) in _INTEGER_TYPES:
                    integral.update(n.output)
            elif n.op_type in ("Cast", "CastLike") and to in _INTEGER_TYPES:
                if n.input[0] in integral:
                    ends.append(n)
            elif n.op_type in _COMPARING_OPS:  # (a bool of them: an end too)
                read = [i for i in n.input if i]
                if any(i in integral for i in read) and all(
                    i in integral or i in floats for i in read
                ):
                    ends.append(n)
            elif n.op_type in _INTEGER_ARITHMETIC_OPS:
                read = [i for i in n.input if i and (i in integral or i in floats)]
                others = [i for i in n.input if i and i not in read]
                if any(i in integral for i in read) and all(
                    types.get(i) in _INTEGER_TYPES for i in others
                ):
                    integral.update(o for o in n.output if o)
    keep: dict[int, onnx.NodeProto] = {}
    todo = list(ends)
    while todo:
        n = todo.pop()
        if id(n) in keep:
            continue
        keep[id(n)] = n
        todo.extend(producer[i] for i in n.input if i in integral and i in producer)
    if not keep:
        return
    names = Counter(n.name for g in graphs for n in g.node)
    taken = set(names) | {t for g in graphs for n in g.node for t in (*n.input, *n.output)}
    for n in keep.values():
        if id(n) not in main_nodes and (not n.name or names[n.name] > 1):
            names[n.name] -= 1  # (the converter blocks names: a body's must be its own)
            n.name = _first_free("fp16_kept", taken)
        blocked_nodes.add(n.name)


def _settled(
    name: str,
    outputs: set[str],
    reads: Mapping[str, list[tuple[onnx.NodeProto, int | None]]],
    made: bool,
    wants_float32: Any,
) -> bool:
    """Whether every reader of `name` wants it float32 (`_block_shape_arithmetic`); a graph
    output counts as one where `made`."""
    if name in outputs and not made:
        return False
    if name not in outputs and name not in reads:
        return False
    return all(wants_float32(r, slot, made) for r, slot in reads.get(name, []))


def _fills_unsafe(node: onnx.NodeProto, readers: Iterable[onnx.NodeProto]) -> bool:
    """Whether `node` is a ConstantOfShape filling with a float32 value float16 cannot hold."""
    from onnx import numpy_helper

    from graphopt.ir.nodes import is_default_domain

    if node.op_type != "ConstantOfShape" or not is_default_domain(node):
        return False
    value = next((a.t for a in node.attribute if a.name == "value"), None)
    if value is None or value.data_type != onnx.TensorProto.FLOAT:
        return False
    return _fp16_unsafe(numpy_helper.to_array(value), readers)


def _casts_unsafe_constant(
    node: onnx.NodeProto,
    value_of: Callable[[str], np.ndarray | None],
    readers: Iterable[onnx.NodeProto],
) -> bool:
    """Whether `node` is a Cast to float, or a CastLike, of a constant of another type (int64,
    int32, double, bfloat16, ...; `value_of` gives a constant's value, None for another
    tensor) whose value, as float32, float16 cannot hold (`_fp16_unsafe`, `readers` those of
    the node's output): the converter turns such a Cast into a Cast to float16, and a CastLike
    of a float16 tensor writes float16 (int64 70000 became inf, double 1e-9 became 0), which
    `_fp16_unsafe` does not see, reading float32 constants only. A CastLike whose target is
    a constant of a type other than float; any other counts as float (kept float32, a CastLike
    to an integer type reads and writes what it did)."""
    from graphopt.ir.nodes import is_default_domain

    if node.op_type not in ("Cast", "CastLike") or not is_default_domain(node):
        return False
    if not node.output or not node.output[0] or not node.input or not node.input[0]:
        return False
    if node.op_type == "Cast":
        to = next((a.i for a in node.attribute if a.name == "to"), None)
        if to != onnx.TensorProto.FLOAT:
            return False
    elif len(node.input) > 1 and node.input[1]:
        target = value_of(node.input[1])
        if target is not None and target.dtype != np.float32:
            return False
    value = value_of(node.input[0])
    if value is None or value.dtype == np.float32:
        return False
    if value.dtype.kind not in "iuf" and not value.dtype.name.startswith(("bfloat16", "float8")):
        return False  # (bool: 0 and 1; strings and others: not a Cast to float here)
    with np.errstate(over="ignore", invalid="ignore"):
        as_float = np.asarray(value).astype(np.float32)
    return _fp16_unsafe(as_float, readers)


def _body_names_apart_from_main_io(model: onnx.ModelProto) -> None:
    """Rename what an If/Loop/Scan body defines (node output, input, initializer) under the
    name of a main-graph input or output, with its readers in that body and the bodies inside
    it, and the body's output of that name: the converter renames every node output of such a
    name, in every graph, to its float16 Cast's (the main graph's If writing y and its
    branch's Relu writing y both became graph_output_cast_0: LoadError 'the graph has a cycle
    through node ...'). A body's outputs are positional, so the renamed output means the
    same."""
    from graphopt.ir.nodes import nested_bodies

    main = model.graph
    io = {v.name for v in (*main.input, *main.output)}
    bodies = list(nested_bodies(main))
    clash = any(
        io.intersection(o for n in b.node for o in n.output)
        or io.intersection(v.name for v in (*b.input, *b.initializer))
        for b in bodies
    )
    if not clash:
        return
    graphs = [main, *bodies]
    taken = {t for g in graphs for n in g.node for t in (*n.input, *n.output)}
    taken |= {v.name for g in graphs for v in (*g.input, *g.output, *g.initializer)}
    for body in bodies:  # (each before the bodies inside it)
        defined = {o for n in body.node for o in n.output}
        defined |= {v.name for v in (*body.input, *body.initializer)}
        renamed = {}
        for name in sorted(io & defined):
            renamed[name] = _first_free(name, taken)
        if not renamed:
            continue
        for n in body.node:
            for i, o in enumerate(n.output):
                n.output[i] = renamed.get(o, o)
        for v in (*body.input, *body.initializer, *body.output, *body.value_info):
            v.name = renamed.get(v.name, v.name)
        _rename_reads(body, renamed)


def _take_passthrough_outputs(model: onnx.ModelProto) -> list[tuple[int, onnx.ValueInfoProto]]:
    """Remove the main-graph outputs that are graph inputs, and each repeat of an output
    named before, as (position, output) to put back after the conversion: the converter gave
    each a Cast from float16 writing its name, the input's (an invalid model: 'x is a graph
    input and is also produced by graph_output_cast0') or the first output's ("'y' is
    produced by both 'graph_output_cast0' and 'graph_output_cast1'"). The input stays
    float32, so such an output is the input, exactly; a repeat is the first one."""
    main = model.graph
    seen = {v.name for v in main.input}
    taken, kept = [], []
    for i, out in enumerate(main.output):
        if out.name in seen:
            copy = onnx.ValueInfoProto()
            copy.CopyFrom(out)
            taken.append((i, copy))
        else:
            kept.append(out)
            seen.add(out.name)
    if taken:
        del main.output[:]
        main.output.extend(kept)
    return taken


def _constant_outputs_as_identities(model: onnx.ModelProto, blocked_nodes: set[str]) -> None:
    """A float32 constant that is a main-graph output (an initializer, or a Constant node)
    reaches it through a float32 Identity of its own (`blocked_nodes` gains it), reading an
    initializer of the same value that no other node reads (it stays float32): the converter
    made a Constant's value float16 and Cast it back (1e-8 written as 5.96e-8, 1e5 as 65504),
    and an initializer output became an invalid model (the name both an initializer and its
    output Cast's output). The nodes that read the constant read it under a new name, as
    before under the old one."""
    from onnx import numpy_helper

    from graphopt.ir.graph import constant_node_value, outer_references
    from graphopt.ir.nodes import is_default_domain, nested_bodies, subgraphs

    main = model.graph
    inits = {t.name: t for t in main.initializer}
    inputs = {v.name for v in main.input}
    constants = {
        n.output[0]: n
        for n in main.node
        if n.op_type == "Constant" and is_default_domain(n) and len(n.output) == 1
    }
    found: list[tuple[str, np.ndarray]] = []
    for out in main.output:
        name = out.name
        if name in inputs or any(name == f for f, _ in found):
            continue
        if name in inits:
            if inits[name].data_type != onnx.TensorProto.FLOAT or inits[name].HasField("segment"):
                continue
            value = numpy_helper.to_array(inits[name])
        elif name in constants:
            held = constant_node_value(constants[name])
            if held is None or held.dtype != np.float32:
                continue
            value = held
        else:
            continue
        found.append((name, value))
    if not found:
        return
    taken = _names_in_use([main, *nested_bodies(main)])

    read = {i for n in main.node for i in n.input}
    read |= {r for n in main.node for sub in subgraphs(n) for r in outer_references(sub)}
    renamed: dict[str, str] = {}
    identities = []
    for name, value in found:
        source = _first_free(f"{name}_fp32", taken)
        if name in read:  # the readers keep theirs, under a new name
            renamed[name] = _first_free(name, taken)
            main.initializer.append(numpy_helper.from_array(value, source))
            if name in inits:
                inits[name].name = renamed[name]
            else:
                constants[name].output[0] = renamed[name]
        elif name in inits:
            inits[name].name = source
        else:  # a Constant node no other node reads: its value moves to the initializer
            main.initializer.append(numpy_helper.from_array(value, source))
            main.node.remove(constants[name])
        node = onnx.helper.make_node(
            "Identity", [source], [name], name=_first_free(f"{name}_fp32_out", taken)
        )
        identities.append(node)
        blocked_nodes.add(node.name)
    if renamed:
        _rename_reads(main, renamed)
    main.node.extend(identities)


def _float32_io_of_blocked_nodes(
    model: onnx.ModelProto, blocked_ops: set[str], blocked_nodes: set[str]
) -> None:
    """A blocked (float32) node reads another blocked node's output as it is, in the main
    graph and in If/Loop/Scan bodies, and in the main graph reads a graph input as it is (so
    do Resize's scales and the like, `_shape_slots`) and writes a graph output itself: the
    converter passed each through Cast(float16) -> Cast(float) (`y`: blocked ->
    Cast(float16) -> Cast(float) -> y), rounding float32 for nothing and making inf of a
    value beyond ±65504 (Mul(x, 1e5) blocked for its constant; a TopK of an input holding
    3e6; a ConstantOfShape of 1e-9 and its reader, flushed to 0). The float16 Casts stay
    where other nodes read them."""
    from graphopt.ir.nodes import default_opset, nested_bodies

    opset = default_opset(model)
    for graph in [model.graph, *nested_bodies(model.graph)]:
        _float32_io_in(graph, graph is model.graph, opset, blocked_ops, blocked_nodes)


def _float32_io_in(
    graph: onnx.GraphProto,
    is_main: bool,
    opset: int,
    blocked_ops: set[str],
    blocked_nodes: set[str],
) -> None:
    """`_float32_io_of_blocked_nodes` in one graph (`is_main`: the graph inputs and outputs
    too)."""
    from graphopt.ir.graph import outer_references
    from graphopt.ir.nodes import subgraphs

    producers = {o: n for n in graph.node for o in n.output}
    readers: dict[str, int] = {}  # nodes reading a tensor, their bodies included
    for n in graph.node:
        read = list(n.input)
        read += [r for sub in subgraphs(n) for r in outer_references(sub)]
        for i in read:
            readers[i] = readers.get(i, 0) + 1

    def cast_of(name: str, to: int) -> onnx.NodeProto | None:
        node = producers.get(name)
        if node is None or node.op_type != "Cast" or len(node.input) != 1:
            return None
        return node if any(a.name == "to" and a.i == to for a in node.attribute) else None

    def blocked(node: onnx.NodeProto | None) -> bool:
        return node is not None and (node.name in blocked_nodes or node.op_type in blocked_ops)

    dropped: set[int] = set()
    gone: set[str] = set()

    def unread(up: onnx.NodeProto, down: onnx.NodeProto) -> None:  # `up` lost a reader
        readers[up.output[0]] -= 1
        if readers[up.output[0]] == 0 and id(up) not in dropped:
            dropped.add(id(up))
            gone.add(up.output[0])
            readers[down.output[0]] -= 1
            if readers[down.output[0]] == 0:
                dropped.add(id(down))
                gone.add(down.output[0])

    inputs = {v.name for v in graph.input if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT}
    if not is_main:  # (a body's inputs are float16, and its outputs float16)
        inputs = set()
    for node in graph.node:
        slots = range(len(node.input)) if blocked(node) else _shape_slots(node, opset)
        for i in slots:
            full = node.input[i] if i < len(node.input) else ""
            up = cast_of(full, onnx.TensorProto.FLOAT)
            down = cast_of(up.input[0], onnx.TensorProto.FLOAT16) if up is not None else None
            if up is None or down is None:
                continue
            source = down.input[0]
            if source not in inputs and not blocked(producers.get(source)):
                continue
            node.input[i] = source
            readers[source] = readers.get(source, 0) + 1
            unread(up, down)
    for out in graph.output if is_main else ():
        back = cast_of(out.name, onnx.TensorProto.FLOAT)
        down = cast_of(back.input[0], onnx.TensorProto.FLOAT16) if back is not None else None
        if back is None or down is None or not blocked(producers.get(down.input[0])):
            continue
        full = down.input[0]  # the converter's name, read by its Casts and the bypasses above
        source = producers.pop(full)
        source.output[list(source.output).index(full)] = out.name
        for n in graph.node:
            for i, name in enumerate(n.input):
                if name == full:
                    n.input[i] = out.name
        dropped.add(id(back))
        gone.add(full)
        half = back.input[0]
        readers[half] -= 1
        if readers[half] == 0:
            dropped.add(id(down))
            gone.add(half)
    if not dropped:
        return
    _remove_nodes(graph, lambda n: id(n) in dropped)
    info = [v for v in graph.value_info if v.name not in gone]
    del graph.value_info[:]
    graph.value_info.extend(info)


# Ops that hand a value they read on as it is, or add to it, or pick it: a mask's -3.4e38
# passes them (`_block_masked_softmax`).
_MASK_PASSING_OPS = frozenset(
    {
        "Add",
        "Sub",
        "Mul",
        "Neg",
        "Where",
        "Max",
        "Min",
        "Identity",
        "Cast",
        "Reshape",
        "Flatten",
        "Squeeze",
        "Unsqueeze",
        "Expand",
        "Tile",
        "Transpose",
        "Slice",
        "Gather",
        "GatherElements",
        "Concat",
        "Trilu",
    }
)


def _block_masked_softmax(model: onnx.ModelProto, blocked_nodes: set[str]) -> None:
    """A Softmax (or LogSoftmax) whose input, or an Attention whose attn_mask, a float32
    constant beyond float16's range reaches through a node kept float32 for it (Where(keep,
    0, -3.4e38), (1 - m) * -3.4e38, ConstantOfShape(-3.4e38)) and then only through
    `_MASK_PASSING_OPS` stays float32, and so does every node on the way (`blocked_nodes`
    gains them; one without a name gets one). In float16 such a mask was -inf: a row it masks
    fully was NaN in Softmax (exp(-inf - -inf)), where float32 gives a uniform row (-3.4e38 +
    s is -3.4e38 for every s); in Attention (opset 23) it was a row of zeros (the spec flushes
    a row of -inf to 0), not float32's mean of V (onnx's reference implementation;
    onnxruntime gives 0 for both, computing float16 in float32). Clamping the mask to -65504
    instead (the converters' clamp for constants) would not do: -65504 + s is -inf in float16
    for s below -16. In the main graph and in every If/Loop/Scan body, and across into a body
    (a mask made in one graph and softmaxed in a body of it, at any depth, keeps its carriers
    on both sides float32; the body's read it float32 from outside)."""
    from onnx import numpy_helper

    from graphopt.ir.graph import constant_node_value
    from graphopt.ir.nodes import is_default_domain, nested_bodies

    graphs = [model.graph, *nested_bodies(model.graph)]
    huge: set[str] = set()  # float32 constants with an element float16 cannot hold
    cast_huge: set[str] = set()  # the same, of another type, as a Cast to float makes them
    for g in graphs:
        for t in g.initializer:
            if t.data_location == onnx.TensorProto.EXTERNAL:
                continue
            if t.data_type == onnx.TensorProto.FLOAT:
                if _largest_finite(numpy_helper.to_array(t)) > FP16_MAX:
                    huge.add(t.name)
            elif _huge_as_float(numpy_helper.to_array(t)):
                cast_huge.add(t.name)
        for n in g.node:
            if n.op_type != "Constant" or not is_default_domain(n):
                continue
            value = constant_node_value(n)
            if value is None:
                continue
            if value.dtype == np.float32 and _largest_finite(value) > FP16_MAX:
                huge.update(n.output)
            elif value.dtype != np.float32 and _huge_as_float(value):
                cast_huge.update(n.output)
    taken = {n.name for g in graphs for n in g.node}
    for g in graphs[:1]:  # (the bodies through it: a mask made in a graph reaches its bodies)
        for node in _mask_carriers(g, huge, blocked_nodes, cast_huge)[0]:
            if not node.name:
                node.name = _first_free("fp16_kept", taken)
            if node.name not in blocked_nodes:
                blocked_nodes.add(node.name)
                log.info(
                    "fp16: %s %r stays float32: it carries a mask float16 cannot hold",
                    node.op_type,
                    node.name,
                )


def _huge_as_float(value: np.ndarray) -> bool:
    """Whether a constant of another type than float32 (double, bfloat16, int64, ...) has an
    element beyond float16's range once Cast to float32 (`_block_masked_softmax`)."""
    if value.dtype.kind not in "iuf" and not value.dtype.name.startswith(("bfloat16", "float8")):
        return False
    with np.errstate(over="ignore", invalid="ignore"):
        return _largest_finite(np.asarray(value).astype(np.float32)) > FP16_MAX


def _mask_carriers(
    graph: onnx.GraphProto,
    huge: set[str],
    blocked_nodes: set[str],
    cast_huge: Collection[str] = (),
    outer: Collection[str] = (),
) -> tuple[list[onnx.NodeProto], set[str]]:
    """The nodes of `graph` and of its If/Loop/Scan bodies that carry a mask from a blocked
    node reading a `huge` constant (or a ConstantOfShape filling with one, or a Cast or
    CastLike of a `cast_huge` constant of another type: double -3.4e38), or from an enclosing
    graph's tensor carrying one (`outer`), to a Softmax/LogSoftmax input or an Attention
    attn_mask through `_MASK_PASSING_OPS`, and those sinks (`_block_masked_softmax`), each
    graph's in its order; and the `outer` names a sink here or in a body is reached from."""
    from graphopt.ir.graph import outer_references
    from graphopt.ir.nodes import is_default_domain, subgraphs

    sources = [
        n
        for n in graph.node
        if n.name in blocked_nodes
        and (
            huge.intersection(n.input)
            or (n.op_type == "ConstantOfShape" and _fills_huge(n))
            or (n.op_type in ("Cast", "CastLike") and n.input[:1] and n.input[0] in cast_huge)
        )
    ]
    consumers: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
    for n in graph.node:
        for i, name in enumerate(n.input):
            consumers.setdefault(name, []).append((n, i))
    # forward from the sources (and the outer carriers) through mask-passing ops
    carrying: dict[int, onnx.NodeProto] = {id(n): n for n in sources}
    feeds: dict[int, list[onnx.NodeProto | str]] = {}  # node -> the carriers it reads
    sinks: dict[int, onnx.NodeProto] = {}

    def reach(out: str, source: onnx.NodeProto | str, pending: list[onnx.NodeProto]) -> None:
        for reader, slot in consumers.get(out, []):
            if not is_default_domain(reader):
                continue
            feeds.setdefault(id(reader), []).append(source)
            op = reader.op_type
            if (op in ("Softmax", "LogSoftmax") and slot == 0) or (op == "Attention" and slot == 3):
                sinks[id(reader)] = reader
            elif op in _MASK_PASSING_OPS and id(reader) not in carrying:
                to = next((a.i for a in reader.attribute if a.name == "to"), None)
                if op == "Cast" and to != onnx.TensorProto.FLOAT:
                    continue
                carrying[id(reader)] = reader
                pending.append(reader)

    pending = list(sources)
    for name in outer:
        reach(name, name, pending)
    while pending:
        node = pending.pop()
        for out in node.output:
            reach(out, node, pending)
    # the bodies, with what carries a mask here (and from outside) as their outer carriers
    made = {o: n for n in carrying.values() for o in n.output if o}
    visible = set(outer) | set(made)
    body_kept: list[onnx.NodeProto] = []
    starts: list[onnx.NodeProto | str] = list(sinks.values())
    for n in graph.node:
        for sub in subgraphs(n):
            read = visible & outer_references(sub)
            kept_there, needed = _mask_carriers(sub, huge, blocked_nodes, cast_huge, read)
            body_kept.extend(kept_there)
            starts.extend(made.get(name, name) for name in needed)
    if not starts and not body_kept:
        return [], set()
    # back from the sinks (and the carriers a body needs): the carrying nodes on a way
    kept: dict[int, onnx.NodeProto] = dict(sinks)
    needed_outer: set[str] = set()
    todo = list(starts)
    while todo:
        item = todo.pop()
        if isinstance(item, str):
            needed_outer.add(item)
            continue
        kept[id(item)] = item
        for up in feeds.get(id(item), []):
            if isinstance(up, str):
                needed_outer.add(up)
            elif id(up) not in kept:
                kept[id(up)] = up
                todo.append(up)
    return [node for node in graph.node if id(node) in kept] + body_kept, needed_outer


def _fills_huge(node: onnx.NodeProto) -> bool:
    """Whether a ConstantOfShape fills with a float32 value beyond float16's range."""
    from onnx import numpy_helper

    value = next((a.t for a in node.attribute if a.name == "value"), None)
    if value is None or value.data_type != onnx.TensorProto.FLOAT:
        return False
    return _largest_finite(numpy_helper.to_array(value)) > FP16_MAX


def _float32_outer_reads_in_bodies(
    model: onnx.ModelProto, blocked_ops: set[str], blocked_nodes: set[str]
) -> None:
    """A float32 node of an If/Loop/Scan body (blocked, or in the body of a blocked node, at
    any depth) reads a float32 tensor of an enclosing graph as it is, as
    `_float32_io_of_blocked_nodes` has a node do in its own graph: the main graph's float32
    inputs, and what blocked nodes (or, in a float32 body, any node) write there. It read it
    through that graph's Cast(float16) -> Cast(float), which the converter (or
    `_casts_into_blocked_bodies`, for a blocked If/Loop/Scan's bodies) put there for it:
    Div(m, 1e5) in an If branch, m = Mul(x, 1e5) blocked in the main graph, gave inf where
    the float32 model gives x. Not where a body between them defines the name again. A Cast
    no node reads any more goes, with its value_info."""
    from graphopt.ir.nodes import default_opset, nested_bodies, subgraphs

    def blocked(node: onnx.NodeProto | None) -> bool:
        return node is not None and (node.name in blocked_nodes or node.op_type in blocked_ops)

    graphs = [model.graph, *nested_bodies(model.graph)]
    float32_bodies: set[int] = set()  # the bodies the converter did not enter
    for graph in graphs:  # (each before the bodies inside it)
        for n in graph.node:
            if blocked(n) or id(graph) in float32_bodies:
                float32_bodies.update(
                    id(b) for sub in subgraphs(n) for b in (sub, *nested_bodies(sub))
                )
    for graph in graphs:
        _float32_outer_reads_of(
            graph, graph is model.graph, id(graph) in float32_bodies, default_opset(model), blocked
        )


def _float32_outer_reads_of(
    graph: onnx.GraphProto,
    is_main: bool,
    float32_graph: bool,
    opset: int,
    blocked: Callable[[onnx.NodeProto | None], bool],
) -> None:
    """`_float32_outer_reads_in_bodies` for the tensors of one graph (`is_main`: its float32
    inputs too; `float32_graph`: a body the converter did not enter, all of whose nodes write
    float32) that the bodies inside it read."""
    from graphopt.ir.nodes import subgraphs

    producers = {o: n for n in graph.node for o in n.output}
    inputs = set()
    if is_main:
        inputs = {
            v.name for v in graph.input if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        }

    def cast_of(name: str, to: int) -> onnx.NodeProto | None:
        node = producers.get(name)
        if node is None or node.op_type != "Cast" or len(node.input) != 1:
            return None
        return node if any(a.name == "to" and a.i == to for a in node.attribute) else None

    touched: list[onnx.NodeProto] = []

    def walk(body: onnx.GraphProto, shadow: set[str], float32: bool) -> None:
        shadow = shadow | {v.name for v in (*body.input, *body.initializer)}
        shadow |= {o for n in body.node for o in n.output}
        for n in body.node:
            kept = float32 or blocked(n)
            for i in range(len(n.input)) if kept else _shape_slots(n, opset):
                if i >= len(n.input) or n.input[i] in shadow:
                    continue
                up = cast_of(n.input[i], onnx.TensorProto.FLOAT)
                down = cast_of(up.input[0], onnx.TensorProto.FLOAT16) if up else None
                if up is None or down is None or down.input[0] in shadow:
                    continue
                source = down.input[0]
                if source in inputs or float32_graph or blocked(producers.get(source)):
                    n.input[i] = source
                    touched.extend((up, down))
            for sub in subgraphs(n):
                walk(sub, shadow, kept)

    for n in graph.node:
        for sub in subgraphs(n):
            walk(sub, set(), float32_graph or blocked(n))
    if touched:
        _drop_unread_casts(graph, touched)


def _drop_unread_casts(graph: onnx.GraphProto, casts: Sequence[onnx.NodeProto]) -> None:
    """Remove those of `casts` (Casts of `graph`, each listed before the Cast it reads) whose
    output no other node of `graph` (its bodies included) nor a graph output reads, and their
    value_info."""
    from graphopt.ir.graph import outer_references
    from graphopt.ir.nodes import subgraphs

    gone: set[str] = set()
    for cast in casts:
        if cast.output[0] in gone:
            continue
        read = {o.name for o in graph.output}
        for n in graph.node:
            if n.op_type == "Cast" and n.output[0] in gone:
                continue
            read.update(n.input)
            for sub in subgraphs(n):
                read |= outer_references(sub)
        if cast.output[0] not in read:
            gone.add(cast.output[0])
    if not gone:
        return
    _remove_nodes(graph, lambda n: n.op_type == "Cast" and n.output[0] in gone)
    info = [v for v in graph.value_info if v.name not in gone]
    del graph.value_info[:]
    graph.value_info.extend(info)


def _remove_nodes(graph: onnx.GraphProto, drop: Callable[[onnx.NodeProto], bool]) -> None:
    """Delete the nodes of `graph` that `drop` picks, in place: the bodies of those that stay
    remain the objects a caller holds (`del graph.node[:]` and `extend` copies every node, and
    an edit of a body taken from the old ones is then lost)."""
    for i in reversed(range(len(graph.node))):
        if drop(graph.node[i]):
            del graph.node[i]


def _remove_constants(graph: onnx.GraphProto, names: set[str]) -> None:
    """Delete the Constant nodes of `graph` that write one of `names`, in place."""
    _remove_nodes(graph, lambda n: n.op_type == "Constant" and n.output[0] in names)


def _body_constant_outputs(body: onnx.GraphProto) -> list[tuple[str, np.ndarray]]:
    """The outputs of `body` that are float32 constants float16 cannot hold (`_fp16_unsafe`)."""
    from onnx import numpy_helper

    from graphopt.ir.graph import constant_node_value
    from graphopt.ir.nodes import is_default_domain

    outputs = {o.name for o in body.output}
    values: list[tuple[str, np.ndarray | None]] = [
        (t.name, numpy_helper.to_array(t)) for t in body.initializer if t.name in outputs
    ]
    values += [
        (n.output[0], constant_node_value(n))
        for n in body.node
        if n.op_type == "Constant" and is_default_domain(n) and n.output[0] in outputs
    ]
    return [(name, v) for name, v in values if v is not None and _fp16_unsafe(v)]


def _block_constant_body_outputs(model: onnx.ModelProto, blocked_nodes: set[str]) -> None:
    """A main-graph If/Loop/Scan one of whose bodies, or a body nested in one of them (an If
    in a Loop's body), outputs a float32 constant float16 cannot hold, or an output that a
    node kept float32 for such a constant writes (`_blocked_body_outputs`), stays float32, bodies
    and all (`blocked_nodes` gains it; the converter does not enter a blocked node's bodies,
    and `_casts_into_blocked_bodies` feeds them float32): a body's outputs are float16
    otherwise, the constant clamped (1e-8 written as 5.96e-8, 1e5 as 65504), and so are those
    of the bodies it flows out through. Its float16 readers still read its output in float16
    (1e5 is inf there)."""
    from graphopt.ir.nodes import nested_bodies, subgraphs

    for node in model.graph.node:
        bodies = [b for sub in subgraphs(node) for b in (sub, *nested_bodies(sub))]
        found = [c for body in bodies for c in _body_constant_outputs(body)]
        if found:
            blocked_nodes.add(node.name)
            log.info(
                "fp16: %s %r stays float32: its body outputs %s (%s)",
                node.op_type,
                node.name,
                found[0][0],
                _fp16_shown(found[0][1]),
            )
            continue
        written = [w for body in bodies for w in _blocked_body_outputs(body, blocked_nodes)]
        if written:
            blocked_nodes.add(node.name)
            log.info(
                "fp16: %s %r stays float32: its body output %s is written by %r, kept float32 "
                "for a constant float16 cannot hold",
                node.op_type,
                node.name,
                *written[0],
            )


def _blocked_body_outputs(body: onnx.GraphProto, blocked_nodes: set[str]) -> list[tuple[str, str]]:
    """(output, node) for each output of `body` that a node of it kept float32 writes (by
    now: for a constant float16 cannot hold, `_block_out_of_range_in_bodies`): the body's
    outputs are float16 otherwise, and Identity(1e5) in an If branch gave the If's output inf
    where the float32 model gives 1e5 (its readers' own float16 aside, as above)."""
    outputs = {o.name for o in body.output}
    return [
        (out, n.name)
        for n in body.node
        if n.name and n.name in blocked_nodes
        for out in n.output
        if out in outputs
    ]


def _casts_into_blocked_bodies(
    model: onnx.ModelProto, blocked_ops: set[str], blocked_nodes: set[str]
) -> None:
    """A blocked main-graph node with If/Loop/Scan bodies (which the converter leaves float32)
    reads each float16 main-graph tensor its bodies read through a Cast to float32 made for it
    (the converter casts only its explicit inputs): its bodies read the float16 tensor, an
    invalid model ('B has inconsistent type tensor(float16)')."""
    from graphopt.ir.graph import outer_references
    from graphopt.ir.nodes import nested_bodies, subgraphs

    main = model.graph
    owners = [
        n
        for n in main.node
        if (n.name in blocked_nodes or n.op_type in blocked_ops) and any(subgraphs(n))
    ]
    if not owners:
        return
    types = {v.name: v.type.tensor_type.elem_type for v in (*main.input, *main.value_info)}
    types.update((t.name, t.data_type) for t in main.initializer)
    taken = _names_in_use([main, *nested_bodies(main)])

    casts: dict[str, str] = {}
    for owner in owners:
        for body in subgraphs(owner):
            half = sorted(
                r for r in outer_references(body) if types.get(r) == onnx.TensorProto.FLOAT16
            )
            if not half:
                continue
            for name in half:
                if name not in casts:
                    casts[name] = _first_free(f"{name}_fp32", taken)
                    main.node.append(
                        onnx.helper.make_node(
                            "Cast",
                            [name],
                            [casts[name]],
                            to=onnx.TensorProto.FLOAT,
                            name=_first_free(f"{name}_fp32_cast", taken),
                        )
                    )
            renamed = {name: casts[name] for name in half}
            _rename_reads(body, renamed)
            for v in body.output:  # a body output read straight from the outer scope
                v.name = renamed.get(v.name, v.name)


def _fp16_shown(value: np.ndarray) -> str:
    top = np.abs(value[np.isfinite(value)])
    return f"largest |v| {float(top.max()):g}, relative error {fp16_error(value):.2g}"


def _float_constants_as_tensors(model: onnx.ModelProto) -> None:
    """A Constant given as `value_float` / `value_floats` (in any graph) gets the same value as
    a float32 `value` tensor: onnxruntime's float16 converter declares its output float16 but
    leaves the attribute a float, which onnx infers as float32 (an invalid model)."""
    from graphopt.ir.nodes import nested_bodies

    for graph in (model.graph, *nested_bodies(model.graph)):
        for node in graph.node:
            if node.op_type != "Constant" or node.domain not in ("", "ai.onnx"):
                continue
            if len(node.attribute) != 1 or node.attribute[0].name not in (
                "value_float",
                "value_floats",
            ):
                continue
            a = node.attribute[0]
            scalar = a.name == "value_float"
            values = np.array(a.f if scalar else list(a.floats), np.float32)
            tensor = onnx.numpy_helper.from_array(values.reshape(() if scalar else (-1,)))
            del node.attribute[:]
            node.attribute.append(onnx.helper.make_attribute("value", tensor))


def _block_sparse_constants(model: onnx.ModelProto, blocked_nodes: set[str]) -> None:
    """A Constant given as a float32 `sparse_value` (in any graph) stays float32 (blocked; an
    unnamed one gets a name), its readers reading it through the converter's Cast to float16:
    the converter declared its output float16 but left the sparse tensor float32, an invalid
    model ('Inferred elem type differs from existing elem type: (1) vs (10)')."""
    from graphopt.ir.nodes import is_default_domain, nested_bodies

    graphs = [model.graph, *nested_bodies(model.graph)]
    taken = {n.name for g in graphs for n in g.node}
    for graph in graphs:
        for node in graph.node:
            if node.op_type != "Constant" or not is_default_domain(node):
                continue
            sparse = next(
                (a.sparse_tensor for a in node.attribute if a.name == "sparse_value"), None
            )
            if sparse is None or sparse.values.data_type != onnx.TensorProto.FLOAT:
                continue
            if not node.name:
                node.name = _first_free("fp16_sparse", taken)
            blocked_nodes.add(node.name)


def _dequantize_output_dtypes(model: onnx.ModelProto) -> None:
    """Drop `output_dtype=FLOAT` (opset 23) from a DequantizeLinear whose scale is a float32
    constant of its graph (in any graph): the output's type is then the scale's, float32 as
    before, and float16 where the converter makes the scale float16. The converter rewrites
    Cast's `to` but not this attribute: the output stayed float32 where the model declares it
    float16, an invalid model ('Inferred elem type differs from existing elem type: (1) vs
    (10)')."""
    from graphopt.ir.nodes import is_default_domain, nested_bodies

    for graph in (model.graph, *nested_bodies(model.graph)):
        floats = {t.name for t in graph.initializer if t.data_type == onnx.TensorProto.FLOAT}
        for node in graph.node:
            if node.op_type == "Constant" and any(
                a.name == "value" and a.t.data_type == onnx.TensorProto.FLOAT
                for a in node.attribute
            ):
                floats.update(node.output)
        for node in graph.node:
            if node.op_type != "DequantizeLinear" or not is_default_domain(node):
                continue
            if len(node.input) < 2 or node.input[1] not in floats:
                continue
            kept = [
                a
                for a in node.attribute
                if not (a.name == "output_dtype" and a.i == onnx.TensorProto.FLOAT)
            ]
            if len(kept) != len(node.attribute):
                del node.attribute[:]
                node.attribute.extend(kept)


def _distinct_body_initializers(model: onnx.ModelProto) -> None:
    """Rename a float32 initializer of an If/Loop/Scan body whose name another graph's
    initializer has too (then and else branches may each have a 'w'), and its readers in
    that body and the bodies inside it: onnxruntime's float16 converter tracks initializers
    by name across all graphs and stops on the second (an AssertionError)."""
    from graphopt.ir.nodes import nested_bodies

    graphs = [model.graph, *nested_bodies(model.graph)]
    taken = {t for g in graphs for n in g.node for t in (*n.input, *n.output)}
    taken |= {t.name for g in graphs for t in (*g.initializer, *g.input)}
    seen = {t.name for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT}
    for body in graphs[1:]:
        renamed: dict[str, str] = {}
        for t in body.initializer:
            if t.data_type != onnx.TensorProto.FLOAT:
                continue
            if t.name in seen:
                new = _first_free(t.name, taken)
                renamed[t.name] = new
                t.name = new
            seen.add(t.name)
        if renamed:
            _rename_reads(body, renamed)
            for v in body.output:  # a body output read straight from the initializer
                v.name = renamed.get(v.name, v.name)


def _block_out_of_range_in_bodies(
    model: onnx.ModelProto, blocked_nodes: set[str], outer: Iterable[str] = ()
) -> None:
    """The main graph's rule in If/Loop/Scan bodies: a float32 constant of a body that float16
    cannot hold (`_fp16_unsafe`: beyond ±65504, which the converter would clamp to 65504, or
    moved more than `FP16_TOLERANCE`, as 1e-8 clamped up to 5.96e-8) stays float32, and so
    does every node of the body (or of a body inside it) that reads it: they are blocked by
    name (`blocked_nodes` gains them; an unnamed one gets a name), and a Constant node becomes
    an initializer of its body under a name no other graph uses (the converter converts every
    Constant node, but leaves an initializer that only blocked nodes read; it tracks
    initializers by name across bodies). A ConstantOfShape filling with such a value is
    blocked with its readers. Not a Constant that is itself a body output
    (`_block_constant_body_outputs`). `outer`: the main graph's such constants that bodies read,
    whose readers there are blocked too."""
    from onnx import numpy_helper

    from graphopt.ir.graph import constant_node_value
    from graphopt.ir.nodes import is_default_domain, nested_bodies

    graphs = [model.graph, *nested_bodies(model.graph)]
    taken = {n.name for g in graphs for n in g.node}
    taken |= {t for g in graphs for n in g.node for t in (*n.input, *n.output)}
    taken |= {t.name for g in graphs for t in (*g.initializer, *g.input)}  # (not the outputs)

    main = model.graph
    inputs = {v.name for v in main.input}  # (an initializer that is one can be overridden)
    main_values: dict[str, Any] = {t.name: t for t in main.initializer if t.name not in inputs}
    main_values.update({o: n for n in main.node if n.op_type == "Constant" for o in n.output})
    read_outside = set(outer)
    for body in graphs[1:]:
        for n in body.node:
            if read_outside.intersection(n.input):
                n.name = n.name or _first_free("fp16_kept", taken)
                blocked_nodes.add(n.name)
    for body in graphs[1:]:
        outputs = {o.name for o in body.output}
        readers: dict[str, list[onnx.NodeProto]] = {}
        for n in [*body.node, *(m for sub in nested_bodies(body) for m in sub.node)]:
            for name in n.input:
                readers.setdefault(name, []).append(n)
        big = {
            t.name
            for t in body.initializer
            if _fp16_unsafe(numpy_helper.to_array(t), readers.get(t.name, []))
        }
        moved: dict[str, np.ndarray] = {}
        for n in body.node:
            if n.op_type != "Constant" or not is_default_domain(n) or n.output[0] in outputs:
                continue
            value = constant_node_value(n)
            if _fp16_unsafe(value, readers.get(n.output[0], [])):
                assert value is not None
                moved[n.output[0]] = value
        values = dict(main_values)  # (the main graph's constants, as the body sees them)
        values.update({t.name: t for t in body.initializer})
        values.update({o: n for n in body.node if n.op_type == "Constant" for o in n.output})
        values.update({v.name: None for v in body.input})  # (shadowing one)

        def value_of(name: str, values: Mapping[str, Any] = values) -> np.ndarray | None:
            found = values.get(name)
            if isinstance(found, onnx.TensorProto):
                return numpy_helper.to_array(found)
            if found is not None and is_default_domain(found):
                return constant_node_value(found)
            return None

        for n in body.node:  # its attribute stays float32 where the node is blocked
            if n.op_type == "ConstantOfShape" and _fills_unsafe(n, readers.get(n.output[0], [])):
                n.name = n.name or _first_free("fp16_kept", taken)
                blocked_nodes.add(n.name)
                big.add(n.output[0])
            elif n.output and _casts_unsafe_constant(n, value_of, readers.get(n.output[0], [])):
                n.name = n.name or _first_free("fp16_kept", taken)  # (and its readers, below)
                blocked_nodes.add(n.name)
                big.add(n.output[0])
        if not big and not moved:
            continue
        renamed = {name: _first_free(f"{name}_fp32", taken) for name in moved}
        big.update(renamed.values())
        _remove_constants(body, set(moved))
        body.initializer.extend(numpy_helper.from_array(moved[o], n) for o, n in renamed.items())
        _rename_reads(body, renamed)
        for n in [*body.node, *(m for sub in nested_bodies(body) for m in sub.node)]:
            if big.intersection(n.input):
                n.name = n.name or _first_free("fp16_kept", taken)
                blocked_nodes.add(n.name)


def _first_free(base: str, taken: set[str]) -> str:
    """The first of `{base}_0`, `{base}_1`, ... not in `taken`, which gains it. Each caller
    collects the names it counts as taken, and they differ: node names only (a name for an
    unnamed node), tensor and graph names without node names, with or without the graph
    outputs, or everything (`_names_in_use`)."""
    k = 0
    while f"{base}_{k}" in taken:
        k += 1
    taken.add(f"{base}_{k}")
    return f"{base}_{k}"


def _names_in_use(graphs: Sequence[onnx.GraphProto]) -> set[str]:
    """Every name `graphs` use: node names, node inputs and outputs, and the names of
    initializers, graph inputs and graph outputs (not value_info's)."""
    taken = {n.name for g in graphs for n in g.node}
    taken |= {t for g in graphs for n in g.node for t in (*n.input, *n.output)}
    taken |= {t.name for g in graphs for t in (*g.initializer, *g.input, *g.output)}
    return taken


def _rename_reads(graph: onnx.GraphProto, renamed: Mapping[str, str]) -> None:
    """Rename the inputs of `graph`'s nodes by `renamed`, and those of the bodies inside it
    that do not define the name themselves: a body's own initializer, input or node output of
    that name shadows the outer one (renamed there too, a body inside read the outer body's
    value instead of its own: a wrong result, no error)."""
    from graphopt.ir.nodes import subgraphs

    for n in graph.node:
        for i, name in enumerate(n.input):
            if name in renamed:
                n.input[i] = renamed[name]
        for sub in subgraphs(n):
            defined = {t.name for t in sub.initializer} | {v.name for v in sub.input}
            defined |= {o for m in sub.node for o in m.output}
            inner = {k: v for k, v in renamed.items() if k not in defined}
            if inner:
                _rename_reads(sub, inner)


def _casts_into_bodies(model: onnx.ModelProto) -> None:
    """Move each Cast that onnxruntime's float16 converter put in the main graph for a
    blocked node (TopK, Max, NonMaxSuppression, ...) of an If/Loop/Scan body, reading a
    tensor only bodies define, into each body that defines it, right after what writes it:
    in the main graph it read a name out of its scope (a model onnx and onnxruntime refuse).
    Sibling bodies may define the same name (then/else branches); a body that already has the
    Cast's output gets no second one. Its value_info moves with it. A Cast reading a
    main-graph tensor stays (bodies see it). A Cast reading another moved Cast's output (two
    blocked nodes in a row: Cast(float16) of the first's result, Cast(float) of that for the
    second) follows it into its body: it stayed in the main graph, reading a name out of its
    scope (onnx: 'Nodes in a graph must be topologically sorted')."""
    from graphopt.ir.nodes import nested_bodies

    main = model.graph
    scope = {v.name for v in main.input} | {t.name for t in main.initializer}
    scope |= {t.values.name for t in main.sparse_initializer}
    scope |= {o for n in main.node for o in n.output}
    stray = [n for n in main.node if n.op_type == "Cast" and n.input[0] not in scope]
    while True:  # a Cast of a stray Cast's output is stray too
        scope -= {n.output[0] for n in stray}
        more = [n for n in main.node if n.op_type == "Cast" and n.input[0] not in scope]
        if len(more) == len(stray):
            break
        stray = more
    if not stray:
        return
    homes: dict[str, list[onnx.GraphProto]] = {}
    for body in nested_bodies(main):
        defined = [v.name for v in body.input] + [t.name for t in body.initializer]
        for name in defined + [o for n in body.node for o in n.output]:
            homes.setdefault(name, []).append(body)
    info = {v.name: v for v in main.value_info}
    moved = set()
    pending = list(stray)
    while pending:  # (a Cast of a Cast's output may come first: moved once that one is)
        waiting = []
        for cast in pending:
            source, output = cast.input[0], cast.output[0]
            if source not in homes:
                waiting.append(cast)  # no body defines it (yet): not the converter's doing?
                continue
            for home in homes[source]:
                if any(output in n.output for n in home.node):
                    continue
                at = next((i + 1 for i, n in enumerate(home.node) if source in n.output), 0)
                home.node.insert(at, cast)  # (in place: the bodies inside stay `homes`')
                if output in info:
                    home.value_info.append(info[output])
                homes.setdefault(output, []).append(home)  # a Cast of it may follow
            moved.add(output)
        if len(waiting) == len(pending):
            break
        pending = waiting
    _remove_nodes(main, lambda n: n.op_type == "Cast" and n.output[0] in moved)
    kept_info = [v for v in main.value_info if v.name not in moved]
    del main.value_info[:]
    main.value_info.extend(kept_info)


def _inline_functions(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with every call of a model-local function replaced by the function's body
    (`onnx.inliner`, nested calls and calls in If/Loop bodies too). onnxruntime's float16
    converter never enters a function body, so a call would hand float16 to its float32
    constants and Q/DQ (a model onnx and onnxruntime refuse), and onnx's version converter
    refuses a model with functions (Q/DQ would stay below opset 19). A function importing
    another opset than the model's (onnx.checker accepts one whose ops are defined alike at
    both; the inliner leaves it as it is) is inlined converted to the model's opset.
    `BackendError` naming the functions that onnx does not inline (a recursive one; one whose
    opset onnx's version converter cannot convert)."""
    from onnx import inliner

    def names(functions: Iterable[onnx.FunctionProto]) -> str:
        return ", ".join(f"{f.domain}.{f.name}" if f.domain else f.name for f in functions)

    try:
        inlined = inliner.inline_local_functions(model)
    except Exception as e:  # onnx raises assorted errors from C++
        raise BackendError(
            f"cannot convert the model to float16: onnx cannot inline its local function(s) "
            f"{names(model.functions)} ({first_line(e)})"
        ) from e
    converting = ""
    if inlined.functions:  # (a body at opset 16 in a model at 17 was refused here)
        try:
            inlined = inliner.inline_local_functions(model, convert_version=True)
        except Exception as e:  # no adapter for an op between the versions: refused below
            converting = f" onnx's version converter: {first_line(e)}"
    if inlined.functions:
        raise BackendError(
            f"cannot convert the model to float16: onnx does not inline its local function(s) "
            f"{names(inlined.functions)} (are their opset imports the model's?{converting}), "
            "and the float16 converter does not enter function bodies"
        )
    return inlined


def _qdq_opset_for_fp16(model: onnx.ModelProto, blocked: list[str]) -> onnx.ModelProto:
    """Q/DQ with float16 scales (so DequantizeLinear yields float16 straight into the Conv,
    with no Cast between them for TensorRT to fuse across) needs opset 19; below it, upgrade
    (`graphopt.ir.opset_conversion.convert_opset`, which raises the IR version to 9 with it).
    Where the upgrade is refused or fails, Q/DQ stay float32 behind Casts (`blocked` gains
    them)."""
    from graphopt.errors import OpsetConversionError
    from graphopt.ir.nodes import default_opset
    from graphopt.ir.opset_conversion import convert_opset

    opset = default_opset(model)
    if opset >= 19:
        return model
    try:
        return convert_opset(model, 19)
    except OpsetConversionError as e:
        log.warning("fp16: the Q/DQ model stays at opset %d (%s); Q/DQ stay float32", opset, e)
        blocked += ["QuantizeLinear", "DequantizeLinear"]
        return model
