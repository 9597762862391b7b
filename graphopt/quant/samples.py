"""Which calibration feeds the accuracy search measures on: chosen by content, not position.

`SampleKeeper` keeps, while the calibration data streams by, the `count` feeds with the smallest
key: by default a feed's content digest (`feed_digest`: SHA-256 over its input names, dtypes,
shapes and bytes), so the same feeds in another order give the same samples, in the same order
(by digest), and so the same quantized model. Identical feeds have the same digest and are
interchangeable, so ties are harmless. Each kept feed may carry its FP32 outputs (`reference`,
recorded by `collect` from the calibration run); an evicted feed's are dropped with it, so at
most `count` references are alive plus the candidates being run.

Cost: SHA-256 hashes a 640×640×3 float32 feed (4.9 MB) in ~2.5 ms on the development machine
(blake2b ~4.9 ms), against ~60–80 ms of FP32 inference per such feed.

This module runs no model and decides nothing about how many samples the search needs.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

Feed = dict[str, np.ndarray]
SampleKey = Callable[[int, Feed], Any]  # (position in the data, feed) → an orderable key


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
        h.update(value.reshape(-1).data.cast("B"))
    return h.digest()


def by_digest(index: int, feed: Feed) -> bytes:
    """The default key: the feed's content digest (its position does not count)."""
    return feed_digest(feed)


def by_position(index: int, feed: Feed) -> int:
    """The first feeds: the key is the position in the data."""
    return index


@dataclass
class KeptFeed:
    key: Any
    feed: Feed
    reference: Feed | None = None  # the model's FP32 outputs for `feed`, where recorded


class SampleKeeper:
    """The `count` feeds with the smallest `key` seen so far, ordered by it.

    Streaming use: `wants(i, feed)` before running feed i gives its key when it may be kept
    (None otherwise: then it never will be, since the bar only falls); `keep(key, feed,
    reference)` after running it, which re-checks the bar (another feed in flight may have
    taken the place meanwhile) and evicts the largest once more than `count` are kept."""

    def __init__(self, count: int, key: SampleKey = by_digest) -> None:
        self.count = max(count, 0)
        self.key = key
        self.kept: list[KeptFeed] = []

    def admits(self, key: Any) -> bool:
        return len(self.kept) < self.count or (self.count > 0 and key < self.kept[-1].key)

    def wants(self, index: int, feed: Feed) -> Any | None:
        if self.count == 0:
            return None
        key = self.key(index, feed)
        return key if self.admits(key) else None

    def keep(self, key: Any, feed: Feed, reference: Feed | None = None) -> None:
        if not self.admits(key):
            return
        bisect.insort(self.kept, KeptFeed(key, feed, reference), key=lambda k: k.key)
        if len(self.kept) > self.count:
            self.kept.pop()  # the evicted feed and its reference go

    def offer(self, index: int, feed: Feed) -> None:
        """`wants` then `keep`, with no reference (nothing is run)."""
        key = self.wants(index, feed)
        if key is not None:
            self.keep(key, feed)

    @property
    def feeds(self) -> list[Feed]:
        return [k.feed for k in self.kept]

    @property
    def references(self) -> list[Feed] | None:
        """The kept feeds' FP32 outputs, in the same order; None unless every one has them."""
        refs = [k.reference for k in self.kept]
        return None if any(r is None for r in refs) else [r for r in refs if r is not None]
