"""How a photograph feeds one model input: layout and element type, read from its declaration.

- Layout: channels first (NCHW, or CHW without a batch axis) or channels last (NHWC, HWC),
  decided by which of the two candidate axes declares 1 or 3 channels. A rank-4 input whose
  candidate axes are both symbolic is read as NCHW with 3 channels (graphopt's long-standing
  default); every other shape that does not tell is a one-line `QuantizeError` saying why.
- Element type: float inputs (float32, float16, float64) take the normalized pixels
  `(pixel · scale − mean) / std`; uint8 inputs the raw pixels (resized or letterboxed, channel
  order as asked), without normalization.

What it does not do: decode or resize images (`graphopt.realmodels.load_image`,
`preprocess`), or batch them (`graphopt.quant.data`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from graphopt._text import type_name
from graphopt.errors import QuantizeError

# element types an image can feed, and the numpy type of the feed
IMAGE_DTYPES: dict[int, np.dtype] = {
    onnx.TensorProto.FLOAT: np.dtype(np.float32),
    onnx.TensorProto.FLOAT16: np.dtype(np.float16),
    onnx.TensorProto.DOUBLE: np.dtype(np.float64),
    onnx.TensorProto.UINT8: np.dtype(np.uint8),
}
IMAGE_CHANNELS = (1, 3)  # gray, or RGB/BGR


@dataclass(frozen=True)
class ImageInput:
    """What an image must become to feed input `name`."""

    name: str
    dtype: np.dtype
    channels: int = 3
    channels_last: bool = False
    batch_axis: bool = True
    size: tuple[int, int] | None = None  # (H, W) the input fixes; None: symbolic
    declared: tuple[int | None, int | None] = (None, None)  # H and W each, None: symbolic

    @property
    def one_side(self) -> str:
        """ "fixes only its height" (or width) for an input that fixes one side alone (a text
        recognizer's height 48), "" otherwise: how a request for a size names it."""
        height, width = self.declared
        if self.size is not None or not (height or width):
            return ""
        return f"fixes only its {'height' if height else 'width'}"

    def size_conflict(self, size: tuple[int, int], dims: object) -> str:
        """Why `size` (H, W) cannot feed an input that fixes one side alone to another size, ""
        where it can: quantize's and distill's images were resized to it and then refused by
        a feed check or onnxruntime, naming neither file nor --size."""
        height, width = self.declared
        if self.size is not None or (height or size[0], width or size[1]) == tuple(size):
            return ""
        return (
            f"size {size[0]}x{size[1]}: input {self.name!r} fixes its "
            f"{'height at ' + str(height) if height else 'width at ' + str(width)} "
            f"({dims}); give --size {height or size[0]}x{width or size[1]}"
        )

    @property
    def raw_pixels(self) -> bool:
        """Whether the input takes pixels as they are (uint8), not normalized."""
        return self.dtype == np.uint8

    @property
    def layout(self) -> str:
        """'NCHW', 'NHWC', 'CHW' or 'HWC'."""
        axes = "HWC" if self.channels_last else "CHW"
        return ("N" if self.batch_axis else "") + axes

    def arrange(self, nchw: np.ndarray) -> np.ndarray:
        """`graphopt.realmodels.preprocess`'s 1×C×H×W float32 as this input takes it."""
        out = nchw.transpose(0, 2, 3, 1) if self.channels_last else nchw
        if not self.batch_axis:
            out = out[0]
        if self.raw_pixels:  # whole numbers already, unless a letterbox pad is fractional
            out = np.clip(np.rint(out), 0, 255)
        return np.ascontiguousarray(out, dtype=self.dtype)


def image_input(name: str, elem_type: int, dims: list[int | str]) -> ImageInput:
    """How an image feeds input `name` of element type `elem_type` and declared `dims` (ints
    for fixed sizes, strings for symbolic ones, [] when no shape is declared: NCHW, 3
    channels, as before). A `QuantizeError` names what an image cannot feed."""
    dtype = IMAGE_DTYPES.get(elem_type)
    if dtype is None:
        kind = type_name(elem_type) if elem_type else "no type"
        raise QuantizeError(
            f"input {name!r} takes {kind}: images feed float inputs (normalized pixels) or "
            "uint8 inputs (raw pixels); give .npy/.npz feeds instead"
        )
    if not dims:
        return ImageInput(name, dtype)
    if len(dims) not in (3, 4):
        raise QuantizeError(
            f"input {name!r} has shape {_shape(dims)}: images feed rank 4 (NCHW, NHWC) or "
            "rank 3 (CHW, HWC) inputs"
        )
    batch_axis = len(dims) == 4
    first, last = dims[-3], dims[-1]
    first_fits, last_fits = first in IMAGE_CHANNELS, last in IMAGE_CHANNELS
    if first_fits and last_fits:
        raise QuantizeError(
            f"input {name!r} has shape {_shape(dims)}: its channels could be axis "
            f"{len(dims) - 3} ({'N' * batch_axis}CHW) or axis {len(dims) - 1} "
            f"({'N' * batch_axis}HWC); give .npy/.npz feeds"
        )
    if first_fits or last_fits:
        channels_last = last_fits
        height, width = (_side(d) for d in (dims[-3:-1] if channels_last else dims[-2:]))
        size = (height, width) if height is not None and width is not None else None
        channels = int(last if channels_last else first)
        return ImageInput(name, dtype, channels, channels_last, batch_axis, size, (height, width))
    if batch_axis and isinstance(first, str) and isinstance(last, str):
        return ImageInput(name, dtype)  # NCHW, 3 channels: the default where nothing tells
    if isinstance(first, int) or isinstance(last, int):
        count, axis = (first, len(dims) - 3) if isinstance(first, int) else (last, len(dims) - 1)
        raise QuantizeError(
            f"input {name!r} has {count} channels; images give 3 (RGB/BGR) or 1 (gray), on "
            f"the channels-first or channels-last axis (shape {_shape(dims)}, axis {axis} read "
            "as channels)"
        )
    raise QuantizeError(
        f"input {name!r} has shape {_shape(dims)}: no axis declares 1 or 3 channels, so "
        "CHW cannot be told from HWC (or from a batch of gray images); give .npy/.npz feeds"
    )


def _side(dim: int | str) -> int | None:
    """An image side's declared size, None where it is symbolic (or no size: 0)."""
    return dim if isinstance(dim, int) and dim > 0 else None


def _shape(dims: list[int | str]) -> str:
    return "[" + ", ".join(str(d) for d in dims) + "]"
