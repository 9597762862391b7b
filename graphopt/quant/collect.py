"""Run the FP32 model in onnxruntime and stream the wanted activations into histograms.

The tensors to calibrate become extra graph outputs of a copy of the model; each calibration
batch is run once, every requested activation is folded into its `HistogramCalibrator`, and the
batch's arrays are dropped before the next one runs: at most one batch of activations is alive.
With `histograms=False` (min and max only, `range_probe`) nothing is copied out, and with
`in_flight=2` two feeds run at a time on the same session, one intra-op thread each where two
cores would otherwise share one run (`runs_in_flight`): the probe's reductions are
single-threaded in onnxruntime, so one run at a time leaves a core idle through them (ppocr_det
calibration 3.3 s → 2.5 s, peak RSS +0.15 GiB for the second run's activations). The default
is one: one batch of activations alive at a time, as issue 5 asks.
Feeds are validated against the model's inputs (names, dtype, rank, fixed dims, no NaN) first.
Probed outputs are declared without an element type, so onnxruntime gives each its real one
(float16 activations of a float16 model come out as float16; the histograms bin them in
float32). A tensor that is empty in some feed adds nothing to its statistics.
A calibrated tensor holding NaN or an infinity has no scale: the run is refused ("NaN or
infinity", naming the feed and the tensor), or with `non_finite` the tensor is recorded there
and left out of the result (quantize keeps it float). Not detected with `histograms=False`: a
NaN inside an activation. onnxruntime's ReduceMin / ReduceMax skip NaN unless it is the
tensor's first element ([1, nan, 3] → 1, 3; [nan, 1, 3] → nan, nan: onnxruntime 1.32), so the
ranges are those of the other values where `histograms=True` sees the NaN; infinities are seen
either way.

This module does not decide which tensors to calibrate (`placement`) or how to rewrite.
"""

from __future__ import annotations

import logging
import math
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import numpy as np
import onnx

from graphopt._text import counted
from graphopt.backends.onnxruntime import fused_int8_conv_problem, input_specs, session
from graphopt.errors import BackendError, QuantizeError, first_line
from graphopt.ir.values import declared_dims
from graphopt.quant.histogram import HistogramCalibrator, NonFiniteValues
from graphopt.quant.range_probe import RangeSlot, with_range_outputs
from graphopt.quant.samples import SampleKeeper

log = logging.getLogger("graphopt.quant")

Feed = dict[str, np.ndarray]

_NP: dict[int, type] = {
    onnx.TensorProto.FLOAT: np.float32,
    onnx.TensorProto.FLOAT16: np.float16,
    onnx.TensorProto.DOUBLE: np.float64,
    onnx.TensorProto.INT64: np.int64,
    onnx.TensorProto.INT32: np.int32,
    onnx.TensorProto.UINT8: np.uint8,
    onnx.TensorProto.INT8: np.int8,
    onnx.TensorProto.BOOL: np.bool_,
}


def _untyped_output(name: str) -> onnx.ValueInfoProto:
    # No element type: onnxruntime takes the producer's (a FLOAT declaration made every
    # float16 model fail to load: "Type (tensor(float)) of output arg ... does not match").
    return onnx.ValueInfoProto(name=name)


def with_outputs(model: onnx.ModelProto, tensors: Sequence[str]) -> onnx.ModelProto:
    """A copy of `model` whose outputs are `tensors` (type and shape left to the runtime)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    out.graph.ClearField("output")
    out.graph.output.extend(_untyped_output(t) for t in tensors)
    return out


class FeedChecker:
    """The check of calibration feeds against a model's inputs (`check`). The inputs are read,
    and those of a type calibration cannot feed (bfloat16, float8, int4: numpy has no dtype
    for them) refused, once, when it is made, before any feed is read, as `quantize --calib`
    refuses them (`refuse_unfeedable_inputs`): onnxruntime said "Numpy_type 259 can't be
    converted to MLDataType" of an ml_dtypes array. Each calibration (`collect`,
    `choose_samples`, `run_outputs`, `FolderFeeds`) makes one: each feed's check read the
    model's inputs and initializer names again (ppocr_det's optimized model, 152
    initializers: ~0.09 ms a feed, beside ~0.14 ms for checking its 1x3x640x640 array).
    `specs`: (name, elem_type, dims) of the model's real inputs (`input_specs`)."""

    def __init__(self, model: onnx.ModelProto):
        from graphopt.quant.data import refuse_unfeedable_inputs  # (data imports this module)

        self.specs = input_specs(model)
        refuse_unfeedable_inputs(self.specs)
        inits = {t.name for t in model.graph.initializer}
        # initializer-backed inputs (overridable defaults), checked where a feed gives them
        self.overridable = [
            (vi.name, vi.type.tensor_type.elem_type, list(declared_dims(vi, unknown="?") or ()))
            for vi in model.graph.input
            if vi.name in inits
        ]

    def check(self, feed: Any, where: str) -> Feed:
        """`feed` as a dict of arrays of the model's inputs; QuantizeError naming `where` and
        what is wrong. An initializer-backed input is optional: where the feed gives it, its
        array is checked and kept (calibrating with the default instead mis-scaled it)."""
        if not isinstance(feed, dict):
            raise QuantizeError(f"{where}: calibration data must be dicts of input name → array")
        checked: Feed = {}
        for name, elem, dims in self.specs + [s for s in self.overridable if s[0] in feed]:
            if name not in feed:
                raise QuantizeError(f"{where}: feed has no array for model input {name!r}")
            try:
                value = np.asarray(feed[name])
            except (ValueError, TypeError) as e:  # ragged nested lists: numpy's own ValueError
                raise QuantizeError(
                    f"{where}: input {name!r} is not an array numpy can make ({first_line(e)})"
                ) from e
            want = _NP.get(elem)
            if want is not None and value.dtype != want:
                if np.issubdtype(value.dtype, np.floating) and np.issubdtype(want, np.floating):
                    with np.errstate(over="ignore"):
                        cast: np.ndarray = value.astype(want)
                    if np.isinf(cast).any() and not np.isinf(value).any():
                        # finite values the cast made infinite (a float32 feed of a float16
                        # model, |x| > 65504): calibrating on them kept the input float
                        # (infinite) or, where nothing else was left, refused it as
                        # "NaN or infinity", with numpy's overflow warning on stderr
                        top = float(np.nanmax(np.abs(value)))
                        raise QuantizeError(
                            f"{where}: input {name!r} holds values beyond {np.dtype(want)}'s range "
                            f"(|x| up to {top:.4g}), the dtype the model takes"
                        )
                    value = cast
                else:
                    raise QuantizeError(
                        f"{where}: input {name!r} has dtype {value.dtype}, the model wants {np.dtype(want)}"
                    )
            if dims and value.ndim != len(dims):
                raise QuantizeError(
                    f"{where}: input {name!r} has shape {list(value.shape)}, the model wants {dims}"
                )
            for axis, d in enumerate(dims):
                if isinstance(d, int) and d > 0 and value.shape[axis] != d:
                    raise QuantizeError(
                        f"{where}: input {name!r} has shape {list(value.shape)}, the model wants {dims}"
                    )
            if np.issubdtype(value.dtype, np.floating) and np.isnan(value).any():
                # refused whatever the method: the range probe's ReduceMin/Max skip a NaN unless
                # it is a tensor's first element, so minmax calibrated on the other values or
                # refused the feed depending on where the NaN sat
                raise QuantizeError(f"{where}: input {name!r} holds NaN")
            checked[name] = value
        return checked


def check_feed(model: onnx.ModelProto, feed: Any, where: str) -> Feed:
    """One feed checked as `FeedChecker(model).check` checks it (the model's unfeedable inputs
    refused first): where a calibration checks many, it makes one `FeedChecker`."""
    return FeedChecker(model).check(feed, where)


def batched_inputs(specs: Sequence[tuple[str, int, Sequence[int | str]]]) -> list[str]:
    """The model inputs stacked on the batch axis: those whose first dim is declared free with
    the same symbol (or unknown, '?') as the first such input's; none when no input has one.
    A fixed first dim is no batch axis that varies (CHW images; a batch fixed at B, where
    --batch-size must be B), and a free dim of another name counts other things (boxes)."""
    free = [(name, dims[0]) for name, _, dims in specs if dims and not isinstance(dims[0], int)]
    return [name for name, dim in free if dim == free[0][1]] if free else []


def batch_items(specs: Sequence[tuple[str, int, Sequence[int | str]]], feed: Feed) -> int:
    """How many inputs a feed stacks on its batch axis (`batched_inputs`): the first-axis
    length their arrays share; 1 when there are none or they disagree."""
    lengths = {
        feed[name].shape[0]
        for name in batched_inputs(specs)
        if name in feed and feed[name].ndim >= 1
    }
    return lengths.pop() if len(lengths) == 1 and min(lengths) > 0 else 1


class ItemOffers:
    """Offers each input stacked in a feed to a `SampleKeeper` on its own: a feed of B images
    (`batch_items`) is B candidate samples of one image each, with their rows of the model's
    outputs, so the samples (and the float groups the accuracy search keeps) do not depend on
    how the same inputs were batched. Feeds come in order; item positions count the items
    before them.

    A row of the outputs is the sample's FP32 reference only where the model computes it from
    that row of the inputs alone, which a free first dim does not promise (a normalization over
    it, a sequence-first LSTM's time). So a split is made only where `run` (the model's outputs
    for a feed) gives the outputs' rows for the first and the last item fed alone, checked once
    per set of inputs split; the inputs split are those whose free first dim has the batch's
    length (two image inputs whose batch dims are named apart, as torch's `dynamic_axes` lists
    name them), else only `batched_inputs`. A feed is offered whole where no split holds, where
    its outputs do not all have the B rows, or without outputs or `run`."""

    def __init__(
        self,
        keeper: SampleKeeper,
        specs: Sequence[tuple[str, int, Sequence[int | str]]],
        run: Callable[[Feed], Mapping[str, Any]] | None = None,
    ):
        self.keeper = keeper
        self.specs = specs
        self.run = run
        self.batched = frozenset(batched_inputs(specs))
        self.free = {name for name, _, dims in specs if dims and not isinstance(dims[0], int)}
        self.split_holds: dict[frozenset[str], bool] = {}  # inputs split → whether it holds
        self.next = 0
        self.first: dict[int, int] = {}  # feed → position of its first item

    def position(self, i: int, feed: Feed) -> int:
        """The position of feed i's first item (assigned on the first call for it)."""
        if i not in self.first:
            self.first[i] = self.next
            self.next += batch_items(self.specs, feed)
        return self.first[i]

    def may_keep(self, i: int, feed: Feed) -> bool:
        return self.keeper.may_keep(self.position(i, feed), feed)

    def offer(self, i: int, feed: Feed, outputs: Mapping[str, Any] | None = None) -> None:
        start = self.position(i, feed)
        del self.first[i]
        if self.keeper.count == 0:
            return
        items = batch_items(self.specs, feed)
        rows_each = outputs is not None and all(
            np.ndim(v) >= 1 and np.shape(v)[0] == items for v in outputs.values()
        )
        split = None
        if items > 1 and outputs and self.run is not None and rows_each:
            split = self._split(feed, outputs, items)
        if split is None:
            self.keeper.offer(start, feed, outputs)
            return
        assert outputs is not None
        for k in range(items):
            # copies: a kept view would keep the whole batch alive
            one = {n: a[k : k + 1].copy() if n in split else a for n, a in feed.items()}
            rows = {o: v[k : k + 1] for o, v in outputs.items()}
            self.keeper.offer(start + k, one, rows)

    def _split(self, feed: Feed, outputs: Mapping[str, Any], items: int) -> frozenset[str] | None:
        """The inputs to split `feed` on (None: offer it whole)."""
        wide = frozenset(
            n for n in self.free if n in feed and feed[n].ndim >= 1 and feed[n].shape[0] == items
        )
        for names in dict.fromkeys((wide, self.batched)):
            if names not in self.split_holds:
                self.split_holds[names] = self._holds(names, feed, outputs, items)
                if not self.split_holds[names]:
                    log.info(
                        "calibration feeds split on %s do not give the batch's output rows: "
                        "the accuracy search's samples are not split on them",
                        ", ".join(sorted(names)),
                    )
            if self.split_holds[names]:
                return names
        return None

    def _holds(
        self, names: frozenset[str], feed: Feed, outputs: Mapping[str, Any], items: int
    ) -> bool:
        """Whether the model gives the first and the last item of `feed`, split on `names`
        and fed alone, their rows of `outputs`."""
        assert self.run is not None
        for k in (0, items - 1):
            one = {n: a[k : k + 1] if n in names else a for n, a in feed.items()}
            try:
                alone = self.run(one)
            except QuantizeError:  # the split feed does not even run
                return False
            if not all(_same_rows(alone.get(o), v[k : k + 1]) for o, v in outputs.items()):
                return False
        return True


def _same_rows(alone: Any, rows: Any) -> bool:
    """Whether a model's output for one item fed alone is its `rows` in the batch's: equal
    shapes, floating values within rounding of the batch's range (another batch size may sum
    in another order), others equal."""
    if alone is None:
        return False
    a, b = np.asarray(alone), np.asarray(rows)
    if a.shape != b.shape:
        return False
    if not np.issubdtype(b.dtype, np.floating):
        return bool(np.array_equal(a, b))
    scale = float(np.max(np.abs(b), initial=0.0)) if b.size else 0.0
    return bool(np.allclose(a, b, rtol=1e-3, atol=1e-4 * scale, equal_nan=True))


def declared_empty(model: onnx.ModelProto) -> frozenset[str]:
    """The inputs `model` declares with a dim fixed at 0: empty in every feed by design."""
    return frozenset(
        vi.name for vi in model.graph.input if 0 in (declared_dims(vi, symbolic=False) or ())
    )


def _note_empty(empty: list[str], feed: Feed, where: str, by_design: frozenset[str]) -> None:
    """Count a (checked) feed whose every array is empty (a batch of 0 items) in `empty`: it
    holds no value to calibrate on or to measure with. A feed of an input the model declares
    empty (`by_design`, `declared_empty`) is not counted: its later tensors can hold values;
    nor is a feed of no arrays (a model without inputs, whose values come from its constants
    and random ops). The first is named with its shapes."""
    if not feed or any(value.size for value in feed.values()) or not by_design.isdisjoint(feed):
        return
    shapes = ", ".join(f"{name!r} of shape {list(value.shape)}" for name, value in feed.items())
    empty.append(f"{where}: {shapes}" if not empty else where)


def _refuse_all_empty(count: int, empty: list[str]) -> None:
    """QuantizeError when every one of the `count` feeds read was empty (`_note_empty`): a
    float model came back (exit 0, with a warning that nothing was quantized: every tensor
    'empty in every calibration feed'), or from a cache, samples of no values."""
    if count and len(empty) == count:
        raise QuantizeError(
            f"the calibration data is empty: every array of its {counted(count, 'feed')} holds "
            f"no values ({empty[0]}); give feeds of at least one item"
        )


def collect(
    model: onnx.ModelProto,
    tensors: Sequence[str],
    data: Iterable[Any],
    *,
    threads: int = 0,
    on_batch: Callable[[int], None] | None = None,
    histograms: bool = True,
    sample_cap: int = 0,
    samples: SampleKeeper | None = None,
    same_scale: Mapping[str, str] | None = None,
    in_flight: int = 1,
    non_finite: dict[str, str] | None = None,
) -> tuple[dict[str, HistogramCalibrator], int]:
    """Histograms of `tensors` over every feed of `data`; also the number of feeds seen.
    `histograms=False` keeps only min and max (enough for `minmax`), reduced inside the model
    by onnxruntime, some derived from others (`range_probe`; `same_scale`: the plan's scale
    groups, tensor → representative), `runs_in_flight(threads, in_flight)` feeds at a time
    sharing the `threads` (0: the cores). With `samples`, every (checked) feed is run for the
    model's own outputs too and offered with them to the keeper, which copies those of the feeds
    it keeps (the FP32 outputs the accuracy search compares with, computed by the same run
    instead of a second session: 0.15 s less on ppocr_det, whose cost sits at the budget; the
    run's peak RSS grows by 0.14 GiB on common_det, which keeps the detection head it otherwise
    prunes); at most the kept feeds' outputs are alive, plus those of the feeds in flight (the
    first feeds' outputs: `SampleKeeper(n, samples.by_position, uses_outputs=False)`).
    A tensor holding NaN or an infinity in some feed is a `QuantizeError` naming both, or with
    `non_finite` (a dict) recorded there (tensor → e.g. "-inf in calibration feed 3", its
    first such feed) and left out of the calibrators returned: no scale exists for it."""
    calibrators = {
        t: HistogramCalibrator(track_histogram=histograms, sample_cap=sample_cap) for t in tensors
    }
    checker = FeedChecker(model)  # (an input calibration cannot feed: refused here, once)
    specs = checker.specs
    empty: list[str] = []  # the feeds holding no values (`_note_empty`): the first's name
    by_design = declared_empty(model)
    if not tensors:
        offers = ItemOffers(samples, specs) if samples is not None else None
        count = 0
        for i, feed in enumerate(data):
            where = feed_name(data, i)
            checked = checker.check(feed, where)
            _note_empty(empty, checked, where, by_design)
            if offers is not None:  # no run: kept without outputs (the search computes them)
                offers.offer(i, checked)
            del checked
            count += 1
        if count == 0:
            raise QuantizeError("the calibration data is empty")
        _refuse_all_empty(count, empty)
        return calibrators, count
    slots: list[RangeSlot] = []
    if histograms:
        probe, names = with_outputs(model, tensors), list(tensors)
    else:
        probe, slots = with_range_outputs(model, tensors, same_scale)
        names = [o.name for o in probe.graph.output]
    wanted = samples is not None and samples.count > 0
    outputs = [o.name for o in model.graph.output] if wanted else []
    extra = [o for o in outputs if o not in names]
    probe.graph.output.extend(_untyped_output(o) for o in extra)
    position = {n: k for k, n in enumerate(names + extra)}
    # ranges only: feeds in flight on one session, each run on its share of the threads (the
    # probe's reductions run on one thread each, so one run at a time leaves a core idle)
    in_flight = 1 if histograms else runs_in_flight(threads, in_flight)
    per_run = threads if in_flight == 1 else max(1, (threads or _cores()) // in_flight)
    sess = session(probe, threads=per_run)
    offers = None
    if samples is not None:  # a split of a batch is checked on the model's outputs alone

        def run_alone(feed: Feed) -> dict[str, Any]:
            return dict(zip(outputs, _run(sess, outputs, feed, "a split sample"), strict=True))

        offers = ItemOffers(samples, specs, run_alone if outputs else None)
    count = 0
    if on_batch is not None:
        on_batch(0)  # the model is loaded: calibration starts now

    def fold(i: int, values: list[Any], checked: Feed) -> None:
        """Batch i (the feed `checked`)'s probe outputs into the calibrators and, where its
        model outputs were fetched, the sample keeper (batches come in order)."""
        where = feed_name(data, i)  # (named in an error about a tensor of it)
        if offers is not None and len(values) == len(position):
            offers.offer(i, checked, {o: values[position[o]] for o in outputs})
        elif offers is not None:
            offers.first.pop(i, None)  # not a candidate: its outputs were not fetched
        if histograms:
            items = batch_items(specs, checked)
            for name, value in zip(names, values[: len(names)], strict=True):
                if non_finite is None or name not in non_finite:
                    with _naming(where, name, non_finite):
                        calibrators[name].collect(value, items)
            del value  # only one batch of activations alive at a time
        else:
            # one-element arrays (0-d, or [1] where a derived range met a [1]-shaped constant)
            scalars = {n: float(v.item()) for n, v in zip(names, values[: len(names)], strict=True)}
            for name, slot in zip(tensors, slots, strict=True):
                if non_finite is not None and name in non_finite:
                    continue
                lo = scalars[slot.lo] if slot.lo else 0.0  # never negative: taken as 0
                if scalars[slot.present] == -math.inf and lo != -math.inf:
                    # an empty tensor (its max reduces to -inf, its min to +inf): nothing to
                    # add; one that is -inf throughout (min -inf too) is refused below
                    continue
                hi = scalars[slot.hi]
                if slot.with_zero:
                    lo, hi = min(lo, 0.0), max(hi, 0.0)
                with _naming(where, name, non_finite):
                    calibrators[name].collect_range(lo, hi)

    def done_one() -> None:  # after the batch's arrays are dropped
        nonlocal count
        count += 1
        if on_batch is not None:
            on_batch(count)

    def fetch(i: int, checked: Feed) -> list[str]:
        """The probe outputs to fetch for feed i: the model's own too where it may be kept."""
        keep = wanted and offers is not None and offers.may_keep(i, checked)
        return names + extra if keep else names

    if in_flight == 1:
        for i, feed in enumerate(data):
            where = feed_name(data, i)
            checked = checker.check(feed, where)
            _note_empty(empty, checked, where, by_design)
            values = _run(sess, fetch(i, checked), checked, where)
            fold(i, values, checked)
            del checked, values  # only one batch of activations alive at a time
            done_one()
    else:
        pending: deque[tuple[int, Feed, Future[list[Any]]]] = deque()
        with ThreadPoolExecutor(max_workers=in_flight) as pool:
            for i, feed in enumerate(data):
                where = feed_name(data, i)
                checked = checker.check(feed, where)
                _note_empty(empty, checked, where, by_design)
                if len(pending) == in_flight:  # the oldest run finishes first in the fold
                    j, done, run = pending.popleft()
                    fold(j, run.result(), done)
                    del run, done
                    done_one()
                run = pool.submit(_run, sess, fetch(i, checked), checked, where)
                pending.append((i, checked, run))
                del run, checked
            while pending:
                j, done, run = pending.popleft()
                fold(j, run.result(), done)
                del run, done
                done_one()
    if count == 0:
        raise QuantizeError("the calibration data is empty")
    _refuse_all_empty(count, empty)
    log.info("calibrated %d tensors over %d feeds", len(tensors), count)
    for name in non_finite or ():
        calibrators.pop(name, None)  # no scale exists for it
    return calibrators, count


@contextmanager
def _naming(feed: str, tensor: str, non_finite: dict[str, str] | None = None) -> Iterator[None]:
    """A QuantizeError raised inside (NaN or infinity) names the feed (`feed_name`) and the
    tensor; with `non_finite`, NaN or infinity is recorded there instead (`collect`)."""
    try:
        yield
    except NonFiniteValues as e:
        if non_finite is None:
            raise QuantizeError(f"{feed}: tensor {tensor!r}: {e}") from e
        non_finite.setdefault(tensor, f"{e.what} in {feed}")
    except QuantizeError as e:
        raise QuantizeError(f"{feed}: tensor {tensor!r}: {e}") from e


def feed_name(data: object, i: int) -> str:
    """How a message names feed `i` of `data`: by its file, or its batch's files, where `data`
    reads them (`FolderFeeds.feed_name`: onnxruntime's refusal of a .npy of shape [1, 3, 0,
    64] was 'calibration feed 1', which file not said), else "calibration feed i"."""
    name = getattr(data, "feed_name", None)
    return str(name(i)) if callable(name) else f"calibration feed {i}"


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def runs_in_flight(threads: int = 0, wanted: int = 2) -> int:
    """Range-probe runs at a time: `wanted`, at most one per intra-op thread of the budget
    (`threads`; 0: the cores)."""
    return max(1, min(wanted, threads or _cores()))


def choose_samples(
    model: onnx.ModelProto,
    data: Iterable[Any],
    keeper: SampleKeeper,
    threads: int = 0,
    on_batch: Callable[[int], None] | None = None,
) -> int:
    """Offer every feed of `data` (checked as a calibration feed) with `model`'s outputs for it
    to `keeper` (when samples are chosen without a calibration run: scales from a cache); the
    number of feeds. `on_batch(count)` as in `collect`: 0 once the model is loaded, then after
    each feed."""
    try:
        sess = session(model, threads=threads)
    except BackendError as e:
        raise QuantizeError(str(e)) from e
    names = [o.name for o in sess.get_outputs()]

    def run_alone(feed: Feed) -> dict[str, Any]:
        return dict(zip(names, _run(sess, names, feed, "a split sample"), strict=True))

    checker = FeedChecker(model)
    offers = ItemOffers(keeper, checker.specs, run_alone)
    count = 0
    if on_batch is not None:
        on_batch(0)
    empty: list[str] = []
    by_design = declared_empty(model)
    for i, feed in enumerate(data):
        where = feed_name(data, i)
        checked = checker.check(feed, where)
        _note_empty(empty, checked, where, by_design)
        values = _run(sess, names, checked, where)
        offers.offer(i, checked, dict(zip(names, values, strict=True)))
        del checked, values
        count += 1
        if on_batch is not None:
            on_batch(count)
    _refuse_all_empty(count, empty)
    return count


# onnxruntime's load errors at ORT_ENABLE_ALL `run_outputs` fell back from (said once each)
_WARNED_LEVELS: set[str] = set()


def run_outputs(model: onnx.ModelProto, feeds: Iterable[Feed], threads: int = 0) -> list[Feed]:
    """The model's outputs for every feed (for accuracy checks); feeds are checked and cast
    like calibration feeds (a float64 feed of a float32 model failed here, after calibrating).
    At ORT_ENABLE_ALL, or at ORT_ENABLE_BASIC where the installed onnxruntime's fused int8
    kernels are wrong (`fused_int8_conv_problem`: 1.23/1.24 on AVX-512 VNNI / AMX CPUs, up to
    ~190 steps off): the accuracy search then measures the Q/DQ model's own error, not that
    bug's, for either target."""
    level = "basic" if fused_int8_conv_problem() is not None else "all"
    try:
        sess = session(model, threads=threads, level=level)
    except BackendError as e:
        if level == "basic":
            raise QuantizeError(str(e)) from e
        # onnxruntime's own rewrites can make a Q/DQ model it cannot load: 1.32 at opset 21+
        # fuses MatMul + Add and then requantizes an int8 Q/DQ pair to uint8 ("output_dtype
        # INT8 does not match y_zero_point type UINT8", onnxruntime#25526). At BASIC none of
        # those run, and the search measures the Q/DQ model's own error, as above.
        try:
            sess = session(model, threads=threads, level="basic")
        except BackendError:
            raise QuantizeError(str(e)) from e
        if str(e) not in _WARNED_LEVELS:
            _WARNED_LEVELS.add(str(e))
            log.warning(
                "%s; the accuracy search runs the quantized model at ORT_ENABLE_BASIC instead "
                "(onnxruntime may not load the result at ORT_ENABLE_ALL either)",
                str(e).rstrip("."),
            )
    names = [o.name for o in sess.get_outputs()]
    checker = FeedChecker(model)
    results = []
    for i, feed in enumerate(feeds):
        checked = checker.check(feed, f"sample feed {i}")
        values = _run(sess, names, checked, f"sample feed {i}")
        results.append(dict(zip(names, values, strict=True)))
    return results


def _run(sess: Any, names: list[str], feed: Feed, where: str) -> list[Any]:
    """`sess.run(names, feed)`, its failure one line naming `where`, and the inputs whose
    lengths disagree on a dim the model names alike (`_shared_dim_conflict`) where some do."""
    try:
        return list(sess.run(names, feed))
    except Exception as e:  # onnxruntime raises its own untyped errors
        first = first_line(e)
        conflict = _shared_dim_conflict(sess, feed)
        said = f"{conflict}; " if conflict else ""
        raise QuantizeError(f"{where}: {said}onnxruntime failed: {first}") from e


def _shared_dim_conflict(sess: Any, feed: Feed) -> str | None:
    """Where two arrays of `feed` have different lengths on dims their inputs declare with one
    name (x ['N', 3, H, W] and mask ['N', H, W] fed 2 and 3 items, which each input's own
    check lets through), what says so; else None. Asked only once onnxruntime has failed on
    the feed: its error names a node of its optimized graph ('Mul_1') and a broadcast, not the
    inputs (a model that names two dims alike yet runs with them apart is not refused)."""
    seen: dict[str, tuple[str, int, int]] = {}  # dim name → (input, axis, length)
    try:
        inputs = [(arg.name, list(arg.shape)) for arg in sess.get_inputs()]
    except Exception:  # (a session that cannot say: the error as onnxruntime gave it)
        return None
    for name, dims in inputs:
        value = feed.get(name)
        if value is None or len(dims) != np.ndim(value):
            continue
        for axis, dim in enumerate(dims):
            if not isinstance(dim, str) or not dim:
                continue
            length = int(np.shape(value)[axis])
            if dim not in seen:
                seen[dim] = (name, axis, length)
                continue
            other, other_axis, other_length = seen[dim]
            if other_length != length:
                return (
                    f"input {other!r} has {other_length} on axis {other_axis} and {name!r} "
                    f"{length} on axis {axis}, dims the model names alike ({dim!r})"
                )
    return None
