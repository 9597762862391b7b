"""The public Python API: `optimize` (and `optimize_with_report` for tools that show what it did).

`quantize`, `merge` and the other entry points live in their own modules and are re-exported by
`graphopt/__init__.py`.
"""

from __future__ import annotations

import logging
import operator
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from graphopt._options import is_path, refuse_extra_positionals
from graphopt._text import shown
from graphopt.analysis.inference_aborts import refuse_aborting_model
from graphopt.errors import PipelineError, first_line
from graphopt.ir import Graph, load
from graphopt.ir.model_io import (
    IR_NEEDS_INPUTS_FOR_INITIALIZERS,
    ModelLike,
    refuse_undefined_element_types,
    weights_as_constants,
)
from graphopt.ir.training import pin_training_names, unpin_training_names
from graphopt.passes.base import CONTEXT_OPTIONS, PassContext, all_passes
from graphopt.pipeline import (
    DumpInstrument,
    PassManager,
    PassStep,
    Pipeline,
    RunReport,
    StatsInstrument,
    VerifyInstrument,
    check_opt_level,
    level_of,
    load_pipeline,
    refuse_rules_no_step_runs,
    unique_files,
)

log = logging.getLogger("graphopt.api")


def optimize(
    model: ModelLike,
    pipeline: str | Path | Pipeline | None = None,
    *more: Any,
    **options: Any,
) -> onnx.ModelProto:
    """Optimize an ONNX model with a pipeline of passes and return the new model.

    `model`: a path, bytes, `onnx.ModelProto` (never mutated) or onnx-graphsurgeon `Graph`;
    or a `graphopt.ir.LoadedModel` from `graphopt.ir.load`, which is taken over and edited in
    place (no copy: what the CLI does).
    `pipeline`: None (the built-in `default`), a built-in name (`default`, `ort-cpu`,
    `tensorrt`, ...) or a path to a pipeline YAML file.

    Options (by name; a third positional argument is a `PipelineError`): `input_shapes`
    ({input name: dims}: the model is optimized for these input shapes only, as onnxsim's
    `--overwrite-input-shape`; shape subgraphs then fold), `opt_level` (int: passes above it
    are skipped; default: the pipeline's `opt_level:`, else 2; the user's level wins over every
    pipeline's, included ones' too. Passes have levels 0 to 2 (a level below -1 or above 2,
    here or in a pipeline, is a `PipelineError`); -1 runs no pass at all, as a pipeline's
    `opt_level: -1` does: the model comes back only loaded, with `input_shapes` fixed and an
    IR < 4 model raised as below. The CLI's `--opt-level` takes 0 to 2 only: there
    a -1 looked like an optimized model written), `disable` (pass names to skip), `verify_each`
    (run the ONNX checker after every pass), `dump_dir` (write the model after each pass),
    `explain` (record why pattern rules applied or refused), and pass-specific options that
    passes read from the context (e.g. `rule_files`).

    The result is numerically equivalent to the input, keeps every graph input and output name,
    dtype and shape (inputs: but for `input_shapes`), and passes
    `onnx.checker.check_model(full_check=True)`. An IR < 4 model, which lists every weight as a
    graph input, comes back at IR 4 with its weights as weights, not inputs (as onnxruntime,
    which refuses to feed them, and TensorRT take them).
    """
    refuse_extra_positionals("optimize", more, _POSITIONALS, _BY_NAME, PipelineError)
    return optimize_with_report(model, pipeline, **options)[0]


def optimize_with_report(
    model: ModelLike,
    pipeline: str | Path | Pipeline | None = None,
    *more: Any,
    **options: Any,
) -> tuple[onnx.ModelProto, RunReport]:
    """`optimize`, also returning per-pass timing, node counts and stats."""
    refuse_extra_positionals("optimize_with_report", more, _POSITIONALS, _BY_NAME, PipelineError)
    start = time.perf_counter()
    input_shapes = options.pop("input_shapes", None)
    loaded = load(model, check_nodes=False)
    refuse_undefined_element_types(loaded.model.graph, loaded.where or "the given LoadedModel")
    if 0 < loaded.model.ir_version < IR_NEEDS_INPUTS_FOR_INITIALIZERS:  # 0: unset, read as current
        weights_as_constants(loaded.model)  # else nothing with a weight could fold (IR 3 zoo)
    declared = fix_input_shapes(loaded.model, input_shapes) if input_shapes else {}
    pinned = pin_training_names(loaded.model, loaded.where)  # no pass may touch those names
    pipe = load_pipeline(check_pipeline_spec(pipeline))
    ctx = make_context(pipe, **options)
    # checks the nodes while indexing them, and converts Constant nodes there when the
    # pipeline would first thing (not indexing them saves ~3 ms on layout_cdla's 878)
    graph = Graph(
        loaded.model,
        check_as=loaded.where or "the given LoadedModel",
        adopt_constants=_starts_with_constants_to_initializers(pipe, ctx, loaded.model),
    )
    if declared:  # (the model's own first, as it was declared: `inference_aborts`)
        refuse_aborting_model(loaded.model, loaded.where or "the given LoadedModel", declared)
        refuse_contradicted_shapes(graph, declared)
    report = RunReport(pipe.name)
    ctx.instruments.insert(0, StatsInstrument(report))
    PassManager(pipe).run(graph, ctx)
    result = graph.commit(reindex=False)  # the graph is not used again
    unpin_training_names(result, pinned)
    report.seconds = time.perf_counter() - start
    # each event once: a rerun of the fusions (if_changed, repeat) meets the same refusals
    report.explain = list(dict.fromkeys(ctx.explain))
    return result, report


# what optimize takes by position (Python's TypeError "takes from 1 to 2 positional arguments"
# was no GraphoptError); its options go by name
_POSITIONALS = ("model", "pipeline")
_BY_NAME = "give the options by name, e.g. opt_level=1"


def _run_level(pipeline: Pipeline, ctx: PassContext) -> int:
    """The opt level `PassManager.run` runs `pipeline` at: the user's, else the pipeline's
    `opt_level:` (-1 runs no pass), else the context's default. A step's own level may be
    lower still (`level_of`: an included pipeline's `opt_level:`)."""
    if pipeline.opt_level is not None and "opt_level" not in ctx.options:
        return pipeline.opt_level
    return ctx.opt_level


def _starts_with_constants_to_initializers(
    pipeline: Pipeline, ctx: PassContext, model: onnx.ModelProto
) -> bool:
    """Whether `constants-to-initializers` is the first thing the pipeline runs: its first
    step, not disabled, at an opt level that runs it (every level from 0), on a model that
    may have initializers (IR ≥ 4, or unset: read as current)."""
    from graphopt.passes.constants import ConstantsToInitializers

    first = pipeline.steps[0] if pipeline.steps else None
    return (
        isinstance(first, PassStep)
        and isinstance(first.pass_, ConstantsToInitializers)
        and first.pass_.name not in ctx.disabled
        and first.pass_.opt_level <= level_of(first, _run_level(pipeline, ctx), ctx)
        and not 0 < model.ir_version < IR_NEEDS_INPUTS_FOR_INITIALIZERS
    )


_FLAG_OPTIONS = frozenset({"subgraphs", "rule_kernels", "upgrade_opset"})  # of CONTEXT_OPTIONS


def check_pipeline_spec(pipeline: object) -> str | Path | Pipeline | None:
    """`pipeline` as `optimize` takes it (None, a built-in name, a YAML path or a `Pipeline`);
    anything else is a `PipelineError` naming the choices (a number or bytes was a TypeError
    deep in `pathlib`)."""
    if pipeline is None or isinstance(pipeline, str | Pipeline):
        return pipeline
    if is_path(pipeline):
        return Path(pipeline)  # type: ignore[arg-type]
    from graphopt.pipeline import builtin_pipelines

    raise PipelineError(
        f"pipeline must be None, a built-in name ({', '.join(builtin_pipelines())}) or the "
        f"path of a YAML file, got {type(pipeline).__name__} {pipeline!r}"
    )


def _names(option: str, value: object, what: str, paths: bool) -> list[Any]:
    """`value` as a list: one `what` (a str, or a path where `paths`) or an iterable of them;
    else a `PipelineError` (a number was a TypeError from `list()` or `pathlib`)."""
    one = is_path if paths else (lambda v: isinstance(v, str))
    if value is None:
        return []
    if one(value):
        return [value]
    if not isinstance(value, bytes | bytearray | memoryview | Mapping):
        try:
            items = list(value)  # type: ignore[call-overload]
        except TypeError:
            pass
        else:
            if all(one(v) for v in items):
                return items
    raise PipelineError(f"{option} must be a {what} or a list of them, got {value!r}")


def make_context(
    pipeline: Pipeline,
    *,
    opt_level: int | None = None,
    disable: Iterable[str] = (),
    verify_each: bool = False,
    dump_dir: str | Path | None = None,
    explain: bool = False,
    **pass_options: Any,
) -> PassContext:
    """A `PassContext` for running `pipeline` with the user's options; an option no pass
    reads, or a pass to disable that does not exist, is a `PipelineError` (a typo would
    otherwise change nothing, silently); so is a broken rule file, a rule or group a rule
    pass names that no rule file defines (`fuse_patterns.check_rule_passes`), and `rule_files`
    whose rules no step of the pipeline runs, as for a pipeline's `rules:` (none of the
    built-ins has a `fuse-patterns` step: the `user` group never ran there). A pass to disable
    that the pipeline does not run is a warning."""
    unknown = sorted(set(pass_options) - CONTEXT_OPTIONS)
    if unknown:
        raise PipelineError(
            f"unknown option {unknown[0]!r}: use opt_level, disable, verify_each, dump_dir, "
            f"explain, input_shapes or {', '.join(sorted(CONTEXT_OPTIONS))}"
        )
    if opt_level is not None and (isinstance(opt_level, bool) or not isinstance(opt_level, int)):
        raise PipelineError(f"opt_level must be an integer, got {opt_level!r}")
    if opt_level is not None:
        check_opt_level(opt_level)
    flags = {"verify_each": verify_each, "explain": explain}
    flags.update((k, v) for k, v in pass_options.items() if k in _FLAG_OPTIONS)
    for option, value in flags.items():  # 'no' is true: it would turn the option on
        if not isinstance(value, bool | np.bool_):
            raise PipelineError(f"{option} must be True or False, got {value!r}")
    if dump_dir is not None and not is_path(dump_dir):
        raise PipelineError(f"dump_dir must be the path of a folder, got {dump_dir!r}")
    disable = _names("disable", disable, "pass name", paths=False)
    known = set(all_passes()) | set(pipeline.pass_names())
    missing = sorted(set(disable) - known)
    if missing:
        raise PipelineError(
            f"cannot disable unknown pass {missing[0]!r}; passes: {', '.join(sorted(known))}"
        )
    # a registered pass this pipeline never runs: disabling it changes nothing, which the user
    # did not mean (another pipeline's pass, or the one they meant is spelt another way)
    absent = sorted(set(disable) - set(pipeline.pass_names()))
    if absent:
        ran = ", ".join(dict.fromkeys(pipeline.pass_names())) or "none"
        log.warning(
            "pipeline %r runs no %s pass: disabling %s changes nothing (its passes: %s)",
            pipeline.name,
            " or ".join(map(repr, absent)),
            "it" if len(absent) == 1 else "them",
            ran,
        )
    ctx = PassContext(
        disabled=set(disable), options=dict(pass_options), record_explanations=explain
    )
    if opt_level is not None:  # the user's level wins over the pipeline's (PassManager.run)
        ctx.opt_level = opt_level
        ctx.options["opt_level"] = opt_level
    # a pass the pipeline has but runs at no step at this opt level: disabling it changes
    # nothing either (fold-batchnorm at opt_level=0), said the same way
    level = _run_level(pipeline, ctx)
    skipped = sorted(
        name
        for name in set(disable) - set(absent)
        if all(
            s.pass_.opt_level > level_of(s, level, ctx)
            for s in pipeline.pass_steps()
            if s.pass_.name == name
        )
    )
    if skipped:
        log.warning(
            "pipeline %r runs no %s pass at opt level %d: disabling %s changes nothing",
            pipeline.name,
            " or ".join(map(repr, skipped)),
            level,
            "it" if len(skipped) == 1 else "them",
        )
    if "rule_files" in ctx.options or pipeline.rule_files:
        # a list of its own (the caller's grew by the pipeline's files at every call); one path
        # is one file, not a list of its letters; a falsy value names no file
        given = _names("rule_files", ctx.options.get("rule_files") or None, "path", paths=True)
        ctx.options["rule_files"] = unique_files([*given, *pipeline.rule_files])
        if given:  # rules no step runs were taken with a warning, and never ran
            with_files = Pipeline(pipeline.name, pipeline.steps, pipeline.source)
            with_files.rule_files = ctx.options["rule_files"]
            try:
                where = f"pipeline {pipeline.name!r}"
                refuse_rules_no_step_runs(with_files, where, given, "rule_files")
            except PipelineError as e:  # as a pipeline's own `rules:` no step runs
                raise PipelineError(f"{e}{_builtin_hint(pipeline)}") from None
    from graphopt.passes.fuse_patterns import check_rule_passes

    check_rule_passes(
        ((s.pass_, f"{s.source}:{s.line}" if s.source else "") for s in pipeline.pass_steps()),
        ctx.options.get("rule_files") or [],
    )
    if verify_each:
        ctx.instruments.append(VerifyInstrument())
    if dump_dir is not None:
        ctx.instruments.append(DumpInstrument(dump_dir))
    return ctx


def _builtin_hint(pipeline: Pipeline) -> str:
    """For a built-in `pipeline` (whose steps the caller cannot edit): how to run it and then
    the caller's rules, as a pipeline file that includes it."""
    from graphopt.pipeline import builtin_pipelines

    path = builtin_pipelines().get(pipeline.name)
    if path is None or Path(pipeline.source) != path:
        return ""
    return (
        f"; to run them after the built-in, give a pipeline file of "
        f"`passes: [{{include: {pipeline.name}}}, fuse-patterns]`"
    )


_MAX_DIM = 2**63 - 1  # TensorShapeProto's dim_value is an int64


def fix_input_shapes(
    model: onnx.ModelProto, shapes: dict[str, Sequence[int]]
) -> dict[str, onnx.ValueInfoProto]:
    """Declare fixed dims for graph inputs of `model` (edited in place): `shapes` maps an input
    name to its dims; returns the inputs' declarations as they were. A `PipelineError` names an
    input the model does not have, a rank or a fixed dim that contradicts the declared one, or
    a dim below 1."""
    from graphopt.ir.values import declared_dims

    if not isinstance(shapes, Mapping):
        raise PipelineError(f"input_shapes: must map input names to dims, got {shapes!r}")
    inputs = {vi.name: vi for vi in model.graph.input}
    before: dict[str, onnx.ValueInfoProto] = {}
    for init in model.graph.initializer:
        inputs.pop(init.name, None)  # an overridable default, not a model input
    for name, dims in shapes.items():
        vi = inputs.get(name)
        if vi is None:  # (a model without inputs was said as "inputs: " and nothing)
            listed = f"inputs: {', '.join(map(shown, inputs))}" if inputs else "it has no inputs"
            raise PipelineError(f"input_shapes: the model has no input {name!r}; {listed}")
        try:
            # 2.5 or "2" is no dim (int() took them), nor True (operator.index reads it as 1)
            wanted = [operator.index(d) for d in dims]
            if any(isinstance(d, bool) for d in dims):
                raise TypeError
        except TypeError:
            raise PipelineError(
                f"input_shapes: {shown(name)} dims must be integers, got {dims!r}"
            ) from None
        if any(d < 1 for d in wanted):
            raise PipelineError(f"input_shapes: {shown(name)} dims must be 1 or more, got {wanted}")
        if any(d > _MAX_DIM for d in wanted):  # a protobuf int64: setting it would raise
            raise PipelineError(
                f"input_shapes: {shown(name)} dims must be below 2**63, got {wanted}"
            )
        if vi.type.WhichOneof("value") != "tensor_type":
            raise PipelineError(f"input_shapes: input {name!r} is not a tensor")
        declared = declared_dims(vi, symbolic=False)
        if declared is not None:
            if len(declared) != len(wanted):
                raise PipelineError(
                    f"input_shapes: input {name!r} has rank {len(declared)}, got {wanted}"
                )
            for axis, (have, want) in enumerate(zip(declared, wanted, strict=True)):
                if have is not None and have != want:
                    raise PipelineError(
                        f"input_shapes: input {name!r} dim {axis} is {have}, got {want}"
                    )
        before[name] = onnx.ValueInfoProto()
        before[name].CopyFrom(vi)
        shape = vi.type.tensor_type.shape
        shape.ClearField("dim")
        for d in wanted:
            shape.dim.add().dim_value = d
    return before


def refuse_contradicted_shapes(graph: Graph, declared: dict[str, onnx.ValueInfoProto]) -> None:
    """A `PipelineError` when the fixed input shapes contradict a shape the model states (a
    graph output or value_info declared [1, 3] where the batch is now 2, an Expand target):
    strict ONNX shape inference fails with them but not with the inputs as `declared` before.
    One inference over `graphopt.analysis.shapes`' weightless copy (YOLOv8n: 12 ms)."""
    from graphopt.analysis.inference_aborts import negative_slice
    from graphopt.analysis.shapes import ShapeFacts, light_model

    light = light_model(graph, ShapeFacts(), declarations=True)  # a -1 dim is unknown there
    fixed = ", ".join(map(shown, sorted(declared)))
    # fixed dims can make a window larger than its input, and a Slice after it would abort
    # the strict inference below (and onnxruntime) on the negative dim (`inference_aborts`)
    negative = negative_slice(light)
    if negative:
        raise PipelineError(f"input_shapes: with the shapes of {fixed}, {negative}")
    error = _strict_inference_error(light)
    if error is None:
        return
    for vi in light.graph.input:
        if vi.name in declared:
            vi.CopyFrom(declared[vi.name])
    if _strict_inference_error(light) is None:  # the model's own contradictions are not ours
        raise PipelineError(f"input_shapes: the shapes of {fixed} contradict the model: {error}")


def _strict_inference_error(model: onnx.ModelProto) -> str | None:
    try:
        onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=True, data_prop=True)
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError) as e:
        return first_line(e)
    except (ValueError, IndexError):  # onnx's C++ on a malformed node (a Loop with no body)
        return None  # no verdict: no contradiction shown (shapes.inferred_light gives up alike)
    return None
