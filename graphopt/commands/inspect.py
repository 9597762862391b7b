"""`graphopt inspect IN [--groups] [--json]`: what a model holds and how FuseOps partitions it.

Prints the opset imports, inputs and outputs with dtypes and shapes, node and initializer counts
and parameter bytes, an op histogram, what If/Loop/Scan bodies and model-local functions hold
(graphs or functions, nodes, parameters, ops: a call's ops are in its function, e.g. the fusion
groups `materialize-fusion-groups` made), a post-dominator summary and the fusion groups of the main graph (count, size histogram,
the largest groups with their op sequences; every group with `--groups`).
`--json` prints the same facts as one JSON object. Nothing is written.

On a model of `PROGRESS_NODES` nodes or more (80k nodes: ~12 s) a progress bar on stderr names
the step under way (`--no-progress`: none). The text report stays readable on a huge model:
the first `LISTED` inputs and outputs, then how many more (`--json` lists every one), and a
group's op sequence cut to its first and last ops with the count between.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from math import prod
from typing import Any

import onnx

from graphopt._text import counted, shown, type_name

PROGRESS_NODES = 10_000  # a progress bar from this many nodes on (80k nodes: ~12 s, 10k: ~2 s)
LISTED = 20  # inputs and outputs listed in the text report; then how many more
SHOWN_OPS = 12  # ops of a group's sequence shown in the text report (first 8, last 4)
_STEPS = ("shape facts", "post-dominators", "fusion groups", "report")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "inspect",
        help="summarize a model: ops, inputs/outputs, parameters, post-dominators, fusion groups",
        description="Summarize an ONNX model: opsets, inputs and outputs with dtypes and shapes, "
        "op histogram, parameter bytes, a summary of the post-dominator tree (nodes only the "
        "exit post-dominates, the deepest chain) and TVM FuseOps fusion groups (the largest; "
        "--groups: every one).",
    )
    p.add_argument("input", help="input .onnx file")
    p.add_argument("--groups", action="store_true", help="list every fusion group")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument(
        "--no-progress",
        action="store_true",
        help=f"no progress bar on stderr (shown for models of {PROGRESS_NODES:,} nodes or more)",
    )
    p.add_argument(
        "--top", type=int, default=5, metavar="K", help="show the K largest groups (default 5)"
    )
    p.add_argument(
        "--max-group-size",
        type=int,
        default=256,
        metavar="N",
        help="cap on nodes per fusion group (default 256, as TVM)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    for option, value, least in (
        ("--max-group-size", args.max_group_size, 1),
        ("--top", args.top, 0),
    ):
        if value < least:  # a usage error (as argparse's), not a model that fails to load
            print(  # "error:", as argparse's and every command's (it said "usage error:")
                f"graphopt inspect: error: {option} must be at least {least}, got "
                f"{value} (see 'graphopt inspect --help')",
                file=sys.stderr,
            )
            return 2
    bar = _StepBar() if not args.no_progress else None  # (no stderr: the bar draws nothing)
    try:
        report = inspect_model(
            args.input,
            max_group_size=args.max_group_size,
            top=args.top,
            on_step=bar.step if bar else None,
        )
    finally:
        if bar:
            bar.close()
    if not args.groups:
        report["fusion"].pop("groups")
    if args.json:
        print(json.dumps(report, indent=2, default=_json_text))
    else:
        print(format_report(report))  # a reader gone early (| head): graphopt.cli.main
    return 0


def _json_text(value: object) -> str:
    """A name protobuf handed over as bytes (not UTF-8 in the file), as text with the bad bytes
    escaped, as the text report shows it."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class _StepBar:
    """`graphopt.quant.progress.Progress` over inspect's steps, drawn only for a model of
    `PROGRESS_NODES` nodes or more (a small one is done before a bar would say anything)."""

    def __init__(self) -> None:
        from graphopt.quant.progress import Progress

        self.bar: Progress | None = None
        self.make = Progress

    def step(self, done: int, nodes: int) -> None:
        """`done` steps of `_STEPS` are done (0: loaded, starting the first) on `nodes` nodes."""
        if done == 0 and nodes >= PROGRESS_NODES:
            self.bar = self.make(len(_STEPS), self._label(0), show_start=True)
        if self.bar is not None:
            self.bar.label = self._label(done)
            self.bar.update(done)

    @staticmethod
    def _label(done: int) -> str:
        """`inspect (step)`, padded to the longest step: a terminal's line is redrawn over
        the last one (`\\r`), which a shorter label left partly showing."""
        width = max(len(s) for s in (*_STEPS, "done")) + len("inspect ()")
        return f"inspect ({_STEPS[done] if done < len(_STEPS) else 'done'})".ljust(width)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ---------------------------------------------------------------------------- facts


def inspect_model(
    path: str,
    *,
    max_group_size: int = 256,
    top: int = 5,
    on_step: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Every fact `inspect` reports, as plain data (JSON-ready).

    `on_step(done, nodes)`: called once the model is loaded (done 0) and after each of the
    `_STEPS` (done 1, 2, ...), with the main graph's node count."""
    step = on_step or (lambda done, nodes: None)
    from graphopt.analysis import fusion_groups, post_dominator_tree, shape_facts
    from graphopt.analysis.dominators import tree_depths
    from graphopt.ir import Graph, load
    from graphopt.passes.base import PassContext

    loaded = load(path, check_nodes=False)  # (the nodes are checked as they are indexed)
    model = loaded.model
    graph = Graph(model, check_as=loaded.where)  # (a body reading its node's output: the
    # file's one-line LoadError, which the post-dominators said naming no file)
    step(0, len(graph))
    ctx = PassContext()  # the shape facts, inferred once for the report and the fusion groups
    facts = shape_facts(graph, ctx)
    step(1, len(graph))
    ops = Counter(_op_name(n) for n in graph.nodes.values())
    tree = post_dominator_tree(graph)
    depths = tree_depths(tree)
    compute = [n for n in depths if graph.nodes[n].op_type != "Constant"]
    deepest = max(compute, key=lambda n: depths[n], default=None)
    chain = []
    node: str | None = deepest
    while node is not None:
        chain.append(_text(node))
        node = tree[node]
    step(2, len(graph))
    groups = fusion_groups(graph, max_group_size, ctx)
    step(3, len(graph))
    constants = [
        g for g in groups if len(g.nodes) == 1 and graph.nodes[g.nodes[0]].op_type == "Constant"
    ]
    listed = [_group_entry(graph, g) for g in groups]
    largest = sorted(
        (e for e in listed if e["size"] > 1), key=lambda e: (-e["size"], e["nodes"][0])
    )[:top]
    constant_ids = {id(g) for g in constants}
    sizes = Counter(len(g.nodes) for g in groups if id(g) not in constant_ids)
    params, param_bytes = _parameters(
        graph.initializers.values(), graph.nodes.values(), model.graph.sparse_initializer
    )
    report = {
        "model": str(path),
        "ir_version": model.ir_version,
        "producer": f"{_text(model.producer_name)} {_text(model.producer_version)}".strip(),
        "opsets": {(_text(o.domain) or "ai.onnx"): o.version for o in model.opset_import},
        "inputs": [
            _tensor(vi.name, facts, vi)
            for vi in model.graph.input
            if vi.name not in graph.initializers
        ],
        "outputs": [_tensor(vi.name, facts, vi) for vi in model.graph.output],
        "nodes": len(graph),
        "initializers": len(graph.initializers) + len(model.graph.sparse_initializer),
        "parameters": params,
        "parameter_bytes": param_bytes,
        "external_data": loaded.external_data,
        "functions": len(model.functions),
        "ops": dict(sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))),
        "bodies": _bodies_entry(model),
        "function_bodies": _functions_entry(model),
        "nchwc_guard": _guard_entry(model),
        "post_dominators": {
            "under_exit": sum(1 for v in tree.values() if v is None),
            "deepest_chain": len(chain),
            "deepest_chain_nodes": chain,
        },
        "fusion": {
            "max_group_size": max_group_size,
            "count": len(groups) - len(constants),
            "constant_singletons": len(constants),
            "multi_node_groups": sum(1 for g in groups if len(g.nodes) > 1),
            "nodes_in_multi_node_groups": sum(len(g.nodes) for g in groups if len(g.nodes) > 1),
            "sizes": {str(k): sizes[k] for k in sorted(sizes)},
            "largest": largest,
            "groups": listed,
        },
    }
    step(4, len(graph))
    return report


def _group_entry(graph: Any, group: Any) -> dict[str, Any]:
    return {
        "size": len(group.nodes),
        "pattern": group.pattern.name,
        "anchor": _text(group.anchor) if group.anchor is not None else None,
        "ops": [_op_name(graph.nodes[n]) for n in group.nodes],
        "nodes": [_text(n) for n in group.nodes],  # (sorted by the first: text, not bytes)
    }


def _tensor(name: str, facts: Any, declared: onnx.ValueInfoProto) -> dict[str, Any]:
    """A graph input or output as the model declares it (dims it leaves open as "?"), or as
    inferred where it declares no shape (dims inference names `unk__N` as "?" too)."""
    from graphopt.ir.values import declared_dims

    if declared.type.WhichOneof("value") not in (None, "tensor_type"):
        text, dims = _type_text(declared.type)
        return {"name": _text(name), "dtype": text, "shape": dims}
    dtype = facts.dtype(name) or declared.type.tensor_type.elem_type
    shape: Any = declared_dims(declared, unknown="?")
    if shape is None:
        shape = facts.shape(name)
        if shape is not None:
            shape = ["?" if d is None or str(d).startswith("unk__") else d for d in shape]
    return {
        "name": _text(name),
        "dtype": type_name(dtype) if dtype else None,
        "shape": list(shape) if shape is not None else None,
    }


def _type_text(tp: onnx.TypeProto) -> tuple[str | None, list[Any] | None]:
    """A declared type as (what it holds, the dims of the tensors in it): "sequence(float)"
    with its elements' dims, "optional(...)", "sparse float", "map(int64, float)"."""
    from graphopt.ir.values import declared_dims

    kind = tp.WhichOneof("value")
    if kind in ("tensor_type", "sparse_tensor_type"):
        tensor = getattr(tp, kind)
        dtype = type_name(tensor.elem_type)
        if kind == "sparse_tensor_type":
            dtype = f"sparse {dtype}"
            dense = onnx.TypeProto()
            dense.tensor_type.CopyFrom(onnx.TypeProto.Tensor(shape=tensor.shape))
            tp = dense
        dims = declared_dims(onnx.ValueInfoProto(type=tp), unknown="?")
        return dtype, list(dims) if dims is not None else None
    if kind in ("sequence_type", "optional_type"):
        inner, inner_dims = _type_text(getattr(tp, kind).elem_type)
        return f"{kind.split('_')[0]}({inner or '?'})", inner_dims
    if kind == "map_type":
        key = type_name(tp.map_type.key_type)
        value, _ = _type_text(tp.map_type.value_type)
        return f"map({key}, {value or '?'})", None
    return None, None


def _bodies_entry(model: onnx.ModelProto) -> dict[str, Any] | None:
    """What the If/Loop/Scan bodies hold, nested ones included (None when there are none)."""
    from graphopt.ir.nodes import nested_bodies

    bodies = list(nested_bodies(model.graph))
    if not bodies:
        return None
    graphs = len(bodies)
    initializers = [t for body in bodies for t in body.initializer]
    nodes = [node for body in bodies for node in body.node]
    sparse = [t for body in bodies for t in body.sparse_initializer]
    params, param_bytes = _parameters(initializers, nodes, sparse)
    ops = Counter(_op_name(n) for n in nodes)
    return {
        "graphs": graphs,
        "nodes": len(nodes),
        "parameters": params,
        "parameter_bytes": param_bytes,
        "ops": dict(sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))),
    }


def _functions_entry(model: onnx.ModelProto) -> dict[str, Any] | None:
    """What the model-local functions hold (the If/Loop/Scan bodies in them included): the
    nodes and ops a call stands for, e.g. the fusion groups `materialize-fusion-groups` made
    (None when there are none)."""
    from graphopt.ir.nodes import nested_bodies, subgraphs

    if not model.functions:
        return None
    nodes = [node for f in model.functions for node in f.node]
    bodies = [b for n in nodes for sub in subgraphs(n) for b in (sub, *nested_bodies(sub))]
    nodes += [node for body in bodies for node in body.node]
    params, param_bytes = _parameters(
        [t for body in bodies for t in body.initializer],
        nodes,
        [t for body in bodies for t in body.sparse_initializer],
    )
    domains = Counter(_text(f.domain) for f in model.functions)
    ops = Counter(_op_name(n) for n in nodes)
    return {
        "functions": len(model.functions),
        "domains": dict(sorted(domains.items(), key=lambda kv: (-kv[1], kv[0]))),
        "nodes": len(nodes),
        "parameters": params,
        "parameter_bytes": param_bytes,
        "ops": dict(sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))),
    }


def _op_name(node: onnx.NodeProto) -> str:
    """The op as the report names it: "Conv", "com.microsoft.FusedConv". An op type or domain
    protobuf handed over as bytes (not UTF-8 in the file) is shown with the bad bytes escaped
    (`_text`): the histogram sorts these names, and bytes do not sort with text."""
    op, domain = _text(node.op_type), _text(node.domain)
    return op if domain in ("", "ai.onnx") else f"{domain}.{op}"


def _text(value: str | bytes) -> str:
    """`value` as text: bytes (a name not UTF-8 in the file) with the bad bytes escaped. Also
    for opset and function domains and the producer: bytes were a dict key JSON refuses
    (`inspect --json`: TypeError) and did not sort with text (a bytes function domain beside
    a text one: TypeError in the text report too)."""
    return value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else value


def _parameters(
    initializers: Iterable[onnx.TensorProto],
    nodes: Iterable[onnx.NodeProto],
    sparse: Iterable[onnx.SparseTensorProto] = (),
) -> tuple[int, int]:
    """Element and byte counts of the weights: initializers (dense and `sparse`) and the values
    of Constant nodes, in every form the op takes. A sparse tensor counts the elements it
    stands for and the bytes it stores (values and indices); a string, its UTF-8 bytes."""
    elements = nbytes = 0
    for t in initializers:
        elements, nbytes = elements + _elements(t), nbytes + _tensor_bytes(t)
    for sp in sparse:
        elements += _elements(sp)
        nbytes += _tensor_bytes(sp.values) + _tensor_bytes(sp.indices)
    for node in nodes:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            n, b = _constant_parameters(node)
            elements, nbytes = elements + n, nbytes + b
    return elements, nbytes


def _constant_parameters(node: onnx.NodeProto) -> tuple[int, int]:
    for a in node.attribute:
        if a.name == "value" and a.HasField("t"):
            return _elements(a.t), _tensor_bytes(a.t)
        if a.name == "sparse_value" and a.HasField("sparse_tensor"):
            sp = a.sparse_tensor
            return _elements(sp), _tensor_bytes(sp.values) + _tensor_bytes(sp.indices)
        if a.name in ("value_float", "value_int"):
            return 1, 4 if a.name == "value_float" else 8
        if a.name in ("value_floats", "value_ints"):
            n = len(a.floats) if a.name == "value_floats" else len(a.ints)
            return n, n * (4 if a.name == "value_floats" else 8)
        if a.name == "value_string":
            return 1, len(a.s)
        if a.name == "value_strings":
            return len(a.strings), sum(len(s) for s in a.strings)
    return 0, 0


def _elements(t: onnx.TensorProto | onnx.SparseTensorProto) -> int:
    return prod(t.dims) if t.dims else 1


def _tensor_bytes(t: onnx.TensorProto) -> int:
    """The bytes `t`'s values take stored: packed for the types of fewer bits than a byte (an
    INT4 weight's 32 elements are 16 bytes; numpy's int4 itemsize, 1, counted 32)."""
    from graphopt.ir.model_io import _data_bytes

    if t.data_type == onnx.TensorProto.STRING:
        return sum(len(s) for s in t.string_data)
    stored = _data_bytes(t)
    return stored if stored is not None else len(t.raw_data)  # (undefined types)


# ---------------------------------------------------------------------------- text


def _shape_text(shape: list[Any] | None) -> str:
    if shape is None:
        return "?"
    # a dim param through `shown`: a newline in one split the line
    return "[" + ", ".join("?" if d is None else shown(str(d)) for d in shape) + "]"


def _bytes_text(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{n} B"
        size /= 1024
    return f"{n} B"


def _guard_entry(model: onnx.ModelProto) -> dict[str, Any] | None:
    """The two graphs of an `ort-cpu` model (graphopt.passes.nchwc_fallback), None otherwise."""
    from graphopt.passes.nchwc_fallback import branches
    from graphopt.passes.ort_nchwc import BLOCK_SIZE_KEY

    found = branches(model)
    if found is None:
        return None
    return {
        "block_size": _guard_block_size(model, BLOCK_SIZE_KEY),
        "nchwc_nodes": len(found[0].node),
        "nchw_nodes": len(found[1].node),
        "nchwc_ops": dict(Counter(f"{n.domain}.{n.op_type}".lstrip(".") for n in found[0].node)),
    }


def _guard_block_size(model: onnx.ModelProto, key: str) -> int | None:
    """The block size the guard's Equal compares this CPU's with (the integer constant it
    reads); the metadata entry `key`, which says the same in a model `ort-cpu` made, where
    that is no such constant; None where neither is an integer (a hand-edited model: the
    metadata's "sixteen" was a ValueError traceback)."""
    from onnx import numpy_helper

    from graphopt.ir.nodes import constant_tensor

    equal = model.graph.node[3]
    expected = equal.input[1] if equal.op_type == "Equal" and len(equal.input) > 1 else ""
    tensor = next((t for t in model.graph.initializer if t.name == expected), None)
    if tensor is None:
        made = next((n for n in model.graph.node if expected and n.output[:1] == [expected]), None)
        tensor = constant_tensor(made) if made is not None and made.op_type == "Constant" else None
    if tensor is not None:
        try:
            value = numpy_helper.to_array(tensor)
        except (ValueError, TypeError):  # (data that does not make its dims)
            value = None
        if value is not None and value.size == 1 and value.dtype.kind in "iu":
            return int(value.reshape(-1)[0])
    label = next((p.value for p in model.metadata_props if p.key == key), "")
    return int(label) if label.strip().isdecimal() else None


def format_report(r: dict[str, Any]) -> str:
    lines = [
        f"model: {shown(r['model'])}  (IR {r['ir_version']}"
        + (f", producer {shown(r['producer'])}" if r["producer"] else "")
        + ")",
        "opsets: " + ", ".join(f"{shown(d)} {v}" for d, v in r["opsets"].items()),
        f"nodes: {r['nodes']}  initializers: {r['initializers']}  "
        f"parameters: {r['parameters']:,} ({_bytes_text(r['parameter_bytes'])})"
        + ("  [external data]" if r["external_data"] else "")
        + (f"  local functions: {r['functions']}" if r["functions"] else ""),
        "inputs:",
        *_tensor_lines(r["inputs"], "input"),
        "outputs:",
        *_tensor_lines(r["outputs"], "output"),
        "ops: " + _counts_text(r["ops"]),
    ]
    bodies = r.get("bodies")
    if bodies:
        lines.append(
            f"If/Loop/Scan bodies: {counted(bodies['graphs'], 'graph')}, "
            f"{counted(bodies['nodes'], 'node')}, "
            f"parameters {bodies['parameters']:,} ({_bytes_text(bodies['parameter_bytes'])}); "
            "ops: " + _counts_text(bodies["ops"])
        )
    functions = r.get("function_bodies")
    if functions:
        lines.append(
            f"local function bodies: {counted(functions['functions'], 'function')} ("
            + ", ".join(f"{shown(d or 'ai.onnx')} {n}" for d, n in functions["domains"].items())
            + f"), {counted(functions['nodes'], 'node')}, parameters {functions['parameters']:,} "
            f"({_bytes_text(functions['parameter_bytes'])}); "
            "ops: " + _counts_text(functions["ops"])
        )
    guard = r.get("nchwc_guard")
    if guard:
        lines.append(
            f"NCHWc guard: If(this CPU's block size = {guard['block_size'] or '?'}) runs the "
            f"NCHWc graph ({counted(guard['nchwc_nodes'], 'node')}), else the NCHW graph "
            f"({counted(guard['nchw_nodes'], 'node')}); "
            "the summary below is of the outer graph"
        )
    pd = r["post_dominators"]
    lines.append(
        f"post-dominators: {counted(pd['under_exit'], 'node')} "
        f"{'has' if pd['under_exit'] == 1 else 'have'} only the exit as post-dominator; "
        f"deepest chain {counted(pd['deepest_chain'], 'node')}"
        + (
            f" (from {shown(_text(pd['deepest_chain_nodes'][0]))})"
            if pd["deepest_chain_nodes"]
            else ""
        )
    )
    f = r["fusion"]
    constants, multi = f["constant_singletons"], f["multi_node_groups"]
    lines.append(
        f"fusion groups (TVM FuseOps, cap {f['max_group_size']}): {counted(f['count'], 'group')}"
        + (f" + {counted(constants, 'Constant node')}" if constants else "")
        + f"; {counted(multi, 'group')} fuse{'s' * (multi == 1)} "
        + counted(f["nodes_in_multi_node_groups"], "node")
    )
    lines.append("  sizes: " + _counts_text(f["sizes"], "×"))
    if f["largest"]:
        lines.append("  largest:")
        lines.extend(_group_line(g, "    ") for g in f["largest"])
    if "groups" in f:
        lines.append("groups:")
        lines.extend(_group_line(g, "  ", i) for i, g in enumerate(f["groups"]))
    return "\n".join(lines)


def _tensor_lines(tensors: list[dict[str, Any]], what: str) -> list[str]:
    """One line per input or output, the first `LISTED` of them, then how many more (a model
    made of 54 detectors listed 54 inputs and 216 outputs)."""
    # names through `shown`: a newline in one split the line (the inputs, the groups' nodes)
    lines = [
        f"  {shown(t['name'])}: {t['dtype'] or '?'} {_shape_text(t['shape'])}" for t in tensors
    ]
    if len(lines) > LISTED:
        more = len(lines) - LISTED
        noun = what + "s" * (more != 1)
        lines = [*lines[:LISTED], f"  ... and {more} more {noun} (--json lists all)"]
    return lines


def _ops_text(ops: list[str]) -> str:
    """A group's op sequence, ` → `-joined; past `SHOWN_OPS` ops the first 8 and the last 4
    with the count between (a 255-node group was one line of 255 ops)."""
    ops = [shown(op) for op in ops]  # (a model's op type or domain with a newline: one line)
    if len(ops) <= SHOWN_OPS:
        return " → ".join(ops)
    head, tail = ops[:8], ops[-4:]
    hidden = len(ops) - len(head) - len(tail)
    return " → ".join(head) + f" → … {counted(hidden, 'op')} … → " + " → ".join(tail)


def _counts_text(counts: dict[str, int], sep: str = " ") -> str:
    """`key n, key n, ...` ("none" for no entries: a model without nodes)."""
    return ", ".join(f"{shown(str(k))}{sep}{n}" for k, n in counts.items()) or "none"


def _group_line(g: dict[str, Any], indent: str, index: int | None = None) -> str:
    head = f"#{index} " if index is not None else ""
    anchor = f" anchor {shown(g['anchor'])}" if g["anchor"] else ""
    return (
        f"{indent}{head}{counted(g['size'], 'node')} {g['pattern']}{anchor}: "
        + _ops_text(g["ops"])
        + (
            f"  [{shown(g['nodes'][0])} … {shown(g['nodes'][-1])}]"
            if g["size"] > 1
            else f"  [{shown(g['nodes'][0])}]"
        )
    )
