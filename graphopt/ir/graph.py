"""A thin, mutable index over an `onnx.GraphProto`.

The graph keeps the protobuf as the source of truth and indexes it: nodes by (unique) name,
producer and consumers of every tensor, initializers by name. Passes edit the model only through
the mutation API here (`add_node`, `remove_node`, `set_input`, `replace_all_uses`,
`add_initializer`, ...) so the use-lists stay right. `commit()` writes the node list back in a
stable topological order; nothing is converted into a general object graph and back.

What it does not do: shape inference (see `graphopt.analysis.shapes`), or recurse passes into
subgraphs (`graphopt.subgraphs` runs a pipeline over each body as a model of its own). Nodes
with `If`/`Loop`/`Scan` bodies are indexed as consumers of every outer-scope tensor their
bodies reference, `replace_all_uses` renames inside those bodies too (lexically: a body that
defines the old name itself keeps its own), and every name a body defines is reserved: a new
name never shadows one (ONNX wants one name per tensor across scopes).
"""

from __future__ import annotations

import itertools
import logging
import sys
from collections.abc import Callable, Iterable, Iterator, MutableSequence, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from graphopt.errors import LoadError, first_line
from graphopt.ir.model_io import (
    body_redefinition_error,
    left_out_input_error,
    undefined_input_error,
    undefined_output_error,
)
from graphopt.ir.nodes import (
    attribute_value,
    constant_tensor,
    mistyped_constant,
    nested_bodies,
    subgraphs,
)

log = logging.getLogger("graphopt.ir.graph")

NodeProto = onnx.NodeProto
_GRAPH = onnx.AttributeProto.GRAPH
_GRAPHS = onnx.AttributeProto.GRAPHS
_CONTROL_FLOW = frozenset({"If", "Loop", "Scan", "SequenceMap"})  # ops with graph attributes
_DEFAULT_DOMAINS = ("", "ai.onnx")
CONTENT_KEY_BYTES = 64


def content_key(raw_data: bytes) -> object:
    """A cheap key of a tensor's raw bytes that differs for most distinct tensors of the same
    dtype and dims (equal bytes, equal keys): its length, first and last 64 bytes; or, up to
    128 bytes, the bytes themselves (then equal keys are equal bytes)."""
    if len(raw_data) <= 2 * CONTENT_KEY_BYTES:
        return raw_data
    return (len(raw_data), raw_data[:CONTENT_KEY_BYTES], raw_data[-CONTENT_KEY_BYTES:])


# A last commit copies every node back when the nodes the protobuf still holds total at most
# this many bytes (see Graph._copying_all_is_cheaper).
COPY_ALL_MAX_BYTES = 1 << 20


def outer_references(graph: onnx.GraphProto, noted: set[str] | None = None) -> set[str]:
    """Names a (sub)graph reads that it does not define itself: its outer-scope inputs.

    `noted`: gets the outer-scope names its quantization annotations (its nested bodies'
    too) give as a scale or zero point (`quant_parameter_tensor_names`), which no node reads."""
    defined = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    defined |= {t.values.name for t in graph.sparse_initializer}
    used: set[str] = set()
    inner: set[str] | None = None if noted is None else set()
    for node in graph.node:
        used.update(node.input[:])  # `field[:]` builds the list in C; "" is dropped below
        if node.op_type in _CONTROL_FLOW or node.domain not in _DEFAULT_DOMAINS:
            for sub in subgraphs(node):  # (no other standard op carries a graph attribute)
                used |= outer_references(sub, inner)
        defined.update(node.output[:])
    used.discard("")
    used.update(o.name for o in graph.output)
    if noted is not None and inner is not None:
        for note in graph.quantization_annotation:
            inner.update(entry.value for entry in note.quant_parameter_tensor_names)
        noted |= inner - defined
    return used - defined


def scope_names(graph: onnx.GraphProto) -> set[str]:
    """Every tensor name a (sub)graph defines, its nested bodies included: inputs, initializers
    (sparse ones by their values' name), node outputs and outputs."""
    names: set[str] = set()
    for g in itertools.chain((graph,), nested_bodies(graph)):
        names.update(i.name for i in g.input)
        names.update(t.name for t in g.initializer)
        names.update(t.values.name for t in g.sparse_initializer)
        names.update(o.name for o in g.output)
        for node in g.node:
            names.update(node.output[:])
    names.discard("")
    return names


def node_count(graph: onnx.GraphProto) -> int:
    """Nodes of a graph, those of its If/Loop/Scan bodies (recursively) included."""
    return len(graph.node) + sum(len(body.node) for body in nested_bodies(graph))


def _not_ssa_error(tensor: str, first: str, second: str) -> LoadError:
    """The error for two nodes writing one tensor."""
    return LoadError(
        f"tensor {tensor!r} is produced by both {first!r} "
        f"and {second!r}; ONNX graphs must be in SSA form"
    )


def _own_names(graph: onnx.GraphProto) -> set[str]:
    """The names one (sub)graph's scope defines itself, its nested bodies left out: inputs,
    initializers (sparse ones by their values' name) and node outputs."""
    names = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    names.update(t.values.name for t in graph.sparse_initializer)
    for node in graph.node:
        names.update(node.output[:])
    names.discard("")
    return names


def _rename_in_subgraph(
    graph: onnx.GraphProto,
    old: str,
    new: str,
    fresh: Callable[[str], str],
    same_values: bool = True,
) -> None:
    """Body `graph` reads `new` wherever it read the outer tensor `old` (nested bodies too),
    with ONNX's scoping: a body that defines `old` itself (input, initializer or node output)
    reads its own, so it and its bodies are left alone; a body that defines `new` itself and
    reads the outer `old` first gives its own `new` a `fresh` name, so the reads renamed to
    `new` cannot land on it. `same_values` (`old` holds `new`'s values, or is `new` renamed):
    the body's quantization annotations naming `old` name `new` (`_carry_notes`), as
    `Graph.replace_all_uses` carries the graph's own."""
    own = _own_names(graph)
    if old in own:
        return
    if new in own and old in outer_references(graph):
        _rename_own(graph, new, fresh(new), fresh)
    for node in graph.node:
        inputs = node.input
        for i, name in enumerate(inputs[:]):
            if name == old:
                inputs[i] = new
        for sub in subgraphs(node):
            _rename_in_subgraph(sub, old, new, fresh, same_values)
    for out in graph.output:
        if out.name == old:
            out.name = new
    notes = graph.quantization_annotation
    if same_values and notes:
        said = _carry_notes(notes, old, new)
        if said:
            log.debug("in body %r: %s", graph.name, said)


def _rename_own(graph: onnx.GraphProto, name: str, to: str, fresh: Callable[[str], str]) -> None:
    """The tensor `name` that body `graph` defines itself is called `to` (a fresh name) there
    and in the nested bodies that read it: its definition, reads, outputs and value_info."""
    for vi in itertools.chain(graph.input, graph.output, graph.value_info):
        if vi.name == name:
            vi.name = to
    for t in graph.initializer:
        if t.name == name:
            t.name = to
    for sparse in graph.sparse_initializer:
        if sparse.values.name == name:
            sparse.values.name = to
    for node in graph.node:
        for field in (node.input, node.output):
            for i, tensor in enumerate(field[:]):
                if tensor == name:
                    field[i] = to
        for sub in subgraphs(node):
            _rename_in_subgraph(sub, name, to, fresh)


class Graph:
    """Mutable index over one ONNX graph (the main graph of a model, by default).

    Tensors are identified by name, nodes by their unique name. `producer`, `consumers` and
    `initializers` are kept right by every mutation method.
    """

    def __init__(
        self,
        model: onnx.ModelProto,
        *,
        check_as: str | None = None,
        adopt_constants: bool = False,
    ):
        """Index `model`'s main graph (nameless and duplicate node names are made unique).

        `check_as`: also check, in the same walk, what `load` checks of the nodes when called
        with `check_nodes=False` (every tensor read is defined before it is read, every graph
        output is defined), raising its one-line `LoadError` that names `check_as`.

        `adopt_constants`: make every `Constant` node an initializer of its output's name while
        indexing, as `constants-to-initializers` would first thing (same tensors, same order;
        not a graph output, not a sparse or string constant): the caller runs a pipeline that
        starts with it. Those nodes are never indexed (nor removed again: 878 of layout_cdla's
        1493 nodes); `adopted_constants` counts them for the pass to report. Their tensors are
        taken over, not copied: `initializers` serves each node's own tensor, and the
        initializer list holds no entry for it until `commit` copies it into its place (after
        the list's own entries, in node order), so a tensor overwritten first (`write_raw_data`:
        a folded weight) or removed (a merged twin) is never copied whole.
        """
        self.model = model
        self.proto = model.graph
        self.opset: dict[str, int] = {o.domain or "": o.version for o in model.opset_import}
        if "ai.onnx" in self.opset and "" not in self.opset:
            self.opset[""] = self.opset["ai.onnx"]
        self._names = _NameSource()
        self.nodes: dict[str, NodeProto] = {}
        self.producer: dict[str, str] = {}
        self.consumers: dict[str, dict[str, None]] = {}
        self._implicit: dict[str, set[str]] = {}
        self._owners: dict[str, None] = {}  # the nodes with If/Loop/Scan bodies, by name
        # What each node reads and writes as indexed, kept by every mutation method: removing
        # and ordering nodes then reads no protobuf fields (each read builds a wrapper).
        self._wiring: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
        self._order: list[NodeProto] | None = None  # toposort's answer until the wiring changes
        self.initializers: dict[str, onnx.TensorProto] = {}
        # The content key (see `content_key`) of large raw initializers, by name, as
        # (the proto it was read from, the key): valid while `initializers[name]` is that same
        # proto; `initializer_written` replaces or drops it when the data is written in place.
        self.content_keys: dict[str, tuple[onnx.TensorProto, object]] = {}
        self._structure_changed = False
        self._initializers_changed = False
        # Tensors taken over while indexing, by name, in node order, until `commit` places
        # them: each the tensor `initializers` served first (the Constant node's own). Those
        # overwritten since (`write_raw_data`) have an entry appended to the list, in `_placed`;
        # the commit moves it to its place. `_adopted_at`: the list's own entries, before them.
        self._pending: dict[str, onnx.TensorProto] = {}
        self._placed: dict[str, onnx.TensorProto] = {}
        self._adopted_at = 0
        # Initializer names removed since the last commit (their entries are still in the
        # list), and those of them added again: the commit cuts those entries by identity
        self._released: set[str] = set()
        self._readded: set[str] = set()
        self.adopted_constants = 0
        # While indexing: the nodes whose bodies' annotations name outer names (`_register`)
        self._noted_later: list[tuple[str, set[str]]] | None = None
        self._where = check_as  # (named in the cycle error of a later toposort too)
        self._index(check_as, adopt_constants)

    # ------------------------------------------------------------------ indexing
    def _index(self, check_as: str | None = None, adopt_constants: bool = False) -> None:
        """Name every node uniquely and index nodes, tensors and initializers in one walk over
        the nodes (one walk instead of three with load's check: 7.0 -> 4.0 ms on layout_cdla's
        1493 nodes, where every read of `node.input` / `node.output` builds a new wrapper)."""
        g = self.proto
        self._added: set[int] = set()  # ids of the nodes add_node indexed since
        self._noted_later = []
        self.initializers = {init.name: init for init in g.initializer}
        self.graph_inputs = [i.name for i in g.input]
        self._input_names = set(self.graph_inputs)
        self._input_count = len(self.graph_inputs)
        self.graph_outputs = [o.name for o in g.output]
        self._output_names = set(self.graph_outputs)
        self._output_count = len(self.graph_outputs)
        nodes = list(g.node)
        given = [n.name for n in nodes]
        taken = self._names.taken
        taken.update(name for name in given if name)
        for t in itertools.chain(g.input, g.output, g.value_info, g.initializer):
            taken.add(t.name)
        taken.update(t.values.name for t in g.sparse_initializer)  # (fresh names were these)
        defined: set[str] | None = None
        if check_as is not None:
            defined = self._input_names | self.initializers.keys()
            defined.update(t.values.name for t in g.sparse_initializer)
            # `defined` gains every node's outputs below: the name source reads it as taken
            # too, so they are not added to `taken` one node at a time as well (-0.3 ms on
            # layout_cdla)
            self._names.defined = defined
        not_ssa: LoadError | None = None  # raised after load's own errors, as load runs first
        register = self._register
        fresh = self._names.fresh
        indexed, wiring = self.nodes, self._wiring
        producer, consumers = self.producer, self.consumers
        graph_outputs = self._output_names
        adopted: list[tuple[str, onnx.TensorProto]] = []
        adopted_names: set[str] = set()  # their names stay taken, as while they were indexed
        position = -1
        for node, name in zip(nodes, given, strict=True):
            position += 1
            op = node.op_type
            # `field[:]` builds the list in C: tuple(node.input[:]) costs ~40% less than
            # tuple(node.input), which iterates the field from Python (-0.5 ms, layout_cdla).
            inputs, outputs = tuple(node.input[:]), tuple(node.output[:])
            if defined is not None and not defined.issuperset(inputs):  # ("" is never defined)
                for index, tensor in enumerate(inputs):
                    if tensor and tensor not in defined:
                        raise undefined_input_error(check_as or "", node, tensor)
                    if not tensor:
                        opset = self.opset.get("", 0)
                        left_out = left_out_input_error(check_as or "", node, index, opset)
                        if left_out is not None:
                            raise left_out
            if not name or name in indexed or name in adopted_names:  # nameless, or given twice
                node.name = name = fresh(f"{op}_{position}")
            if defined is not None:
                defined.update(outputs)
            else:
                taken.update(outputs)
            if adopt_constants and op == "Constant" and node.domain in _DEFAULT_DOMAINS:
                out = outputs[0] if outputs else ""
                tensor = constant_tensor(node) if out and out not in graph_outputs else None
                if tensor is not None:
                    adopted.append((out, tensor))
                    adopted_names.add(name)
                    continue
            if (
                op in _CONTROL_FLOW
                or node.domain not in _DEFAULT_DOMAINS
                or not producer.keys().isdisjoint(outputs)
                or (len(outputs) > 1 and len(set(outputs)) < len(outputs))
            ):  # bodies to index, or an output written twice: `_register` says which
                try:
                    register(node, name, inputs, outputs)
                except LoadError as e:
                    if defined is None and not adopt_constants:  # adopting: a Constant may clash
                        raise
                    not_ssa = not_ssa or e
                if defined is not None and name in self._implicit:
                    self._check_body_reads(check_as or "", node, outputs)
                if defined is not None and name in self._owners:
                    redefined = body_redefinition_error(check_as or "", node, defined, outputs)
                    if redefined is not None:
                        raise redefined
                continue
            # `_register`, inlined for the usual node (-0.3 ms on layout_cdla's 615)
            indexed[name] = node
            wiring[name] = (inputs, outputs)
            for out in outputs:
                if out:
                    producer[out] = name
            for tensor in inputs:
                if tensor:
                    users = consumers.get(tensor)
                    if users is None:
                        consumers[tensor] = {name: None}
                    else:
                        users[name] = None
        self._order = None
        if defined is not None:
            for out in self.graph_outputs:
                if out not in defined:
                    raise undefined_output_error(check_as or "", out)
        if adopted:  # an adopted node's output is produced once too (the first clash wins)
            not_ssa = self._adopted_not_ssa(adopted, adopted_names) or not_ssa
        if not_ssa is None:
            not_ssa = self._writes_a_given_name(adopted)
        if not_ssa is not None:
            if check_as:  # named as load's own errors name the model
                raise LoadError(f"{check_as}: {not_ssa}") from not_ssa
            raise not_ssa
        if adopted:
            self._take_tensors(adopted)
            self.adopted_constants = len(adopted)
            self._structure_changed = True  # the Constant nodes leave the node list at commit
        noted, self._noted_later = self._noted_later, None
        if noted:
            self._read_noted_constants(noted)

    def _writes_a_given_name(self, adopted: list[tuple[str, onnx.TensorProto]]) -> LoadError | None:
        """The error for a node that writes a graph input's or an initializer's name, a sparse
        one's too (None when none does): those are defined before any node runs, and ONNX
        graphs are in SSA form (onnx.checker and onnxruntime refuse such a model: "Duplicate
        definition of name")."""
        sparse = {t.values.name for t in self.proto.sparse_initializer}  # (not indexed)
        given = self._input_names | self.initializers.keys() | sparse
        clashes = given.intersection(self.producer)
        clashes.update(out for out, _ in adopted if out in given)
        if not clashes:
            return None
        tensor = min(clashes)
        if tensor in self._input_names:
            kind = "a graph input"
        else:
            kind = "a sparse initializer" if tensor in sparse else "an initializer"
        writer = self.producer.get(tensor) or "a Constant node"
        return LoadError(
            f"tensor {tensor!r} is {kind} and is also produced by {writer!r}; ONNX graphs "
            "must be in SSA form"
        )

    def _adopted_not_ssa(
        self, adopted: list[tuple[str, onnx.TensorProto]], names: set[str]
    ) -> LoadError | None:
        """The SSA error `_register` would have raised first had the Constant nodes
        `adopt_constants` took (`names`, writing `adopted`) been indexed, when one of their
        outputs is one another node also writes: the first clash in node order (None when no
        adopted output clashes: then `_register`'s own error, if any, is the first)."""
        outs = [out for out, _ in adopted]
        if len(set(outs)) == len(outs) and self.producer.keys().isdisjoint(outs):
            return None  # the usual case, checked without a walk
        writer: dict[str, str] = {}
        for node in self.proto.node:
            if node.name in names or node.name in self.nodes:
                for out in node.output:
                    known = writer.setdefault(out, node.name) if out else node.name
                    if known != node.name:
                        return _not_ssa_error(out, known, node.name)
        return None

    def _register(
        self, node: NodeProto, name: str, inputs: tuple[str, ...], outputs: tuple[str, ...]
    ) -> None:
        """Index `node` (named `name`), which reads `inputs` and writes `outputs` (its own
        fields, passed in because reading them again costs a wrapper each)."""
        if len(outputs) > 1:  # Split(x) -> [a, a]: onnx.checker and onnxruntime refuse it
            twice = next((o for i, o in enumerate(outputs) if o and o in outputs[:i]), None)
            if twice is not None:
                op = node.op_type  # (a control character escaped: the message stays one line)
                raise LoadError(
                    f"node {name!r} ({op if op.isprintable() else repr(op)[1:-1]}) writes "
                    f"tensor {twice!r} twice; ONNX graphs must be in SSA form"
                )
        self.nodes[name] = node
        self._wiring[name] = (inputs, outputs)
        self._order = None
        producer = self.producer
        for out in outputs:
            if out:
                known = producer.get(out)
                if known is not None and known != name:
                    raise _not_ssa_error(out, known, name)
                producer[out] = name
        consumers = self.consumers
        for tensor in inputs:
            if tensor:
                users = consumers.get(tensor)
                if users is None:
                    consumers[tensor] = {name: None}
                else:
                    users[name] = None
        if node.op_type not in _CONTROL_FLOW and node.domain in _DEFAULT_DOMAINS:
            return  # no other standard op carries a graph attribute
        implicit = set()
        noted: set[str] = set()
        for sub in subgraphs(node):
            implicit |= outer_references(sub, noted)
            self._names.reserve(scope_names(sub))
            self._owners[name] = None
        if noted:
            if self._noted_later is not None:  # indexing: constants are known at its end
                self._noted_later.append((name, noted))
            else:
                implicit |= self._constants_among(noted)
        if implicit:
            self._implicit[name] = implicit
            for tensor in implicit:
                consumers.setdefault(tensor, {})[name] = None

    def _constants_among(self, names: set[str]) -> set[str]:
        """The constants (initializers, `Constant` nodes' outputs) among `names`: those the
        quantization annotations in a node's bodies name as a scale or zero point, which the
        node counts as read (kept, merged with a twin, renamed as a node's read would be). The
        output of another op is not counted: the read would order the node after that one,
        which may be a cycle."""
        found = set()
        for tensor in names:
            writer = self.producer_node(tensor)
            if tensor in self.initializers or (
                writer is not None
                and writer.op_type == "Constant"
                and writer.domain in _DEFAULT_DOMAINS
            ):
                found.add(tensor)
        return found

    def _read_noted_constants(self, noted: list[tuple[str, set[str]]]) -> None:
        """`_register`'s reads of annotated constants, for the nodes indexed with their
        bodies' annotations naming outer names (`noted`, by node)."""
        for name, names in noted:
            constants = self._constants_among(names)
            if not constants:
                continue
            self._implicit.setdefault(name, set()).update(constants)
            for tensor in constants:
                self.consumers.setdefault(tensor, {})[name] = None

    def _check_body_reads(self, where: str, node: NodeProto, outputs: Sequence[str]) -> None:
        """A node whose If/Loop/Scan body reads the node's own output: a cycle (onnxruntime:
        "the graph is not acyclic"), which `Graph.toposort` passes over and optimize wrote back
        as given. (A body reading a later node's output is no cycle: onnxruntime runs it, and
        the commit's order puts the node after that one.)"""
        for tensor in sorted(self._implicit[node.name].intersection(outputs)):
            if tensor:
                raise LoadError(
                    f"{where}: node {node.name!r} ({node.op_type}) reads its own output "
                    f"{tensor!r} in its If/Loop/Scan body: a cycle"
                )

    def refresh_subgraph_reads(self, node: NodeProto) -> None:
        """Re-index what the bodies of `node` read from outer scopes and the names they define,
        after the bodies were edited in place (`graphopt.subgraphs`)."""
        name = node.name
        old = self._implicit.pop(name, set())
        new: set[str] = set()
        noted: set[str] = set()
        for sub in subgraphs(node):
            new |= outer_references(sub, noted)
            self._names.reserve(scope_names(sub))
        if noted:
            new |= self._constants_among(noted)
        inputs = set(self._wiring[name][0])
        for tensor in old - new - inputs:
            users = self.consumers.get(tensor)
            if users is not None:
                users.pop(name, None)
                if not users:
                    del self.consumers[tensor]
        for tensor in new - old:
            self.consumers.setdefault(tensor, {})[name] = None
        if new:
            self._implicit[name] = new
        self._order = None

    def _unregister(self, node: NodeProto) -> None:
        name = node.name
        del self.nodes[name]
        inputs, outputs = self._wiring.pop(name)
        self._order = None
        producer = self.producer
        for out in outputs:
            if producer.get(out) == name:
                del producer[out]
        if self._owners:
            self._owners.pop(name, None)
        implicit = self._implicit.pop(name, None) if self._implicit else None
        reads = itertools.chain(inputs, implicit) if implicit else inputs
        consumers = self.consumers
        for tensor in reads:
            users = consumers.get(tensor) if tensor else None
            if users is not None:
                users.pop(name, None)
                if not users:
                    del consumers[tensor]

    # ------------------------------------------------------------------ queries
    def node_inputs(self, node: NodeProto, include_implicit: bool = True) -> list[str]:
        """Distinct non-empty tensor names `node` reads (subgraph outer references included)."""
        return self._distinct_reads(node.name, node.input, include_implicit)

    def _distinct_reads(
        self, name: str, inputs: Sequence[str], include_implicit: bool = True
    ) -> list[str]:
        names = [n for n in dict.fromkeys(inputs) if n]
        if include_implicit and self._implicit:
            implicit = self._implicit.get(name)
            if implicit:
                names.extend(sorted(implicit - set(names)))
        return names

    def inputs_of(self, name: str) -> tuple[str, ...]:
        """The `input` field of node `name`, from the index: no protobuf wrapper is built."""
        return self._wiring[name][0]

    def outputs_of(self, name: str) -> tuple[str, ...]:
        """The `output` field of node `name`, from the index: no protobuf wrapper is built."""
        return self._wiring[name][1]

    def consumer_nodes(self, tensor: str) -> list[NodeProto]:
        return [self.nodes[n] for n in self.consumers.get(tensor, {})]

    def producer_node(self, tensor: str) -> NodeProto | None:
        name = self.producer.get(tensor)
        return self.nodes[name] if name is not None else None

    def is_graph_output(self, tensor: str) -> bool:
        if len(self.graph_outputs) != self._output_count:  # outputs were appended
            self._output_names = set(self.graph_outputs)
            self._output_count = len(self.graph_outputs)
        return tensor in self._output_names

    def is_graph_input(self, tensor: str) -> bool:
        if len(self.graph_inputs) != self._input_count:  # the list was edited directly
            self._input_names = set(self.graph_inputs)
            self._input_count = len(self.graph_inputs)
        return tensor in self._input_names

    def use_count(self, tensor: str) -> int:
        """Number of consuming nodes plus one if the tensor is a graph output."""
        return len(self.consumers.get(tensor, ())) + (1 if self.is_graph_output(tensor) else 0)

    def nodes_with_bodies(self) -> list[NodeProto]:
        """The nodes that carry If/Loop/Scan bodies (graph attributes), in the order indexed."""
        return [self.nodes[name] for name in self._owners]

    def has_subgraphs(self, node: NodeProto) -> bool:
        if self.nodes.get(node.name) is node:  # indexed: `_register` looked already
            return node.name in self._owners
        if node.op_type not in _CONTROL_FLOW and node.domain in _DEFAULT_DOMAINS:
            return False  # no other standard op carries a graph attribute
        for a in node.attribute:
            kind = a.type
            if kind == _GRAPH or (kind == _GRAPHS and len(a.graphs)):
                return True
        return False

    def constant(self, tensor: str) -> np.ndarray | None:
        """The value of `tensor` when it is a constant (initializer that is not a graph input,
        or output of a `Constant` node with a `value` attribute); None otherwise, and for a
        tensor stored in `segment`s (one part of a larger tensor: its value is unknown here,
        and onnx cannot read it). An `UnreadableTensorError` (a one-line `LoadError`) naming
        the tensor when its data does not make its shape and type (onnxruntime refuses it; a
        pass read numpy's ValueError, a PassError)."""
        init = self.initializers.get(tensor)
        if init is not None:
            if self.is_graph_input(tensor) or init.HasField("segment"):
                return None  # an overridable default, or a part of an unknown whole
            try:
                return tensor_value(init)
            except _UNREADABLE as e:
                raise unreadable_tensor_error(init, e) from e
        node = self.producer_node(tensor)
        if node is not None and node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            try:
                return constant_node_value(node)
            except _UNREADABLE as e:
                value = node.attribute[0].t  # (a malformed node has no value: no error)
                raise unreadable_tensor_error(value, e) from e
        return None

    def is_constant(self, tensor: str) -> bool:
        """Whether `constant(tensor)` has a value to give (sparse and string `Constant` nodes
        count: their values are known, only not read here; malformed ones do not)."""
        init = self.initializers.get(tensor)
        if init is not None:
            return not self.is_graph_input(tensor) and not init.HasField("segment")
        node = self.producer_node(tensor)
        if node is None or node.op_type != "Constant" or node.domain not in ("", "ai.onnx"):
            return False
        attributes = node.attribute[:]
        if mistyped_constant(attributes):
            return False  # a malformed node: its value is not known
        return attributes[0].name != "value" or not attributes[0].t.HasField("segment")

    def attr(self, node: NodeProto, name: str, default: Any = None) -> Any:
        return attribute_value(node, name, default)

    def opset_version(self, domain: str = "") -> int:
        return self.opset.get(domain, 0)

    def __iter__(self) -> Iterator[NodeProto]:
        return iter(list(self.nodes.values()))

    def __len__(self) -> int:
        return len(self.nodes)

    # ------------------------------------------------------------------ mutation
    def unique_name(self, hint: str) -> str:
        return self._names.fresh(hint)

    def reserve_names(self, names: Iterable[str]) -> None:
        """Names `unique_name` must never hand out (e.g. those of the scopes around a body)."""
        self._names.reserve(names)

    def names_in_use(self) -> set[str]:
        """Every name taken in this graph: its tensors and nodes, the names its bodies define,
        and those reserved."""
        return self._names.in_use()

    def add_node(
        self, node: NodeProto, wiring: tuple[tuple[str, ...], tuple[str, ...]] | None = None
    ) -> NodeProto:
        """Add `node` (given a fresh unique name if it has none or a taken one). `wiring`:
        (inputs, outputs) equal to its `input` and `output` fields, from a caller that just
        set them (reading them back costs a wrapper each)."""
        name = node.name  # (each read of a protobuf field builds a new str)
        if not name or name in self.nodes:
            name = node.name = self._names.fresh(name or node.op_type)
        inputs, outputs = wiring or (tuple(node.input[:]), tuple(node.output[:]))
        self._names.reserve((name, *outputs))
        self._register(node, name, inputs, outputs)
        self._added.add(id(node))
        self._structure_changed = True
        return node

    def make_node(
        self,
        op_type: str,
        inputs: Sequence[str],
        outputs: Sequence[str] | int = 1,
        *,
        name: str | None = None,
        domain: str = "",
        **attrs: Any,
    ) -> NodeProto:
        """Create and add a node; `outputs` is a list of names or a count of fresh names."""
        base = name or op_type
        if isinstance(outputs, int):
            outputs = [
                self._names.fresh(f"{base}_out{i}" if i else f"{base}_out") for i in range(outputs)
            ]
        node = onnx.helper.make_node(
            op_type, list(inputs), list(outputs), name=base, domain=domain or None, **attrs
        )
        if not domain:
            node.ClearField("domain")
        return self.add_node(node)

    def remove_node(self, node: NodeProto | str) -> None:
        n = self.nodes[node] if isinstance(node, str) else node
        self._unregister(n)
        self._structure_changed = True

    def set_input(self, node: NodeProto, index: int, tensor: str) -> None:
        """Make input `index` of `node` read `tensor` (keeps use-lists right). Indices past the
        last input append it, with absent ("") inputs in between. A node not indexed (about
        to be added, perhaps a copy named like an indexed one) is only edited: `add_node`
        indexes what it reads."""
        while len(node.input) <= index:
            node.input.append("")
        old = node.input[index]
        if old == tensor:
            return
        node.input[index] = tensor
        if self.nodes.get(node.name) is not node:
            return  # the use-lists under its name are another node's, or none
        self._wiring[node.name] = (tuple(node.input[:]), self._wiring[node.name][1])
        self._order = None
        if old and old not in node.input:
            users = self.consumers.get(old)
            if users is not None and node.name not in self._implicit_readers(old):
                users.pop(node.name, None)
                if not users:
                    del self.consumers[old]
        if tensor:
            self.consumers.setdefault(tensor, {})[node.name] = None

    def _implicit_readers(self, tensor: str) -> set[str]:
        return {n for n, names in self._implicit.items() if tensor in names}

    def replace_all_uses(self, old: str, new: str, *, same_values: bool = False) -> str | None:
        """Every reader of `old` (nodes, subgraph bodies, graph outputs) reads `new` instead.

        In bodies the rename follows ONNX's scoping: a body (and what it nests) that defines
        `old` itself, as an input, initializer or node output, reads its own and is left
        alone; a body that reads the outer `old` and defines `new` itself first gives its own
        `new` a fresh name. Callers need no shadowing check of their own.

        Graph outputs keep their names: when `old` is a graph output, the producer of `new` is
        renamed to produce `old` if that is safe, otherwise an `Identity(new) -> old` is added.
        A graph output that is a graph input stays the input (no node may write its name).

        `same_values`: `old` holds the values of `new` and goes (a no-op bypassed, a twin
        merged; the caller removes its producer or initializer), so the quantization
        annotation of the name that goes names the one that stays (`_carry_annotation`;
        returned: a line saying which annotation was dropped instead, for the caller's debug
        log). Never for a rewrite whose `new` holds other values (a fusion's output): the
        annotation's scale would be wrong for them.
        """
        if old == new:
            return None
        readers = self.consumers.pop(old, None)
        if readers:
            readers_of_new = self.consumers.setdefault(new, {})
            for user in readers:
                self._rename_reader(user, old, new, same_values)
                readers_of_new[user] = None
        gone, kept = old, new
        if self.is_graph_output(old) and not self.is_graph_input(old):
            # the producer of `new` renamed to write `old`: `new` goes; an Identity added: both
            # stay (nothing to carry)
            gone, kept = (new, old) if self._keep_output_name(old, new) else (old, old)
        if (
            same_values
            and gone != kept
            and not self.is_graph_input(gone)  # (a graph input stays)
            and self.proto.quantization_annotation
        ):
            return self._carry_annotation(gone, kept)
        return None

    def _rename_reader(self, user: str, old: str, new: str, same_values: bool = True) -> None:
        """Node `user` reads `new` where it read `old` (in its subgraph bodies too, whose
        quantization annotations follow where `same_values`: `_rename_in_subgraph`); the
        caller keeps the consumer lists."""
        node = self.nodes[user]
        self._rename_input(node, old, new)
        reads = self._implicit.get(user)
        if reads is not None and old in reads:  # (only its own input may read `old`)
            for sub in subgraphs(node):
                _rename_in_subgraph(sub, old, new, self._names.fresh, same_values)
            self._implicit[user] = (reads - {old}) | {new}

    def _keep_output_name(self, output: str, new: str) -> bool:
        """Graph output `output` is written by `new`'s producer, renamed (True), or by an added
        `Identity(new)` (False)."""
        producer = self.producer_node(new)
        old_producer = self.producer_node(output)
        if old_producer is not None:
            # `output` is still produced by a node the caller is about to remove; detach it.
            for i, name in enumerate(old_producer.output):
                if name == output:
                    old_producer.output[i] = self._names.fresh(f"{output}_detached")
                    self.producer[old_producer.output[i]] = old_producer.name
            self._rewire_outputs(old_producer)
            del self.producer[output]
        renamable = (
            producer is not None
            and not self.is_graph_output(new)
            and not self.is_graph_input(new)
            and new not in self.initializers
            and producer.op_type != "Constant"
        )
        if renamable and producer is not None:
            for i, name in enumerate(producer.output):
                if name == new:
                    producer.output[i] = output
            self._rewire_outputs(producer)
            del self.producer[new]
            self.producer[output] = producer.name
            readers = self.consumers.pop(new, {})
            for user in readers:
                self._rename_reader(user, new, output)
            if readers:
                self.consumers[output] = readers
            self._move_value_info(new, output)
        else:
            self.make_node("Identity", [new], [output], name=f"{output}_identity")
        self._structure_changed = True
        return renamable

    def _carry_annotation(self, gone: str, kept: str) -> str | None:
        """Tensor `gone`, merged into `kept` (the same values), goes: its quantization
        annotation names `kept` instead (`_carry_notes`). (`commit` drops an annotation naming
        nothing, so a merge lost an exporter's annotation of an Identity's output.)"""
        return _carry_notes(self.proto.quantization_annotation, gone, kept)

    def annotation_parameters(self) -> set[str]:
        """The tensors the quantization annotations of this graph's tensors still defined (a
        node's output, an initializer, a graph input) name as their scale or zero point
        (`quant_parameter_tensor_names`): constants no node may read, which a clean-up of
        unread constants keeps, as `eliminate-dead-code` does; an annotation of a tensor gone
        keeps nothing (it goes at the commit). Empty without annotations (one field read)."""
        owners = self.annotation_parameter_owners()
        return {name for name in owners if self.keeps_annotation_parameter(name, owners)}

    def annotation_parameter_owners(self) -> dict[str, list[str]]:
        """Each tensor this graph's quantization annotations name as a scale or zero point →
        the tensors annotated with it: read once, then asked name by name
        (`keeps_annotation_parameter`) while the annotations stay as they are (a rule run),
        where `annotation_parameters` reads every annotation at each call. Empty without
        annotations (one field read)."""
        owners: dict[str, list[str]] = {}
        for note in self.proto.quantization_annotation:
            tensor = note.tensor_name
            for entry in note.quant_parameter_tensor_names:
                owners.setdefault(entry.value, []).append(tensor)
        return owners

    def keeps_annotation_parameter(self, name: str, owners: dict[str, list[str]]) -> bool:
        """Whether `name` is among `annotation_parameters()`, asked of `owners` (the graph's
        `annotation_parameter_owners()`, its annotations unchanged since): a tensor annotated
        with `name` as its scale or zero point is still defined."""
        return any(self._defines(tensor) for tensor in owners.get(name, ()))

    def _defines(self, tensor: str) -> bool:
        """Whether `tensor` is a node's output, an initializer or a graph input."""
        return tensor in self.producer or tensor in self.initializers or self.is_graph_input(tensor)

    def annotated_names(self) -> set[str]:
        """Every name this graph's quantization annotations give, annotated tensors and their
        parameters alike: tensors whose values a rewrite must not change under their name (an
        annotation describes them). Empty without annotations (one field read)."""
        notes = self.proto.quantization_annotation
        if not notes:
            return set()
        names = {note.tensor_name for note in notes}
        for note in notes:
            names.update(entry.value for entry in note.quant_parameter_tensor_names)
        return names

    def _rename_input(self, node: NodeProto, old: str, new: str) -> None:
        """`node` (indexed) reads `new` wherever it read `old`; its wiring follows."""
        inputs = node.input  # fetched once: each `node.input` builds a new wrapper
        reads = inputs[:]
        for i, name in enumerate(reads):
            if name == old:
                inputs[i] = reads[i] = new
        self._wiring[node.name] = (tuple(reads), self._wiring[node.name][1])
        self._order = None

    def _rewire_outputs(self, node: NodeProto) -> None:
        """The wiring of `node` (indexed) follows its renamed outputs."""
        self._wiring[node.name] = (self._wiring[node.name][0], tuple(node.output[:]))
        self._order = None

    def _move_value_info(self, src: str, dst: str) -> None:
        """`src`'s value_info entries now describe `dst` (its new name); where `dst` has one
        already (a no-op in front of a graph output removed: the same type and shape), they
        are dropped instead, so no name is declared twice."""
        infos = self.proto.value_info
        taken = any(vi.name == dst for vi in infos)
        for i in range(len(infos) - 1, -1, -1):
            if infos[i].name == src:
                if taken:
                    del infos[i]
                else:
                    infos[i].name = dst

    def adopt_tensors(self, named: Iterable[tuple[str, onnx.TensorProto]]) -> None:
        """Add a copy of each tensor as initializer `name`, in order (each name must be free,
        an initializer, which is replaced, or released): `add_initializer` with
        `exact_name=True`, minus the numpy round trip (the bytes are copied as they are,
        whatever the element type)."""
        add = self.proto.initializer.add  # fetched once: each read builds a wrapper
        initializers = self.initializers
        for name, tensor in named:
            self._claim_initializer_name(name)
            init = add()
            init.CopyFrom(tensor)
            init.name = name
            initializers[name] = init

    def _take_tensors(self, named: list[tuple[str, onnx.TensorProto]]) -> None:
        """`adopt_tensors` for tensors this graph may keep as they are (its Constant nodes'
        values, whose nodes are dropped): each gets its name now, and a copy in the initializer
        list at `commit` (`_settled_initializers`), unless it was removed by then or its data
        overwritten (`write_raw_data`). On layout_cdla 6.4 of its 7.1 MB of Constant tensors
        are folded weights, whose old bytes were copied only to be replaced, and 669 of its 878
        are gone by the last commit: an empty place made for each while indexing, cut again at
        the commit, cost ~0.5 ms."""
        initializers, pending = self.initializers, self._pending
        self._adopted_at = len(self.proto.initializer)
        for name, tensor in named:
            tensor.name = name
            initializers[name] = tensor
            pending[name] = tensor

    def _settled_initializers(
        self, listed: list[onnx.TensorProto] | None = None, copy_in: bool = False
    ) -> tuple[list[onnx.TensorProto], list[onnx.TensorProto]]:
        """The initializer list as a commit writes it: the entries it keeps, in order, with each
        tensor taken over while indexing that is still an initializer standing at its place
        (after the entries the list held then, in node order); and the copies made.

        `listed`: the list's entries, when the caller has them. `copy_in`: copy each of those
        taken-over tensors into the list (appended; `initializers` serves the copy from now on)
        and stand the copy at its place."""
        kept = self.initializers
        if listed is None:
            listed = list(self.proto.initializer)
        if self._readded:
            keep = [not self._cut(t) for t in listed]
        else:  # the usual case: by name alone
            keep = [t.name in kept for t in listed]
        if not self._pending:
            return [t for t, k in zip(listed, keep, strict=True) if k], []
        middle: list[onnx.TensorProto] = []
        copies: list[onnx.TensorProto] = []
        placed, keys = self._placed, self.content_keys
        add = self.proto.initializer.add
        for name, tensor in self._pending.items():
            current = kept.get(name)
            if current is None:
                continue  # removed (a placed entry goes with the removed ones)
            entry = placed.get(name)
            if entry is not None:
                if current is entry:
                    middle.append(entry)
            elif current is tensor:
                if copy_in:
                    # add + CopyFrom copies the bytes once; `extend` (MergeFrom) serializes the
                    # tensor and parses it back (+0.4 ms on ppocr_det's 109 weights)
                    copy = add()
                    copy.CopyFrom(tensor)
                    copies.append(copy)
                    kept[name] = copy
                    key = keys.get(name)
                    if key is not None and key[0] is tensor:
                        keys[name] = (copy, key[1])  # the same bytes now
                    tensor = copy
                middle.append(tensor)
            # else: a tensor added again under the name, an entry of the list
        at = self._adopted_at
        moved = {id(t) for t in placed.values()}
        head = [t for t, k in zip(listed[:at], keep[:at], strict=True) if k]
        tail = [t for t, k in zip(listed[at:], keep[at:], strict=True) if k and id(t) not in moved]
        return head + middle + tail, copies

    def _write_initializers(self) -> None:
        """Make the initializer list what `_settled_initializers` says: the taken-over tensors
        copied in, every entry moved to its place and the removed ones cut, in one sort that
        moves pointers only."""
        inits = self.proto.initializer
        listed = list(inits)  # alive while sorting, so their ids stay theirs
        order, copies = self._settled_initializers(listed, copy_in=True)
        listed += copies  # what the list holds now
        self._pending.clear()
        self._placed.clear()
        if len(listed) == len(order) and all(a is b for a, b in zip(listed, order, strict=True)):
            return
        position = {id(t): i for i, t in enumerate(order)}
        end = len(order)
        inits.sort(key=lambda t: position.get(id(t), end))
        del inits[end:]

    def write_raw_data(self, name: str, raw_data: bytes) -> None:
        """Overwrite initializer `name`'s data in place with `raw_data` (the little-endian
        bytes of its dtype and dims): typed data fields cleared, `raw_data` set, the content
        key remembered (`initializer_written`). A tensor taken over while indexing is copied
        into its place first, without its old bytes."""
        tensor = self.initializers[name]
        clear_typed_data(tensor)
        if self._pending.get(name) is tensor and name not in self._placed:
            tensor.ClearField("raw_data")  # (its node is dropped: nothing reads it again)
            place = self.proto.initializer.add()  # moved to its place at the commit
            place.CopyFrom(tensor)
            self.initializers[name] = self._placed[name] = tensor = place
        tensor.raw_data = raw_data
        self.initializer_written(name, raw_data)

    def add_initializer(self, hint: str, value: np.ndarray, exact_name: bool = False) -> str:
        """Add a constant tensor and return its (fresh, unique) name. `exact_name=True`: under
        `hint` itself, which must be free, an initializer (replaced) or released (the output of
        a node removed); ValueError for the output of a node still there."""
        if exact_name:
            self._claim_initializer_name(hint)
        name = hint if exact_name else self._names.fresh(hint)
        self._names.reserve((name,))
        tensor = numpy_helper.from_array(np.asarray(value), name)
        self.proto.initializer.append(tensor)
        self.initializers[name] = self.proto.initializer[-1]
        return name

    def _claim_initializer_name(self, name: str) -> None:
        """Make `name` free for a new initializer: a live initializer of that name is replaced
        (removed first: the list keeps one), an indexed node's output is refused (ValueError:
        the model would define it twice); a name released since the last commit is noted as
        added again."""
        if name in self.initializers:
            self.remove_initializer(name)
        writer = self.producer.get(name)
        if writer is not None:
            raise ValueError(f"initializer {name!r} would clash with the output of {writer!r}")
        if name in self._released:
            self._readded.add(name)

    def remove_initializer(self, name: str) -> None:
        if self.initializers.pop(name, None) is not None:
            self._initializers_changed = True
            self.content_keys.pop(name, None)
            self._released.add(name)

    def initializer_written(self, name: str, raw_data: bytes | None = None) -> None:
        """Initializer `name`'s data was overwritten in place (not replaced through
        `add_initializer`): its remembered content key is dropped, or, given the `raw_data` it
        now holds (and nothing else: no typed data fields), remembered from those bytes without
        reading them back. Every pass that writes a tensor's fields in place must call this."""
        tensor = self.initializers.get(name)
        if raw_data is not None and tensor is not None and len(raw_data) > 2 * CONTENT_KEY_BYTES:
            self.content_keys[name] = (tensor, content_key(raw_data))
        else:
            self.content_keys.pop(name, None)

    def remove_graph_input(self, name: str) -> None:
        """Drop the graph-input entry `name` (only for initializers listed as inputs, IR < 4)."""
        if name not in self.graph_inputs:
            return
        self.graph_inputs.remove(name)
        self._input_names = set(self.graph_inputs)
        self._input_count = len(self.graph_inputs)
        for i in reversed(range(len(self.proto.input))):
            if self.proto.input[i].name == name:
                del self.proto.input[i]

    # ------------------------------------------------------------------ order and write-back
    def toposort(self) -> list[NodeProto]:
        """Nodes in a topological order that keeps the current order wherever it can (computed
        once until a node is added or removed or its wiring changes)."""
        if self._order is None:
            self._order = self._toposort()
        return list(self._order)

    def _toposort(self) -> list[NodeProto]:
        current = list(self.nodes.values())
        if self._in_order(current):
            return current
        # Depth-first, each node after the producers of what it reads, met in read order (a
        # tensor read twice, or two read from one producer, meet a node done already). The
        # reads are walked in place, not gathered per node first (0.27 -> 0.16 ms, layout_cdla).
        nodes, producer, wiring = self.nodes, self.producer, self._wiring
        implicit = self._implicit
        order: list[NodeProto] = []
        state: dict[str, int] = {}  # 1 = on stack, 2 = done
        for root in nodes:
            if root in state:
                continue
            state[root] = 1
            reads: Sequence[str] = wiring[root][0]
            if implicit and root in implicit:
                reads = self._distinct_reads(root, reads)
            stack: list[tuple[str, Iterator[str]]] = [(root, iter(reads))]
            while stack:
                name, pending = stack[-1]
                for tensor in pending:
                    dep = producer.get(tensor)  # ("" is never produced)
                    if dep is None or dep == name:
                        continue
                    s = state.get(dep)
                    if s == 2:
                        continue
                    if s == 1:
                        where = f"{self._where}: " if self._where else ""
                        raise LoadError(f"{where}the graph has a cycle through node {dep!r}")
                    state[dep] = 1
                    reads = wiring[dep][0]
                    if implicit and dep in implicit:
                        reads = self._distinct_reads(dep, reads)
                    stack.append((dep, iter(reads)))
                    break
                else:  # every producer done
                    stack.pop()
                    state[name] = 2
                    order.append(nodes[name])
        return order

    def _in_order(self, nodes: list[NodeProto]) -> bool:
        """True when every node comes after the producers of what it reads."""
        producer = self.producer
        implicit = self._implicit
        wiring = self._wiring
        done: set[str] = set()
        for node in nodes:
            name = node.name
            for tensor in wiring[name][0]:
                p = producer.get(tensor) if tensor else None
                if p is not None and p not in done and p != name:
                    return False
            if implicit and name in implicit:
                for tensor in implicit[name]:
                    p = producer.get(tensor)
                    if p is not None and p not in done and p != name:
                        return False
            done.add(name)
        return True

    def commit(self, *, reindex: bool = True) -> onnx.ModelProto:
        """Write nodes (topologically ordered) and initializers back into the model; return it.

        `reindex=False` skips rebuilding the index afterwards: for a last commit, after which
        the Graph is not used again (its nodes may no longer be the protobuf's)."""
        order = self.toposort()
        if self._pending:  # before the nodes holding those tensors leave the list
            self._write_initializers()  # (removed ones cut too)
        elif self._initializers_changed:
            self._cut_removed()
        nodes = self.proto.node
        if (
            self._structure_changed
            or len(nodes) != len(order)
            or any(a is not b for a, b in zip(nodes, order, strict=True))
        ):
            if not reindex and self._copying_all_is_cheaper(order):
                del nodes[:]  # the messages stay readable (arena memory) while copied back
                nodes.extend(order)
            else:
                self._write_nodes(order)
        self._released.clear()
        self._readded.clear()
        self._prune_value_info()
        self._structure_changed = False
        self._initializers_changed = False
        if reindex:
            # Re-index in the new order: the protobuf now owns copies of the added nodes.
            self.nodes.clear()
            self.producer.clear()
            self.consumers.clear()
            self._implicit.clear()
            self._owners.clear()
            self._wiring.clear()
            self._index()
            self._order = list(self.nodes.values())  # as just written: topological
        return self.model

    def _cut_removed(self) -> None:
        """Cut the initializer list's entries that are no initializer now. Deleting by index
        moves pointers only: no tensor bytes are copied. (The list is fetched once and read in
        one pass: each `proto.initializer[i]` builds wrappers.)"""
        inits, kept = self.proto.initializer, self.initializers
        if self._readded:
            cut = [i for i, t in enumerate(inits) if self._cut(t)]
        else:  # the usual case: by name alone
            cut = [i for i, t in enumerate(inits) if t.name not in kept]
        for i in reversed(cut):
            del inits[i]

    def _cut(self, entry: onnx.TensorProto) -> bool:
        """Whether a commit cuts `entry` of the initializer list: its name is no initializer
        now, or, for a name removed and added again, it is the old tensor."""
        name = entry.name
        current = self.initializers.get(name)
        return current is None or (name in self._readded and current is not entry)

    def snapshot(self) -> onnx.ModelProto:
        """A copy of the model as `commit` would write it now, this graph and its protobuf
        left as they are: for instruments that only look (the dump folder, the checker after
        each pass). A commit re-indexes the nodes in the order written, and the passes after
        it met and wrote them in another order: the optimized model came out different."""
        model = onnx.ModelProto()
        model.CopyFrom(self.model)
        graph = model.graph
        del graph.node[:]
        graph.node.extend(self.toposort())
        kept = self.initializers
        tensors = self._settled_initializers()[0]
        del graph.initializer[:]
        graph.initializer.extend(tensors)
        live = set(self.producer) | set(self.graph_inputs) | set(kept)
        live.update(t.values.name for t in graph.sparse_initializer)
        infos = [vi for vi in graph.value_info if vi.name in live]
        if len(infos) != len(graph.value_info):
            kept_infos = [onnx.ValueInfoProto.FromString(vi.SerializeToString()) for vi in infos]
            del graph.value_info[:]
            graph.value_info.extend(kept_infos)
        return model

    def _copying_all_is_cheaper(self, order: list[NodeProto]) -> bool:
        """Whether copying every node of `order` into the emptied node list costs less than
        `_write_nodes`, which keeps the nodes the protobuf holds but walks and sorts all of
        them, removed ones included: when at most half of them are still held and those hold
        little data (layout_cdla's last commit in the default pipeline: 51 of 1493 held, 5 KB).
        For a last commit only: the graph's nodes are no longer the protobuf's afterwards."""
        added = self._added
        held = [node for node in order if id(node) not in added]
        if 2 * len(held) > len(self.proto.node):
            return False
        return sum(node.ByteSize() for node in held) <= COPY_ALL_MAX_BYTES

    def _write_nodes(self, order: list[NodeProto]) -> None:
        """Make the protobuf's node list exactly `order`: nodes it holds stay its own (one sort
        moves pointers, removed ones are cut off the end); only added nodes are copied in."""
        nodes = self.proto.node
        position = {id(node): i for i, node in enumerate(order)}
        held = {id(node) for node in nodes if id(node) in position}
        added = [node for node in order if id(node) not in held]
        if added:
            start = len(nodes)
            nodes.extend(added)
            copies = list(nodes[start:])  # alive while sorting, so their ids stay theirs
            for copy, node in zip(copies, added, strict=True):
                position[id(copy)] = position[id(node)]
        removed = len(order)
        nodes.sort(key=lambda node: position.get(id(node), removed))
        del nodes[len(order) :]

    def _prune_value_info(self) -> None:
        live = set(self.producer) | set(self.graph_inputs) | set(self.initializers)
        live.update(t.values.name for t in self.proto.sparse_initializer)  # (not indexed)
        for i in reversed(range(len(self.proto.value_info))):
            if self.proto.value_info[i].name not in live:
                del self.proto.value_info[i]
        # a quantization annotation of a tensor a pass removed (an Identity's output bypassed,
        # a Conv's output fused) named nothing in the saved model
        notes = self.proto.quantization_annotation
        for i in reversed(range(len(notes))):
            if notes[i].tensor_name not in live:
                del notes[i]


def _carry_notes(notes: MutableSequence[onnx.TensorAnnotation], gone: str, kept: str) -> str | None:
    """The quantization annotations `notes` (a graph's) of tensor `gone`, which holds `kept`'s
    values and goes, name `kept` instead, where `kept` has none of its own, and a scale or
    zero point named `gone` (`quant_parameter_tensor_names`) is `kept`. Where `kept` has one
    with other parameters (or `gone` two that differ), `gone`'s is dropped, and a line saying
    so returned: no annotation is made up."""
    for note in notes:
        for entry in note.quant_parameter_tensor_names:
            if entry.value == gone:
                entry.value = kept
    moving = [i for i, note in enumerate(notes) if note.tensor_name == gone]
    if not moving:
        return None
    theirs = {_annotation_parameters(notes[i]) for i in moving}
    ours = {_annotation_parameters(note) for note in notes if note.tensor_name == kept}
    said = None
    if len(theirs) > 1:
        said = f"quantization annotations of {gone!r} dropped: {len(theirs)} that differ"
    elif not ours:
        notes[moving[0]].tensor_name = kept
        moving = moving[1:]  # (the same annotation again)
    elif theirs != ours:
        said = f"quantization annotation of {gone!r} dropped: {kept!r}, for it, has another"
    for i in reversed(moving):
        del notes[i]
    return said


def _annotation_parameters(note: onnx.TensorAnnotation) -> frozenset[tuple[str, str]]:
    return frozenset((entry.key, entry.value) for entry in note.quant_parameter_tensor_names)


# TensorProto's typed data fields `write_raw_data` clears (raw_data holds the value instead)
_TYPED_DATA_FIELDS = ("float_data", "double_data", "int32_data", "int64_data")


def clear_typed_data(tensor: onnx.TensorProto) -> None:
    """Empty the typed data fields a float tensor may hold its values in (before `raw_data`
    is set: a tensor holds its values in one field)."""
    for field in _TYPED_DATA_FIELDS:
        tensor.ClearField(field)  # a no-op on an empty field, cheaper than testing it


_RAW_DTYPES: dict[int, np.dtype[Any]] = {
    onnx.TensorProto.FLOAT: np.dtype("<f4"),
    onnx.TensorProto.DOUBLE: np.dtype("<f8"),
    onnx.TensorProto.FLOAT16: np.dtype("<f2"),
    onnx.TensorProto.INT8: np.dtype("i1"),
    onnx.TensorProto.INT16: np.dtype("<i2"),
    onnx.TensorProto.INT32: np.dtype("<i4"),
    onnx.TensorProto.INT64: np.dtype("<i8"),
    onnx.TensorProto.UINT8: np.dtype("u1"),
    onnx.TensorProto.UINT16: np.dtype("<u2"),
    onnx.TensorProto.UINT32: np.dtype("<u4"),
    onnx.TensorProto.UINT64: np.dtype("<u8"),
    onnx.TensorProto.BOOL: np.dtype("bool"),
}


class UnreadableTensorError(LoadError, ValueError):
    """A tensor whose data does not make its dims and element type (a damaged model:
    onnxruntime refuses it). A `LoadError` (one line, exit 2), and a `ValueError`, what the
    callers of `tensor_value` catch."""


def tensor_value(t: onnx.TensorProto) -> np.ndarray:
    """`numpy_helper.to_array(t)`, reading common little-endian raw data directly (read-only
    view of the bytes, as `to_array` gives) instead of through its generic type dispatch.

    Raises what `to_array` raises for data that does not make the dims and type (a ValueError
    "cannot reshape ...", a TypeError for no element type), and a ValueError for a negative
    dim, which numpy's reshape reads as "the rest" (a [2, -3] tensor of 6 floats was read as
    [2, 3], and its folds gave a model onnxruntime runs with values the model does not hold).
    `Graph.constant` turns each into an `UnreadableTensorError` naming the tensor."""
    dims = t.dims[:]
    if dims and min(dims) < 0:
        raise ValueError(f"negative dims {dims} are no shape")
    dtype = _RAW_DTYPES.get(t.data_type)
    if (
        dtype is not None
        and sys.byteorder == "little"
        and t.HasField("raw_data")
        and t.data_location != onnx.TensorProto.EXTERNAL
        and not t.HasField("segment")
    ):
        return np.frombuffer(t.raw_data, dtype=dtype.newbyteorder("=")).reshape(dims)
    return numpy_helper.to_array(t)


# what numpy_helper.to_array (and `tensor_value`) raise for a tensor whose data does not make
# its dims and type
_UNREADABLE = (ValueError, TypeError, KeyError, IndexError)


def unreadable_tensor_error(t: onnx.TensorProto, error: BaseException) -> UnreadableTensorError:
    """The one-line error for tensor `t`, whose value `tensor_value` could not read (`error`)."""
    kinds = onnx.TensorProto.DataType
    kind = kinds.Name(t.data_type).lower() if t.data_type in kinds.values() else str(t.data_type)
    shape = "x".join(map(str, t.dims[:])) or "scalar"
    return UnreadableTensorError(
        f"tensor {t.name!r} ({kind} {shape}) cannot be read: {first_line(error)} "
        "(its data does not make its shape and type: a damaged model)"
    )


def constant_node_value(node: NodeProto) -> np.ndarray | None:
    """The value of a `Constant` node, whatever attribute form it uses (None for a malformed
    node, `mistyped_constant`: its value is unknown)."""
    attributes = node.attribute[:]
    if mistyped_constant(attributes):
        return None
    for a in attributes:
        if a.name == "value":
            return None if a.t.HasField("segment") else tensor_value(a.t)
        if a.name == "value_float":
            return np.array(a.f, dtype=np.float32)
        if a.name == "value_floats":
            return np.array(list(a.floats), dtype=np.float32)
        if a.name == "value_int":
            return np.array(a.i, dtype=np.int64)
        if a.name == "value_ints":
            return np.array(list(a.ints), dtype=np.int64)
    return None  # sparse_value / string forms are left alone


class _NameSource:
    """Hands out names not used anywhere in the graph, deterministically."""

    def __init__(self) -> None:
        self.taken: set[str] = set()
        # the tensors a checked index found defined (inputs, initializers, node outputs): taken
        # too, without copying them into `taken`
        self.defined: set[str] | frozenset[str] = frozenset()
        self._counters: dict[str, int] = {}

    def reserve(self, names: Iterable[str]) -> None:
        self.taken.update(names)

    def in_use(self) -> set[str]:
        return self.taken | self.defined

    def fresh(self, hint: str) -> str:
        hint = hint or "t"
        taken, defined = self.taken, self.defined
        if hint not in taken and hint not in defined:
            taken.add(hint)
            return hint
        k = self._counters.get(hint, 1)
        while f"{hint}_{k}" in taken or f"{hint}_{k}" in defined:
            k += 1
        self._counters[hint] = k + 1
        name = f"{hint}_{k}"
        taken.add(name)
        return name
