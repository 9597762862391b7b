"""Converting a model's default-domain opset with `onnx.version_converter`, the one way every
caller does it (`convert_opset`): refuse a model with local functions or training_info (the
converter drops them) or one with an op the converter is known to convert wrongly
(`misconverted`, found by comparing onnxruntime's outputs before and after), convert (sparse
initializers standing in as graph inputs: the converter does not know them), give a Hardmax
taken across opset 13 the Flatten/Reshape adapter the converter lacks (`adapt_hardmax`), give
the result back what the converter drops (`restore_dropped`), the type of the data to the
constants its Clip/Pad adapters make float32 (`retype_adapter_constants`) and the graph inputs
and outputs the model declares (`keep_declared_io`), and raise its IR version to what the new
opsets need. A
refusal is an `OpsetConversionError` whose `kind` each caller turns into its own policy:
optimize's `upgrade_opset` and the TensorRT float16 path keep the opset, quantize and merge
stop.

What it does not do: prove a conversion right (the cases here are the ones seen to go wrong),
inline local functions, or check the converted model (the callers' checks differ).
"""

from __future__ import annotations

from collections.abc import Mapping

import onnx

from graphopt._text import escaped, fresh_name, model_strings_escaped
from graphopt.errors import OpsetConversionError, first_line
from graphopt.ir.nodes import DEFAULT_DOMAINS, attribute_value, default_opset, nested_bodies


def convert_opset(model: onnx.ModelProto, version: int) -> onnx.ModelProto:
    """`model` converted by `onnx.version_converter` to default-domain opset `version` (a new
    model; `model` is not changed), given back what the converter drops (`restore_dropped`)
    and the graph inputs and outputs `model` declares (`keep_declared_io`),
    at the IR version its opsets need (the converter keeps the old one: IR 6 cannot declare
    opset 13, nor IR 8 opset 19).

    `OpsetConversionError` when it is not converted, its `kind` saying why:
    "local-functions" (the converter drops them: their calls would dangle; inline them first),
    "training-info" (the converter drops it, and its graphs are at the old opset),
    "misconverted" (`misconverted` names an op whose meaning would change) or
    "converter-failed" (the converter raised; `reason` is its first line)."""
    from onnx import version_converter

    before = default_opset(model)
    if model.functions:
        count = len(model.functions)
        reason = f"onnx.version_converter drops the model's {count} local function(s)"
        raise OpsetConversionError("local-functions", reason, reason)
    if model.training_info:
        reason = (
            "onnx.version_converter drops the model's training_info (its graphs are at the "
            "old opset): remove it (del model.training_info[:]) to convert"
        )
        raise OpsetConversionError("training-info", reason, reason)
    from graphopt.analysis.inference_aborts import inference_abort  # (analysis imports ir)

    aborting = inference_abort(model)  # the converter runs onnx's inference: it would abort
    if aborting:
        raise OpsetConversionError(
            "converter-failed", aborting, f"onnx.version_converter cannot read it: {aborting}"
        )
    dims = _hardmax_input_dims(model) if before < 13 <= version else None
    problem = misconverted(model.graph, before, version, dims)
    if problem:
        message = f"onnx.version_converter would change what the model computes ({problem})"
        raise OpsetConversionError("misconverted", problem, message)
    try:
        converted = version_converter.convert_version(_for_converter(model), version)
    except Exception as e:  # the converter raises untyped errors from C++
        # its first line, the model's names escaped first: a newline in one cut the line there
        first = first_line(e, model_strings_escaped(str(e), model))
        message = f"onnx.version_converter failed: {first}"
        raise OpsetConversionError("converter-failed", first, message) from e
    if dims is not None:
        adapt_hardmax(converted, version, dims)
    if model.graph.sparse_initializer:  # the stand-ins go, the sparse initializers come back
        standins = {s.values.name for s in model.graph.sparse_initializer}
        kept = [vi for vi in converted.graph.input if vi.name not in standins]
        del converted.graph.input[:]
        converted.graph.input.extend(kept)
        del converted.graph.sparse_initializer[:]
    restore_dropped(model.graph, converted.graph)
    if not converted.configuration:  # (the converter drops the model's device configurations)
        converted.configuration.extend(model.configuration)
    retype_adapter_constants(model, converted, before, version)
    keep_declared_io(model.graph, converted.graph)
    needed = onnx.helper.find_min_ir_version_for(list(converted.opset_import), True)
    converted.ir_version = max(converted.ir_version, needed)
    return converted


# Ops whose attribute became a typed input at opset 11, by input index; onnx.version_converter's
# adapters make it a float32 Constant whatever the data's type.
_ADAPTED_AT_11 = {"Clip": (1, 2), "Pad": (2,)}


def retype_adapter_constants(
    model: onnx.ModelProto, converted: onnx.ModelProto, before: int, version: int
) -> None:
    """Give the Constants onnx.version_converter's 10 -> 11 adapters make (Clip's min/max,
    Pad's constant_value, from attributes, which are float32 at every data type) the type of
    the data they go with: a float16 or double Clip or Pad converted across opset 11 reads
    float32 ones, an invalid model ("min has inconsistent type"). In the graph and its
    If/Loop/Scan bodies (the converter converts those too), only Constants the converter made
    (no tensor of that name in `model`), each read once in its graph; the data's type comes
    from onnx's shape inference of `model` (which types a body's tensors in the body)."""
    if not before < 11 <= version:
        return
    originals = (model.graph, *nested_bodies(model.graph))
    known = {o for g in originals for n in g.node for o in n.output}
    known.update(t.name for g in originals for t in g.initializer)
    known.update(v.name for g in originals for v in g.input)
    sites = []
    for graph in (converted.graph, *nested_bodies(converted.graph)):
        constants = {n.output[0]: n for n in graph.node if n.op_type == "Constant" and n.output}
        reads: dict[str, int] = {}
        for node in graph.node:
            for name in node.input:
                reads[name] = reads.get(name, 0) + 1
        sites += [
            (node.input[0], constants[node.input[i]])
            for node in graph.node
            if node.domain in ("", "ai.onnx") and node.op_type in _ADAPTED_AT_11
            for i in _ADAPTED_AT_11[node.op_type]
            if i < len(node.input) and node.input[i] in constants
            and node.input[i] not in known and reads[node.input[i]] == 1
        ]  # fmt: skip
    if not sites:
        return
    try:
        inferred = onnx.shape_inference.infer_shapes(model).graph
    except (onnx.shape_inference.InferenceError, ValueError):
        return  # nothing known: the caller's check refuses the conversion as before
    types = {
        v.name: v.type.tensor_type.elem_type
        for g in (inferred, *nested_bodies(inferred))
        for v in (*g.input, *g.value_info, *g.output)
    }
    types.update((t.name, t.data_type) for g in originals for t in g.initializer)
    for data, constant in sites:
        elem = types.get(data, 0)
        value = next((a for a in constant.attribute if a.name == "value"), None)
        # (Clip-6 and Pad-2 take float16, float and double only)
        if value is None or elem not in (onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE):
            continue
        array = onnx.numpy_helper.to_array(value.t)
        dtype = onnx.helper.tensor_dtype_to_np_dtype(elem)
        value.t.CopyFrom(onnx.numpy_helper.from_array(array.astype(dtype), value.t.name))


def keep_declared_io(graph: onnx.GraphProto, converted: onnx.GraphProto) -> None:
    """Give `converted` (`graph` after onnx.version_converter) the graph inputs and outputs
    `graph` declares: the converter's shape inference rewrites them (an unnamed dynamic dim
    becomes "unk__0", its Softmax 11/12 -> 13 adapter drops an output's shape), and they are the
    caller's. The converter neither renames nor retypes a graph input or output (each list is
    kept only where its names are the same, in order)."""
    for declared, rewritten in ((graph.input, converted.input), (graph.output, converted.output)):
        if [v.name for v in declared] == [v.name for v in rewritten]:
            del rewritten[:]
            rewritten.extend(declared)


def keep_declared_value_info(graph: onnx.GraphProto, converted: onnx.GraphProto) -> None:
    """Give `converted` (`graph` after onnx.version_converter) exactly the value_info entries
    `graph` declares, as declared, for the tensors its nodes (nested bodies included) still
    read or write: the converter's shape inference adds an entry for every tensor it types
    (a 4-node opset-11 model with none came back with 3), rewrites the declared ones (an
    unnamed dim takes the input's "N"), and drops a body's entries for outer-scope tensors.
    What the caller declared is the caller's; graphopt infers shapes where a pass needs them."""
    used = {
        name
        for g in (converted, *nested_bodies(converted))
        for n in g.node
        for name in (*n.input, *n.output)
    }
    kept = [vi for vi in graph.value_info if vi.name in used]
    del converted.value_info[:]
    converted.value_info.extend(kept)


def _for_converter(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model`, or a copy the converter can take: where its graph has sparse initializers
    (which the converter does not know: "Input S is undefined!") a graph input of the same
    type and shape stands in for each; where it imports the default domain more than once,
    only the last import, the one in force (`default_opset`), is kept (the converter asserted
    "initial_version does not reflect current state of model")."""
    imports = [o for o in model.opset_import if o.domain in DEFAULT_DOMAINS]
    if not model.graph.sparse_initializer and len(imports) < 2:
        return model
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    if len(imports) > 1:
        others = [o for o in copy.opset_import if o.domain not in DEFAULT_DOMAINS]
        del copy.opset_import[:]
        copy.opset_import.extend([*others, imports[-1]])
    for sparse in copy.graph.sparse_initializer:
        copy.graph.input.append(
            onnx.helper.make_tensor_value_info(
                sparse.values.name, sparse.values.data_type, list(sparse.dims)
            )
        )
    del copy.graph.sparse_initializer[:]
    return copy


def misconverted(
    graph: onnx.GraphProto,
    before: int,
    version: int,
    dims: Mapping[str, tuple[int | None, ...]] | None = None,
) -> str:
    """Why onnx.version_converter would change what the model computes between opsets `before`
    and `version` ("" if no op it is known to convert wrongly is there, bodies included): it
    turns Upsample and opset-10 Resize in linear mode into a Resize with the half_pixel
    coordinates of opset 11 (Upsample's and Resize-10's are asymmetric), and keeps a Hardmax
    across opset 13, where it stopped flattening to 2-D around its axis (Softmax gets a
    Flatten/Reshape adapter, Hardmax none): `adapt_hardmax` gives it one, exact at opset 14+
    and, at 13, for an input whose `dims` (inferred, by tensor name) are all known and
    nonzero (`_hardmax_unadaptable`); and a Dropout whose mask is read (by a node or as a
    graph output, bodies included) across opset 12 (onnxruntime computes Dropout-10/11's
    inference mask all False, Dropout-12's all True); a named mask nothing reads changes
    nothing. And a Scan across opset 9: Scan-8 runs its body over the items of a batch axis
    (axis 0, then the sequence), Scan-9 has none, and the converter only drops its
    sequence_lens input, so the batch axis becomes the scanned one (onnxruntime refused each
    such model it gave: the body's ranks are one short; quantize said so only as a failed
    check of the optimized model)."""
    graphs = [graph, *nested_bodies(graph)]
    read: set[str] | None = None  # every name a node or a graph output reads, when needed
    for node in (n for g in graphs for n in g.node):
        if node.domain not in ("", "ai.onnx"):
            continue
        op = node.op_type
        mode = attribute_value(node, "mode", "nearest")
        if isinstance(mode, bytes):
            mode = mode.decode(errors="replace")
        # the reason is a line of the callers' errors: a newline in a node's name (or a mode)
        # made it two
        name, said = escaped(node.name or op), escaped(str(mode))
        if op == "Upsample" and mode != "nearest":
            return f"{name}: Upsample in {said} mode would become a half_pixel Resize"
        if op == "Resize" and before < 11 <= version and mode != "nearest":
            return f"{name}: Resize-10 in {said} mode would become a half_pixel Resize"
        if op == "Scan" and before < 9 <= version:
            return f"{name}: Scan-8's batch axis would become the scanned axis of a Scan-9"
        if op == "Hardmax" and before < 13 <= version:
            why = _hardmax_unadaptable(node, version, dims or {})
            if why:
                return f"{name}: Hardmax changes meaning at opset 13 ({escaped(why)})"
        if op == "Dropout" and before < 12 <= version and len(node.output) > 1 and node.output[1]:
            if read is None:
                read = {i for g in graphs for n in g.node for i in n.input}
                read.update(o.name for g in graphs for o in g.output)
            if node.output[1] not in read:
                continue
            return f"{name}: Dropout's mask changes at opset 12 (all False, then all True)"
    return ""


def restore_dropped(graph: onnx.GraphProto, converted: onnx.GraphProto) -> None:
    """Give `converted` (`graph` after onnx.version_converter) back what the converter drops:
    the graph's metadata_props, quantization annotations and sparse initializers, the
    metadata_props and device_configurations of its nodes (by outputs, else by a name no
    other node has), the doc strings of their attributes and of the tensors those hold, with those
    tensors' metadata_props (`_restore_attribute`), and the doc strings and metadata_props
    of its initializers (by name) and the metadata_props and denotations of its inputs and
    outputs (by name: a body's; the graph's come back whole, `keep_declared_io`), in its
    If/Loop/Scan bodies too; and its value_info as declared (`keep_declared_value_info`)."""
    keep_declared_value_info(graph, converted)
    for declared, rewritten in ((graph.input, converted.input), (graph.output, converted.output)):
        values = {v.name: v for v in declared}
        for value in rewritten:
            before = values.get(value.name)
            if before is not None:
                _restore_value(before, value)
    if not converted.metadata_props:
        converted.metadata_props.extend(graph.metadata_props)
    if not converted.quantization_annotation:
        converted.quantization_annotation.extend(graph.quantization_annotation)
    if not converted.sparse_initializer:
        converted.sparse_initializer.extend(graph.sparse_initializer)
    # a node by its outputs (the converter keeps them, and one node writes a tensor), else by
    # its name where no other node has it: two nodes may share a name (ONNX allows it), and
    # by name alone the first took the second's metadata_props
    by_outputs = {tuple(n.output): n for n in graph.node if any(n.output)}
    counts: dict[str, int] = {}
    for n in graph.node:
        counts[n.name] = counts.get(n.name, 0) + 1
    by_name = {n.name: n for n in graph.node if n.name and counts[n.name] == 1}
    for node in converted.node:
        before = by_outputs.get(tuple(node.output))
        if before is None or before.op_type != node.op_type:
            before = by_name.get(node.name)
        if before is None or before.op_type != node.op_type:
            continue
        if before.metadata_props and not node.metadata_props:
            node.metadata_props.extend(before.metadata_props)
        if before.device_configurations and not node.device_configurations:
            node.device_configurations.extend(before.device_configurations)
        bodies = {a.name: a for a in before.attribute}
        for a in node.attribute:  # If/Loop/Scan bodies lose the same
            was = bodies.get(a.name)
            if was is not None and a.type == was.type:
                _restore_attribute(was, a)
            if was is not None and a.type == was.type == onnx.AttributeProto.GRAPH:
                restore_dropped(was.g, a.g)
            elif was is not None and a.type == was.type == onnx.AttributeProto.GRAPHS:
                for old_body, new_body in zip(was.graphs, a.graphs, strict=False):
                    restore_dropped(old_body, new_body)
    kept = {t.name: t for t in graph.initializer if t.doc_string or t.metadata_props}
    for tensor in converted.initializer if kept else ():
        before_tensor = kept.get(tensor.name)
        if before_tensor is None:
            continue
        if before_tensor.doc_string and not tensor.doc_string:
            tensor.doc_string = before_tensor.doc_string
        if before_tensor.metadata_props and not tensor.metadata_props:
            tensor.metadata_props.extend(before_tensor.metadata_props)


def _restore_value(before: onnx.ValueInfoProto, after: onnx.ValueInfoProto) -> None:
    """Give a body's input or output `after` (`before` after onnx.version_converter, which keeps
    its name, type and doc string) back its metadata_props, its type's denotation and those of
    its dims (where it has as many), which the converter drops. (The converter's inference may
    have given it a shape `before` did not declare: that shape is kept.)"""
    if before.metadata_props and not after.metadata_props:
        after.metadata_props.extend(before.metadata_props)
    if before.type.denotation and not after.type.denotation:
        after.type.denotation = before.type.denotation
    if before.type.WhichOneof("value") == after.type.WhichOneof("value") == "tensor_type":
        dims, new_dims = before.type.tensor_type.shape.dim, after.type.tensor_type.shape.dim
        if len(dims) == len(new_dims):
            for dim, new in zip(dims, new_dims, strict=True):
                if dim.denotation and not new.denotation:
                    new.denotation = dim.denotation


def _restore_attribute(before: onnx.AttributeProto, after: onnx.AttributeProto) -> None:
    """Give attribute `after` (`before` after onnx.version_converter, of the same name and type)
    back its doc string and those of the tensors it holds, with their metadata_props: the
    converter drops them (a Constant's value tensor came back without either)."""
    if before.doc_string and not after.doc_string:
        after.doc_string = before.doc_string
    if after.type == onnx.AttributeProto.TENSOR:
        pairs = [(before.t, after.t)]
    elif after.type == onnx.AttributeProto.TENSORS:
        pairs = list(zip(before.tensors, after.tensors, strict=False))
    else:
        return
    for old, new in pairs:
        if old.doc_string and not new.doc_string:
            new.doc_string = old.doc_string
        if old.metadata_props and not new.metadata_props:
            new.metadata_props.extend(old.metadata_props)


def _hardmax_axis(node: onnx.NodeProto) -> int:
    """The axis of a Hardmax of opset < 13 (default 1; opset 13's is -1)."""
    axis = attribute_value(node, "axis", 1)
    return axis if isinstance(axis, int) else 1


def _hardmax_input_dims(model: onnx.ModelProto) -> dict[str, tuple[int | None, ...]]:
    """The inferred dims (None: not known) of the inputs of `model`'s Hardmax nodes, bodies
    included, by tensor name: onnx's shape inference of `model`; none where it fails. A name
    that more than one graph defines (two If branches may each make a 't') is left out: by
    name, one branch's dims were read for the other's Hardmax, which then kept its last axis
    where its input had another rank (a wrong one-hot)."""
    graphs = (model.graph, *nested_bodies(model.graph))
    wanted = {n.input[0] for g in graphs for n in g.node if n.op_type == "Hardmax" and n.input}
    defined_in: dict[str, int] = {}
    for g in graphs:
        names = {o for n in g.node for o in n.output}
        names.update(v.name for v in g.input)
        names.update(t.name for t in g.initializer)
        for name in names & wanted:
            defined_in[name] = defined_in.get(name, 0) + 1
    wanted = {name for name in wanted if defined_in.get(name, 0) <= 1}
    if not wanted:
        return {}
    try:
        inferred = onnx.shape_inference.infer_shapes(model).graph
    except (onnx.shape_inference.InferenceError, ValueError):
        return {}
    out: dict[str, tuple[int | None, ...]] = {}
    for g in (inferred, *nested_bodies(inferred)):
        for v in (*g.input, *g.value_info, *g.output):
            tensor = v.type.tensor_type
            if v.name in wanted and tensor.HasField("shape"):
                out[v.name] = tuple(
                    d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim
                )
    return out


def _hardmax_unadaptable(
    node: onnx.NodeProto, version: int, dims: Mapping[str, tuple[int | None, ...]]
) -> str:
    """Why `adapt_hardmax` cannot convert `node` (a Hardmax of opset < 13) exactly to opset
    `version` ("" if it can). Axis -1 (or the last) means the same at 13. Otherwise it becomes
    Flatten → Hardmax → Reshape(Shape(x)), exact at 14+ (Reshape's allowzero) and at 13 only
    where no dim of x is 0: Reshape-13 reads a 0 in the shape as "copy the input's dim", and
    an empty x ((3, 0, 5), axis 2) was refused where Hardmax-12 gives an empty result."""
    known = dims.get(node.input[0]) if node.input else None
    axis = _hardmax_axis(node)
    if axis == -1 or (known is not None and axis == len(known) - 1) or version >= 14:
        return ""
    if known is None or not all(known):
        return "its input may have a 0 dim, which Reshape-13 cannot restore: convert to opset 14"
    return ""


def adapt_hardmax(
    converted: onnx.ModelProto, version: int, dims: Mapping[str, tuple[int | None, ...]]
) -> None:
    """In place: each Hardmax of `converted` (a model onnx.version_converter took across opset
    13 from below, where every Hardmax is one of opset < 13 with its attributes as they were),
    bodies included, computes at `version` what it did: Hardmax-1/11 coerces x to 2-D
    [prod(dims[:axis]), prod(dims[axis:])] and takes the hardmax of each row; Hardmax-13 takes
    it along one axis. So Hardmax(x, axis=a) becomes Reshape(Hardmax-13(Flatten(x, a),
    axis=-1), Shape(x)) (Reshape's allowzero=1 at 14+: an empty x keeps its shape), the
    Hardmax keeping the node's name and the Reshape its output; one whose axis is the last
    (-1, or rank-1 where the rank is known) gets axis=-1 only. `misconverted` has refused the
    conversion where this is not exact (`_hardmax_unadaptable`)."""
    graphs = [converted.graph, *nested_bodies(converted.graph)]
    taken = {n.name for g in graphs for n in g.node}
    taken.update(name for g in graphs for n in g.node for name in (*n.input, *n.output))
    taken.update(t.name for g in graphs for t in g.initializer)
    taken.update(v.name for g in graphs for v in (*g.input, *g.output))

    def fresh(name: str) -> str:
        return fresh_name(name, taken)

    for graph in graphs:
        if not any(n.op_type == "Hardmax" and n.domain in ("", "ai.onnx") for n in graph.node):
            continue
        nodes: list[onnx.NodeProto] = []
        for node in graph.node:
            if node.op_type != "Hardmax" or node.domain not in ("", "ai.onnx"):
                nodes.append(node)
                continue
            axis = _hardmax_axis(node)
            known = dims.get(node.input[0])
            del node.attribute[:]  # (Hardmax has no attribute but axis)
            node.attribute.append(onnx.helper.make_attribute("axis", -1))
            if axis == -1 or (known is not None and axis == len(known) - 1):
                nodes.append(node)
                continue
            x, y = node.input[0], node.output[0]
            base = node.name or "Hardmax"
            flat, hard, shape = fresh(y + "_flat"), fresh(y + "_hardmax"), fresh(y + "_shape")
            nodes.append(
                onnx.helper.make_node("Flatten", [x], [flat], fresh(base + "_flatten"), axis=axis)
            )
            del node.input[:]
            node.input.append(flat)
            node.output[0] = hard
            nodes.append(node)
            nodes.append(onnx.helper.make_node("Shape", [x], [shape], fresh(base + "_shape")))
            back = onnx.helper.make_node("Reshape", [hard, shape], [y], fresh(base + "_reshape"))
            if version >= 14:  # (an empty x keeps its shape: a 0 is a 0, not "copy")
                back.attribute.append(onnx.helper.make_attribute("allowzero", 1))
            nodes.append(back)
        del graph.node[:]
        graph.node.extend(nodes)
