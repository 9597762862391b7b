"""Which calibration feeds the accuracy search measures on: chosen by content, not position.

`SampleKeeper` keeps, while the calibration data streams by, the `count` feeds with the smallest
key, ordered by it. The default key (`by_content`) is a function of the feed alone, so the same
feeds in another order give the same samples, in the same order, and so the same quantized
model:

    key(x) = (−spread(Y₀(x)), digest(x)),   spread(Y₀) = Σ_outputs std(Y₀) (4 significant digits)

the feeds whose FP32 outputs vary most first (the search needs feeds on which the model sees
something: `sensitivity` module docstring), the content digest (`feed_digest`: SHA-256 over
input names, dtypes, shapes and bytes) breaking ties. Identical feeds have the same key and are
interchangeable, so ties left are harmless; the rounding keeps a last-bit difference between two
runs of the same feed (the calibration probe against a plain session) from reordering feeds.
Why not the digest alone: it is as arbitrary as taking the first feeds. On the benchmark's
ppocr_det split (32 feeds) the two smallest digests were a text photograph and one whose text
map is flat (range 0); measured on them the search kept nothing float and the model kept 0.739
mask IoU, against 0.925 for the two most varied (page.png and its mirror image).

Each kept feed carries its FP32 outputs (`reference`, own copies); an evicted feed's are dropped
with it, so at most `count` references are alive plus the candidate being offered.

Cost per feed: the model's outputs are fetched for every feed (the key needs them: on
ppocr_det the head's last layers then run for each feed, which the range probe alone prunes), a
standard deviation over them (~1 ms for ppocr_det's 640×640 map), and the digest only where two
spreads tie (SHA-256: ~2.5–3 ms for a 640×640×3 float32 feed of 4.9 MB; blake2b ~4.9 ms),
against ~60 ms of FP32 inference per feed.

This module runs no model (`collect` and `collect.choose_samples` do) and does not decide how many
samples the search needs.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

Feed = dict[str, np.ndarray]
# (position in the data, feed, its FP32 outputs or None) → an orderable key
SampleKey = Callable[[int, Feed, Mapping[str, Any] | None], Any]


def feed_digest(feed: Mapping[str, np.ndarray]) -> bytes:
    """A stable digest of `feed`'s content: every input's name, dtype, shape and bytes, inputs
    in name order (the dict's own order does not count)."""
    h = hashlib.sha256()
    for name in sorted(feed):
        value = np.ascontiguousarray(feed[name])
        encoded = name.encode()
        header = [len(encoded), value.ndim, *value.shape]
        h.update(np.array(header, dtype="<i8").tobytes())
        h.update(encoded)
        h.update(value.dtype.str.encode().ljust(8, b"\0"))
        if value.dtype.kind == "V":  # ml_dtypes' float8/int4 types all read '<V1' in `str`
            h.update(value.dtype.name.encode())
        h.update(value.reshape(-1).view(np.uint8).data)  # (a memoryview of '<V1' cannot cast)
    return h.digest()


def output_spread(outputs: Mapping[str, Any] | None) -> float:
    """Σ over the outputs of their standard deviation (float64), to 4 significant digits;
    0 without outputs. Empty or non-finite outputs add nothing."""
    total = 0.0
    for name in sorted(outputs or {}):
        value = np.asarray(outputs[name]) if outputs is not None else np.zeros(0)
        if value.size and value.dtype != np.bool_ and np.issubdtype(value.dtype, np.number):
            with np.errstate(invalid="ignore", over="ignore"):  # inf − inf: NaN, said below
                std = float(np.std(value, dtype=np.float64))
            total += std if math.isfinite(std) else 0.0
    return float(f"{total:.4g}")


class ContentKey:
    """(−spread, digest) ordering; the digest is computed only when two spreads tie (most
    feeds lose on spread alone: ~3 ms saved per 640×640 feed)."""

    __slots__ = ("_digest", "_feed", "spread")

    def __init__(self, spread: float, feed: Feed) -> None:
        self.spread = spread
        self._feed: Feed | None = feed
        self._digest: bytes | None = None

    @property
    def digest(self) -> bytes:
        if self._digest is None:
            assert self._feed is not None
            self._digest, self._feed = feed_digest(self._feed), None
        return self._digest

    def hold(self, feed: Feed) -> None:
        """Take the digest, when it is still to compute, of `feed` (the keeper's own copy of
        the feed this key was made for): the caller may refill the arrays it offered."""
        if self._digest is None:
            self._feed = feed

    def __lt__(self, other: ContentKey) -> bool:
        if self.spread != other.spread:
            return self.spread > other.spread  # most varied first
        return self.digest < other.digest

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ContentKey):
            return NotImplemented
        return self.spread == other.spread and self.digest == other.digest

    __hash__ = None  # type: ignore[assignment]


def by_content(index: int, feed: Feed, outputs: Mapping[str, Any] | None) -> ContentKey:
    """The default key: most varied FP32 outputs first, then the smallest content digest."""
    return ContentKey(output_spread(outputs), feed)


def by_digest(index: int, feed: Feed, outputs: Mapping[str, Any] | None) -> bytes:
    """The smallest content digests (the outputs do not count)."""
    return feed_digest(feed)


def by_position(index: int, feed: Feed, outputs: Mapping[str, Any] | None) -> int:
    """The first feeds: the key is the position in the data."""
    return index


@dataclass
class KeptFeed:
    key: Any
    feed: Feed
    reference: Feed | None = None  # the model's FP32 outputs for `feed`, where recorded


class SampleKeeper:
    """The `count` feeds with the smallest `key` offered so far, ordered by it. `uses_outputs`:
    whether the key reads the outputs (else `may_keep` knows before a feed is run)."""

    def __init__(self, count: int, key: SampleKey = by_content, uses_outputs: bool = True) -> None:
        self.count = max(count, 0)
        self.key = key
        self.uses_outputs = uses_outputs
        self.kept: list[KeptFeed] = []

    def may_keep(self, index: int, feed: Feed) -> bool:
        """False when feed `index` will not be kept whatever its outputs (no need to fetch
        them): the bar only falls."""
        if self.count == 0:
            return False
        if self.uses_outputs or len(self.kept) < self.count:
            return True
        return bool(self.key(index, feed, None) < self.kept[-1].key)

    def offer(self, index: int, feed: Feed, outputs: Mapping[str, Any] | None = None) -> bool:
        """Keep feed `index` (own copies of it and its `outputs`, copied only then) when its key
        is among the `count` smallest so far, evicting the largest; whether it was kept."""
        if self.count == 0:
            return False
        key = self.key(index, feed, outputs)
        if len(self.kept) == self.count and not key < self.kept[-1].key:
            return False
        # copies: onnxruntime's arrays can keep the session's memory arena alive (+0.56 GiB
        # peak on ppocr_det through the accuracy search)
        reference = (
            {o: np.array(v, copy=True) for o, v in outputs.items()} if outputs is not None else None
        )
        # and of the feed: a data source may refill one buffer for every feed (as a TensorRT
        # calibrator's get_batch does), and the search then measured the last feed against
        # the references of the ones kept
        own = {name: np.array(value, copy=True) for name, value in feed.items()}
        if isinstance(key, ContentKey):
            key.hold(own)
        bisect.insort(self.kept, KeptFeed(key, own, reference), key=lambda k: k.key)
        if len(self.kept) > self.count:
            self.kept.pop()  # the evicted feed and its reference go
        return True

    @property
    def feeds(self) -> list[Feed]:
        return [k.feed for k in self.kept]

    @property
    def references(self) -> list[Feed] | None:
        """The kept feeds' FP32 outputs, in the same order; None unless every one has them."""
        refs = [k.reference for k in self.kept]
        return None if any(r is None for r in refs) else [r for r in refs if r is not None]
