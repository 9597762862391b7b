"""Passes that run declarative rewrite rules (`patterns/*.yaml` plus the user's rule files).

`fuse-patterns` runs the rules of the groups it is given; the other passes here are the same
pass with the groups of one idea preselected, so pipelines read as what they do:

| pass                    | groups          | what                                              |
|-------------------------|-----------------|---------------------------------------------------|
| `fold-batchnorm`        | batchnorm,      | BN into Conv/ConvTranspose/Gemm/MatMul, per-channel|
|                         | affine          | Mul/Add/Sub/Div into Conv, constant Mul/Add chains |
| `fuse-activations`      | activations     | decomposed HardSwish, HardSigmoid, SiLU, GELU,     |
|                         |                 | Mish, Softplus, LayerNormalization → one op        |
| `fuse-ort-contrib`      | ort-contrib     | Conv+act → com.microsoft FusedConv, SiLU → QuickGelu|
|                         | ort-gelu        | GELU (erf / tanh) → com.microsoft Gelu / FastGelu  |
| `fuse-patterns`         | user (default)  | rules from the pipeline's `rules:` files           |

A rule whose replacement needs a newer default-domain opset than the model's is refused, unless
`upgrade_opset` is set (pass option, or `optimize(..., upgrade_opset=True)`): then the model is
converted once with `onnx.version_converter` to the lowest opset the refused rules need and the
rules run again. If the conversion fails, or would change what an op the converter is known to
mishandle computes (linear Upsample / Resize-10; a Hardmax across opset 13 whose flattening
cannot be rebuilt exactly: `opset_conversion.adapt_hardmax`), or the model has local functions
(the converter drops them), the model is left as it was.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import onnx

from graphopt._text import model_strings_escaped
from graphopt.analysis.inference_aborts import full_check
from graphopt.errors import CHECKER_ERRORS, OpsetConversionError, PipelineError, first_line
from graphopt.ir import Graph
from graphopt.ir.nodes import default_opset
from graphopt.ir.opset_conversion import convert_opset
from graphopt.passes.base import Pass, PassContext, PassResult, register_pass
from graphopt.patterns import RuleRunner, rule_set, select

log = logging.getLogger("graphopt.passes.fuse_patterns")

# The most sweeps a rule pass may run (the built-ins: 8; every real model settles in 2 or 3).
# A pass stops after a sweep that changes nothing; two rules that undo each other (Mul(x,
# Sigmoid(x)) to QuickGelu and back) change something in every sweep: `max_sweeps: 100000000`
# ran for hours in one pass (H212), as `repeat: max_iterations` did before its ceiling
# (pipeline.MAX_ITERATIONS).
MAX_SWEEPS = 100


@register_pass
@dataclass
class FusePatterns(Pass):
    """Run the rewrite rules of `groups` (and the rules named in `rules`) to a fixed point.

    For each rule R = (target T, replacement S, checks C, computation f) and each node n of T's
    anchor op:  T matches at n ∧ preconditions ∧ C(match) = ∅  ⇒  T(n) := S(f(match)).
    Refusals are recorded with their reason for `--explain`.
    """

    name: ClassVar[str] = "fuse-patterns"
    opt_level: ClassVar[int] = 1
    default_groups: ClassVar[tuple[str, ...]] = ("user",)

    groups: list[str] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    upgrade_opset: bool = False
    max_sweeps: int = 8

    def __post_init__(self) -> None:
        if self.max_sweeps < 1:  # 0 ran no sweep: the pass did nothing, without a word
            raise ValueError(f"max_sweeps must be at least 1, got {self.max_sweeps}")
        if self.max_sweeps > MAX_SWEEPS:  # two rules that undo each other ran every sweep
            raise ValueError(f"max_sweeps must be at most {MAX_SWEEPS}, got {self.max_sweeps}")

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        extra = ctx.options.get("rule_files") or []
        loaded = rule_set(extra)
        groups = self.groups or list(self.default_groups)
        chosen = [r for r in select(loaded, groups, self.rules) if r.name not in self.exclude]
        if not chosen:
            return PassResult(False)
        upgrade = self.upgrade_opset or bool(ctx.options.get("upgrade_opset", False))
        runner = RuleRunner(graph, ctx, self.max_sweeps, try_unavailable=upgrade)
        stats = runner.run(chosen)
        upgraded = 0
        if (
            upgrade
            and stats.opset_needed > graph.opset_version("")
            and upgrade_opset(graph, stats.opset_needed)
        ):
            upgraded = 1
            runner = RuleRunner(graph, ctx, self.max_sweeps)
            again = runner.run(chosen)
            for k, v in again.applied.items():
                stats.applied[k] = stats.applied.get(k, 0) + v
        applied = sum(stats.applied.values())
        counters = {"applied": applied, "refused": sum(stats.refused.values())}
        counters.update({f"rule:{k}": v for k, v in stats.applied.items()})
        if upgraded:
            counters["opset_upgraded_to"] = graph.opset_version("")
        return PassResult(bool(applied or upgraded), counters)


def check_rule_passes(passes: Iterable[tuple[Pass, str]], rule_files: Sequence[str | Path]) -> None:
    """Load and validate the rule files, and the rules and groups each rule pass names, before
    anything runs: a broken rule file or a misspelt rule would otherwise surface only when its
    pass runs (or never, where no rule pass runs). `passes`: (pass, where it is written: "file:
    line"). A `PipelineError` names the rule file and line, or the pass's."""
    rules = rule_set(rule_files)
    names = {r.name for r in rules}
    for p, where in passes:
        if not isinstance(p, FusePatterns):
            continue
        prefix = f"{where}: {p.name}: " if where else f"{p.name}: "
        try:
            select(rules, p.groups or list(p.default_groups), p.rules)
        except PipelineError as e:
            raise PipelineError(prefix + str(e)) from e
        unknown = sorted(set(p.exclude) - names)
        if unknown:
            raise PipelineError(f"{prefix}cannot exclude unknown rule {unknown[0]!r}")


def upgrade_opset(graph: Graph, version: int) -> bool:
    """Convert the model to default-domain opset `version` in place
    (`opset_conversion.convert_opset`); False (the model left as it was) if that refuses it
    (local functions, training_info, an op it would convert wrongly) or fails, or if the result
    fails onnx's full check."""
    before = graph.opset_version("")
    model = graph.commit()
    try:
        converted = convert_opset(model, version)
    except OpsetConversionError as e:
        log.warning("cannot upgrade opset %d -> %d: %s", before, version, e.reason)
        return False
    problem = _conversion_problem(converted, version) or _runtime_problem(converted, model)
    if problem:
        log.warning("cannot upgrade opset %d -> %d: %s", before, version, problem)
        return False
    model.CopyFrom(converted)
    # Re-index the converted protobuf: the Graph is only an index over `model`.
    Graph.__init__(graph, model)
    log.info("upgraded the model from opset %d to %d", before, version)
    return True


def _conversion_problem(converted: onnx.ModelProto, version: int) -> str:
    """Why the version converter's output cannot be used ("" when it passes onnx's full check
    at the requested opset): the converter has shipped invalid models for some ops."""
    got = default_opset(converted)
    if got != version:
        return f"the converter produced opset {got}"
    try:
        # the full check: the result must pass it, and at opset 13+ onnx's own inference of
        # some ops fails it (MeanVarianceNormalization's function body) where 12 passed
        full_check(converted)
    except CHECKER_ERRORS as e:
        return f"the converted model fails onnx.checker: {_first_line(e, converted)}"
    return ""


def _runtime_problem(converted: onnx.ModelProto, original: onnx.ModelProto) -> str:
    """Why the installed onnxruntime cannot load the converted model where it loads the
    original ("" when it can, or when it loads neither): onnxruntime 1.23, the newest for
    Python 3.10, stops at opset 23 and IR 11, and an upgrade to Swish's opset 24 (IR 12) made a
    model no session there loads; onnxruntime 1.32 loads opset 24 but has no kernel for some
    ops' newest versions (RoiAlign-22: an x·σ(x) model with a RoiAlign, upgraded for Swish,
    no longer loaded)."""
    version, ir_version = default_opset(converted), converted.ir_version
    if not _onnxruntime_loads(version, ir_version):
        import onnxruntime

        return (
            f"onnxruntime {onnxruntime.__version__} cannot load opset {version} (IR {ir_version})"
        )
    problem = _session_problem(converted)
    if problem and not _session_problem(original):
        return f"onnxruntime cannot load the converted model: {problem}"
    return ""


def _first_line(error: Exception, model: onnx.ModelProto) -> str:
    """`error`'s (onnxruntime's, onnx.checker's) message about `model` by its first line, the
    model's names in it escaped first (`_text.model_strings_escaped`, as
    `backends.onnxruntime.session` says a load error): a newline in a node's name cut the
    message at the name ("... node with name 'ro" for RoiAlign 'ro\\ni')."""
    text = model_strings_escaped(str(error), model)
    return first_line(error, text)


def _session_problem(model: onnx.ModelProto) -> str:
    """Why onnxruntime's CPU build cannot make a session of `model` (optimizations off), as
    its first line (`_first_line`); "" when it can, or when that cannot be tried (no
    onnxruntime, a model past protobuf's 2 GiB)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return ""
    try:
        data = model.SerializeToString()
    except ValueError:  # past 2 GiB: not a question onnxruntime can be asked here
        return ""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 4
    try:
        ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own untyped errors
        return _first_line(e, model)
    return ""


@functools.cache
def _onnxruntime_loads(opset: int, ir_version: int) -> bool:
    """Whether the installed onnxruntime loads an Identity model at default-domain `opset` and
    `ir_version` (True without onnxruntime: nothing to judge by); probed once per process."""
    try:
        import onnxruntime as ort
    except ImportError:
        return True
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "probe", [x], [y])
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=ir_version
    )
    opts = ort.SessionOptions()
    opts.log_severity_level = 4
    try:
        ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    except Exception:  # onnxruntime raises its own untyped errors
        return False
    return True


@register_pass
@dataclass
class FoldBatchNorm(FusePatterns):
    """Fold BatchNormalization and per-channel affine constants into the producing linear op.

    Conv(x, W, b) → BN(γ, β, μ, σ², ε)  ⇒  Conv(x, W·s, (b−μ)·s+β),  s = γ/√(σ²+ε)
    (ConvTranspose per output channel across groups, Gemm honouring transB, MatMul with a
    constant 2-D weight); Conv(x, W, b)·c ⇒ Conv(x, W·c, b·c); Conv(x, W, b)+c ⇒ Conv(x, W, b+c)
    for per-output-channel c; (x·a)·b ⇒ x·(ab), (x+a)+b ⇒ x+(a+b).
    """

    name: ClassVar[str] = "fold-batchnorm"
    default_groups: ClassVar[tuple[str, ...]] = ("batchnorm", "affine")


@register_pass
@dataclass
class FuseActivations(FusePatterns):
    """Recognise decomposed activations and replace each with one standard op.

    x·relu6(x+3)/6 ⇒ HardSwish(x) (opset 14; older: x·HardSigmoid(x; 1/6, ½)),
    relu6(x+3)/6 ⇒ HardSigmoid(x; 1/6, ½), x·σ(x) ⇒ Swish(x) (opset 24),
    ½x(1+erf(x/√2)) ⇒ Gelu(x) (opset 20), x·tanh(softplus(x)) ⇒ Mish(x) (opset 18),
    log(eˣ+1) ⇒ Softplus(x), (x−E[x])/√(Var[x]+ε)·γ+β ⇒ LayerNormalization (opset 17).
    """

    name: ClassVar[str] = "fuse-activations"
    default_groups: ClassVar[tuple[str, ...]] = ("activations",)


@register_pass
@dataclass
class FuseOrtContrib(FusePatterns):
    """onnxruntime-only fusions (com.microsoft domain), for the `ort-cpu` pipeline.

    act(Conv(x, W, b)) ⇒ FusedConv(x, W, b; activation=act) for Relu, Sigmoid, Tanh, LeakyRelu,
    Clip, HardSigmoid; x·σ(x) ⇒ QuickGelu(x; α=1). Group ort-gelu (which ort-fusions runs before
    fold-batchnorm): ½x(1+erf(x/√2)) ⇒ Gelu(x), ½x(1+tanh(√(2/π)(x+0.044715x³))) ⇒ FastGelu(x).
    """

    name: ClassVar[str] = "fuse-ort-contrib"
    default_groups: ClassVar[tuple[str, ...]] = ("ort-contrib",)
