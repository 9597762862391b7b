"""A one-line progress bar with ETA on stderr (no dependency): `12/32 [=====    ] 37% ETA 4s`."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Call `update(done)` as work completes and `close()` at the end; redraws at most 5×/s."""

    def __init__(self, total: int | None, label: str = "calibrating", stream: TextIO | None = None):
        self.total = total
        self.label = label
        self.stream = stream or sys.stderr
        self.start = time.perf_counter()
        self.last = 0.0
        self.done = 0
        self.drawn = False

    def update(self, done: int) -> None:
        now = time.perf_counter()
        if done == 0:  # (re)start the clock when the work itself starts
            self.start = now
            return
        self.done = done
        if now - self.last < 0.2 and done != self.total:
            return
        self.last = now
        self.stream.write("\r" + self.line(now))
        self.stream.flush()
        self.drawn = True

    def line(self, now: float) -> str:
        elapsed = now - self.start
        if not self.total:
            return f"{self.label} {self.done} [{elapsed:.0f}s]"
        share = min(self.done / self.total, 1.0)
        bar = "=" * int(share * 24)
        eta = elapsed / self.done * (self.total - self.done) if self.done else 0.0
        return (
            f"{self.label} {self.done}/{self.total} [{bar:<24}] {share:4.0%} "
            f"elapsed {elapsed:.0f}s ETA {eta:.0f}s"
        )

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\r" + self.line(time.perf_counter()) + "\n")
            self.stream.flush()
