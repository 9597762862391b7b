"""Calibration data from a folder: `.npy` / `.npz` feeds, or images with a preprocessing spec.

`folder_feeds(directory, model, spec, batch_size)` returns a re-iterable, sized sequence of feed
dicts, decoded lazily one batch at a time (files in sorted name order, so runs are repeatable;
`batch_size` files are stacked along axis 0 — for a model whose batch is fixed at B > 1,
`batch_size` B gives whole batches only and leaves a short remainder out):

- `name.npz`: one array per model input, keyed by input name (an initializer-backed input's
  array overrides its default; other arrays, e.g. labels, are ignored; a lone array of any
  name feeds a single-input model);
- `name.npy`: the array of the model's single input;
- `name.jpg|jpeg|png|bmp`: decoded to RGB, then `graphopt.realmodels.preprocess` with the spec
  (resize or letterbox to H×W, `(pixel · scale − mean) / std`, RGB or BGR; the luma as one
  channel when the model's input has a fixed channel count of 1), arranged as the input is
  declared (`graphopt.quant.image_input`): NCHW, NHWC, or CHW/HWC without a batch axis; float
  inputs normalized, uint8 inputs the raw pixels.

`PreprocessSpec` comes from CLI flags or a YAML file with the same keys (`size: [H, W]`,
`letterbox`, `mean`, `std`, `scale`, `bgr`, `pad_value`). Errors (empty folder, undecodable
image or array file, unknown key, bad value) are `QuantizeError`s naming the file. This module
does not run models.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from graphopt._text import shown
from graphopt.arrays import (
    NP_LOAD_ERRORS,
    load_checked,
    member_checked,
    native_byte_order,
    unreadable_reason,
)
from graphopt.backends.onnxruntime import NO_NUMPY_ARRAY
from graphopt.errors import GraphoptError, QuantizeError
from graphopt.quant.collect import FeedChecker
from graphopt.quant.image_input import image_input
from graphopt.realmodels import IMAGE_SUFFIXES

log = logging.getLogger("graphopt.quant")

ARRAY_SUFFIXES = (".npy", ".npz")


@dataclass
class PreprocessSpec:
    """How images become a model input (see `graphopt.realmodels.preprocess`)."""

    size: tuple[int, int] | None = None  # (H, W); None: the model input's fixed H and W
    letterbox: bool = False
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    scale: float = 1.0
    bgr: bool = False
    pad_value: float = 114.0

    @classmethod
    def from_yaml(cls, path: str | Path) -> PreprocessSpec:
        import yaml

        from graphopt.quant.cache import read_text_file

        text = read_text_file(path, "preprocessing spec", limit=1 << 20)  # not /dev/zero
        try:
            _refuse_deep_nesting(text, path)
            root = yaml.compose(text, Loader=yaml.SafeLoader)
            _refuse_keys_given_twice(root, path)
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:  # (its text is several lines: the problem, its mark)
            mark = getattr(e, "problem_mark", None)
            where = f"{shown(path)}:{mark.line + 1}" if mark is not None else shown(path)
            if isinstance(e, yaml.reader.ReaderError):  # a control character: a position
                where = f"{shown(path)}:{text.count(chr(10), 0, e.position) + 1}"
            problem = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise QuantizeError(f"{where}: cannot read preprocessing spec: {problem}") from e
        if not isinstance(data, dict):
            raise QuantizeError(f"{shown(path)}: preprocessing spec must be a mapping")
        return cls.from_mapping(data, shown(path))

    @classmethod
    def from_mapping(
        cls, data: dict[str, Any], where: str = "preprocessing spec"
    ) -> PreprocessSpec:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise QuantizeError(
                f"{where}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}"
            )
        spec = cls()
        try:
            if data.get("size") is not None:
                size = data["size"]
                if isinstance(size, str):
                    spec.size = parse_size(size)
                elif isinstance(size, int) and not isinstance(size, bool):
                    spec.size = (size, size)
                else:
                    if not isinstance(size, list | tuple) or len(size) != 2:
                        raise ValueError(f"size needs [H, W], got {size!r}")
                    spec.size = (_whole(size[0], size), _whole(size[1], size))
                if min(spec.size) <= 0:
                    raise ValueError(f"size needs positive H and W, got {size!r}")
            for key in ("mean", "std"):
                if key in data:
                    setattr(spec, key, parse_triple(data[key], key))
            for key in ("scale", "pad_value"):
                if key in data:
                    setattr(spec, key, float(data[key]))
            for key in ("letterbox", "bgr"):
                if key in data:
                    setattr(spec, key, parse_flag(data[key], key))
        except (QuantizeError, TypeError, ValueError, IndexError) as e:
            raise QuantizeError(f"{where}: {e}") from e
        spec.check(where)
        return spec

    def check(
        self, where: str = "preprocessing spec", options: Mapping[str, str] | None = None
    ) -> None:
        """QuantizeError when a value cannot preprocess an image: a zero std divides by 0; a
        NaN or an infinity (--std inf made every pixel 0, and calibrated on that: exit 0). A
        zero scale is refused where an image is preprocessed (`FolderFeeds.image`). The error
        names `where` the values came from, or for a value in `options` (a key → the flag that
        gave it, '--mean') that flag: `--mean nan --std 58` was said as '--std: mean ...'."""
        for name in ("mean", "std", "scale", "pad_value"):
            values = np.atleast_1d(np.asarray(getattr(self, name), dtype=np.float64))
            if not np.isfinite(values).all():
                shown = values.tolist() if values.size > 1 else float(values[0])
                source = (options or {}).get(name, where)
                raise QuantizeError(f"{source}: {name} {shown} holds a NaN or an infinity")
        if 0.0 in self.std:
            raise QuantizeError(
                f"{(options or {}).get('std', where)}: std {list(self.std)} has a zero (pixels "
                "are divided by it)"
            )


# Collections one inside another a preprocessing spec may nest (its values need 1: `size: [H, W]`)
MAX_SPEC_NESTING = 8


def _refuse_deep_nesting(text: str, path: str | Path) -> None:
    """A `QuantizeError` where the spec's YAML collections nest more than `MAX_SPEC_NESTING`
    deep: PyYAML composes them recursively, and `size: [[[...` 50 000 deep ended quantize in
    a RecursionError (a traceback, exit 1). Its parser's events come without recursion."""
    import yaml

    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_SPEC_NESTING:
                mark = event.start_mark
                raise QuantizeError(
                    f"{shown(path)}:{mark.line + 1 if mark else 1}: cannot read preprocessing "
                    f"spec: collections nested more than {MAX_SPEC_NESTING} deep"
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _refuse_keys_given_twice(root: Any, path: str | Path) -> None:
    """A `QuantizeError` for a key the spec's mapping gives twice: YAML keeps the last without
    a word (`mean:` pasted below the first: calibrated with the second), where a pipeline
    file refuses it."""
    import yaml

    if not isinstance(root, yaml.MappingNode):
        return
    first: dict[str, int] = {}
    for key, _ in root.value:
        if isinstance(key, yaml.ScalarNode):
            line = key.start_mark.line + 1
            if key.value in first:
                raise QuantizeError(
                    f"{shown(path)}:{line}: cannot read preprocessing spec: key "
                    f"{key.value!r} is given twice (first at line {first[key.value]}); keep one"
                )
            first[key.value] = line


def parse_size(text: str) -> tuple[int, int]:
    """'640x480' (H×W) or '640' (square): ASCII decimal digits (int() also took '1_0' as 10,
    '+8' and other scripts' digits, '８'), spaces around them as int() took them."""
    parts = [p.strip() for p in text.lower().replace("×", "x").split("x")]
    if not all(p.isascii() and p.isdigit() for p in parts):
        raise QuantizeError(f"size {text!r} is not HxW (e.g. 640x640)")
    values = [int(p) for p in parts]
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) <= 0:
        raise QuantizeError(f"size {text!r} is not HxW with positive numbers")
    return values[0], values[1]


def _whole(value: Any, size: Any) -> int:
    """A size's H or W as a whole number: int() read [1.5, 2] as 1x2 and [true, 3] as 1x3."""
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ValueError(f"size needs whole numbers [H, W], got {size!r}")
    return int(value)


_FLAGS = {"true": True, "yes": True, "on": True, "1": True}
_FLAGS.update({"false": False, "no": False, "off": False, "0": False})


def parse_flag(value: Any, name: str) -> bool:
    """A YAML boolean, 0/1, or one of true/false/yes/no/on/off (a quoted "false" is False)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _FLAGS:
        return _FLAGS[value.strip().lower()]
    raise QuantizeError(f"{name} must be true or false, got {value!r}")


def parse_triple(value: Any, name: str) -> tuple[float, float, float]:
    if isinstance(value, str):
        value = [v for v in value.replace(" ", ",").split(",") if v]
    try:
        items = [float(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
    except (TypeError, ValueError) as e:
        raise QuantizeError(f"{name} needs 1 or 3 numbers, got {value!r}") from e
    if len(items) == 1:
        items = items * 3
    if len(items) != 3:
        raise QuantizeError(f"{name} needs 1 or 3 numbers, got {len(items)}")
    return items[0], items[1], items[2]


def _batch_files(chunk: list[Path]) -> str:
    """A batch of files as messages name it: folder, first and last file."""
    return f"{shown(chunk[0].parent)}: feeds {shown(chunk[0].name)}..{shown(chunk[-1].name)}"


class FolderFeeds(Sequence[dict[str, np.ndarray]]):
    """Feeds decoded on demand from the files of a folder (batched along axis 0)."""

    def __init__(
        self,
        files: list[Path],
        model: onnx.ModelProto,
        spec: PreprocessSpec | None,
        batch_size: int = 1,
    ):
        self.files = files
        self.model = model
        # the inputs, their unfeedable types refused (before any file is read), and the check
        # of array files against them
        self.checker = FeedChecker(model)
        self.inputs = self.checker.specs
        # initializer-backed inputs (overridable defaults): an .npz array of that name is fed
        initializers = {t.name for t in model.graph.initializer}
        self.overridable = [i.name for i in model.graph.input if i.name in initializers]
        self.spec = spec
        self.batch_size = batch_size
        # a model with a fixed batch B > 1 gets full batches of B files; the rest is dropped
        self.whole_batches_only = False
        if batch_size < 1:
            raise QuantizeError(f"batch size must be at least 1, got {batch_size}")
        if batch_size > 1:
            self.check_image_batch_axis()
            for name, _, dims in self.inputs:
                if dims and isinstance(dims[0], int) and 0 < dims[0] != batch_size:
                    hint = "" if dims[0] == 1 else f" ({dims[0]} when each file is one sample)"
                    raise QuantizeError(
                        f"input {name!r} has a fixed batch dimension {dims[0]}; "
                        f"use --batch-size 1{hint}"
                    )
                if dims and dims[0] == batch_size:
                    self.whole_batches_only = True
        if self.whole_batches_only:
            if len(files) < batch_size:
                raise QuantizeError(
                    f"{shown(files[0].parent)}: {len(files)} file(s), fewer than one batch of {batch_size}"
                )
            if len(files) % batch_size:
                log.warning(
                    "the model's batch is fixed at %d: the last %d calibration file(s) are unused",
                    batch_size,
                    len(files) % batch_size,
                )

    def check_image_batch_axis(self) -> None:
        """QuantizeError when images would be stacked into batches for an input without a
        batch axis (CHW, HWC): before the batch-size check misreads its channels as a batch."""
        if len(self.inputs) != 1 or not any(f.suffix.lower() in IMAGE_SUFFIXES for f in self.files):
            return
        try:
            fit = image_input(*self.inputs[0])
        except QuantizeError:
            return  # said when the first image is decoded
        if not fit.batch_axis:
            raise QuantizeError(
                f"input {fit.name!r} ({fit.layout}) has no batch axis: images feed it one at a "
                "time (--batch-size 1)"
            )

    def check_image_size(self) -> None:
        """QuantizeError, before any image is decoded, where the spec's size contradicts the
        one side the image input fixes (a text recognizer's height 48, its width free): each
        image was made at that size and refused by the calibration's feed check ('calibration
        feed 0: input 'x' has shape [1, 3, 32, 320], ...'), naming neither file nor --size."""
        size = self.spec.size if self.spec else None
        if size is None or len(self.inputs) != 1:
            return
        if not any(f.suffix.lower() in IMAGE_SUFFIXES for f in self.files):
            return
        try:
            fit = image_input(*self.inputs[0])
        except QuantizeError:
            return  # said when the first image is decoded
        conflict = fit.size_conflict(size, self.inputs[0][2])
        if conflict:
            raise QuantizeError(conflict)

    def __len__(self) -> int:
        if self.whole_batches_only:
            return len(self.files) // self.batch_size
        return (len(self.files) + self.batch_size - 1) // self.batch_size

    def feed_name(self, index: int) -> str:
        """Feed `index` as a message names it (`collect.feed_name`): its file, or its batch's
        first and last files."""
        chunk = self.files[index * self.batch_size : (index + 1) * self.batch_size]
        if len(chunk) == 1:
            return shown(chunk[0])
        return _batch_files(chunk)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:  # type: ignore[override]
        if not 0 <= index < len(self):
            raise IndexError(index)
        chunk = self.files[index * self.batch_size : (index + 1) * self.batch_size]
        feeds = [self.decode(f) for f in chunk]
        # arrays a user saved get the calibration's own check here, naming the file: it said
        # "calibration feed 37: input 'x' has dtype uint8, the model wants float32" (or "holds
        # NaN"), which file not said; images are made in the input's dtype and layout
        # (`image_input`), their size checked by `image`
        arrays = any(f.suffix.lower() in ARRAY_SUFFIXES for f in chunk)
        if len(feeds) == 1:
            return self.checker.check(feeds[0], shown(chunk[0])) if arrays else feeds[0]
        files = _batch_files(chunk)
        for k, first in feeds[0].items():  # (np.concatenate promoted a uint8 file's 0..255
            # pixels to float32 beside 0..1 ones, and the batch calibrated: exit 0; floats of
            # two widths are cast to the input's as one file's are)
            for path, feed in zip(chunk, feeds, strict=True):
                if k in feed and feed[k].dtype != first.dtype and not _floats(first, feed[k]):
                    raise QuantizeError(
                        f"{files} do not stack into one batch: input {k!r} is {first.dtype} "
                        f"in {shown(chunk[0].name)} but {feed[k].dtype} in {shown(path.name)}"
                    )
        try:
            batch = {k: np.concatenate([f[k] for f in feeds], axis=0) for k in feeds[0]}
        except (KeyError, ValueError) as e:
            raise QuantizeError(
                f"{files} do not stack into one batch ({e}); use --batch-size 1"
            ) from e
        return self.checker.check(batch, files) if arrays else batch

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        for i in range(len(self)):
            yield self[i]

    def decode(self, path: Path) -> dict[str, np.ndarray]:
        suffix = path.suffix.lower()
        names = [n for n, _, _ in self.inputs]
        if suffix == ".npz":
            return self.npz(path, names)
        if suffix == ".npy":
            if len(names) != 1:
                raise QuantizeError(
                    f"{shown(path)}: a .npy feed fits only a single-input model; this one has inputs "
                    f"{', '.join(names)} (use .npz keyed by input name)"
                )
            try:
                value = load_checked(path)
            except NP_LOAD_ERRORS as e:
                reason = unreadable_reason(e, path)
                raise QuantizeError(f"{shown(path)}: cannot read .npy feed: {reason}") from e
            if not isinstance(value, np.ndarray):  # an .npz archive under a .npy name
                value.close()
                raise QuantizeError(f"{shown(path)}: is an .npz archive, not a .npy array")
            return {names[0]: native_byte_order(value)}
        image = self.image(path)
        return {names[0]: image}

    def npz(self, path: Path, names: list[str]) -> dict[str, np.ndarray]:
        """The arrays of `path` named after the model's inputs (others ignored); a lone array
        of any name for a single-input model."""
        try:
            data = load_checked(path)
        except NP_LOAD_ERRORS as e:
            reason = unreadable_reason(e, path)
            raise QuantizeError(f"{shown(path)}: cannot read .npz feed: {reason}") from e
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise QuantizeError(f"{shown(path)}: is a .npy array, not an .npz archive")
        with data:
            keys = list(data.files)
            try:
                if all(n in keys for n in names):
                    wanted = [n for n in names + self.overridable if n in keys]
                    return {n: native_byte_order(member_checked(data, n)) for n in wanted}
                if len(names) == 1 and len(keys) == 1:
                    return {names[0]: native_byte_order(member_checked(data, keys[0]))}
            except NP_LOAD_ERRORS as e:
                reason = unreadable_reason(e, path, member=True)
                raise QuantizeError(f"{shown(path)}: cannot read .npz feed: {reason}") from e
        missing = [n for n in names if n not in keys]
        raise QuantizeError(
            f"{shown(path)}: no array for model input(s) {', '.join(missing)}; the archive has "
            f"{', '.join(map(shown, keys)) or 'no arrays'} (key each array by its input name)"
        )

    def image(self, path: Path) -> np.ndarray:
        from graphopt.realmodels import load_image, preprocess

        if len(self.inputs) != 1:
            raise QuantizeError(f"{shown(path)}: images fit only a single-input model")
        name, elem_type, dims = self.inputs[0]
        fit = image_input(name, elem_type, dims)
        spec = self.spec or PreprocessSpec()
        size = spec.size or fit.size
        height, width = fit.declared
        if size is None:
            raise QuantizeError(
                f"input {name!r} {fit.one_side or 'has no fixed height and width'} ({dims}); give "
                f"--size {height or 'H'}x{width or 'W'}"
            )
        if fit.size is not None and tuple(size) != fit.size:  # said before resizing to it:
            # --size 30000x30000 ran out of memory (MemoryError) before the feed was refused
            raise QuantizeError(
                f"size {size[0]}x{size[1]}: input {name!r} is fixed at {fit.size[0]}x"
                f"{fit.size[1]}; drop --size (or give that)"
            )
        batch = dims[0] if fit.batch_axis and dims else None
        if isinstance(batch, int) and batch > 1 and self.batch_size != batch:
            # (--batch-size 1 on a model whose batch is fixed: each image was a feed of 1,
            # refused as 'calibration feed 0: input 'x' has shape [1, ...]')
            raise QuantizeError(
                f"input {name!r} has a fixed batch of {batch} ({dims}): images feed it "
                f"{batch} at a time; give --batch-size {batch}"
            )
        too_large = image_too_large(size[0], size[1])
        if too_large:
            raise QuantizeError(f"{shown(path)}: {too_large}; give a smaller --size")
        if fit.channels == 1 and (len(set(spec.mean)) > 1 or len(set(spec.std)) > 1):
            raise QuantizeError(
                f"input {name!r} takes one gray channel: give one --mean and one --std"
            )
        if spec.scale == 0 and not fit.raw_pixels:  # (exit 0, on one constant image)
            raise QuantizeError(
                "--scale 0 makes every pixel 0 (pixels are multiplied by it), every image the "
                "same constant; give the pixels' scale (e.g. 0.00392 for 1/255)"
            )
        if fit.channels == 1 and spec.bgr:  # (the luma of RGB: BGR was ignored without a word)
            raise QuantizeError(
                f"input {name!r} takes one gray channel (the images' luma): --bgr does not "
                "apply (drop it)"
            )
        if fit.raw_pixels and (spec.scale, spec.mean, spec.std) != (1.0, (0.0,) * 3, (1.0,) * 3):
            raise QuantizeError(
                f"input {name!r} takes uint8 pixels as they are: --scale, --mean and --std "
                "do not apply (drop them)"
            )
        try:
            image = load_image(path)
        except GraphoptError as e:  # a decompression bomb too (realmodels.load_image)
            raise QuantizeError(str(e)) from e
        try:
            nchw = preprocess(
                image,
                size,
                mean=spec.mean,
                std=spec.std,
                scale=spec.scale,
                bgr=spec.bgr,
                letterbox=spec.letterbox,
                pad_value=spec.pad_value,
                gray=fit.channels == 1,
            )
            return fit.arrange(nchw)
        except MemoryError as e:  # a --size of a dynamic input too large to hold
            raise QuantizeError(
                f"{shown(path)}: not enough memory for a {size[0]}x{size[1]} image; give a smaller --size"
            ) from e


def refuse_unfeedable_inputs(inputs: Sequence[tuple[str, int, Sequence[int | str]]]) -> None:
    """A `QuantizeError` naming the first of `inputs` ((name, elem_type, dims)) whose type the
    calibration cannot feed from any file: bfloat16, float8, int4 and the other types numpy
    has no dtype for (ml_dtypes' arrays of them are saved as raw bytes, '|V1'), which
    onnxruntime's run takes no numpy array of. Each .npz was refused by onnxruntime, after the
    file was read, as "Unexpected input data type. Actual: (tensor(string))" (or float, uint8:
    whatever the file held), and images with the advice to give .npy/.npz feeds instead."""
    from graphopt._text import type_name

    for name, elem, _ in inputs:
        if elem in NO_NUMPY_ARRAY:
            kind = type_name(elem, lower=False)
            raise QuantizeError(
                f"input {shown(name)} is {kind}, which calibration cannot feed (onnxruntime's "
                f"run takes no numpy array of it, from .npy/.npz or images): calibrate a copy "
                f"of the model whose input is float32, cast to {kind} inside it"
            )


def image_too_large(height: int, width: int) -> str | None:
    """Why a `height` x `width` image is one no image may be, or None: more pixels than where
    Pillow refuses to decode one as a decompression bomb (2 x Image.MAX_IMAGE_PIXELS; no limit
    where a user turned that off). Said before resizing to it: 3000000000x8 raised Pillow's
    OverflowError (a traceback), and 40000x40000 was killed by the kernel, out of memory with
    no MemoryError where it overcommits."""
    from PIL import Image

    limit = Image.MAX_IMAGE_PIXELS
    if limit is None or height * width <= 2 * int(limit):
        return None
    return (
        f"a {height}x{width} image is too large ({height * width:,} pixels, more than Pillow's "
        f"limit for any image, {2 * int(limit):,})"
    )


def _floats(*arrays: np.ndarray) -> bool:
    return all(np.issubdtype(a.dtype, np.floating) for a in arrays)


def folder_feeds(
    directory: str | Path,
    model: onnx.ModelProto,
    spec: PreprocessSpec | None = None,
    batch_size: int = 1,
) -> FolderFeeds:
    """Calibration feeds from the `.npy`/`.npz`/image files of `directory` (sorted by name)."""
    root = Path(directory)
    if not root.is_dir():
        problem = "is a file, not a folder" if root.exists() else "does not exist"
        raise QuantizeError(f"{directory}: calibration folder {problem}")
    try:  # (a folder this user may not list, or stat in: a PermissionError, a traceback)
        files, left_out = list_calibration_folder(root)
    except OSError as e:
        raise QuantizeError(
            f"{directory}: cannot read calibration folder: {e.strerror or e}"
        ) from e
    if not files:  # (said in the one line of the error, not in a warning before it)
        suffixes = ", ".join(ARRAY_SUFFIXES + IMAGE_SUFFIXES)
        also = f"; skipped {left_out}: not a regular file" if left_out else ""
        raise QuantizeError(f"{directory}: no calibration files ({suffixes}){also}")
    if left_out:
        log.warning("%s: skipping %s: not a regular file", shown(directory), left_out)
    return FolderFeeds(files, model, spec, batch_size)


def list_calibration_folder(root: Path) -> tuple[list[Path], str]:
    """(the regular files of `root` named as images or .npy/.npz feeds, in name order; the
    entries so named that are no regular file, each with what it is, up to five and a count:
    "" for none). A broken link (a data set half copied) was left out without a word. Raises
    the OSError of a folder this user may not list, or stat in."""
    named = [p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES + ARRAY_SUFFIXES]
    files = sorted(p for p in named if p.is_file())
    return files, left_out_text(sorted(set(named) - set(files)), root)


def left_out_text(skipped: list[Path], root: Path) -> str:
    """The entries named as data files but no regular file, as a warning lists them: each by
    its path under `root` with what it is, up to five and a count ("" for none)."""
    text = ", ".join(f"{shown(p.relative_to(root))} ({_not_a_file(p)})" for p in skipped[:5])
    if len(skipped) > 5:
        text += f" and {len(skipped) - 5} more"
    return text


def _not_a_file(path: Path) -> str:
    """What `path`, named as a calibration file but no regular file, is."""
    from graphopt.ir.model_io import special_file_kind

    if path.is_dir():
        return "a folder"
    kind = special_file_kind(path)
    if kind is not None:
        return kind
    try:
        os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "a symbolic link loop"
        if path.is_symlink():
            return "a link to nothing"
        return e.strerror or "unreadable"
    return "unreadable"
