"""Knowledge-distillation targets from any ONNX teacher, and a NumPy reference of the losses.

`write_targets(teacher, data, out_dir)` runs the teacher over a data set (a folder of `.npy`,
`.npz` or image files, or a sequence of feed dicts) and stores, per sample:

* soft targets  p = softmax(z / T) along `axis` for the outputs named as logits (computed in
  float64, stored as float32, or float64 for float64 logits),
* raw tensors for every other output (detection heads), and
* hint features: intermediate tensors (exposed with the `expose-tensors` pass); a hint the
  teacher computes from its constants only (no input reaches it: the same for every sample)
  is stored once, under the manifest's `constants` (`load_constants`), not per sample.

Each stored tensor is one `.npy` file preallocated with `np.lib.format.open_memmap` (its disk
blocks reserved, so a disk without room is said then, not met mid-run) and filled batch by
batch, so memory stays bounded by one batch whatever the data set size. Samples stack on
axis 0 (an output whose dims name the input's batch dim on another axis, [T, N, C] of a
sequence-first teacher, has it moved there: the manifest's `batch_axis`): with batches of
several samples, the first batch of a run (of samples not all alike) is also run sample by
sample, and an output that is not those outputs stacked is refused. A data file may hold
several samples (pre-batched: `samples_per_file` rows each); the last may hold fewer (a data
set size not divisible by the batch size: its rows are `samples_in_last_file`, a key absent
where it holds as many). One run at a time writes into a folder (an advisory lock on it).
Every `checkpoint` samples (default 64, or 1/256 of a larger data set) the files are flushed
and `manifest.json` (teacher sha256, and its external data's, T, tensor names, shapes, dtypes,
sample count, source files, progress) is rewritten atomically; a rerun with the same teacher,
options and data (file names, sizes and modification times; a feed sequence's samples by
position only) resumes after the last checkpoint, at any batch size (the rows do not depend on
it); samples after the last checkpoint (not stored yet: the bad one a run stopped at) may have
been replaced, as many. The manifest is written (0 samples done) before the files are made, so
a run stopped before its first checkpoint leaves a folder that the rerun starts over in,
whatever changed (its files removed: nothing in them was kept; `graphopt distill-targets`
removes them itself when an error, Ctrl-C or SIGTERM stopped it, `remove_unkept`).
`load_targets(dir)` returns the arrays memory-mapped.

Loss reference (for users who train the student in their own framework):

    KD(s, p_t) = T² · mean_over_positions Σ_c p_t,c (log p_t,c − log softmax(s / T)_c)
    hint(s, t) = mean((s − t)²)

(Hinton et al., "Distilling the Knowledge in a Neural Network", 2015: the T² factor keeps the
soft-target gradients on the scale of the hard-label ones.) `KD` equals PyTorch's
`F.kl_div(F.log_softmax(s / T, 1), p_t, reduction="batchmean") * T**2` for 2-D logits.

What it does not do: train anything, or decode detections. The small `.npy`/`.npz`/image
loader here (`data_sources`, `load_feed`) duplicates part of `graphopt.quant.data`, which was
written in parallel; a sized sequence from `graphopt.quant.data.folder_feeds` can be passed as
`data` directly (the manifest then names samples "feed i" instead of files).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import operator
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from graphopt._text import shown
from graphopt.arrays import NP_LOAD_ERRORS, load_arrays
from graphopt.errors import GraphoptError
from graphopt.ir.io_names import require_text_io_names
from graphopt.ir.model_io import ModelLike, special_file_kind
from graphopt.realmodels import IMAGE_SUFFIXES

log = logging.getLogger("graphopt.distill")

FORMAT = "graphopt-distill-targets/1"
CHECKPOINT = 64  # samples between two checkpoints by default
MOST_CHECKPOINTS = 256  # by default: a larger data set checkpoints every 1/256 of it
# the manifest names every sample (~100 bytes each): the 256 MiB of a calibration cache, its
# reader's default, refused the manifest of a run over ~2.9M samples, which it had written
MANIFEST_LIMIT = 4 << 30
MANIFEST = "manifest.json"
DATA_SUFFIXES = (".npy", ".npz", *IMAGE_SUFFIXES)

Feed = dict[str, np.ndarray]
Progress = Callable[[int, int], None]


class DistillError(GraphoptError):
    """Distillation targets cannot be written or read (bad data, teacher or target folder)."""


# --------------------------------------------------------------------------- losses


def _shifted(z: np.ndarray, temperature: float, axis: int) -> np.ndarray:
    """(z − max z) / T along `axis` in float64: every value ≤ 0, the largest 0. The shift comes
    before the division: z / T of a small T (1e-310) overflowed to inf, and inf − inf made the
    soft targets NaN; a difference too large for T is −inf here, whose exp is 0."""
    if not 0 < float(temperature) < float("inf"):  # T = 0 gave NaN, T < 0 the reversed order
        raise DistillError(f"temperature must be > 0 and finite, got {temperature}")
    x = np.asarray(z, dtype=np.float64)
    if not -x.ndim <= axis < x.ndim:  # (numpy's AxisError, a traceback)
        raise DistillError(f"logits of shape {x.shape} have no class axis {axis}")
    with np.errstate(over="ignore", invalid="ignore"):  # (±inf logits: NaN, as before)
        return (x - np.max(x, axis=axis, keepdims=True)) / float(temperature)


def softmax(z: np.ndarray, temperature: float = 1.0, axis: int = -1) -> np.ndarray:
    """softmax(z / T) along `axis`, computed in float64 (numerically stable)."""
    e = np.exp(_shifted(z, temperature, axis))
    return e / np.sum(e, axis=axis, keepdims=True)


def log_softmax(z: np.ndarray, temperature: float = 1.0, axis: int = -1) -> np.ndarray:
    """log softmax(z / T) along `axis`, in float64."""
    x = _shifted(z, temperature, axis)
    return x - np.log(np.sum(np.exp(x), axis=axis, keepdims=True))


def kd_kl_loss(
    student_logits: np.ndarray,
    teacher_probs: np.ndarray,
    temperature: float = 1.0,
    axis: int = -1,
) -> float:
    """T² · KL(p_t ‖ softmax(s / T)), summed over `axis`, averaged over every other position.

    `teacher_probs` are soft targets as `write_targets` stores them (softmax(z_t / T)); terms
    with p_t = 0 contribute 0. Targets that are no probabilities (negative, or not summing to
    1 within 1e-3 along `axis`: a raw output) are refused.
    """
    p = np.asarray(teacher_probs, dtype=np.float64)
    log_q = log_softmax(student_logits, temperature, axis)
    if p.shape != log_q.shape:
        raise DistillError(f"student logits {log_q.shape} and teacher targets {p.shape} differ")
    _require_distribution(p, axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * (np.log(np.where(p > 0, p, 1.0)) - log_q), 0.0)
    per_position = np.sum(terms, axis=axis)
    return float(temperature**2 * np.mean(per_position))


def _require_distribution(p: np.ndarray, axis: int) -> None:
    """A `DistillError` unless `p` holds probabilities summing to 1 along `axis`: a raw
    output (the teacher's logits, stored as 'raw' or 'hint') given as the soft targets gave a
    loss without a word, its negative entries dropped and the rest taken as probabilities."""
    with np.errstate(invalid="ignore"):
        sums = np.sum(p, axis=axis)
        bad = not (np.isfinite(p).all() and p.min(initial=0.0) >= 0)
        bad = bad or not np.allclose(sums, 1.0, rtol=0.0, atol=1e-3)
    if bad:
        low, high = float(np.min(p, initial=np.inf)), float(np.max(p, initial=-np.inf))
        raise DistillError(
            f"teacher targets are no probabilities along axis {axis} (values {low:.3g} to "
            f"{high:.3g}, sums {float(np.min(sums)):.3g} to {float(np.max(sums)):.3g}): give the "
            "soft targets (kind 'soft', softmax(z/T)), not a raw output"
        )


def hint_loss(student_features: np.ndarray, teacher_features: np.ndarray) -> float:
    """mean((s − t)²) over every element (FitNets hint L2 / MSE)."""
    s = np.asarray(student_features, dtype=np.float64)
    t = np.asarray(teacher_features, dtype=np.float64)
    if s.shape != t.shape:
        raise DistillError(f"student features {s.shape} and teacher features {t.shape} differ")
    return float(np.mean((s - t) ** 2))


def distillation_loss(
    student_logits: np.ndarray,
    teacher_probs: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    temperature: float = 1.0,
    alpha: float = 0.5,
    axis: int = -1,
) -> float:
    """α · KD(s, p_t) + (1 − α) · CE(softmax(s), labels); without labels, KD alone. α is a
    weight in [0, 1]: outside it one of the two terms counts negatively."""
    # alpha=70 (a percentage) or NaN gave a loss, without a word, that training minimizes by
    # making the cross-entropy worse (or NaN)
    number = isinstance(alpha, int | float | np.integer | np.floating)
    weight = float(alpha) if number else float("nan")
    if not 0.0 <= weight <= 1.0:
        raise DistillError(f"alpha must be a weight in [0, 1], got {alpha!r}")
    kd = kd_kl_loss(student_logits, teacher_probs, temperature, axis)
    if labels is None:
        return kd
    log_q = np.moveaxis(log_softmax(student_logits, 1.0, axis), axis, -1)
    idx = _class_indices(labels, log_q.shape)
    ce = -float(np.mean(np.take_along_axis(log_q, idx[..., None], axis=-1)))
    return weight * kd + (1.0 - weight) * ce


def _class_indices(labels: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """`labels` as int64 class indices, one per position of log-probabilities of `shape`
    (classes last). A label of -1 was read as the last class, 1.7 as 1 and one label for
    every row broadcast (a loss, no error), as torch's cross_entropy does not."""
    idx = np.asarray(labels)
    positions, classes = shape[:-1], shape[-1]
    if idx.shape != positions:
        raise DistillError(
            f"labels have shape {idx.shape}; give one class index per position {positions}"
        )
    numbers = idx.dtype.kind in "iuf"
    with np.errstate(invalid="ignore"):
        whole = numbers and bool(np.all(np.isfinite(idx) & (idx == np.round(idx))))
    if not whole or (idx.size and not (idx.min() >= 0 and idx.max() < classes)):
        raise DistillError(f"labels must be class indices 0..{classes - 1}, whole numbers")
    return idx.astype(np.int64)


# --------------------------------------------------------------------------- data


@dataclass
class Source:
    """One sample: a file, or item `index` of a feed sequence (read only when its batch runs,
    so a lazy sequence such as `graphopt.quant.data.folder_feeds` is never loaded whole)."""

    name: str
    path: Path | None = None
    feeds: Sequence[Feed] | None = None
    index: int = 0


def data_sources(data: str | os.PathLike[str] | Sequence[Feed]) -> list[Source]:
    """The samples of `data`: supported files of a folder (sorted, recursive), or feeds."""
    if isinstance(data, str | os.PathLike):
        from graphopt.quant.data import left_out_text

        root = Path(data)
        left_out = ""  # entries named as data files that are no regular file
        if root.is_file():
            if root.suffix.lower() not in DATA_SUFFIXES:  # was an image decode error, or "holds
                # only .npy/.npz feeds" where --size was given
                raise DistillError(
                    f"{shown(root)}: not a data file: give a .npy or .npz of feeds, an image "
                    f"({', '.join(IMAGE_SUFFIXES)}) or a folder of them"
                )
            files = [root]
        elif root.is_dir():
            # another run's targets folder inside the data holds .npy files, not samples
            targets = {m.parent for m in root.rglob(MANIFEST) if _is_targets_manifest(m)}
            named = [
                p
                for p in root.rglob("*")
                if p.suffix.lower() in DATA_SUFFIXES and not targets.intersection(p.parents)
            ]
            files = sorted(p for p in named if p.is_file())
            # a folder named x.png holds samples, is none; a broken link (a data set half
            # copied) or a FIFO so named was left out without a word, which quantize warns of
            left_out = left_out_text(
                sorted(p for p in named if not p.is_file() and not p.is_dir()), root
            )
            if left_out and files:
                log.warning("%s: skipping %s: not a regular file", shown(root), left_out)
        elif kind := special_file_kind(root):  # /dev/zero, a FIFO: was "no such file or folder"
            raise DistillError(f"{shown(root)}: is not a regular file or folder ({kind})")
        else:
            raise DistillError(f"{shown(root)}: no such file or folder")
        if not files:
            also = f"; skipped {left_out}: not a regular file" if left_out else ""
            raise DistillError(
                f"{shown(root)}: no data files ({', '.join(DATA_SUFFIXES)}) found outside "
                f"distillation targets folders{also}"
            )
        base = root if root.is_dir() else root.parent
        return [Source(str(p.relative_to(base)), path=p) for p in files]
    if isinstance(data, Mapping | np.ndarray | bytes):  # not a sequence of feed dicts
        what = "one feed dict (give a list of them)" if isinstance(data, Mapping) else "an array"
        raise DistillError(
            f"data is {what}: give a folder or file of samples, or a sequence of feed dicts"
        )
    # a sized, indexable collection is read lazily; an iterator is read once, here
    items: Sequence[Feed] = data if hasattr(data, "__getitem__") else list(data)
    return [Source(f"feed {i}", feeds=items, index=i) for i in range(len(items))]


def _is_targets_manifest(path: Path) -> bool:
    """Whether `path` is the manifest of a distillation targets folder."""
    from graphopt.quant.cache import read_text_file

    try:  # (a FIFO named so blocked the read for ever)
        text = read_text_file(
            path, "distillation manifest", limit=MANIFEST_LIMIT, error=DistillError
        )
        return bool(json.loads(text).get("format") == FORMAT)
    except (DistillError, ValueError, AttributeError):
        return False


def load_feed(
    source: Source,
    inputs: Sequence[tuple[str, int, list[Any]]],
    preprocess: Mapping[str, Any] | None = None,
) -> Feed:
    """The feed dict of one sample. `inputs`: (name, elem_type, dims) of the model's inputs;
    images are resized to the input's H×W and normalized with `preprocess` (the keyword
    arguments of `graphopt.realmodels.preprocess`; default scale 1/255)."""
    if source.feeds is not None:
        item = source.feeds[source.index]
        if not isinstance(item, Mapping):  # dict() of it raised ValueError or TypeError
            raise DistillError(f"{shown(source.name)}: is a {type(item).__name__}, not a feed dict")
        return dict(item)
    assert source.path is not None
    path = source.path
    suffix = path.suffix.lower()
    names = [name for name, _, _ in inputs]
    try:
        if suffix == ".npz":
            arrays = load_arrays(path)
            if not isinstance(arrays, dict):
                raise DistillError(f"{shown(path)}: is a .npy array, not an .npz archive")
            if set(names) <= set(arrays):
                return {n: arrays[n] for n in names}
            if len(names) == 1 and len(arrays) == 1:
                return {names[0]: next(iter(arrays.values()))}
            raise DistillError(f"{shown(path)}: holds {sorted(arrays)}, the model reads {names}")
        if suffix == ".npy":
            if len(names) != 1:
                raise DistillError(
                    f"{shown(path)}: a .npy sample fits only one-input models ({names})"
                )
            value = load_arrays(path)
            if isinstance(value, dict):
                raise DistillError(f"{shown(path)}: is an .npz archive, not a .npy array")
            return {names[0]: value}
    except (OSError, ValueError) as e:
        raise DistillError(f"{shown(path)}: cannot read: {e}") from e
    return {names[0]: _image_feed(path, inputs, preprocess)}


def _image_feed(
    path: Path, inputs: Sequence[tuple[str, int, list[Any]]], preprocess: Mapping[str, Any] | None
) -> np.ndarray:
    """The image at `path` as the teacher's one input declares it (`quant.image_input`: NCHW,
    NHWC, CHW or HWC; float inputs normalized, default scale 1/255; uint8 inputs the raw
    pixels; one channel: gray)."""
    from graphopt.quant.data import image_too_large
    from graphopt.quant.image_input import image_input
    from graphopt.realmodels import load_image
    from graphopt.realmodels import preprocess as prep

    if len(inputs) != 1:
        raise DistillError(f"{shown(path)}: images fit only one-input models")
    try:
        fit = image_input(*inputs[0])
    except GraphoptError as e:
        raise DistillError(f"{shown(path)}: {e}") from e
    options = dict(preprocess or {})
    height, width = fit.declared  # (a text recognizer fixes its height alone: 64, W)
    if "size" not in options:
        if fit.size is None:
            raise DistillError(
                f"{shown(path)}: the model input {fit.one_side or 'has no static H×W'} "
                f"({inputs[0][2]}); give a size to resize to (--size {height or 'H'}x{width or 'W'})"
            )
        options["size"] = fit.size
    size = tuple(options["size"])
    if fit.size is not None and size != fit.size:  # said before resizing: --size 30000x30000
        # ran out of memory (MemoryError) before the teacher refused the feed
        raise DistillError(
            f"size {size[0]}x{size[1]}: input {fit.name!r} is fixed at {fit.size[0]}x"
            f"{fit.size[1]}; drop --size (or give that)"
        )
    conflict = fit.size_conflict(size, inputs[0][2])  # (onnxruntime: 'Got: 32 Expected: 64')
    if conflict:
        raise DistillError(conflict)
    too_large = image_too_large(size[0], size[1])
    if too_large:
        raise DistillError(f"{shown(path)}: {too_large}; give a smaller size")
    if fit.channels == 1:  # as quantize refuses them: the first mean and std were used, and
        # bgr ignored, without a word
        for key in ("mean", "std"):
            values = np.atleast_1d(np.asarray(options.get(key, 0.0), dtype=np.float64))
            if len(set(values.tolist())) > 1:
                raise DistillError(
                    f"{shown(path)}: input {fit.name!r} takes one gray channel: give one {key} "
                    f"(of {values.tolist()} only the first was used)"
                )
        if options.get("bgr"):
            raise DistillError(
                f"{shown(path)}: input {fit.name!r} takes one gray channel (the images' luma): "
                "bgr does not apply (drop it)"
            )
    if fit.raw_pixels:
        given = sorted({"scale", "mean", "std"} & set(options))
        if given:
            raise DistillError(
                f"{shown(path)}: input {fit.name!r} takes uint8 pixels as they are: "
                f"{', '.join(given)} do not apply"
            )
    else:
        options.setdefault("scale", 1 / 255.0)
        if not np.any(np.asarray(options["scale"], dtype=np.float64)):  # as quantize refuses
            # it: every image became one constant, and its targets were stored for each (exit 0)
            raise DistillError(
                f"{shown(path)}: scale 0 makes every pixel 0 (pixels are multiplied by it), every "
                "image the same constant; give the pixels' scale (e.g. 0.00392 for 1/255)"
            )
    options.setdefault("gray", fit.channels == 1)
    try:
        return fit.arrange(prep(load_image(path), **options))
    except GraphoptError as e:
        raise DistillError(str(e)) from e
    except MemoryError as e:  # a size of a dynamic input too large to hold
        raise DistillError(
            f"{shown(path)}: not enough memory for a {size[0]}x{size[1]} image; give a smaller size"
        ) from e


# --------------------------------------------------------------------------- writing


@dataclass
class TargetSpec:
    """One stored tensor: `name` in the targets, `source` tensor of the teacher, its kind."""

    name: str
    source: str
    kind: str  # "soft" (softmax(z/T)), "raw" (output as is) or "hint" (intermediate, as is)
    file: str = ""
    # the teacher's axis of the samples, moved to axis 0 to be stored: 0, or another where the
    # model proves it (`_batch_axes`: [T, N, C] of a sequence-first teacher)
    batch_axis: int = 0
    # computed from the teacher's constants only (a hint the same for every sample): stored
    # once, under the manifest's "constants", not per sample
    once: bool = False


def sha256_of(
    model: str | os.PathLike[str] | onnx.ModelProto | bytes | bytearray | memoryview,
) -> str:
    """sha256 of the teacher's file (or of its serialization)."""
    h = hashlib.sha256()
    if isinstance(model, onnx.ModelProto):
        h.update(model.SerializeToString(deterministic=True))
    elif isinstance(model, bytes | bytearray | memoryview):
        h.update(model)
    else:
        with open(model, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _external_data_sha256(files: Sequence[Path]) -> str:
    """sha256 over the digests of `files`, the external data files a model was read from
    (`LoadedModel.data_files`: in the order load first met them)."""
    h = hashlib.sha256()
    for file in files:
        h.update(sha256_of(file).encode())
    return h.hexdigest()


def write_targets(
    teacher: ModelLike,
    data: str | os.PathLike[str] | Sequence[Feed],
    out_dir: str | os.PathLike[str],
    *,
    temperature: float = 1.0,
    logits: Sequence[str] = (),
    hints: Sequence[str] = (),
    outputs: Sequence[str] | None = None,
    axis: int = -1,
    batch_size: int = 1,
    checkpoint: int | None = None,
    preprocess: Mapping[str, Any] | None = None,
    threads: int = 0,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run `teacher` (a path, bytes, onnx.ModelProto or graphopt LoadedModel) over `data` and
    store its targets in `out_dir`; return the manifest.

    `logits`: outputs to store as softmax(z / T) along `axis` (not the batch axis, on which
    samples are stacked: softmax there would mix samples); other `outputs` (default: all) are
    stored raw, `hints` (intermediate tensor names) raw too (once, where the teacher computes
    one from its constants only: `load_constants`). `batch_size` samples are concatenated
    along axis 0 of the inputs per run (the teacher's batch dimension must then be dynamic;
    the first batch of each run (of samples not all alike) is also run sample by sample, and
    an output that is not those outputs stacked on its batch axis is refused: axis 0, or the
    axis its dims name with an input's batch dim, `batch_axis`; stored on axis 0). The last
    data file may hold fewer samples than the others (`samples_in_last_file`); it runs alone,
    last. A rerun with the same teacher, options and data resumes where the last one stopped,
    at any batch size. `checkpoint`: flush the files and record the progress every that many
    samples; None: every 64, or every 1/256 of a data set of more than 16384 samples (at most
    256 checkpoints: the manifest names every sample).
    """
    # numpy numbers are taken; np.int64 axis or batch size was a TypeError when the manifest
    # was written (JSON), an axis of 1.0 one after the first batch had made the files
    counts = {
        "axis": axis,
        "batch_size": batch_size,
        "checkpoint": CHECKPOINT if checkpoint is None else checkpoint,
        "threads": threads,  # (1.5 was onnxruntime's TypeError of 5 lines, after the folder
        # was made; None a TypeError comparing it)
    }
    for argument, given in counts.items():
        try:
            counts[argument] = operator.index(given)
        except TypeError:
            raise DistillError(f"{argument} must be an integer, got {given!r}") from None
    axis, batch_size, every = counts["axis"], counts["batch_size"], counts["checkpoint"]
    threads = counts["threads"]
    listed: dict[str, list[str]] = {}
    for argument, names in (("logits", logits), ("hints", hints), ("outputs", outputs)):
        if isinstance(names, str | bytes):  # its letters were taken for names: outputs="ab"
            # stored outputs 'a' and 'b', logits="logits" said "no output 'l', 'o', ..."
            raise DistillError(f"{argument} must be a list of names, not the string {names!r}")
        try:  # read once: a generator of logits was used up by the first look, and the
            # logits were stored raw (exit 0); iter() of hints was 'no output' for them
            listed[argument] = list(names) if names is not None else []
        except TypeError:
            raise DistillError(f"{argument} must be a list of names, got {names!r}") from None
    logits, hints = listed["logits"], listed["hints"]
    if outputs is not None:
        outputs = listed["outputs"]
    if not isinstance(temperature, int | float | np.integer | np.floating):
        raise DistillError(f"temperature must be a number, got {temperature!r}")
    if not 0 < temperature < float("inf"):  # NaN: NaN targets; inf: softmax(0), uniform
        raise DistillError(f"temperature must be > 0 and finite, got {temperature}")
    images = _image_options(preprocess)  # (before anything is made)
    for argument, size in (("batch_size", batch_size), ("checkpoint", every)):
        if size < 1:  # (it said "batch_size and checkpoint" whichever was wrong)
            raise DistillError(f"{argument} must be >= 1, got {size}")
    if threads < 0:  # as distill-targets --threads refuses it
        raise DistillError(
            f"threads must be 0 (onnxruntime's default, one per physical core) or more, got {threads}"
        )
    from graphopt.backends.onnxruntime import input_specs, run_error_text, session
    from graphopt.ir import load

    loaded = load(teacher)
    require_text_io_names(loaded.model, loaded.where, DistillError)
    model = loaded.model
    # a file's bytes (or the bytes given); else the model's serialization (a LoadedModel was a
    # TypeError out of open())
    named = isinstance(teacher, str | os.PathLike | bytes | bytearray | memoryview)
    digest = sha256_of(teacher if named else model)
    names = [o.name for o in model.graph.output]
    chosen = list(outputs) if outputs is not None else names
    # logits are stored (as soft targets) whether or not `outputs` names them; each name once
    chosen = list(dict.fromkeys([*chosen, *(n for n in logits if n not in hints)]))
    hints = list(dict.fromkeys(hints))
    unknown = [n for n in dict.fromkeys([*chosen, *logits]) if n not in names and n not in hints]
    if unknown:
        raise DistillError(
            f"teacher has no output {', '.join(map(repr, unknown))}; outputs: {', '.join(names)}"
        )
    if hints:
        _refuse_uncomputed_hints(model, hints, names)
        model = _expose(model, hints)
    specs = [TargetSpec(n, n, "soft" if n in logits else "raw") for n in chosen]
    specs += [TargetSpec(h, h, "soft" if h in logits else "hint") for h in hints if h not in chosen]
    if not specs:
        raise DistillError("nothing to store: no teacher outputs, logits or hints chosen")
    for i, spec in enumerate(specs):
        spec.file = f"{i:03d}_{_safe(spec.name)}.npy"
    batch_axes = _batch_axes(model)
    constant = _computed_from_constants(model, [s.source for s in specs if s.source in hints])
    for spec in specs:
        spec.batch_axis = batch_axes.get(spec.source, 0)
        spec.once = spec.source in constant
    _refuse_constants_alone(specs)
    out = Path(out_dir)
    # the targets folder may sit inside the data folder: its own .npy files (in it, not in a
    # folder below) are not samples. A targets folder that holds the data (-o . --data images)
    # had every sample skipped ('every sample is inside the targets folder')
    found = data_sources(data)
    mine = out.resolve()
    sources = [s for s in found if s.path is None or s.path.resolve().parent != mine]
    if not sources:
        where = "every sample is inside the targets folder" if found else "the data holds none"
        raise DistillError(f"no samples to run the teacher on: {where}")
    if checkpoint is None:  # the manifest names every sample and is rewritten whole at each
        # checkpoint: every 64 samples a run wrote O(n²) bytes (ImageNet's 1.28M photographs:
        # a 126 MB manifest, 5 s a checkpoint, 28 h in all); at most 256 checkpoints keep it O(n)
        every = max(every, -(-len(sources) // MOST_CHECKPOINTS))
    inputs = input_specs(model)
    if not inputs:  # an image sample raised IndexError (a traceback) for want of an input
        raise DistillError("the teacher has no inputs: there is nothing to feed the samples to")
    for name, elem, _ in inputs:  # _conform's dtype lookup raised KeyError: 0 for them
        if elem not in onnx.helper.get_all_tensor_dtypes():
            raise DistillError(
                f"teacher input {name!r} is not a tensor (a sequence, map or optional?): "
                "samples feed tensors"
            )
    _check_batch(inputs, batch_size)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DistillError(f"{shown(out)}: cannot create the targets folder: {e.strerror}") from e
    config = {
        "format": FORMAT,
        "teacher": {
            # a path (serialized bytes were recorded as their repr: a 16 MB manifest for a
            # 4.7 MB teacher, rewritten at every checkpoint)
            "path": os.fspath(teacher) if isinstance(teacher, str | os.PathLike) else "",
            "sha256": digest,
            # the weights of a teacher kept as external data are not in its file's digest
            **(
                {"data_sha256": _external_data_sha256(loaded.data_files)}
                if loaded.data_files
                else {}
            ),
        },
        "temperature": float(temperature),
        "axis": axis,
        "batch_size": batch_size,
        "count": len(sources),
        "sources": [s.name for s in sources],
        # a file rewritten under its name (size or modification time) is another sample
        "source_stats": [_stat(s.path) for s in sources],
        # as JSON reads it back (numpy numbers and arrays were a TypeError writing it)
        "preprocess": {
            k: np.asarray(v).tolist()
            if isinstance(v, tuple | list | np.ndarray | np.generic)
            else v
            for k, v in (preprocess or {}).items()
        },
    }
    with _folder_lock(out) as locked:
        if not locked:  # two runs into one folder: a rerun removed the files of the run still
            # going (before its first checkpoint) and made its own, and the last manifest
            # written (T = 2) named the other run's rows (T = 5), complete, both exit 0
            raise DistillError(
                f"{shown(out)}: another run is writing targets into this folder (it holds its "
                "lock); wait for it to end or use another folder"
            )
        manifest = _resume(out, config, specs)  # None: start over (a first checkpoint too)
        done = int(manifest.get("done", 0)) if manifest else 0
        if manifest:  # a constant hint's file removed or replaced since is said now
            load_constants(out)
        if manifest and manifest.get("complete"):
            # nothing to run; a target file removed or replaced since was 'wrote' (exit 0)
            load_targets(out)
            return manifest
        once = [s for s in specs if s.once]  # (as the folder has them, on a resume)
        specs = [s for s in specs if not s.once]
        sess = _teacher_session(model, threads, session)
        arrays: dict[str, np.memmap] = {}
        total = len(sources)
        if progress is not None:
            progress(done, total)
        since = 0

        # a feed dict's arrays the teacher does not read (a label beside the image, as
        # quantize's feeds may hold; an .npz's are left unread) were onnxruntime's 'Invalid
        # input name: label'
        read = {i.name for i in model.graph.input}

        def teacher_run(feed: Feed, named: Sequence[Source]) -> list[np.ndarray]:
            feed = {k: v for k, v in feed.items() if k in read}
            try:
                return list(sess.run([s.source for s in specs], feed))
            except Exception as e:  # onnxruntime raises its own untyped errors
                # every line (a wrong shape's dims come after the first), names escaped
                first = run_error_text(e, model=model)
                raise DistillError(f"the teacher failed on {_named(named)}: {first}") from e

        # a short last file (a data set size not divisible by the batch size of pre-batched
        # files) runs alone, after the others; a fresh run sizes the files by it first
        looked_at: dict[int, Feed] = {}  # samples read to tell, each read once

        def feed_at(i: int, keep: bool = False) -> Feed:
            feed = looked_at.pop(i, None)
            if feed is None:
                feed = _conform(load_feed(sources[i], inputs, images), inputs, sources[i])
            if keep:
                looked_at[i] = feed
            return feed

        last_alone = _short_last(manifest, sources, read, feed_at)
        # the first sample is kept for its batch, next; the last (a whole batch's rows, held
        # through the run: memory stays bounded by one batch) is read again at its turn
        looked_at = {i: f for i, f in looked_at.items() if done <= i < total - 1}
        last_values = None
        if last_alone and manifest is None:
            last_feed = feed_at(total - 1)
            _refuse_short_of_fixed_batch(inputs, last_feed, sources[-1])
            last_values = teacher_run(last_feed, sources[-1:])
            _refuse_non_numbers(specs, last_values)
            last_values = _samples_first(specs, last_values)
        elif last_alone and manifest is not None and "samples_in_last_file" not in manifest:
            last_feed = feed_at(total - 1)  # (read again at its turn)
            counted = _samples_first(specs, teacher_run(last_feed, sources[-1:]))
            _refuse_last_counted_full(out, manifest, counted, sources[-1])
            del last_feed, counted
        stacking_checked = False
        for start, end in _batch_ranges(done, total, batch_size, last_alone):
            batch = sources[start:end]
            feeds = [feed_at(i) for i in range(start, end)]
            batched = _conform(_batch_feed(feeds, batch, read), inputs, batch[0])
            try:
                values = teacher_run(batched, batch)
            except DistillError as e:  # the batch's first sample was named, whichever failed
                if len(batch) < 2:
                    raise
                for feed, source in zip(feeds, batch, strict=True):  # the sample that fails
                    teacher_run(feed, [source])  # alone, if one does
                # none does: onnxruntime's words (a Reshape to a batch of 1 inside) read as
                # the samples' fault, and batch size 1 was never said
                cause = e.__cause__ or e
                raise DistillError(
                    f"the teacher failed on {_named(batch)} as one batch of {len(batch)}, though "
                    "each of them runs alone: it does not take that batch (a fixed batch size "
                    "inside it, or not enough memory); use batch size 1: "
                    f"{run_error_text(cause, model=model)}"
                ) from cause
            _refuse_non_numbers(specs, values)
            values = _samples_first(specs, values)
            if len(batch) > 1 and not stacking_checked:
                alone = [
                    _samples_first(specs, teacher_run(f, [s]))
                    for f, s in zip(feeds, batch, strict=True)
                ]
                _check_stacking(specs, values, alone, _batch_dims(model), batch_axes)
                # samples all alike prove nothing (a mean over the batch is each of them): a
                # data set that began with a duplicate had every later batch mixed (exit 0)
                stacking_checked = not _alike(feeds, read)
            if manifest is None:
                feed = {k: v for k, v in batched.items() if k in read}
                constants = _constant_values(sess, once, feed, model)
                manifest = _create(
                    out, config, specs, values, len(batch), last_values, sources[-1].name
                )
                _store_constants(out, manifest, once, constants)
            current: dict[str, Any] = manifest
            if not arrays:
                arrays = _open(out, current, specs)
            rows = _rows(values, specs, temperature, axis, batch, start, current)
            per = current.get("samples_per_file", 1)
            for spec, value in zip(specs, rows, strict=True):
                arrays[spec.name][start * per : start * per + value.shape[0]] = value
            done = start + len(batch)
            since += len(batch)
            if since >= every or done == total:
                _checkpoint(out, current, arrays, done, total)
                since = 0
            if progress is not None:
                progress(done, total)
        assert manifest is not None
        return manifest


IMAGE_OPTIONS = ("size", "mean", "std", "scale", "bgr", "letterbox", "pad_value", "gray")


def _image_options(preprocess: Mapping[str, Any] | None) -> dict[str, Any]:
    """`preprocess` (keyword arguments of `graphopt.realmodels.preprocess`) checked as
    distill-targets checks its flags, before anything is made: a std with a zero or a scale,
    mean or std that is no finite number made NaN pixels and the teacher's NaN targets were
    stored (exit 0); a mean or std given as one number was an IndexError at the first image,
    an unknown option a TypeError. mean and std come back as 1 or 3 numbers, size as (H, W)."""
    if preprocess is None:
        return {}
    if not isinstance(preprocess, Mapping):
        raise DistillError(f"preprocess must be a mapping of image options, got {preprocess!r}")
    unknown = [k for k in preprocess if k not in IMAGE_OPTIONS]
    if unknown:
        raise DistillError(
            f"preprocess has no option {', '.join(map(repr, unknown))}; its options: "
            f"{', '.join(IMAGE_OPTIONS)}"
        )
    options = {k: v for k, v in preprocess.items() if v is not None}  # None: the default
    for key in ("size", "mean", "std", "scale", "pad_value"):
        if key not in options:
            continue
        try:
            values = np.atleast_1d(np.asarray(options[key], dtype=np.float64))
        except (TypeError, ValueError):
            values = np.array([np.nan, np.nan, np.nan, np.nan])  # (refused below)
        if key == "size":
            whole = values.shape == (2,) and bool(np.all((values >= 1) & (values % 1 == 0)))
            if not whole:
                raise DistillError(
                    f"preprocess size must be (H, W), two whole numbers >= 1, got {options[key]!r}"
                )
            options[key] = (int(values[0]), int(values[1]))
            continue
        counts = (1, 3) if key in ("mean", "std") else (1,)
        if values.ndim != 1 or len(values) not in counts or not np.isfinite(values).all():
            what = "1 or 3 finite numbers" if key in ("mean", "std") else "a finite number"
            raise DistillError(f"preprocess {key} must be {what}, got {options[key]!r}")
        if key == "std" and not values.all():
            raise DistillError(
                f"preprocess std {values.tolist()} has a zero (pixels are divided by it)"
            )
        options[key] = tuple(values.tolist()) if key in ("mean", "std") else float(values[0])
    return options


def _teacher_session(model: onnx.ModelProto, threads: int, session: Callable[..., Any]) -> Any:
    """An onnxruntime session of the teacher (hints exposed). onnxruntime takes a model over
    2 GiB only from a file with external data ('it is over 2 GiB, which onnxruntime takes only
    from a file', and no targets): such a teacher is written into a temporary folder first,
    removed once the session holds its weights."""
    from graphopt.ir.model_io import _over_two_gib

    if not _over_two_gib(model):
        return session(model, threads=threads)
    from graphopt.ir.model_io import temporary_file_with_external_data

    with temporary_file_with_external_data(model, "teacher.onnx") as path:
        return session(path, threads=threads)


def _refuse_non_numbers(specs: Sequence[TargetSpec], values: Sequence[Any]) -> None:
    """A `DistillError` for a stored output that is no tensor of numbers: a string tensor
    was a ValueError traceback out of the memmap (the manifest left behind), as logits its
    strings were parsed as numbers; a sequence was stacked, its elements taken for samples."""
    for spec, value in zip(specs, values, strict=True):
        if not isinstance(value, np.ndarray):
            what = f"a {type(value).__name__} (a sequence or map output?)"
        elif value.dtype.kind not in "biuf":
            what = f"a tensor of {value.dtype} (strings?), not numbers"
        else:
            continue
        raise DistillError(
            f"teacher output {spec.source!r} is {what}: only tensors of numbers are stored; "
            "leave it out (outputs)"
        )


def _check_stacking(
    specs: Sequence[TargetSpec],
    values: Sequence[np.ndarray],
    alone: Sequence[Sequence[np.ndarray]],
    batch_dims: Sequence[str] = (),
    named_axes: Mapping[str, int] | None = None,
) -> None:
    """A `DistillError` for a stored output that, on a batch of samples (`values`), is not the
    outputs of its samples run one at a time (`alone`) stacked on axis 0 (the values with
    their batch axis moved there, `_samples_first`). An output whose axis 0 is no batch axis
    ([C, N], a constant [2, 3]) or that mixes the samples of a batch (a mean over axis 0) had
    its rows stored as the samples' (sample 0 of [C, N] held a row of every sample; exit 0),
    and the targets changed with the batch size. Checked on the first batch of each run whose
    samples are not all alike: its samples run twice. An output that stacks them on another
    axis, which the model does not name (`batch_dims`: the inputs' batch dims), is told how
    to name it; one the model names (`named_axes`, `_batch_axes`) but the targets folder stores
    from axis 0 (made before batch axes were read from the model, at batch size 1) is told to
    resume at batch size 1 (the model named it: declaring it was no remedy)."""
    for k, spec in enumerate(specs):
        batched = np.asarray(values[k])
        parts = [np.asarray(run[k]) for run in alone]
        try:
            stacked: np.ndarray | None = np.concatenate(parts, axis=0)
        except ValueError:  # 0-d, or other shapes per sample
            stacked = None
        if stacked is None or stacked.shape != batched.shape:
            other = _stacking_axis(parts, batched)
            if (
                other is not None
                and not spec.batch_axis
                and (named_axes or {}).get(spec.source) == other
            ):
                raise DistillError(
                    f"teacher output {spec.source!r} stacks samples on axis {other}, as the "
                    "model says, but the targets folder stores it from axis 0 as the teacher "
                    "gives it (made by a graphopt that did not read batch axes from the model, "
                    "at batch size 1), which a batch cannot continue; resume it at batch size "
                    "1, or delete the folder (or use another) to start over"
                )
            if other is not None:
                raise DistillError(
                    f"teacher output {spec.source!r} has shape {batched.shape} on a batch of "
                    f"{len(parts)} samples, and {', '.join(str(p.shape) for p in parts)} on "
                    f"each alone: it stacks samples on axis {other}, which the model does not "
                    f"say is its batch axis; declare that dim of the output as the input's "
                    f"batch dim {_dims_text(batch_dims)} (e.g. with onnx.tools.update_model_dims"
                    ".update_inputs_outputs_dims), and samples are stored from that axis; or "
                    "use batch size 1 (or store only outputs that stack on axis 0)"
                )
            raise DistillError(
                f"teacher output {spec.source!r} has shape {batched.shape} on a batch of "
                f"{len(parts)} samples, and {', '.join(str(p.shape) for p in parts)} on each "
                "alone: it does not stack samples on axis 0; use batch size 1 (or store only "
                "outputs that do)"
            )
        a, b = stacked.astype(np.float64), batched.astype(np.float64)
        finite = np.isfinite(a)
        scale = float(np.max(np.abs(a[finite]), initial=0.0))
        if not np.allclose(b, a, rtol=1e-3, atol=1e-4 * scale, equal_nan=True):
            with np.errstate(invalid="ignore"):
                gap = float(np.nanmax(np.abs(b - a)))
            raise DistillError(
                f"teacher output {spec.source!r} on a batch of {len(parts)} samples differs by "
                f"up to {gap:.3g} from its samples run one at a time: it mixes the samples "
                "of a batch; use batch size 1"
            )


def _stacking_axis(parts: Sequence[np.ndarray], batched: np.ndarray) -> int | None:
    """The axis other than 0 on which `parts` (a sample's output each) concatenate into
    `batched` (the batch's), shapes and values; None where there is none."""
    for axis in range(1, batched.ndim):
        try:
            stacked = np.concatenate(parts, axis=axis)
        except ValueError:
            continue
        if stacked.shape == batched.shape and np.allclose(
            stacked.astype(np.float64),
            batched.astype(np.float64),
            rtol=1e-3,
            atol=1e-5,
            equal_nan=True,
        ):
            return axis
    return None


def _dims_text(dims: Sequence[str]) -> str:
    """The inputs' batch dims as a message names them: 'N', or a word where none is named."""
    return " or ".join(map(repr, dims)) if dims else "(a named dim, as the input's axis 0 too)"


def _batch_dims(model: onnx.ModelProto) -> list[str]:
    """The named batch dims of the teacher's inputs: the dim_param of each one's axis 0
    (not '?', which some exporters write for every unknown dim)."""
    from graphopt.ir.values import declared_dims

    weights = {t.name for t in model.graph.initializer}
    named = []
    for vi in model.graph.input:
        dims = declared_dims(vi) if vi.name not in weights else None
        if dims and isinstance(dims[0], str) and dims[0] != "?":
            named.append(dims[0])
    return list(dict.fromkeys(named))


def _batch_axes(model: onnx.ModelProto) -> dict[str, int]:
    """The batch axis of each of the teacher's outputs (hints exposed) where the model proves
    it is not axis 0: the one axis whose dim is named as an input's batch dim ([T, N, C] of
    an input [N, T, C]: 1), in the output's declared shape or, where that names none (an
    output declared without a shape), in the shape ONNX shape inference gives it. Elsewhere
    samples stack on axis 0, as they always did: a dim not named, or named twice, proves
    nothing."""
    from graphopt.ir.values import declared_dims

    batch = set(_batch_dims(model))
    if not batch:
        return {}

    def named(dims: Sequence[Any] | None) -> list[int]:
        return [k for k, d in enumerate(dims or ()) if isinstance(d, str) and d in batch]

    axes = {}
    facts = None
    for vi in model.graph.output:
        at = named(declared_dims(vi))
        if not at:
            if facts is None:
                from graphopt.analysis.shapes import shape_facts

                facts = shape_facts(model)
            at = named(facts.shape(vi.name))
        if len(at) == 1 and at[0] != 0:
            axes[vi.name] = at[0]
    return axes


def _samples_first(specs: Sequence[TargetSpec], values: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The teacher's `values` with each spec's batch axis moved to axis 0, as stored."""
    return [
        np.moveaxis(v, spec.batch_axis, 0)
        if spec.batch_axis and np.ndim(v) > spec.batch_axis
        else v
        for spec, v in zip(specs, values, strict=True)
    ]


def _class_axis(axis: int, batch_axis: int, ndim: int) -> int:
    """Where the teacher's axis `axis` of a tensor of `ndim` axes is once its `batch_axis` is
    moved to axis 0 (`_samples_first`); an axis it does not have is left as given."""
    if not batch_axis or not -ndim <= axis < ndim:
        return axis
    a = axis % ndim
    return 0 if a == batch_axis else a + 1 if a < batch_axis else a


RANDOM_OPS = frozenset(
    {
        "RandomNormal",
        "RandomUniform",
        "RandomNormalLike",
        "RandomUniformLike",
        "Multinomial",
        "Bernoulli",
        "Dropout",
    }
)


def _computed_from_constants(model: onnx.ModelProto, names: Sequence[str]) -> set[str]:
    """Those of `names` (tensors of the main graph) that the teacher computes from its
    constants only: no input reaches them, so they are the same for every sample. Nodes
    that may give another value each run (random ones), read outer values (a body), or are
    of another domain (unknown to this check) count as reading the samples."""
    g = model.graph
    weights = {t.name for t in g.initializer} | {t.values.name for t in g.sparse_initializer}
    varying = {i.name for i in g.input} - weights
    changed = True
    while changed:  # (a fixed point: node order is not relied on)
        changed = False
        for node in g.node:
            if all(o in varying for o in node.output if o):
                continue
            if (
                node.domain not in ("", "ai.onnx")
                or node.op_type in RANDOM_OPS
                or any(
                    a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
                    for a in node.attribute
                )
                or any(i in varying for i in node.input if i)
            ):
                varying.update(o for o in node.output if o)
                changed = True
    produced = {o for node in g.node for o in node.output if o}
    return {n for n in names if n in produced and n not in varying}


def _refuse_constants_alone(specs: Sequence[TargetSpec]) -> None:
    """A `DistillError` for constant hints given as logits (softmax of a constant is no
    sample's target) or as the only tensors to store (nothing per sample: the run over the
    data would store nothing)."""
    once = [s.source for s in specs if s.once]
    if not once:
        return
    named = ", ".join(map(repr, once))
    what = "computed from the teacher's constants only: the same for every sample"
    soft = [s.source for s in specs if s.once and s.kind == "soft"]
    if soft:
        raise DistillError(
            f"logits {', '.join(map(repr, soft))} are {what}; leave them out of the logits "
            "(as hints they are stored once)"
        )
    if all(s.once for s in specs):
        raise DistillError(
            f"hints {named} are {what}, and nothing per sample is stored with them; give an "
            "output or a hint the samples compute (or read them from the teacher)"
        )


def _constant_values(
    sess: Any, once: Sequence[TargetSpec], feed: Feed, model: onnx.ModelProto
) -> list[np.ndarray]:
    """The values of the constant hints `once` (run on `feed`, which they do not read)."""
    if not once:
        return []
    from graphopt.backends.onnxruntime import run_error_text

    try:
        values = list(sess.run([s.source for s in once], feed))
    except Exception as e:  # onnxruntime raises its own untyped errors
        raise DistillError(
            f"the teacher failed computing its constant hints: {run_error_text(e, model=model)}"
        ) from e
    _refuse_non_numbers(once, values)
    return values


def _store_constants(
    out: Path, manifest: dict[str, Any], once: Sequence[TargetSpec], values: Sequence[np.ndarray]
) -> None:
    """Store each constant hint once, as its own .npy file, under the manifest's "constants"
    (written again: the files are named there before they are made)."""
    if not once:
        return
    manifest["constants"] = {
        spec.name: {
            "file": spec.file,
            "source": spec.source,
            "kind": spec.kind,
            "shape": list(np.shape(value)),
            "dtype": np.asarray(value).dtype.str,
        }
        for spec, value in zip(once, values, strict=True)
    }
    _write_manifest(out, manifest)
    for spec, value in zip(once, values, strict=True):
        path = out / spec.file
        try:
            with open(path, "wb") as f:
                np.save(f, np.asarray(value))
        except OSError as e:
            raise DistillError(
                f"{shown(path)}: cannot store constant hint {spec.name!r} ({e.strerror or e}); "
                f"{'free some space or ' if _full(e) else ''}give another folder"
            ) from e
    log.warning(
        "distill-targets: hint(s) %s computed from the teacher's constants only (the same for "
        "every sample): stored once (load_constants), not per sample",
        ", ".join(map(repr, (s.name for s in once))),
    )


def _stat(path: Path | None) -> list[int] | None:
    """[size, modification time in ns] of a sample file (None for an in-memory feed)."""
    if path is None:
        return None
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def _expose(model: onnx.ModelProto, hints: Sequence[str]) -> onnx.ModelProto:
    """The teacher with the `hints` as extra graph outputs (expose-tensors). `model` is
    write_targets' own copy: an IR < 4 teacher's weights, which it lists as graph inputs too,
    are taken off its inputs here. optimize() does so itself but warns that the weights can no
    longer be fed, of a model no one sees: a line on stderr of every run with --hints (a
    successful one too), and an error after it was two lines."""
    from graphopt.api import optimize
    from graphopt.passes.expose_tensors import ExposeTensors
    from graphopt.pipeline import PassStep, Pipeline

    if 0 < model.ir_version < 4:
        weights = {t.name for t in model.graph.initializer}
        kept = [vi for vi in model.graph.input if vi.name not in weights]
        del model.graph.input[:]
        model.graph.input.extend(kept)
    pipe = Pipeline("expose-hints", [PassStep(ExposeTensors(names=list(hints)))])
    return optimize(model, pipe)


def _refuse_uncomputed_hints(
    model: onnx.ModelProto, hints: Sequence[str], outputs: Sequence[str]
) -> None:
    """A `DistillError` for a hint that is a teacher input or a constant (not an output too):
    expose-tensors exposes computed tensors only, and the run failed on the first sample
    with onnxruntime's 'Invalid output name', as if the sample were at fault."""
    g = model.graph
    inputs = {i.name for i in g.input}
    constants = {t.name for t in g.initializer} | {t.values.name for t in g.sparse_initializer}
    constants.update(
        n.output[0]
        for n in g.node
        if n.op_type == "Constant" and n.domain in ("", "ai.onnx") and n.output
    )
    for hint in hints:
        if hint in outputs:
            continue
        if hint in constants:  # first: an IR 3 model lists its weights as inputs too, and a
            # weight was called 'a teacher input (the samples themselves)'
            what = "a constant of the teacher (the same for every sample)"
        elif hint in inputs:
            what = "a teacher input (the samples themselves)"
        else:
            continue  # computed, or unknown: expose-tensors says so
        raise DistillError(f"hint {hint!r} is {what}, not a tensor the teacher computes")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:80] or "tensor"


def _check_batch(inputs: Sequence[tuple[str, int, list[Any]]], batch_size: int) -> None:
    if batch_size == 1:
        return
    for name, _, dims in inputs:
        if dims and isinstance(dims[0], int) and dims[0] > 0:
            raise DistillError(
                f"input {name!r} has a fixed batch of {dims[0]}; use batch size 1 with this teacher"
            )


def _conform(feed: Feed, inputs: Sequence[tuple[str, int, list[Any]]], source: Source) -> Feed:
    """Cast float samples to the float type the teacher declares (e.g. float64 .npy files);
    a feed's value that is a list of numbers is taken as an array (it was an AttributeError
    traceback). Numbers of another kind (int32 for a float input) are refused, naming the
    sample: in a batch with a float sample, stacking made them floats, fed as such (exit 0),
    where alone onnxruntime refused them."""
    for name, _, _ in inputs:
        if feed.get(name) is None:
            raise DistillError(f"{shown(source.name)}: no value for teacher input {name!r}")
    out = {name: np.asarray(value) for name, value in feed.items()}
    for name, elem, _ in inputs:
        value = out[name]
        want = onnx.helper.tensor_dtype_to_np_dtype(elem)
        if value.dtype != want and value.dtype.kind == "f" and want.kind == "f":
            with np.errstate(over="ignore"):
                out[name] = value.astype(want)
            # finite values the cast made infinite (a float32 sample of a float16 teacher,
            # |x| > 65504) were fed as inf and their targets stored (exit 0), with numpy's
            # overflow warning on stderr; quantize refuses them too
            beyond = np.isinf(out[name]) & np.isfinite(value)
            if beyond.any():
                raise DistillError(
                    f"{shown(source.name)}: holds values beyond {want}'s range for teacher "
                    f"input {name!r} (|x| up to {float(np.max(np.abs(value[beyond]))):.4g}), "
                    f"the type it reads"
                )
        elif value.dtype != want and value.dtype.kind in "biuf" and want.kind in "biuf":
            raise DistillError(
                f"{shown(source.name)}: holds {value.dtype} for teacher input {name!r}, which "
                f"reads {want}"
            )
    return out


def _batch_feed(feeds: Sequence[Feed], sources: Sequence[Source], read: Set[str]) -> Feed:
    """The samples' feeds concatenated on axis 0, of the inputs the teacher `read`s (a label
    of another length beside each image is left as it is)."""
    if len(feeds) == 1:
        return feeds[0]
    for feed, source in zip(feeds, sources, strict=True):  # one that lacked a key of the
        # first was a KeyError traceback
        if feed.keys() != feeds[0].keys():
            raise DistillError(
                f"{shown(source.name)}: feeds {sorted(feed)}, {shown(sources[0].name)} feeds "
                f"{sorted(feeds[0])}: the samples of a batch must feed the same inputs"
            )
    kept = [key for key in feeds[0] if key in read]
    for key in kept:  # a sample of 0 rows and one of 2 (or 1 and 3 where the first
        # held 2 each) stacked into the rows the batch expects, each stored as another's
        # sample (exit 0); alone, each was refused
        first = np.shape(feeds[0][key])[:1]
        for feed, source in zip(feeds, sources, strict=True):
            rows = np.shape(feed[key])[:1]
            if first and rows and rows != first:
                raise DistillError(
                    f"{shown(source.name)}: holds {rows[0]} rows of {key!r} on axis 0, "
                    f"{shown(sources[0].name)} {first[0]}: the samples of a batch must hold as "
                    "many (their outputs stack on axis 0)"
                )
    try:
        return {k: np.concatenate([f[k] for f in feeds], axis=0) for k in kept}
    except ValueError as e:
        raise DistillError(  # (at batch size 1 a teacher with dynamic dims takes them)
            f"samples {_named(sources)} do not stack: {e}; use batch size 1 for samples of "
            "other shapes"
        ) from e


def _alike(feeds: Sequence[Feed], read: Set[str]) -> bool:
    """Whether the samples of a batch feed the teacher the same values (a batch of duplicates;
    a label it does not read may differ)."""
    keys = [k for k in feeds[0] if k in read]
    return all(np.array_equal(f[k], feeds[0][k]) for f in feeds[1:] for k in keys)


def _short_last(
    manifest: Mapping[str, Any] | None,
    sources: Sequence[Source],
    read: Set[str],
    feed_at: Callable[[int, bool], Feed],
) -> bool:
    """Whether the data set's last sample may be a short last batch, run alone after the
    others: a file of pre-batched samples holding fewer rows than the first (on axis 0 of the
    inputs, the rest of their shapes alike). A folder's manifest says so (`samples_in_last_file`);
    a run looks at the first sample and, where it holds several rows, at the last
    (`feed_at(i, True)` reads them once, for their batch). Only the teacher's outputs tell
    whether the last gives fewer rows (an input [T, C] without a batch axis gives one row of
    any T): a folder whose manifest counts the last file as full is checked by
    `_refuse_last_counted_full`."""
    if manifest is not None and "samples_in_last_file" in manifest:
        return True
    if len(sources) < 2 or (manifest is not None and manifest.get("complete")):
        return False
    first = feed_at(0, True)
    if all(np.ndim(first[k]) == 0 or np.shape(first[k])[0] < 2 for k in read & first.keys()):
        return False  # one sample a file: none holds fewer (a lazy sequence is not read ahead)
    last = feed_at(len(sources) - 1, True)
    fewer = False
    for key in read & first.keys() & last.keys():
        a, b = np.shape(first[key]), np.shape(last[key])
        if a == b:
            continue
        if not (len(a) == len(b) >= 1 and a[1:] == b[1:] and b[0] < a[0]):
            return False  # other shapes: not a short batch (said where it runs)
        fewer = True
    return fewer


def _refuse_last_counted_full(
    out: Path, manifest: Mapping[str, Any], values: Sequence[np.ndarray], source: Source
) -> None:
    """A `DistillError` where the teacher gives fewer rows on the last data file (`values`,
    samples first) than a folder made counting it as full (by a graphopt that refused such a
    file, stopped there) has room for: it cannot take them, said before the run. A last file
    whose inputs hold fewer rows yet whose outputs hold as many (an input [T, C] without a
    batch axis: T is no count of samples) goes on as the folder was made."""
    per = int(manifest.get("samples_per_file", 1))
    if all(np.ndim(v) and np.shape(v)[0] == per for v in values):
        return
    raise DistillError(
        f"{shown(out)}: holds targets made counting every data file as holding {per} "
        f"sample(s), but the last, {shown(source.name)}, holds fewer (a short last batch); "
        "delete the folder (or use another) to start over"
    )


def _refuse_short_of_fixed_batch(
    inputs: Sequence[tuple[str, int, list[Any]]], feed: Feed, source: Source
) -> None:
    """A `DistillError` for a short last batch that a teacher of a fixed batch size cannot
    take (onnxruntime's 'Got: 3 Expected: 4' said no more)."""
    for name, _, dims in inputs:
        rows = np.shape(feed[name])[:1]
        if dims and isinstance(dims[0], int) and dims[0] > 0 and rows and rows[0] != dims[0]:
            raise DistillError(
                f"{shown(source.name)}: the last data file holds {rows[0]} samples, fewer than "
                f"the others, and teacher input {name!r} takes a fixed batch of {dims[0]}: pad "
                f"the file to {dims[0]} samples (the padding's targets are stored too) or "
                "leave it out"
            )


def _batch_ranges(
    done: int, total: int, batch_size: int, last_alone: bool
) -> Iterator[tuple[int, int]]:
    """[start, end) of the batches of samples from `done` on; a short last sample alone."""
    end = total - 1 if last_alone else total
    for start in range(done, end, batch_size):
        yield start, min(start + batch_size, end)
    if last_alone and done < total:
        yield total - 1, total


def stored_rows(manifest: Mapping[str, Any], samples: int | None = None) -> int:
    """The rows a targets folder stores for its first `samples` samples (default: all of
    them): `samples_per_file` each, the last `samples_in_last_file` (a short last batch;
    absent: as many as the others)."""
    count = int(manifest["count"])
    samples = count if samples is None else samples
    per = int(manifest.get("samples_per_file", 1))
    last = int(manifest.get("samples_in_last_file", per))
    if samples < count or count == 0:
        return samples * per
    return (count - 1) * per + last


def _named(sources: Sequence[Source]) -> str:
    """The samples of a batch, as errors name them: 'a.npy', or 'a.npy to d.npy'."""
    if len(sources) == 1:
        return shown(sources[0].name)
    return f"{shown(sources[0].name)} to {shown(sources[-1].name)}"


def _rows(
    values: Sequence[np.ndarray],
    specs: Sequence[TargetSpec],
    temperature: float,
    axis: int,
    sources: Sequence[Source],
    start: int,
    manifest: Mapping[str, Any],
) -> list[np.ndarray]:
    """The rows to store of a batch's `values`, the samples `start` on: soft targets made,
    each checked against the manifest's shape."""
    rows = []
    batch = len(sources)
    per = manifest.get("samples_per_file", 1)  # (1: a manifest from before it was kept)
    want = stored_rows(manifest, start + batch) - stored_rows(manifest, start)
    for spec, value in zip(specs, values, strict=True):
        arr = np.asarray(value)
        if spec.kind == "soft":  # stored as the manifest's (float) dtype
            arr = softmax(arr, temperature, _class_axis(axis, spec.batch_axis, arr.ndim))
        entry = manifest["tensors"][spec.name]
        expected = tuple(entry["shape"][1:])
        if arr.ndim == 0 or arr.shape[0] != want or tuple(arr.shape[1:]) != expected:
            why = (
                "every sample must give the same shape (only the last file may hold fewer samples)"
            )
            short = manifest.get("samples_in_last_file")
            if short is not None and start + batch == manifest["count"] and arr.ndim:
                # the last file replaced since the last checkpoint (which a resume takes)
                why = (
                    f"the targets folder was made for a last data file of {short} sample(s), "
                    f"and {_named(sources[-1:])} gives {arr.shape[0]} rows now; delete the "
                    "folder (or use another) to start over"
                )
            raise DistillError(
                f"teacher output {spec.source!r} has shape {arr.shape} on {_named(sources)}, "
                f"expected ({want}, {', '.join(map(str, expected))}): {why}"
            )
        if spec.kind == "soft" and not np.isfinite(arr).all():
            # NaN or +inf logits, or a row of -inf only: stored as NaN soft targets (exit 0),
            # which make every loss computed against them NaN
            bad = int(np.argwhere(~np.isfinite(arr))[0][0]) // per
            raise DistillError(
                f"logits {spec.source!r} of {shown(sources[bad].name)} hold NaN or +inf (or a "
                "row of -inf only): softmax(z/T) is no distribution there; store that output "
                "raw (leave it out of the logits)"
            )
        rows.append(arr.astype(entry["dtype"], copy=False))
    return rows


def _create(
    out: Path,
    config: Mapping[str, Any],
    specs: Sequence[TargetSpec],
    values: Sequence[np.ndarray],
    batch: int,
    last: Sequence[np.ndarray] | None = None,
    last_name: str = "",
) -> dict[str, Any]:
    """The manifest of a fresh run, written, and its target files made, sized by the first
    batch's `values` (`batch` samples) and, for a short last batch, the `last` sample's."""
    shapes = [(spec.source, np.shape(value)) for spec, value in zip(specs, values, strict=True)]
    if len({shape[:1] for _, shape in shapes}) > 1:  # the first one's was taken as the batch's
        listed = ", ".join(f"{name!r} has shape {shape}" for name, shape in shapes)
        moved = " (samples first)" if any(spec.batch_axis for spec in specs) else ""
        raise DistillError(
            f"teacher outputs differ on axis 0, on which samples stack ({listed}{moved} on "
            f"{batch} sample(s)); store only those with a batch axis (--outputs, --hints)"
        )
    first = np.asarray(values[0])
    if first.ndim == 0 or first.shape[0] % batch:
        raise DistillError(f"teacher output {specs[0].source!r} has no batch axis ({first.shape})")
    if first.shape[0] == 0:  # 0 rows per sample: every sample would store nothing
        raise DistillError(
            f"teacher output {specs[0].source!r} has no rows on {batch} sample(s) "
            f"({first.shape}): samples stack on axis 0, which must hold them"
        )
    per = first.shape[0] // batch
    last_rows = _last_rows(specs, values, last, per, last_name) if last is not None else per
    count = (int(config["count"]) - 1) * per + last_rows
    axis = int(config["axis"])
    tensors: dict[str, dict[str, Any]] = {}
    for spec, value in zip(specs, values, strict=True):  # check before anything is written
        arr = np.asarray(value)
        classes = _class_axis(axis, spec.batch_axis, arr.ndim)  # where it is, samples first
        if spec.kind == "soft" and not -arr.ndim <= axis < arr.ndim:
            raise DistillError(
                f"logits {spec.source!r} have {arr.ndim} axes; there is no class axis {axis}"
            )
        if spec.kind == "soft" and arr.dtype == np.bool_:  # softmax of a mask's True/False
            # was stored as soft targets (exit 0)
            raise DistillError(
                f"logits {spec.source!r} are bool values (a mask?), not numbers: softmax(z/T) "
                "of them is no soft target; store the output raw (leave it out of logits)"
            )
        if spec.kind == "soft" and classes % arr.ndim == 0:
            raise DistillError(
                f"class axis {axis} of logits {spec.source!r} is the batch axis, on which "
                "samples are stacked (softmax there mixes samples); give the class axis"
            )
        if spec.kind == "soft" and arr.shape[classes] <= 1:  # ([N, 1, H, W] along axis 1:
            # all soft targets were 1.0, the teacher's values lost, exit 0; none: a ValueError)
            held = "one class: softmax there is 1 everywhere" if arr.shape[classes] else "no class"
            raise DistillError(
                f"class axis {axis} of logits {spec.source!r} {arr.shape} holds {held}; give the "
                "class axis (or store the output raw)"
            )
        if arr.ndim == 0 or arr.shape[0] != batch * per:
            raise DistillError(
                f"teacher output {spec.source!r} has shape {arr.shape}: no batch axis of "
                f"{batch * per} to stack samples on"
            )
        dtype = arr.dtype
        if spec.kind == "soft":  # float16 soft targets lost the small probabilities (p < 6e-8
            # was 0, 3e-7 off by 3%): float32 at least, float64 kept
            dtype = np.promote_types(dtype, np.float32) if dtype.kind == "f" else np.dtype("f4")
        tensors[spec.name] = {
            "file": spec.file,
            "source": spec.source,
            "kind": spec.kind,
            "shape": [count, *arr.shape[1:]],
            "dtype": dtype.str,
            # the teacher's axis the samples were on (absent: 0); they are stored on axis 0
            **({"batch_axis": spec.batch_axis} if spec.batch_axis else {}),
        }
    short = {"samples_in_last_file": last_rows} if last_rows != per else {}
    manifest = {
        **config,
        "samples_per_file": per,
        **short,
        "tensors": tensors,
        "done": 0,
        "complete": False,
    }
    _write_manifest(out, manifest)  # first: a rerun then knows the files below are its own
    for entry in tensors.values():
        path = out / entry["file"]
        shape = tuple(entry["shape"])
        try:
            mapped = np.lib.format.open_memmap(path, mode="w+", dtype=entry["dtype"], shape=shape)
            del mapped  # (unmapped: the file is reserved through a descriptor of its own)
            _reserve(path)
        except OSError as e:
            raise DistillError(
                f"{shown(path)}: cannot make a target file of {_size_of(entry)} bytes "
                f"({e.strerror or e}); {'free some space or ' if _full(e) else ''}give another folder"
            ) from e
    return manifest


def _last_rows(
    specs: Sequence[TargetSpec],
    values: Sequence[np.ndarray],
    last: Sequence[np.ndarray],
    per: int,
    name: str,
) -> int:
    """The rows of every output on the short last sample `name` (`last`), which must be those of
    the first batch's `values` but fewer on axis 0 (1 to `per`), as many for every output."""
    rows = {np.shape(v)[:1] for v in last}
    shapes = [(np.shape(a)[1:], np.shape(b)[1:]) for a, b in zip(values, last, strict=True)]
    if rows == {(0,)}:
        raise DistillError(
            f"{shown(name)}: holds no samples (the teacher gives no rows on it); remove it"
        )
    if len(rows) != 1 or not all(a == b for a, b in shapes) or not 0 < next(iter(rows))[0] <= per:
        listed = ", ".join(
            f"{spec.source!r} {np.shape(v)}" for spec, v in zip(specs, last, strict=True)
        )
        raise DistillError(
            f"{shown(name)}: the last data file holds fewer samples than the others, and the "
            f"teacher gives {listed} on it: not 1 to {per} rows of the shapes it gives on the "
            "others; store only outputs with a batch axis (--outputs, --hints)"
        )
    return int(next(iter(rows))[0])


def _size_of(entry: Mapping[str, Any]) -> int:
    return int(np.prod(entry["shape"], dtype=np.int64)) * np.dtype(entry["dtype"]).itemsize


def _reserve(path: Path) -> None:
    """Allocate the disk blocks of the preallocated file at `path`. open_memmap makes a
    sparse file, so a folder without room for the targets took it, and a later batch's rows
    written into the mapping killed the process with SIGBUS (a full disk: 'Bus error', exit
    135, the folder left as it was); now the lack of room is an OSError (ENOSPC) here, before
    the first batch is stored. Where the system cannot reserve (no posix_fallocate, a file
    system without it), the file stays sparse, as before."""
    size = path.stat().st_size
    if not hasattr(os, "posix_fallocate") or size == 0:
        return
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as e:
        if e.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            raise
    finally:
        os.close(fd)


def _open(
    out: Path, manifest: Mapping[str, Any], specs: Sequence[TargetSpec]
) -> dict[str, np.memmap]:
    arrays = {}
    for spec in specs:
        entry = manifest["tensors"][spec.name]
        try:
            arr = np.load(out / entry["file"], mmap_mode="r+")
        except NP_LOAD_ERRORS as e:
            raise DistillError(f"{shown(out / entry['file'])}: cannot open: {e}") from e
        _check_file(out / entry["file"], arr, entry)
        arrays[spec.name] = arr
    return arrays


def _check_file(path: Path, arr: np.ndarray, entry: Mapping[str, Any]) -> None:
    """A `DistillError` when a stored file's shape or dtype is not the manifest's (a file
    replaced or cut short since): its rows would no longer be the manifest's samples."""
    if list(arr.shape) != list(entry["shape"]) or arr.dtype != np.dtype(entry["dtype"]):
        raise DistillError(
            f"{shown(path)}: holds {arr.dtype.str} {list(arr.shape)}, the manifest says "
            f"{entry['dtype']} {list(entry['shape'])}; the folder was changed since: make the "
            "targets again"
        )


def _checkpoint(
    out: Path, manifest: dict[str, Any], arrays: Mapping[str, np.memmap], done: int, total: int
) -> None:
    for arr in arrays.values():
        arr.flush()
    manifest["done"] = done
    manifest["complete"] = done == total
    _write_manifest(out, manifest)
    log.info("distill-targets: %d/%d samples written", done, total)


def _write_manifest(out: Path, manifest: Mapping[str, Any]) -> None:
    from graphopt.ir.model_io import write_atomically

    try:  # a full disk was an OSError traceback
        write_atomically(out / MANIFEST, out, (json.dumps(manifest, indent=2) + "\n").encode())
    except OSError as e:
        raise DistillError(
            f"{shown(out / MANIFEST)}: cannot write the manifest ({e.strerror or e}); "
            f"{'free some space; ' if _full(e) else ''}a rerun resumes after the last checkpoint "
            "written"
        ) from e


def _full(e: OSError) -> bool:
    """Whether `e` says the disk or the quota is full (a read-only file system was told to
    free some space)."""
    return e.errno in (errno.ENOSPC, errno.EDQUOT)


def _resume(
    out: Path, config: Mapping[str, Any], specs: Sequence[TargetSpec]
) -> dict[str, Any] | None:
    path = out / MANIFEST
    if not path.exists():
        stale = [p.name for p in out.iterdir() if p.suffix == ".npy"]
        if stale:
            raise DistillError(
                f"{shown(out)}: holds .npy files but no {MANIFEST}; use an empty folder"
            )
        return None
    manifest = read_manifest(out)
    if not manifest.get("complete") and not manifest.get("done"):
        # stopped before its first checkpoint (Ctrl-C, a crash): nothing was kept, so a rerun
        # starts over whatever changed (the bad sample removed, another option)
        _remove_unkept(out, manifest)
        return None
    done, recorded = manifest["done"], (manifest.get("sources"), manifest.get("source_stats"))
    if (
        not manifest.get("complete")
        and manifest["count"] == config["count"]
        and isinstance(recorded[0], list)
        and isinstance(recorded[1], list)
        and recorded[0][:done] == config["sources"][:done]
        and recorded[1][:done] == config["source_stats"][:done]
    ):
        # samples after the last checkpoint were not stored: one replaced (the bad sample a
        # run stopped at, fixed) changes no row. The rerun was refused ('data files that
        # changed since'), the targets of every sample before it lost; as many samples (the
        # files' rows are made for them), the ones run the same
        manifest["sources"] = list(config["sources"])
        manifest["source_stats"] = list(config["source_stats"])
    mine_stats, their_stats = config["source_stats"], manifest.get("source_stats")
    if their_stats != mine_stats and manifest.get("sources") == config["sources"]:
        changed = [
            name
            for name, a, b in zip(config["sources"], mine_stats, their_stats or [], strict=False)
            if a != b
        ]
        # a copy of the data that did not keep the times is such a change (it named the files
        # only): an .npy sample rewritten with other values keeps its size, the time is the sign
        why = (
            "their size or modification time differs: a copy that did not keep the times, cp "
            "without -p, is a change"
        )
        raise DistillError(
            f"{shown(out)}: holds targets of data files that changed since "
            f"({', '.join(map(shown, changed[:3])) or 'their sizes and times are not recorded'}"
            f"){'; ' + why if changed else ''}; use another folder (or delete it) to start over"
        )
    # not the batch size: a batch's rows are its samples' run one at a time (checked on the
    # first batch of every run, a resume's too), so another one resumes (and a complete
    # folder was refused though nothing would run); the manifest keeps the first run's
    # T and the class axis shape soft targets only, and axis -1 of [n, C] logits is axis 1:
    # both were refused where they made no difference
    ranks = sorted({len(v["shape"]) for v in manifest["tensors"].values() if v["kind"] == "soft"})
    for key in ("format", "teacher", "temperature", "axis", "sources", "preprocess"):
        mine, theirs = config[key], manifest.get(key)
        if key == "teacher":  # the same bytes may have moved
            mine = (mine["sha256"], mine.get("data_sha256"))
            theirs = ((theirs or {}).get("sha256"), (theirs or {}).get("data_sha256"))
        if key in ("temperature", "axis") and not ranks:
            continue
        if key == "axis" and type(theirs) is int:
            mine, theirs = [mine % n for n in ranks], [theirs % n for n in ranks]
        if theirs != mine:
            what = {  # ('another sources' said nothing of files)
                "sources": "of other samples",
                "preprocess": "made with other image preprocessing",
            }.get(key, f"made with another {key}")
            why = {"sources": " (files added, removed or renamed)"}.get(key, "")
            if key in ("temperature", "axis"):
                why = f" ({manifest.get(key)!r}; this run {config[key]!r})"
            raise DistillError(
                f"{shown(out)}: holds targets {what} than this run's{why}; use another folder "
                "(or delete it) to start over"
            )
    wanted = {s.name: (s.source, s.kind) for s in specs}
    constants = manifest.get("constants", {})
    have = {k: (v["source"], v["kind"]) for k, v in {**manifest["tensors"], **constants}.items()}
    if wanted != have:
        raise DistillError(
            f"{shown(out)}: holds targets for tensors {sorted(have)}, this run asks for {sorted(wanted)}"
        )
    for spec in specs:
        # as the folder stored it: once, or per sample (a folder made before constant hints
        # were stored once has them per sample, and goes on so)
        spec.once = spec.name in constants
        entry = constants[spec.name] if spec.once else manifest["tensors"][spec.name]
        spec.file = entry["file"]
        # the folder's layout (a folder made before batch axes were told from the model
        # stacked every output on axis 0, and goes on so)
        spec.batch_axis = int(entry.get("batch_axis", 0))
    log.info("resuming %s at %d/%d", out, manifest["done"], manifest["count"])
    return manifest


def remove_unkept(out: str | os.PathLike[str]) -> bool:
    """Remove the target files and the manifest of the run stopped in the targets folder `out`
    before its first checkpoint (its manifest says 0 done): they hold nothing that was kept.
    Whether there were such files; a folder without a manifest, or whose manifest cannot be
    read or records samples done, or that another run is writing into (holds its lock), is
    left as it is."""
    folder = Path(out)
    with _folder_lock(folder) as mine:
        if not mine:
            return False
        try:
            manifest = read_manifest(folder)
        except DistillError:
            return False
        if manifest.get("complete") or manifest.get("done"):
            return False
        _remove_unkept(folder, manifest)
        return True


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[bool]:
    """An exclusive advisory lock (flock) on the targets folder while a run writes into it:
    False when another process (or another call) holds it. Released when the run ends, the
    process killed too. Where folders cannot be locked (no fcntl, a folder that cannot be
    opened, a file system without flock), True: runs go as before, unlocked."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield True
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # (no such folder yet: nothing to remove or to guard)
        yield True
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held = True
        except OSError as e:
            held = e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN)  # else: unlockable, go on
        yield held
    finally:
        os.close(fd)


def _remove_unkept(out: Path, manifest: Mapping[str, Any]) -> None:
    """Remove the target files and the manifest of a run stopped before its first checkpoint
    (`manifest` is its own, done 0): they hold nothing that was kept."""
    path = out / MANIFEST
    try:
        entries = [*dict(manifest.get("tensors") or {}).values()]
        entries += dict(manifest.get("constants") or {}).values()
        for entry in entries:
            file = str(entry.get("file", ""))
            if file and Path(file).name == file and file.endswith(".npy"):
                (out / file).unlink(missing_ok=True)
        path.unlink(missing_ok=True)  # last: until then a rerun still knows the files
    except OSError as e:
        raise DistillError(
            f"{shown(out)}: cannot remove the files of the run stopped before its first "
            f"checkpoint ({shown(str(e.filename))}: {e.strerror or e}); remove them or use another folder"
        ) from e


# --------------------------------------------------------------------------- reading


def read_manifest(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of a targets folder."""
    from graphopt.quant.cache import read_text_file

    path = Path(directory) / MANIFEST
    # a FIFO blocked the read for ever; bytes that are no UTF-8 were a traceback
    text = read_text_file(path, "distillation manifest", limit=MANIFEST_LIMIT, error=DistillError)
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as e:
        raise DistillError(f"{shown(path)}: not valid JSON ({e.msg}, line {e.lineno})") from e
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DistillError(f"{shown(path)}: not a graphopt distillation manifest ({FORMAT})")
    _check_manifest(manifest, path)
    return dict(manifest)


KINDS = ("soft", "raw", "hint")


def _check_manifest(manifest: Mapping[str, Any], path: Path) -> None:
    """A `DistillError` naming the first field of `manifest` (read from `path`) that is not
    what `write_targets` writes: an edited or damaged manifest raised KeyError, TypeError or
    AttributeError out of the resume and `load_targets` (29 of 120 seeded damaged ones), and a
    'file' such as '../x.npy' would have had a resume write outside the folder."""

    def fail(what: str) -> DistillError:
        return DistillError(
            f"{shown(path)}: a damaged manifest ({what}); make the targets again in another folder "
            "(or delete this one)"
        )

    def count(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0

    for key in ("done", "count"):
        if not count(manifest.get(key)):
            raise fail(f"{key!r} is not a number of samples")
    if manifest["done"] > manifest["count"]:
        raise fail("more samples done than it counts")
    if not isinstance(manifest.get("complete", False), bool):
        raise fail("'complete' is not true or false")
    done, total = manifest["done"], manifest["count"]
    if manifest.get("complete", done == total) != (done == total):  # an edited one: 6 of 6
        # done but incomplete reran without running (exit 0) and load_targets refused it for
        # ever; 2 of 6 complete loaded 2 rows as the targets
        raise fail(f"'complete' is {str(manifest['complete']).lower()} with {done} of {total} done")
    per = manifest.get("samples_per_file", 1)
    if not count(per) or per < 1:
        raise fail("'samples_per_file' is not a positive number")
    last = manifest.get("samples_in_last_file", per)  # (a short last batch; absent: per)
    if not count(last) or not 1 <= last <= per:
        raise fail("'samples_in_last_file' is not a number from 1 to 'samples_per_file'")
    rows = stored_rows(manifest)
    for key, kind in (("teacher", dict), ("sources", list), ("source_stats", list)):
        if not isinstance(manifest.get(key, kind()), kind):
            raise fail(f"{key!r} is not a {'mapping' if kind is dict else 'list'}")
    tensors = manifest.get("tensors")
    if not isinstance(tensors, dict):
        raise fail("'tensors' is not a mapping")
    constants = manifest.get("constants", {})  # (absent from a manifest without them)
    if not isinstance(constants, dict):
        raise fail("'constants' is not a mapping")
    files: dict[str, str] = {}
    for name, entry in [*tensors.items(), *constants.items()]:
        once = name in constants and entry is constants[name]
        where = f"{'constant' if once else 'tensor'} {name!r}"
        if not isinstance(entry, dict):
            raise fail(f"{where} is not a mapping")
        if once and name in tensors:
            raise fail(f"tensor {name!r} is among the constants too")
        file = entry.get("file")
        if not (isinstance(file, str) and file.endswith(".npy") and Path(file).name == file):
            raise fail(f"{where}: 'file' is not the name of a .npy file in the folder")
        if not isinstance(entry.get("source"), str) or entry.get("kind") not in KINDS:
            raise fail(f"{where}: 'source' or 'kind' ({', '.join(KINDS)}) is missing")
        shape = entry.get("shape")
        # a constant may be a scalar (no axis); a tensor has the samples' axis at least
        if not (isinstance(shape, list) and (shape or once) and all(count(d) for d in shape)):
            raise fail(f"{where}: 'shape' is not a list of sizes")
        batch_axis = entry.get("batch_axis", 0)
        if not count(batch_axis) or (batch_axis and batch_axis >= len(shape)):
            raise fail(f"{where}: 'batch_axis' is not one of its axes")
        try:
            dtype: np.dtype[Any] = np.dtype(entry.get("dtype"))
        except (TypeError, ValueError):
            dtype = np.dtype(object)
        if not isinstance(entry.get("dtype"), str) or dtype.hasobject:
            raise fail(f"{where}: 'dtype' is not a numpy type of numbers")
        # an edited count or samples_per_file had load_targets return rows never written (0)
        # as targets, or a resume refuse every sample; write_targets makes count × per rows
        if not once and shape[0] != rows:
            short = f", the last {last}" if last != per else ""
            raise fail(
                f"{where}: 'shape' holds {shape[0]} rows, not count × samples_per_file "
                f"({total} × {per}{short})"
            )
        if file in files:  # both tensors' rows were written into one file, each over the other
            raise fail(f"tensors {files[file]!r} and {name!r} share the file {file!r}")
        files[file] = name


def load_targets(
    directory: str | os.PathLike[str], *, allow_partial: bool = False
) -> dict[str, np.ndarray]:
    """The stored targets, by tensor name, as read-only memory-mapped arrays (samples on axis 0).

    An unfinished folder is an error unless `allow_partial` (then only the written samples).
    """
    manifest = read_manifest(directory)
    done = stored_rows(manifest, int(manifest["done"]))
    if not manifest.get("complete") and not allow_partial:
        raise DistillError(
            f"{shown(directory)}: targets are incomplete ({manifest['done']}/{manifest['count']} "
            "samples); rerun distill-targets to resume"
        )
    out = {}
    for name, entry in manifest["tensors"].items():
        try:
            arr = np.load(Path(directory) / entry["file"], mmap_mode="r")
        except NP_LOAD_ERRORS as e:
            raise DistillError(f"{shown(Path(directory) / entry['file'])}: cannot read: {e}") from e
        _check_file(Path(directory) / entry["file"], arr, entry)
        out[name] = arr[:done]
    return out


def load_constants(directory: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """The hints a targets folder stored once, by name, as read-only memory-mapped arrays: those
    the teacher computes from its constants only, the same for every sample (the manifest's
    "constants"; none in a folder made before they were stored so, which holds them per
    sample among the targets). Written when the folder was made, so a partial folder's too."""
    manifest = read_manifest(directory)
    out = {}
    for name, entry in manifest.get("constants", {}).items():
        path = Path(directory) / entry["file"]
        try:
            arr = np.load(path, mmap_mode="r")
        except NP_LOAD_ERRORS as e:
            raise DistillError(f"{shown(path)}: cannot read: {e}") from e
        _check_file(path, arr, entry)
        out[name] = arr
    return out


def iter_batches(
    directory: str | os.PathLike[str], batch_size: int
) -> Iterator[dict[str, np.ndarray]]:
    """Consecutive slices of `batch_size` rows of every stored tensor (memory-mapped): rows,
    not sample files, so with `samples_per_file` > 1 (a file holding several samples) a slice
    holds `batch_size` of those rows."""
    try:  # 0 was a ValueError out of range(), -1 no batch at all (no error)
        step = operator.index(batch_size)
    except TypeError:
        step = 0
    if step < 1:
        raise DistillError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    targets = load_targets(directory)
    count = min((len(v) for v in targets.values()), default=0)
    for start in range(0, count, step):
        yield {k: v[start : start + step] for k, v in targets.items()}
