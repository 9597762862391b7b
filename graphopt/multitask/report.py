"""What a merge shared: node, parameter and multiply-accumulate counts per task and in total.

MACs are estimated for Conv, ConvTranspose, Gemm and MatMul from inferred shapes
(`graphopt.analysis.shapes.shape_facts`); every other op counts 0. A node whose shapes are not
static counts as unknown and is reported as such, so a MAC figure is a lower bound when
`macs_unknown > 0`.
"""

from __future__ import annotations

import json
import logging
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from math import prod
from typing import Any, Protocol

import onnx

from graphopt._text import counted, shown

log = logging.getLogger("graphopt.multitask")

MAC_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})


class _Shapes(Protocol):
    def shape(self, name: str) -> tuple[Any, ...] | None: ...


@dataclass
class TaskSummary:
    """One input model's part of the merged model."""

    prefix: str
    source: str
    inputs: dict[str, str]  # the model's input name -> merged input name
    outputs: dict[str, str]  # the model's output name -> merged output name
    nodes: int = 0  # compute nodes (Constant nodes excluded) the task runs
    shared_nodes: int = 0  # of those, nodes another task runs too
    params: int = 0  # constant elements the task reads
    shared_params: int = 0
    macs: int = 0
    shared_macs: int = 0
    # compute nodes of the model as merge read it (after an opset conversion); more than
    # `nodes` by `repeated`: nodes that repeat another node of the same model (op, attributes
    # and inputs), which the merged graph computes once ({op: count})
    model_nodes: int = 0
    repeated: dict[str, int] = field(default_factory=dict)
    # the default-domain opset the model was converted from (0: not converted), its compute
    # nodes before, and how the conversion changed the count of each op ({op: change})
    converted_from: int = 0
    nodes_before_conversion: int = 0
    conversion_ops: dict[str, int] = field(default_factory=dict)
    newer_schemas: list[str] = field(default_factory=list)  # its ops the common opset revised
    # the model's inputs whose merged input fixes a dim the model leaves dynamic (another
    # model's static dims won): input -> the merged input's dims (None: dynamic there too)
    narrowed_inputs: dict[str, list[int | None]] = field(default_factory=dict)


@dataclass
class MergeReport:
    """Totals over all tasks. `*_separate` sums the tasks' rows, as if each ran alone: a
    node that repeats another of its own model counts once there, as the merged graph computes
    it (`TaskSummary.repeated`), so separate - merged is what sharing between tasks saved."""

    tasks: list[TaskSummary] = field(default_factory=list)
    nodes_separate: int = 0
    nodes_merged: int = 0
    shared_nodes: int = 0
    params_separate: int = 0
    params_merged: int = 0
    shared_params: int = 0
    macs_separate: int = 0
    macs_merged: int = 0
    shared_macs: int = 0
    macs_unknown: int = 0  # MAC-op nodes whose shapes were not static (not counted)
    identities: int = 0  # Identity nodes added to name outputs computed by shared nodes
    renamed_inputs: list[str] = field(default_factory=list)
    # local functions renamed: another model's function of that name differs
    renamed_functions: list[str] = field(default_factory=list)
    # device configurations (IR 10) renamed: another model's of that name differs
    renamed_configurations: list[str] = field(default_factory=list)
    converted: list[str] = field(default_factory=list)  # models whose opset was converted
    opset: int = 0  # the merged model's default-domain opset

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def summary(self) -> str:
        """A short human-readable table."""

        def pct(part: int, whole: int) -> str:
            return f"{100.0 * part / whole:5.1f}%" if whole else "   - "

        w = max([16, *(len(t.prefix) for t in self.tasks)])
        lines = [
            f"{'task':{w}} {'nodes':>7} {'shared':>7} {'params':>11} {'shared':>7} "
            f"{'GMACs':>7} {'shared':>7}"
        ]
        for t in self.tasks:
            lines.append(
                f"{t.prefix:{w}} {t.nodes:>7} {pct(t.shared_nodes, t.nodes):>7} "
                f"{t.params:>11,} {pct(t.shared_params, t.params):>7} "
                f"{t.macs / 1e9:>7.2f} {pct(t.shared_macs, t.macs):>7}"
            )
        lines.append(
            f"separate: {counted(self.nodes_separate, 'node')}, {self.params_separate:,} params, "
            f"{self.macs_separate / 1e9:.2f} GMACs; merged: {counted(self.nodes_merged, 'node')}, "
            f"{self.params_merged:,} params, {self.macs_merged / 1e9:.2f} GMACs "
            f"({counted(self.shared_nodes, 'node')}, {self.shared_params:,} params, "
            f"{self.shared_macs / 1e9:.2f} GMACs shared)"
        )
        for t in self.tasks:
            if t.repeated:
                lines.append(
                    f"{t.prefix}: {counted(t.model_nodes - t.nodes, 'node')} of its model's "
                    f"{t.model_nodes} ({_ops_text(t.repeated)}) "
                    f"repeat{'s' * (t.model_nodes - t.nodes == 1)} another node of that model: "
                    "computed once, counted once above"
                )
        if self.macs_unknown:
            lines.append(
                f"note: {self.macs_unknown} Conv/Gemm/MatMul nodes have dynamic shapes; "
                "their MACs are not counted"
            )
        if self.renamed_inputs:
            lines.append(
                "inputs kept apart (same name, different type): "
                + ", ".join(shown(r) for r in self.renamed_inputs)  # (a name's newline: one line)
            )
        if self.renamed_functions:
            lines.append(
                "local functions renamed (another model's differs): "
                + ", ".join(shown(r) for r in self.renamed_functions)
            )
        if self.renamed_configurations:
            lines.append(
                "device configurations renamed (another model's differs): "
                + ", ".join(shown(r) for r in self.renamed_configurations)
            )
        for index, t in enumerate(self.tasks):
            for name, dims in t.narrowed_inputs.items():
                merged = t.inputs.get(name, name)
                shown_dims = "x".join("?" if d is None else str(d) for d in dims)
                spec = input_map_spec(index, name, t.prefix + name)  # a shell word, one line
                lines.append(
                    f"{t.prefix}: input {name!r} reads merged input {merged!r} of dims "
                    f"{shown_dims} (another model's static dims): in the merged model this "
                    f"task takes those dims only; to keep it apart: --input-map "
                    + (shlex.quote(spec) if spec.isprintable() else repr(spec))
                )
        for t in self.tasks:
            if t.converted_from:
                newer = ", ".join(t.newer_schemas)
                lines.append(
                    f"{t.prefix}: converted from opset {t.converted_from} to the common opset "
                    f"{self.opset}"
                    + (
                        f", where {newer} {'has' if len(t.newer_schemas) == 1 else 'have'} a "
                        "newer schema"
                        if newer
                        else ""
                    )
                    + f" ({t.source}): {_conversion_text(t)}"
                )
        return "\n".join(lines)


def input_map_spec(index: int, name: str, merged: str) -> str:
    """The `--input-map` value that maps input `name` of model `index` to merged input `merged`,
    escaped as the flag reads it (a backslash doubled, an '=' in `name` written `\\=`): the
    advice for an input named 'a=b' mapped 'a' to 'b=...'."""
    name = name.replace("\\", "\\\\").replace("=", "\\=")
    merged = merged.replace("\\", "\\\\")
    return f"{index}:{name}={merged}"


def _ops_text(counts: Mapping[str, int]) -> str:
    """`2 Slice`, `1 Upsample, 3 Add`."""
    return ", ".join(f"{n} {op}" for op, n in counts.items())


def _conversion_text(t: TaskSummary) -> str:
    """What an opset conversion did to a task's nodes (Constant nodes aside): "279 nodes
    before and after, no op added or removed", or "4 nodes -> 4 (+1 Resize, -1 Upsample)"."""
    if not t.conversion_ops:
        before = counted(t.nodes_before_conversion, "node")
        return f"{before} before and after, no op added or removed"
    change = ", ".join(f"{n:+d} {op}" for op, n in t.conversion_ops.items())
    return f"{counted(t.nodes_before_conversion, 'node')} -> {t.model_nodes} ({change})"


def shapes_of(
    model: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]] | None = None
) -> _Shapes:
    """Shape facts of `model` from graphopt's analysis (`shape_facts`).
    `input_shapes` fixes the dims of dynamic inputs for the estimate (the model is not changed)."""
    if input_shapes:
        fixed = onnx.ModelProto()
        fixed.CopyFrom(model)
        for vi in fixed.graph.input:
            if vi.name in input_shapes:
                dims = list(input_shapes[vi.name])
                shape = vi.type.tensor_type.shape
                if len(shape.dim) != len(dims):
                    raise ValueError(
                        f"input {vi.name!r} has rank {len(shape.dim)}, not {len(dims)}"
                    )
                for d, value in zip(shape.dim, dims, strict=True):
                    d.Clear()
                    d.dim_value = int(value)
        model = fixed
    from graphopt.analysis.shapes import shape_facts

    return shape_facts(model)


def _static(shape: tuple[Any, ...] | None) -> tuple[int, ...] | None:
    if shape is None or not all(isinstance(d, int) and d >= 0 for d in shape):
        return None
    return tuple(int(d) for d in shape)


def node_macs(node: onnx.NodeProto, shapes: _Shapes) -> int | None:
    """Multiply-accumulates of a Conv/ConvTranspose/Gemm/MatMul node (0 for other ops), or None
    when its shapes are not static."""
    if node.op_type not in MAC_OPS or node.domain not in ("", "ai.onnx"):
        return 0
    x = _static(shapes.shape(node.input[0]))
    w = _static(shapes.shape(node.input[1])) if len(node.input) > 1 else None
    y = _static(shapes.shape(node.output[0]))
    if node.op_type == "Conv":
        if w is None or y is None or len(w) < 2:
            return None
        return prod(y) * prod(w[1:])
    if node.op_type == "ConvTranspose":
        if x is None or w is None or len(w) < 2:
            return None
        return prod(x) * prod(w[1:])
    if node.op_type == "Gemm":
        if x is None or y is None or len(x) != 2:
            return None
        trans_a = any(a.name == "transA" and a.i for a in node.attribute)
        return prod(y) * (x[0] if trans_a else x[1])
    # MatMul
    if x is None or y is None or not x:
        return None
    return prod(y) * x[-1]
